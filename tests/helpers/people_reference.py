"""The person detector's image operations as they were before they were vectorised (the
per-pixel flood of ``segment_regions``, shifted copies for dilation and 3x3 means, and
``np.percentile`` for the background): the reference the fast versions in
:mod:`thermal_action.people.image_ops` must equal exactly (tests/people/test_fast_paths.py).
Frozen: change it only together with a deliberate change of the detector's results.
"""

from __future__ import annotations

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


def binary_dilate(mask: np.ndarray, radius: int = 1) -> np.ndarray:
    """Dilation by a ``(2 * radius + 1)`` square."""
    out = mask.astype(bool, copy=True)
    for _ in range(radius):
        grown = out.copy()
        for dy, dx in _NEIGHBOURS_8:
            grown |= _shifted(out, dy, dx, False)
        out = grown
    return out


def fill_pinholes(mask: np.ndarray) -> np.ndarray:
    """Sets pixels whose four direct neighbours are all set (1-px holes in a blob)."""
    m = mask.astype(bool)
    inner = _shifted(m, -1, 0, False) & _shifted(m, 1, 0, False)
    inner &= _shifted(m, 0, -1, False) & _shifted(m, 0, 1, False)
    return m | inner


def box_mean(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """3x3 weighted mean; pixels with zero weight do not contribute."""
    num = np.zeros_like(values, dtype=np.float64)
    den = np.zeros_like(values, dtype=np.float64)
    v = values * weights
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            num += _shifted(v, dy, dx, 0.0)
            den += _shifted(weights.astype(np.float64), dy, dx, 0.0)
    return np.where(den > 0, num / np.maximum(den, 1e-12), 0.0)


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

    Args:
        mask: ``(H, W)`` bool foreground.
        height_map: ``(H, W)`` values to flood by (e.g. smoothed excess temperature).
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
    if flat_idx.size == 0:
        return labels.reshape(h, w)
    heights = height_map.ravel()
    peaks_in = (height_map if peak_map is None else peak_map).ravel()
    order = flat_idx[np.argsort(-heights[flat_idx], kind="stable")]
    parent = np.full(h * w, -1, np.int64)  # -1: not flooded yet
    peak: dict[int, float] = {}  # root -> highest height_map value
    top: dict[int, float] = {}  # root -> highest peak_map value
    area: dict[int, int] = {}

    def find(p: int) -> int:
        root = p
        while parent[root] != root:
            root = int(parent[root])
        while parent[p] != root:  # path compression
            parent[p], p = root, int(parent[p])
        return root

    def keep_apart(winner: int, r: int, level: float) -> bool:
        if peak[r] - level < trim_depth or area[r] < min_split_area:
            return False
        if top[r] < min_peak:
            return top[winner] >= min_peak  # trim only off a person, never fragment a dim region
        return all(peak[q] - level >= split_depth and area[q] >= min_split_area for q in (winner, r))

    for p in order.tolist():
        y, x = divmod(p, w)
        level = float(heights[p])
        flooded = [
            (yy * w + xx)
            for yy, xx in ((y + dy, x + dx) for dy, dx in _NEIGHBOURS_8)
            if 0 <= yy < h and 0 <= xx < w and parent[yy * w + xx] >= 0
        ]
        roots = {find(q) for q in flooded}
        if not roots:
            parent[p], peak[p], top[p], area[p] = p, level, float(peaks_in[p]), 1
            continue
        ranked = sorted(roots, key=lambda r: -peak[r])
        winner = ranked[0]
        for r in ranked[1:]:
            if not keep_apart(winner, r, level):
                parent[r] = winner
                area[winner] += area.pop(r)
                top[winner] = max(top[winner], top.pop(r))
                peak.pop(r)
        # Steepest ascent: join the region of the highest flooded neighbour.
        home = find(max(flooded, key=lambda q: heights[q]))
        parent[p] = home
        area[home] += 1
        top[home] = max(top[home], float(peaks_in[p]))

    roots = np.array([find(p) for p in flat_idx.tolist()])
    _, dense = np.unique(roots, return_inverse=True)
    labels[flat_idx] = dense.astype(np.int32) + 1
    return labels.reshape(h, w)


def background_percentile(samples: np.ndarray, q: float) -> np.ndarray:
    """``(H, W)`` per-pixel ``q``-th percentile of ``(S, H, W)`` samples (the detector's background)."""
    return np.percentile(samples, q, axis=0).astype(np.float32)
