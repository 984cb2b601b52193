"""Clip windows around keyframes and the one preprocessing path shared by training and prediction.

The frame index is the time axis (the sensor samples at a steady ~6 Hz whatever the
bursty receive timestamps say). A window of ``num_frames`` raw frames is centred on the
keyframe and read every ``frame_stride`` frames, giving ``T = num_frames // frame_stride``
fast frames with the keyframe at fast index ``T // 2``; for the default 64 / 2 the raw
offsets are -32, -30, ..., 30. Near a recording's start or end the window repeats the
edge frame (never skipped) and the repeated frames are counted.

::

    frames (N, H, W) °C --window--> (T, H, W) --temperature aug--> --normalise-->
        --flip/rotate (+ boxes)--> --resize by scale (+ boxes)--> clip (1, T, H', W')
    room layout --zone_masks--> (Z, H, W) --the same flip/rotate and resize--> zone masks (Z, H', W')
    room layout + boxes (after jitter, native pixels) --person_zone_features--> (N, F)

The person-to-zone features are measured on the native frame after box jitter: flips,
rotations and the resize move the boxes and the furniture together, which leaves the
features (shares and distances in frame diagonals) as they are.

:class:`ClipBuilder` is that whole path; the dataset calls it with random
:class:`~thermal_action.data.transforms.AugmentParams`, the predictor without, so both see
exactly the same preprocessing. It is numpy throughout and imports no torch: the ONNX
backend runs it in an install without torch (the dataset wraps its arrays as tensors,
without a copy). Only a resize (``scale`` other than 1) has two engines: PyTorch's, which
training used, and a numpy twin for the ONNX backend
(:data:`~thermal_action.data.transforms.RESIZE_ENGINES`).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import numpy as np

from thermal_action.data.rooms import NO_LAYOUT, RoomLayout, person_zone_features, zone_masks
from thermal_action.data.transforms import (
    RESIZE_ENGINES,
    AugmentParams,
    Normalizer,
    apply_geometry,
    apply_temperature,
    background_level,
    flip_rotate,
    jitter_boxes,
    resize_clip,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClipWindow:
    """Which raw frames a clip reads.

    Attributes:
        indices: ``(T,)`` int64 raw frame indices, edge-clamped.
        center: the window centre (the keyframe, moved by any temporal jitter).
        num_padded: fast frames that repeat an edge frame because the window ran past
            the start or end of the recording.
    """

    indices: np.ndarray
    center: int
    num_padded: int


def clip_offsets(num_frames: int, frame_stride: int) -> np.ndarray:
    """Raw-frame offsets of the fast frames from the centre, ``(T,)``; offset 0 at ``T // 2``."""
    if frame_stride < 1 or num_frames < frame_stride:
        raise ValueError(f"need 1 <= frame_stride <= num_frames, got {frame_stride} and {num_frames}")
    t = num_frames // frame_stride
    return frame_stride * (np.arange(t, dtype=np.int64) - t // 2)


def clip_window(center: int, num_frames: int, frame_stride: int, total_frames: int) -> ClipWindow:
    """The fast-frame indices of a window around ``center`` in a ``total_frames`` recording.

    Indices past either end repeat the edge frame; they are counted in ``num_padded``.
    """
    if total_frames < 1:
        raise ValueError("a recording has at least one frame")
    raw = center + clip_offsets(num_frames, frame_stride)
    idx = np.clip(raw, 0, total_frames - 1)
    return ClipWindow(indices=idx, center=int(center), num_padded=int(np.count_nonzero(idx != raw)))


@dataclass
class BuiltClip:
    """Output of :meth:`ClipBuilder.build`.

    Attributes:
        clip: ``(1, T, H', W')`` float32 normalised, C-contiguous.
        boxes_xyxy: ``(N, 4)`` float32 pixels of ``clip``.
        window: the raw frames read.
        zone_masks: ``(Z, H', W')`` float32 furniture masks, moved and resized with ``clip``.
        zone_features: ``(N, F)`` float32 person-to-zone geometry of the boxes.
    """

    clip: np.ndarray
    boxes_xyxy: np.ndarray
    window: ClipWindow
    zone_masks: np.ndarray
    zone_features: np.ndarray


@functools.lru_cache(maxsize=256)
def _native_zone_masks(layout: RoomLayout, height: int, width: int) -> np.ndarray:
    """:func:`~thermal_action.data.rooms.zone_masks` of a layout, rasterized once per process
    (a layout holds for many clips); read-only, since callers share it."""
    masks = zone_masks(layout, height, width)
    masks.flags.writeable = False
    return masks


class ClipBuilder:
    """Recording frames + keyframe index + boxes -> normalised clip (module docstring).

    Args:
        num_frames: raw frames in the window.
        frame_stride: the fast pathway reads every ``frame_stride``-th raw frame.
        normalization: ``"background"`` or ``"fixed"``.
        fixed_range: °C mapped to [0, 1] in ``"fixed"`` mode.
        background_scale: °C per unit in ``"background"`` mode.
        scale: spatial resize factor (bilinear; boxes scaled to match).
        resize_engine: ``"torch"`` (what training used) or ``"numpy"`` (no torch needed:
            the ONNX backend's); they differ by float32 rounding.
    """

    def __init__(
        self,
        num_frames: int = 64,
        frame_stride: int = 2,
        normalization: str = "background",
        fixed_range: tuple[float, float] = (5.0, 45.0),
        background_scale: float = 8.0,
        scale: float = 1.0,
        resize_engine: str = "torch",
    ):
        clip_offsets(num_frames, frame_stride)  # validates
        if not scale > 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        if resize_engine not in RESIZE_ENGINES:
            raise ValueError(f"resize_engine must be one of {RESIZE_ENGINES}, got {resize_engine!r}")
        self.num_frames = num_frames
        self.frame_stride = frame_stride
        self.normalizer = Normalizer(normalization, tuple(fixed_range), background_scale)
        self.scale = float(scale)
        self.resize_engine = resize_engine

    @property
    def clip_length(self) -> int:
        """Fast frames per clip, ``T``."""
        return self.num_frames // self.frame_stride

    def window(self, frame_idx: int, total_frames: int, time_shift: int = 0) -> ClipWindow:
        return clip_window(frame_idx + time_shift, self.num_frames, self.frame_stride, total_frames)

    def build(
        self,
        frames: np.ndarray,
        frame_idx: int,
        boxes_xyxy: np.ndarray,
        params: AugmentParams | None = None,
        layout: RoomLayout = NO_LAYOUT,
    ) -> BuiltClip:
        """Builds one clip.

        Args:
            frames: ``(N, H, W)`` float32 °C of the whole recording (repaired).
            frame_idx: the keyframe.
            boxes_xyxy: ``(N_boxes, 4)`` keyframe boxes in native pixels.
            params: augmentation draw, or None for none (evaluation, prediction).
            layout: the room at the keyframe (:data:`~thermal_action.data.rooms.NO_LAYOUT`:
                empty masks and ``has_layout = 0``; so is a room that ``params`` drops).
        """
        n, h, w = frames.shape
        window = self.window(frame_idx, n, params.time_shift if params is not None else 0)
        x = frames[window.indices]  # (T, H, W) fancy indexing copies, so in-place ops below are safe
        if x.dtype != np.float32:
            x = x.astype(np.float32)
        need_bg = self.normalizer.mode == "background" or (params is not None and params.temp_gain)
        bg = background_level(x) if need_bg else None
        if params is not None and (params.temp_gain or params.temp_offset):
            bg = apply_temperature(x, bg if bg is not None else 0.0, params)
        self.normalizer(x, bg)
        boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
        if params is not None and params.drop_room:
            layout = NO_LAYOUT
        masks = _native_zone_masks(layout, h, w)  # (Z, H, W)
        if params is not None and params.box_noise is not None and len(boxes):
            boxes = jitter_boxes(boxes, params.box_noise, h, w)
        features = person_zone_features(boxes, layout, h, w)  # (N, F), before flips: invariant to them
        if params is not None:
            x, boxes = apply_geometry(x, boxes, params)
            masks = flip_rotate(masks, params)
        clip, boxes = resize_clip(np.ascontiguousarray(x), boxes.astype(np.float32), self.scale,
                                  self.resize_engine)  # (T, H', W'), (N, 4)
        # A copy (the cached masks are shared and read-only), resized exactly as the frames.
        masks, _ = resize_clip(np.array(masks, dtype=np.float32), boxes[:0], self.scale, self.resize_engine)
        return BuiltClip(clip=clip[None], boxes_xyxy=boxes, window=window, zone_masks=masks, zone_features=features)
