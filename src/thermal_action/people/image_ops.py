"""Small image operations and the saddle-splitting region segmentation.

numpy only: scipy is not a dependency of the package.
"""

from __future__ import annotations

from bisect import bisect_left

import numpy as np

_NEIGHBOURS_8 = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]


def _shifted(a: np.ndarray, dy: int, dx: int, fill) -> np.ndarray:
    """``out[y, x] = a[y + dy, x + dx]``, ``fill`` outside the image."""
    h, w = a.shape
    out = np.full_like(a, fill)
    out[max(-dy, 0) : h - max(dy, 0), max(-dx, 0) : w - max(dx, 0)] = a[
        max(dy, 0) : h - max(-dy, 0), max(dx, 0) : w - max(-dx, 0)
    ]
    return out


def _padded(a: np.ndarray, r: int, fill) -> np.ndarray:
    """``a`` with ``r`` pixels of ``fill`` on every side."""
    h, w = a.shape
    out = np.full((h + 2 * r, w + 2 * r), fill, dtype=a.dtype)
    out[r : r + h, r : r + w] = a
    return out


def binary_dilate(mask: np.ndarray, radius: int = 1) -> np.ndarray:
    """Dilation by a ``(2 * radius + 1)`` square (separable: rows, then columns)."""
    out = mask.astype(bool, copy=True)
    if radius <= 0:
        return out
    h, w = out.shape
    rows = np.zeros((h, w + 2 * radius), bool)
    rows[:, radius : radius + w] = out
    grown = rows[:, 0:w].copy()
    for k in range(1, 2 * radius + 1):
        grown |= rows[:, k : k + w]
    cols = np.zeros((h + 2 * radius, w), bool)
    cols[radius : radius + h] = grown
    out = cols[0:h].copy()
    for k in range(1, 2 * radius + 1):
        out |= cols[k : k + h]
    return out


def fill_pinholes(mask: np.ndarray) -> np.ndarray:
    """Sets pixels whose four direct neighbours are all set (1-px holes in a blob)."""
    m = mask.astype(bool)
    h, w = m.shape
    p = _padded(m, 1, False)
    inner = p[0:h, 1 : w + 1] & p[2 : h + 2, 1 : w + 1]
    inner &= p[1 : h + 1, 0:w] & p[1 : h + 1, 2 : w + 2]
    return m | inner


