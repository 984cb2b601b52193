"""A built-in thermal person detector: warm blobs over a learned background.

``predict`` needs person boxes; a bare recording has none. People in an overhead
40x60 thermopile frame are compact blobs ~5-8 °C above a 16-19 °C room, so a
classical pipeline finds them well without training::

    frame (H, W) ──► °C, no-data mask (dropped packets put back in place, Kelvin input)
                   │
    background B ──┼──► excess E = frame - B - offset   (offset: global drift, a median)
    (per pixel)    │
                   ├──► foreground: E > max(k_grow * sigma, floor)   (sigma: robust noise)
                   │        minus hot objects (> 40 °C or > 12 °C over the room) + margin
                   ├──► cleanup (fill 1-px holes) -> 8-connected regions, split at saddles
                   │        between two people, cut where a cool non-person part joins
                   └──► keep regions that look like a person: size, peak well above the
                            noise, 3x3 peak >= 4 °C over the room (>= 2.5 °C for one
                            continuing a person seen in the last 2 s) -> boxes + scores

:class:`PersonDetector` keeps the state of one recording: the background (a low
percentile over a window of past frames, the pixels of detected people left out of
the update, so a person who lies still is never absorbed while static objects that
never pass as a person, a kettle or a warm chair, are) and the people seen in the
last frames (so someone who lies down and dims stays found).
:func:`detect_frame` is the stateless step for one frame and a given background.

Design choices and the numbers behind them are in :class:`DetectorParams`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Frames whose packets the receiver packed at the start are repaired with the dataset
# reader's code: the reader needs the same repair.
from thermal_action.data.packets import repair_dropped_packets

#: Readings below this are no-data (dropped packets write -273.2 °C, i.e. 0 K).
NO_DATA_BELOW_C = -60.0
#: Readings above this are impossible for a room scene and treated as no-data.
NO_DATA_ABOVE_C = 150.0
#: A frame whose median is above this is in Kelvin (rooms are ~290 K, ~17 °C).
KELVIN_MEDIAN_ABOVE = 200.0
KELVIN_OFFSET = 273.15
# A MAD of Gaussian noise times this is its standard deviation.
_MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True)
class DetectorParams:
    """Thresholds of the detector (defaults measured on synthetic and one real recording).

    Attributes:
        grow_sigma: foreground pixels have excess above ``grow_sigma * sigma`` ...
        grow_floor_c: ... and above this (°C). Real sensor noise is sigma ~0.47 °C
            (frame-to-frame), so the floor decides: 1.5 °C keeps the blurred rim of a
            person (annotated boxes are loose) while noise alone exceeds it in <0.1%
            of pixels.
        seed_sigma: a region's hottest pixel must be ``seed_sigma * sigma`` ...
        seed_floor_c: ... and this (°C) above the background: hysteresis, so a region
            grows down to the low threshold only around a clear peak.
        min_warmth_c: the hottest 3x3 mean of a region must be this much (°C) above
            the frame median. In the real sample people reach 4.7-6.9 °C (raw maxima
            5.5-8.6 °C; the wider real set has a median raw maximum of 24.5 °C over a
            16-19 °C room), the warm lens ring 2.7-3.0 °C and the residual heat on a
            chair someone left 3.5 °C, so 4 °C separates them.
        keep_warmth_c: the same test for a region that continues a person seen in the
            last ``memory_frames`` frames (see :func:`detect_frame`). Lying down spreads
            a person: fallen synthetic people reach 3.7 °C, in a cold corner too; the
            synthetic residual heat a person leaves ~2 °C.
        memory_frames: frames a person is remembered without being detected (a
            dropped packet over them, a dip under a threshold).
        memory_margin_px: how far (pixels) a remembered person may have moved.
        memory_min_iou: least mask IoU between a region and a remembered person (both
            grown by the margin) for the region to continue them.
        trust_frames: the lower ``keep_warmth_c`` applies once a person has passed
            ``min_warmth_c`` in this many frames; a patch of residual heat that passes
            it in one odd frame does not become sticky.
        max_merge_frames: people merged into one blob for longer than this (frames,
            20 s) are taken for one person. Someone standing by a fallen person merges
            with them for seconds; a person remembered twice would hand the second
            memory to the residual heat they leave when they get up.
        max_person_c: pixels hotter than this (°C) ...
        max_warmth_c: ... or this much hotter than the frame median are hot objects and
            never foreground, nor are pixels within ``hot_margin_px`` of them. A kettle
            reads 38-45 °C; at this resolution a person's hottest pixel reads 5.5-8.6 °C
            over the median in the real sample (synthetic people: up to ~10 °C on a
            warm bed), never near skin temperature.
        hot_margin_px: margin (pixels, chessboard distance) around hot pixels that is
            also excluded: a kettle's blurred halo reads 27-35 °C, person-like.
        min_area_px: smallest region kept (pixels). Real boxes are at least 7x4 px;
            a person's blob above the low threshold is at least ~6 px.
        max_area_px: largest region kept (pixels); the largest real box is 19x18 px.
        split_depth_sigma: two person-like peaks in one region become two people when
            each rises ``split_depth_sigma`` times the noise of the 3x3 mean ...
        split_depth_floor_c: ... and this (°C) above the saddle that joins them ...
        split_min_area_px: ... and each peak's region above the saddle covers at
            least this many pixels. Peaks are taken on a 3x3 mean, so one hot noise
            pixel does not split a person. The head and torso of the person lying in
            the real sample are two peaks ~1 °C over their saddle, hence 1.5 °C.
        trim_depth_sigma: a part that is no person by itself (its hottest pixel fails
            ``min_warmth_c``) is cut off its neighbour when it rises this many noise
            levels of the 3x3 mean ...
        trim_depth_floor_c: ... and this (°C) above the saddle, instead of widening the
            person's box (a chair still warm from the person who just left it).
        score_scale_c: score = (1 - exp(-peak_excess / score_scale_c)) times an area
            factor: monotone in contrast, in (0, 1); a ranking, not a probability.
        box_pad_px: pixels added on every side of a box (clipped to the frame). The
            1.5 °C iso-line lies inside the body's blurred edge: annotated boxes reach
            0.2-0.7 px (real sample) and ~1.7 px (synthetic) beyond it. IoU 0.5 recall
            with 0 / 0.5 / 1 / 1.5 px: real 0.99 / 0.99 / 0.99 / 0.76, synthetic (two
            seeds) 0.12-0.13 / 0.67-0.71 / 0.91-0.95 / 0.93-0.95.
        window_frames: the background is a percentile over samples spanning this
            many frames (~43 s at 6 fps): a static non-person object is absorbed in
            ~(1 - percentile/100) of it.
        sample_every: frames between background samples.
        percentile: per-pixel percentile of the samples. Low, so that people walking
            through a pixel (warm, a minority of samples) do not raise it.
        init_weight: the first background (a spatial percentile of the first frame) starts
            as this many samples, so an early miss does not absorb a person at once.
        init_window_px: side of the spatial window that makes the first background
            (pixels), larger than a person ...
        init_percentile: ... and the percentile taken over it, low so that a person
            who fills much of the window (at the border) is not part of it.
        freeze_margin_px: detected people, grown by this margin (pixels), are left out
            of the background update.
        sigma_smoothing: weight of the new frame in the running noise estimate.
        min_sigma_c: lower bound of the noise estimate (°C); quantised synthetic data
            can have a MAD of zero.
        repair_packets: put the received packets of a frame with dropped packets back
            in place (:func:`repair_dropped_packets`) before detecting; without it most
            such real frames are misplaced by ten rows.
    """

    grow_sigma: float = 3.0
    grow_floor_c: float = 1.5
    seed_sigma: float = 5.0
    seed_floor_c: float = 3.0
    min_warmth_c: float = 4.0
    keep_warmth_c: float = 2.5
    memory_frames: int = 12
    memory_margin_px: int = 2
    memory_min_iou: float = 0.2
    trust_frames: int = 3
    max_merge_frames: int = 120
    max_person_c: float = 40.0
    max_warmth_c: float = 12.0
    hot_margin_px: int = 1
    min_area_px: int = 6
    max_area_px: int = 400
    split_depth_sigma: float = 3.0
    split_depth_floor_c: float = 1.5
    split_min_area_px: int = 3
    trim_depth_sigma: float = 2.0
    trim_depth_floor_c: float = 0.5
    score_scale_c: float = 3.0
    box_pad_px: float = 1.0
    window_frames: int = 256
    sample_every: int = 4
    percentile: float = 20.0
    init_weight: int = 8
    init_window_px: int = 15
    init_percentile: float = 20.0
    freeze_margin_px: int = 1
    sigma_smoothing: float = 0.05
    min_sigma_c: float = 0.1
    repair_packets: bool = True

    def __post_init__(self) -> None:
        if self.sample_every < 1 or self.window_frames < self.sample_every:
            raise ValueError("need 1 <= sample_every <= window_frames")
        if not 0.0 <= self.percentile <= 100.0:
            raise ValueError(f"percentile must be in [0, 100], got {self.percentile}")
        if self.min_area_px < 1 or self.max_area_px < self.min_area_px:
            raise ValueError("need 1 <= min_area_px <= max_area_px")

    @property
    def num_samples(self) -> int:
        """Background samples kept (the window divided by the sampling step)."""
        return max(1, self.window_frames // self.sample_every)


@dataclass
class Detections:
    """Person boxes of one frame.

    Attributes:
        boxes_xyxy: ``(N, 4)`` float32 pixel corners; pixel ``i`` covers ``[i, i + 1)``.
        scores: ``(N,)`` float32 confidence in (0, 1), higher is more person-like.
    """

    boxes_xyxy: np.ndarray
    scores: np.ndarray

    def __post_init__(self) -> None:
        self.boxes_xyxy = np.asarray(self.boxes_xyxy, dtype=np.float32).reshape(-1, 4)
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        if len(self.scores) != len(self.boxes_xyxy):
            raise ValueError(f"{len(self.boxes_xyxy)} boxes but {len(self.scores)} scores")

    def __len__(self) -> int:
        return len(self.scores)

    @classmethod
    def empty(cls) -> "Detections":
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32))


@dataclass
class FrameResult:
    """Everything :func:`detect_frame` worked out for one frame.

    Attributes:
        detections: the person boxes.
        person_mask: ``(H, W)`` bool, pixels of the accepted people.
        valid_mask: ``(H, W)`` bool, pixels that hold data.
        excess_c: ``(H, W)`` float32 temperature above background and offset (0 where
            there is no data).
        offset_c: global offset of this frame over the background (°C).
        noise_sigma_c: the noise level the thresholds were scaled by (°C).
        frame_c: ``(H, W)`` float32 the frame in °C (background value where no data),
            dropped packets put back in place.
        missing_packets: packets found missing (empty for a complete frame).
        person_regions: ``N`` ``(H, W)`` bool masks, one per detection.
        continued: per detection, the index in ``previous_people`` of the person it
            continues, or ``None`` for a new one.
        overlapping: per detection, the indices of all previous people it overlaps
            (more than one: people who merged into one blob).
        warm_enough: per detection, whether it passed ``min_warmth_c`` (the test for
            a new person) in this frame.
    """

    detections: Detections
    person_mask: np.ndarray
    valid_mask: np.ndarray
    excess_c: np.ndarray
    offset_c: float
    noise_sigma_c: float
    frame_c: np.ndarray = field(repr=False)
    missing_packets: tuple[int, ...] = ()
    person_regions: list[np.ndarray] = field(default_factory=list, repr=False)
    continued: list[int | None] = field(default_factory=list)
    overlapping: list[list[int]] = field(default_factory=list)
    warm_enough: list[bool] = field(default_factory=list)


# ---------------------------------------------------------------------------------
# Small image operations (numpy only: scipy is not a dependency of the package)
# ---------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------
# Frame preparation
# ---------------------------------------------------------------------------------


def to_celsius(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Converts a raw frame to °C and finds the pixels that hold data.

    Kelvin input (median above 200) is converted. Dropped-packet pixels (-273.2 °C or
    0 K), non-finite values and impossible readings are no-data.

    Args:
        frame: ``(H, W)`` raw temperatures.

    Returns:
        ``(frame_c, valid)``: ``(H, W)`` float32 °C (no-data pixels hold NaN) and
        ``(H, W)`` bool valid mask.
    """
    f = np.asarray(frame, dtype=np.float32)
    if f.ndim != 2:
        raise ValueError(f"expected one (H, W) frame, got shape {f.shape}")
    finite = np.isfinite(f)
    # Dropped packets are 0 K in Kelvin files, so look at the median of non-zero pixels.
    plausible = finite & (f > 1.0) if finite.any() else finite
    if plausible.any() and float(np.median(f[plausible])) > KELVIN_MEDIAN_ABOVE:
        f = f - np.float32(KELVIN_OFFSET)
    valid = finite & (f > NO_DATA_BELOW_C) & (f < NO_DATA_ABOVE_C)
    return np.where(valid, f, np.float32(np.nan)).astype(np.float32), valid


