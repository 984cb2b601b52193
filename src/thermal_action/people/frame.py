"""The stateless step: one frame to °C with a no-data mask, then people over a given background."""

from __future__ import annotations

import numpy as np

# Frames whose packets the receiver packed at the start are repaired with the dataset
# reader's code: the reader needs the same repair.
from thermal_action.data.packets import repair_dropped_packets
from thermal_action.people.image_ops import (
    binary_dilate,
    box_mean,
    fill_pinholes,
    percentile_filter,
    segment_regions,
)
from thermal_action.people.params import DetectorParams
from thermal_action.people.results import Detections, FrameResult
from thermal_action.structures import DEFAULT_VALID_RANGE, KELVIN_OFFSET, looks_like_kelvin

# A MAD of Gaussian noise times this is its standard deviation.
_MAD_TO_SIGMA = 1.4826


def to_celsius(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Converts a raw frame to °C and finds the pixels that hold data.

    Predict and streaming give the detector the reader's repaired °C frames, where this
    changes nothing; for raw frames, Kelvin input is converted and readings outside
    :data:`~thermal_action.structures.DEFAULT_VALID_RANGE` (dropped-packet sentinels,
    non-finite values) are no-data: the reader's definitions, not a second set.

    Args:
        frame: ``(H, W)`` raw temperatures.

    Returns:
        ``(frame_c, valid)``: ``(H, W)`` float32 °C (no-data pixels hold NaN) and
        ``(H, W)`` bool valid mask.
    """
    f = np.asarray(frame, dtype=np.float32)
    if f.ndim != 2:
        raise ValueError(f"expected one (H, W) frame, got shape {f.shape}")
    if looks_like_kelvin(f):
        f = f - np.float32(KELVIN_OFFSET)
    low, high = DEFAULT_VALID_RANGE
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(f) & (f >= low) & (f <= high)
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