def box_mean(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """3x3 weighted mean; pixels with zero weight do not contribute.

    The nine neighbours are summed in one fixed order (rows, then columns, from the top
    left), so the result is the same to the last bit however the sums are laid out.
    """
    h, w = values.shape
    wt = weights.astype(np.float64)
    v = _padded(np.asarray(values * weights, dtype=np.float64), 1, 0.0)
    wp = _padded(wt, 1, 0.0)
    num = np.zeros((h, w), np.float64)
    den = np.zeros((h, w), np.float64)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            num += v[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
            den += wp[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
    return np.where(den > 0, num / np.maximum(den, 1e-12), 0.0)


def sorted_percentile(sorted_samples: np.ndarray, q: float) -> np.ndarray:
    """``np.percentile(samples, q, axis=0)`` (its default, linear method) of samples already
    sorted along axis 0, to the last bit: the two order statistics around the virtual index
    ``(n - 1) * q / 100`` and numpy's own interpolation of them.

    ``np.percentile`` partitions every column for each call; sorting the columns costs a tenth
    of that on the detector's ``(64, 40, 60)`` background samples, and the interpolation below is
    numpy's (``_lerp`` in ``numpy/lib/_function_base_impl.py``: ``a + (b - a) * t``, or
    ``b - (b - a) * (1 - t)`` for ``t >= 0.5``), checked against ``np.percentile`` by the tests.
    """
    n = sorted_samples.shape[0]
    virtual = (n - 1) * (float(q) / 100.0)
    lo = int(np.floor(virtual))
    if virtual >= n - 1:
        return sorted_samples[n - 1].copy()
    if virtual < 0:
        return sorted_samples[0].copy()
    a, b = sorted_samples[lo], sorted_samples[lo + 1]
    t = virtual - lo
    diff = b - a
    return b - diff * (1 - t) if t >= 0.5 else a + diff * t


def percentile_filter(image: np.ndarray, size: int, q: float) -> np.ndarray:
    """``q``-th percentile over a ``size x size`` window, the image mirrored at its borders."""
    r = size // 2
    padded = np.pad(image, r, mode="reflect")
    windows = np.lib.stride_tricks.sliding_window_view(padded, (2 * r + 1, 2 * r + 1))
    return np.percentile(windows.reshape(*image.shape, -1), q, axis=-1)


def segment_regions(
    mask: np.ndarray,
    height_map: np.ndarray,
    split_depth: float,
    min_split_area: int,
    peak_map: np.ndarray | None = None,
    min_peak: float = -np.inf,
    trim_depth: float = 0.0,
) -> np.ndarray:
    """Labels the 8-connected regions of ``mask``, split where two peaks meet at a saddle.

    Pixels are flooded from the highest ``height_map`` value down (union-find). When a
    pixel (the saddle) joins two regions, the lower-peaked one ``r`` is
    - merged into the other when it rises less than ``trim_depth`` above the saddle or
      covers fewer than ``min_split_area`` pixels (noise, a bump on one person);
    - kept apart when its hottest ``peak_map`` value is below ``min_peak`` and the
      other's is not: a warm appendage that is no person by itself (residual heat on
      a chair someone just left) is cut off rather than widening the person's box;
    - kept apart when both rise at least ``split_depth`` above the saddle (two people
      touching);
    - merged otherwise (head and torso of one person lying down).
    Every pixel joins the region of its highest flooded neighbour (steepest ascent),
    so the line between two regions that stay apart follows the valley between them.

    How it runs without a Python step per pixel: the steepest-ascent neighbour of every
    pixel is fixed by the heights alone, so the flood's trees (each grown from a local peak)
    are found at once with array operations. Decisions are needed only at the few pixels
    where two trees meet; there, the regions' sizes and hottest values at that moment of
    the flood are read off each tree's pixels in flood order. Root ids (a region's peak
    pixel), the order of the decisions and the final numbering are those of the plain
    per-pixel flood, which the tests keep as the reference: the labels are identical.

    Args:
        mask: ``(H, W)`` bool foreground.
        height_map: ``(H, W)`` finite values to flood by (e.g. smoothed excess temperature).
        split_depth: peak-to-saddle depth that makes two people (unit of ``height_map``).
        min_split_area: pixels a region needs above the saddle to stay separate.
        peak_map: ``(H, W)`` values whose region maximum must reach ``min_peak`` for a
            region to count as a person; ``height_map`` when ``None``.
        min_peak: see ``peak_map``; no trimming when ``-inf``.
        trim_depth: depth above the saddle a non-person part needs to be cut off.

    Returns:
        ``(H, W)`` int32 labels, 0 for background and 1..n for the regions.
    """
    h, w = mask.shape
    flat_idx = np.flatnonzero(mask)
    labels = np.zeros(h * w, np.int32)
    n = flat_idx.size
    if n == 0:
        return labels.reshape(h, w)
    heights = np.asarray(height_map, dtype=np.float64).ravel()
    peaks_in = np.asarray(height_map if peak_map is None else peak_map).ravel()
    order = flat_idx[np.argsort(-heights[flat_idx], kind="stable")]  # (n,) pixels in flood order
    # Flood position of every pixel (n: never flooded), with a one-pixel border of n.
    wp = w + 2
    rank = np.full((h + 2) * wp, n, np.int64)
    oy, ox = np.divmod(order, w)
    at = (oy + 1) * wp + ox + 1  # (n,) padded index of each flooded pixel
    rank[at] = np.arange(n)
    hpad = np.full((h + 2) * wp, -np.inf)
    hpad[at] = heights[order]
    offsets = np.array([dy * wp + dx for dy, dx in _NEIGHBOURS_8])
    near = at[None, :] + offsets[:, None]  # (8, n) neighbours in _NEIGHBOURS_8 order
    nr = rank[near]  # (8, n) their flood positions
    earlier = nr < np.arange(n)[None, :]  # flooded before the pixel
    has = earlier.any(axis=0)
    # The steepest-ascent neighbour: the first highest of the neighbours flooded earlier (what
    # max() over them in _NEIGHBOURS_8 order returns); a pixel without one is a peak.
    best = np.argmax(np.where(earlier, hpad[near], -np.inf), axis=0)
    tree = np.where(has, nr[best, np.arange(n)], np.arange(n))
    while True:  # pointer jumping: every pixel's peak (flood position)
        nxt = tree[tree]
        if np.array_equal(nxt, tree):
            break
        tree = nxt
    # Pixels whose earlier neighbours belong to two or more trees: the only places a merge
    # can be decided.
    nt = tree[np.where(earlier, nr, 0)]  # (8, n)
    events = np.flatnonzero(has & (np.where(earlier, nt, n).min(axis=0) != np.where(earlier, nt, -1).max(axis=0)))
    root_of: dict[int, int] = {}  # tree peak (flood position) -> the tree it was merged into

    def find(t: int) -> int:
        while t in root_of:
            t = root_of[t]
        return t

    if events.size:
        by_tree = np.argsort(tree, kind="stable")  # flood positions grouped by tree, ascending in each
        trees_sorted = tree[by_tree]
        cache: dict[int, tuple[list[int], list[float]]] = {}

        def tree_pixels(t: int) -> tuple[list[int], list[float]]:
            """A tree's flood positions in order and the running maximum of ``peak_map`` over them."""
            if t not in cache:
                members = by_tree[np.searchsorted(trees_sorted, t): np.searchsorted(trees_sorted, t, "right")]
                cache[t] = members.tolist(), np.maximum.accumulate(peaks_in[order[members]]).tolist()
            return cache[t]

        def area_top(r: int, i: int) -> tuple[int, float]:
            """Pixels and highest ``peak_map`` value of region ``r`` before flood position ``i``."""
            area, top = 0, -np.inf
            for t in unions.get(r, [r]):
                members, running = tree_pixels(t)
                k = bisect_left(members, i)
                area += k
                if k:
                    top = max(top, running[k - 1])
            return area, top

        unions: dict[int, list[int]] = {}  # region root -> its trees, for regions that merged
        height_of = heights[order].tolist()
        pixel_of = order.tolist()
        rows = np.where(earlier[:, events], nt[:, events], -1).T.tolist()  # per event, in neighbour order
        for i, row in zip(events.tolist(), rows):
            # The roots as the plain flood's set holds them: pixel ids, inserted in neighbour order.
            by_pixel = {pixel_of[r]: r for r in (find(t) for t in row if t >= 0)}
            roots = set(by_pixel)
            if len(roots) < 2:
                continue
            level = height_of[i]
            ranked = sorted(roots, key=lambda r: -height_of[by_pixel[r]])
            winner = by_pixel[ranked[0]]
            for r_pixel in ranked[1:]:
                r = by_pixel[r_pixel]
                area_r, top_r = area_top(r, i)
                area_w, top_w = area_top(winner, i)
                if _keep_apart(height_of[r] - level, area_r, top_r, height_of[winner] - level, area_w, top_w,
                               split_depth, min_split_area, min_peak, trim_depth):
                    continue
                root_of[r] = winner
                unions[winner] = unions.get(winner, [winner]) + unions.pop(r, [r])
    merged_to = np.arange(n)
    for t in root_of:
        merged_to[t] = find(t)
    roots_pix = order[merged_to[tree]]  # (n,) each flooded pixel's region root, a pixel id
    # The plain flood numbers regions by their root's pixel id.
    _, dense = np.unique(roots_pix, return_inverse=True)
    labels[order] = dense.astype(np.int32) + 1
    return labels.reshape(h, w)


def _keep_apart(depth_r: float, area_r: int, top_r: float, depth_w: float, area_w: int, top_w: float,
                split_depth: float, min_split_area: int, min_peak: float, trim_depth: float) -> bool:
    """Whether the lower region ``r`` stays apart from the higher ``w`` at a saddle (the rules of
    :func:`segment_regions`); ``depth``: peak above the saddle, ``area``: pixels, ``top``: the
    highest ``peak_map`` value."""
    if depth_r < trim_depth or area_r < min_split_area:
        return False
    if top_r < min_peak:
        return top_w >= min_peak  # trim only off a person, never fragment a dim region
    return depth_w >= split_depth and area_w >= min_split_area and depth_r >= split_depth