def robust_sigma(values: np.ndarray) -> float:
    """Standard deviation from the median absolute deviation (ignores outliers)."""
    if values.size == 0:
        return 0.0
    return float(_MAD_TO_SIGMA * np.median(np.abs(values - np.median(values))))


def initial_background(frame_c: np.ndarray, valid: np.ndarray, size: int, q: float) -> np.ndarray:
    """A first background from one frame: a low spatial percentile over ``size x size`` windows.

    A window larger than a person and a low percentile keep people out, even at the
    border where the mirrored window sees a person twice; a warm structure the
    percentile misses (the lens ring) shows as foreground that is no person and is
    learnt within the background window.
    """
    level = float(np.median(frame_c[valid])) if valid.any() else 18.0
    filled = np.where(valid, frame_c, level)
    return percentile_filter(filled, size, q).astype(np.float32)


# ---------------------------------------------------------------------------------
# Stateless detection
# ---------------------------------------------------------------------------------


def detect_frame(
    frame: np.ndarray,
    background_c: np.ndarray,
    params: DetectorParams | None = None,
    noise_sigma_c: float | None = None,
    ignore_mask: np.ndarray | None = None,
    reference_c: np.ndarray | None = None,
    previous_people: list[np.ndarray] | None = None,
    trusted_people: list[bool] | None = None,
) -> FrameResult:
    """Finds people in one frame given a background.

    Args:
        frame: ``(H, W)`` temperatures (°C, or Kelvin; dropped packets allowed).
        background_c: ``(H, W)`` background in °C. Only its shape matters, not its
            level: a global offset between frame and background is removed first.
        params: thresholds; defaults when ``None``.
        noise_sigma_c: noise level to scale the thresholds by; estimated from this
            frame (robustly, outside people) when ``None``.
        ignore_mask: ``(H, W)`` bool pixels left out of the offset and noise estimates
            (e.g. last frame's people); ``None`` for none.
        reference_c: ``(H, W)`` °C, a recent frame to put dropped packets back in place
            against (:func:`repair_dropped_packets`); the background when ``None``.
        previous_people: ``(H, W)`` bool masks of people detected in recent frames;
            each may be continued by one region (warmest regions choose first, each
            the person it overlaps most).
        trusted_people: per previous person, whether a region continuing them needs
            only ``keep_warmth_c`` (all of them when ``None``).

    Returns:
        A :class:`FrameResult` with the detections.
    """
    p = params or DetectorParams()
    frame_c, valid = to_celsius(frame)
    bg = np.asarray(background_c, dtype=np.float32)
    if bg.shape != frame_c.shape:
        raise ValueError(f"frame shape {frame_c.shape} does not match background shape {bg.shape}")
    missing: tuple[int, ...] = ()
    if p.repair_packets and not valid.all():
        repair = repair_dropped_packets(frame_c, valid, bg if reference_c is None else reference_c)
        frame_c, valid, missing = repair.frame_c, repair.valid, repair.missing_packets
    if not valid.any():
        return FrameResult(Detections.empty(), np.zeros(frame_c.shape, bool), valid, np.zeros_like(bg), 0.0,
                           float(noise_sigma_c or p.min_sigma_c), bg.copy(), missing)

    diff = frame_c - bg  # NaN where no data
    quiet = valid if ignore_mask is None else valid & ~ignore_mask
    if quiet.sum() < 0.25 * valid.sum():  # people everywhere: fall back to all pixels
        quiet = valid
    offset = float(np.median(diff[quiet]))
    excess = np.where(valid, diff - offset, 0.0).astype(np.float32)
    sigma = robust_sigma(excess[quiet]) if noise_sigma_c is None else float(noise_sigma_c)
    sigma = max(sigma, p.min_sigma_c)

    grow = max(p.grow_sigma * sigma, p.grow_floor_c)
    seed = max(p.seed_sigma * sigma, p.seed_floor_c)
    # The room's level: the background's median at this frame's offset. The median of
    # the valid pixels would shift when dropped packets hide part of the room.
    frame_level = float(np.median(bg)) + offset
    too_hot = (frame_c > p.max_person_c) | (frame_c > frame_level + p.max_warmth_c)
    hot = binary_dilate(valid & too_hot, p.hot_margin_px)
    usable = valid & ~hot  # no-data and hot objects are never foreground
    fg = fill_pinholes(usable & (excess > grow)) & usable

    # A 3x3 mean for peaks and saddles, so one noisy pixel neither makes nor splits a person.
    weights = usable.astype(np.float64)
    smooth = box_mean(excess, weights)
    # Warmth is judged on a 3x3 mean too: the raw maximum of a lens-ring or warm-chair
    # region reaches person values on noise alone, their mean does not.
    warmth = np.where(usable, box_mean(np.where(usable, frame_c, 0.0), weights) - frame_level, -np.inf)
    smooth_noise = sigma / 3.0  # a 3x3 mean has a third of the noise
    labels = segment_regions(
        fg,
        smooth,
        split_depth=max(p.split_depth_sigma * smooth_noise, p.split_depth_floor_c),
        min_split_area=p.split_min_area_px,
        peak_map=warmth,
        min_peak=p.min_warmth_c,
        trim_depth=max(p.trim_depth_sigma * smooth_noise, p.trim_depth_floor_c),
    )
    # Candidates: regions of a person's size with a clear peak.
    candidates = []  # (mask, peak excess, peak warmth)
    for lab in range(1, int(labels.max()) + 1):
        region = labels == lab
        n = int(region.sum())
        if p.min_area_px <= n <= p.max_area_px and float(excess[region].max()) >= seed:
            candidates.append((region, float(excess[region].max()), float(warmth[region].max())))
    # Continuing people, one-to-one: the warmest candidates choose first, each the
    # remembered person it overlaps most (mask IoU >= memory_min_iou, both masks grown
    # by memory_margin_px, so a small person who moved a pixel still overlaps). Warmest
    # first, because when someone gets up the residual heat left behind overlaps where
    # they sat more than they do themselves; the IoU floor keeps a new person walking
    # past from taking over someone lying there.
    continued: list[int | None] = [None] * len(candidates)
    overlapping: list[list[int]] = [[] for _ in candidates]
    pairs = []
    grown = [binary_dilate(region, p.memory_margin_px) for region, _, _ in candidates]
    for i, mask in enumerate(previous_people or []):
        near = binary_dilate(mask, p.memory_margin_px)
        for j, (_, _, peak_warmth) in enumerate(candidates):
            iou = int((grown[j] & near).sum()) / int((grown[j] | near).sum())
            if iou >= p.memory_min_iou:
                pairs.append((peak_warmth, iou, i, j))
                overlapping[j].append(i)
    used_people: set[int] = set()
    for _, _, i, j in sorted(pairs, reverse=True):
        if i not in used_people and continued[j] is None:
            continued[j] = i
            used_people.add(i)
    trusted = trusted_people if trusted_people is not None else [True] * len(previous_people or [])
    boxes, scores, regions, kept_continued, kept_overlapping, warm = [], [], [], [], [], []
    person_mask = np.zeros(frame_c.shape, bool)
    h, w = frame_c.shape
    for (region, peak_excess, peak_warmth), cont, over in zip(candidates, continued, overlapping):
        if peak_warmth < (p.keep_warmth_c if cont is not None and trusted[cont] else p.min_warmth_c):
            continue
        ys, xs = np.nonzero(region)
        x1, y1 = max(xs.min() - p.box_pad_px, 0.0), max(ys.min() - p.box_pad_px, 0.0)
        x2, y2 = min(xs.max() + 1 + p.box_pad_px, w), min(ys.max() + 1 + p.box_pad_px, h)
        boxes.append([x1, y1, x2, y2])
        area_factor = min(1.0, len(ys) / (2.0 * p.min_area_px))
        scores.append((1.0 - np.exp(-peak_excess / p.score_scale_c)) * area_factor)
        regions.append(region)
        kept_continued.append(cont)
        kept_overlapping.append(over)
        warm.append(peak_warmth >= p.min_warmth_c)
        person_mask |= region
    dets = Detections(np.array(boxes, np.float32).reshape(-1, 4), np.array(scores, np.float32))
    return FrameResult(dets, person_mask, valid, excess, offset, sigma, np.where(valid, frame_c, bg + offset), missing,
                       regions, kept_continued, kept_overlapping, warm)


# ---------------------------------------------------------------------------------
# Stateful detection (one recording, frames in order)
# ---------------------------------------------------------------------------------


@dataclass
class _Remembered:
    """A person detected recently: where, when last, and in how many frames warm enough for a new one."""

    mask: np.ndarray
    last_seen: int
    warm_frames: int
    merged_since: int | None = None  # first frame of a merge with other people, if merged


class PersonDetector:
    """Detects people frame by frame, learning the background of one recording.

    Feed the frames of one sensor in order (streaming); :meth:`reset` before another
    recording. The background is a per-pixel low percentile of samples taken every
    ``sample_every`` frames over ``window_frames`` frames, with the global offset of
    each frame removed (rooms differ, sensors drift). Pixels of detected people (and a
    margin) keep the current background value in a new sample, so a person who stays
    still - sitting, or lying after a fall - is never learnt as background; anything
    static that does not pass as a person (a kettle, a warm chair after someone
    left, the warm lens ring) is absorbed. Frames with dropped packets have their
    packets put back in place against the previous frame and are not sampled.
    People detected in the last ``memory_frames`` frames are remembered: a region
    continuing one needs less warmth (someone who falls spreads out and dims), and
    remembered people are not learnt as background while briefly missed.

    Args:
        params: thresholds; defaults when ``None``.

    Example::

        det = PersonDetector()
        for frame in frames:          # (40, 60) each, in order
            d = det.update(frame)     # d.boxes_xyxy (N, 4), d.scores (N,)
    """

    def __init__(self, params: DetectorParams | None = None):
        self.params = params or DetectorParams()
        self.reset()

    def reset(self) -> None:
        """Forgets the background (call before a new recording)."""
        self._samples: np.ndarray | None = None  # (S, H, W) offset-free samples
        self._num_filled = 0
        self._next_slot = 0
        self._background: np.ndarray | None = None  # (H, W) °C at the first frame's level
        self._sigma: float | None = None
        self._person_mask: np.ndarray | None = None
        self._last_frame_c: np.ndarray | None = None  # reference for dropped-packet repair
        self._memory: list[_Remembered] = []  # people detected in recent frames
        self.frames_seen = 0
        self.last_result: FrameResult | None = None

    @property
    def background(self) -> np.ndarray | None:
        """``(H, W)`` current background (°C, at the level of the first frame)."""
        return None if self._background is None else self._background.copy()

    def _push_sample(self, sample: np.ndarray) -> None:
        assert self._samples is not None
        self._samples[self._next_slot] = sample
        self._next_slot = (self._next_slot + 1) % len(self._samples)
        self._num_filled = min(self._num_filled + 1, len(self._samples))
        self._background = np.percentile(self._samples[: self._num_filled], self.params.percentile, axis=0).astype(
            np.float32
        )

    def _initialise(self, frame: np.ndarray) -> None:
        p = self.params
        frame_c, valid = to_celsius(frame)
        first = initial_background(frame_c, valid, p.init_window_px, p.init_percentile)
        self._samples = np.empty((p.num_samples, *first.shape), np.float32)
        self._num_filled, self._next_slot = 0, 0
        for _ in range(min(p.init_weight, p.num_samples)):
            self._samples[self._next_slot] = first
            self._next_slot = (self._next_slot + 1) % p.num_samples
            self._num_filled += 1
        self._background = first

    def update(self, frame: np.ndarray) -> Detections:
        """Detects people in the next frame of the recording and updates the background.

        Args:
            frame: ``(H, W)`` temperatures (°C or Kelvin; dropped packets allowed).

        Returns:
            The frame's :class:`Detections`.
        """
        p = self.params
        frame = np.asarray(frame)
        if frame.ndim != 2:
            raise ValueError(f"expected one (H, W) frame, got shape {frame.shape}")
        if self._background is None:
            self._initialise(frame)
        elif frame.shape != self._background.shape:
            raise ValueError(
                f"frame shape {frame.shape} differs from earlier frames {self._background.shape}; reset() first"
            )
        assert self._background is not None
        result = detect_frame(
            frame,
            self._background,
            p,
            noise_sigma_c=self._sigma,
            ignore_mask=self._person_mask,
            reference_c=self._last_frame_c,
            previous_people=[m.mask for m in self._memory],
            trusted_people=[m.warm_frames >= p.trust_frames for m in self._memory],
        )
        self._remember(result)
        # Remembered people missed in this frame are not learnt as background either.
        remembered = np.zeros_like(result.person_mask)
        for m in self._memory:
            remembered |= m.mask
        frozen = binary_dilate(result.person_mask | remembered, p.freeze_margin_px)
        quiet = result.valid_mask & ~frozen
        if quiet.sum() > 0.25 * quiet.size:
            frame_sigma = max(robust_sigma(result.excess_c[quiet]), p.min_sigma_c)
            a = 1.0 if self._sigma is None else p.sigma_smoothing
            self._sigma = frame_sigma if self._sigma is None else (1 - a) * self._sigma + a * frame_sigma
        if self.frames_seen % p.sample_every == p.sample_every - 1 and result.valid_mask.all():
            sample = np.where(frozen, self._background, result.frame_c - result.offset_c)
            self._push_sample(sample.astype(np.float32))
        self._person_mask = frozen
        self._last_frame_c = result.frame_c
        self.frames_seen += 1
        self.last_result = result
        return result.detections

    def _remember(self, result: FrameResult) -> None:
        """Moves continued people to their new regions; forgets people unseen too long.

        A region that also overlaps remembered people nobody else continued holds
        people merged into one blob (someone walking over someone lying down): all of
        them are remembered at the blob until it splits, so each part finds a person;
        otherwise the walker would leave with the only memory and the other would be a
        stranger. A merged part seen warm in fewer than ``trust_frames`` frames (a
        person who split in two for a frame) and people merged for longer than
        ``max_merge_frames`` are taken for one person.
        """
        p = self.params
        t = self.frames_seen
        assigned = {c for c in result.continued if c is not None}
        drop: set[int] = set()
        new = []
        for region, cont, over, warm in zip(
            result.person_regions, result.continued, result.overlapping, result.warm_enough
        ):
            if cont is None:
                new.append(_Remembered(region, t, int(warm)))
                continue
            m = self._memory[cont]
            m.mask, m.last_seen, m.warm_frames = region, t, m.warm_frames + int(warm)
            merged = [k for k in over if k not in assigned]
            if not merged:
                m.merged_since = None
                continue
            # A part that split off for a frame or two is no second person.
            drop.update(k for k in merged if self._memory[k].warm_frames < p.trust_frames)
            merged = [k for k in merged if k not in drop]
            since = [self._memory[k].merged_since for k in (cont, *merged)]
            start = min([s for s in since if s is not None] + [t])
            if not merged or t - start >= p.max_merge_frames:
                drop.update(merged)
                m.merged_since = None
                continue
            for k in (cont, *merged):
                mk = self._memory[k]
                mk.mask, mk.last_seen, mk.merged_since = region, t, start
            assigned.update(merged)
        self._memory = [
            m for i, m in enumerate(self._memory) if i not in drop and t - m.last_seen < p.memory_frames
        ] + new

    def detect_recording(self, frames: np.ndarray) -> list[Detections]:
        """Runs a fresh detector state over a whole recording, in order.

        Args:
            frames: ``(N, H, W)`` temperatures of one recording.

        Returns:
            ``N`` :class:`Detections`, one per frame.
        """
        frames = np.asarray(frames)
        if frames.ndim != 3:
            raise ValueError(f"expected (N, H, W) frames, got shape {frames.shape}")
        self.reset()
        return [self.update(f) for f in frames]
