"""Temperature normalisation and augmentations for overhead thermal clips.

Everything here works on one clip ``(T, H, W)`` float32 and its ``(N, 4)`` pixel boxes
``boxes_xyxy`` in numpy: per-clip arrays are small (32 x 40 x 60), where numpy's per-call
overhead (~1 us) beats torch's (~5-10 us). Only the resize may use torch (the one training
used); its numpy twin serves the ONNX backend, which runs without torch.

Normalisation (applied after dropped-packet repair):

- ``"fixed"``: clip to ``fixed_range`` °C and map it to [0, 1]. Simple, but a warmer
  room shifts every input.
- ``"background"``: ``(T - background) / background_scale`` with the background the
  median temperature of the clip: a person ~6 °C above the floor maps to ~0.75 whatever
  the room temperature.

Augmentations valid for an overhead sensor (no "up" in the scene): horizontal and
vertical flips, rotations, a temperature offset and gain around the background, box
jitter and temporal jitter. A 90° rotation turns a 40 x 60 frame into 60 x 40; a clip of
another shape cannot be stacked with the others, and cropping or padding it back would
cut persons out or paint fake borders. So for non-square frames a sample only draws
from the symmetries of the rectangle (identity, flips, 180°) and the quarter turn is
applied to a whole batch at once (:class:`thermal_action.data.dataset.ClipCollator`);
the model is convolutional with RoIAlign, so a batch of 60 x 40 clips is fine. Square
frames get all eight symmetries per sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NORMALIZATION_MODES = ("fixed", "background")
#: How :func:`resize_clip` interpolates: ``"torch"`` (``F.interpolate``, what training and the
#: torch backend use) or ``"numpy"`` (the same bilinear sampling without torch, for the ONNX
#: backend; equal to float32 rounding, a few 1e-6 of the values).
RESIZE_ENGINES = ("torch", "numpy")


def background_level(clip: np.ndarray, stride: int = 2) -> float:
    """The clip's background temperature: the (lower) median of every ``stride``-th
    frame, row and column.

    The background fills most of the frame, so 1/8 of the pixels estimate it to a few
    hundredths of a degree; with ``np.partition`` instead of ``np.median`` this is ~20x
    cheaper than the exact median of a 32 x 40 x 60 clip, the largest per-clip cost.

    Args:
        clip: ``(T, H, W)`` °C.
        stride: subsampling step along each axis (1 = exact median).
    """
    flat = clip[::stride, ::stride, ::stride].reshape(-1)
    k = (flat.size - 1) // 2
    return float(np.partition(flat, k)[k])


@dataclass(frozen=True)
class Normalizer:
    """Maps °C to network input.

    Args:
        mode: ``"fixed"`` or ``"background"`` (see module docstring).
        fixed_range: ``(low, high)`` °C mapped to [0, 1] in ``"fixed"`` mode.
        background_scale: °C per unit in ``"background"`` mode.
    """

    mode: str = "background"
    fixed_range: tuple[float, float] = (5.0, 45.0)
    background_scale: float = 8.0

    def __post_init__(self) -> None:
        if self.mode not in NORMALIZATION_MODES:
            raise ValueError(f"normalization must be one of {NORMALIZATION_MODES}, got {self.mode!r}")
        if not self.fixed_range[1] > self.fixed_range[0]:
            raise ValueError(f"fixed_range must be (low, high) with low < high, got {self.fixed_range}")
        if not self.background_scale > 0:
            raise ValueError(f"background_scale must be > 0, got {self.background_scale}")

    def __call__(self, clip: np.ndarray, background: float | None = None) -> np.ndarray:
        """Normalises ``(T, H, W)`` °C in place and returns it.

        Args:
            clip: ``(T, H, W)`` float32 °C (overwritten).
            background: the clip's background level; computed when needed and not given.
        """
        if self.mode == "fixed":
            low, high = self.fixed_range
            np.clip(clip, low, high, out=clip)
            clip -= low
            clip *= 1.0 / (high - low)
        else:
            if background is None:
                background = background_level(clip)
            clip -= background
            clip *= 1.0 / self.background_scale
        return clip


# --- geometry ---------------------------------------------------------------------------


def hflip_boxes(boxes_xyxy: np.ndarray, width: float) -> np.ndarray:
    """Boxes of a horizontally flipped frame: ``x -> width - x``."""
    b = boxes_xyxy
    return np.stack([width - b[:, 2], b[:, 1], width - b[:, 0], b[:, 3]], axis=1)


def vflip_boxes(boxes_xyxy: np.ndarray, height: float) -> np.ndarray:
    """Boxes of a vertically flipped frame: ``y -> height - y``."""
    b = boxes_xyxy
    return np.stack([b[:, 0], height - b[:, 3], b[:, 2], height - b[:, 1]], axis=1)


def rot90_boxes(boxes_xyxy, k: int, height: float, width: float):
    """Boxes of a frame rotated by ``k`` quarter turns as ``np.rot90``/``torch.rot90`` do.

    Works on numpy arrays and torch tensors. One turn maps pixel ``(y, x)`` of an
    ``H x W`` frame to ``(W - x, y)`` of the ``W x H`` result (continuous coordinates).

    Args:
        boxes_xyxy: ``(N, 4)`` in the ``height x width`` frame.
        k: quarter turns (any integer; taken mod 4).
    """
    k %= 4
    b = boxes_xyxy
    if isinstance(b, np.ndarray):
        stack = np.stack
    else:
        import torch

        stack = torch.stack
    x1, y1, x2, y2 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    if k == 0:
        return b
    if k == 1:
        return stack([y1, width - x2, y2, width - x1], 1)
    if k == 2:
        return stack([width - x2, height - y2, width - x1, height - y1], 1)
    return stack([height - y2, x1, height - y1, x2], 1)


def jitter_boxes(
    boxes_xyxy: np.ndarray, noise: np.ndarray, height: float, width: float, min_size: float = 1.0
) -> np.ndarray:
    """Adds ``noise`` to box corners, keeps them in the frame and at least ``min_size`` wide.

    A box whose jittered size would drop below ``min_size`` (or half its own size) keeps
    its original corners on that axis, so jitter never makes a box vanish.
    """
    j = boxes_xyxy + noise
    j[:, 0::2] = np.clip(j[:, 0::2], 0.0, width)
    j[:, 1::2] = np.clip(j[:, 1::2], 0.0, height)
    for axis in (0, 1):
        size = j[:, axis + 2] - j[:, axis]
        orig = boxes_xyxy[:, axis + 2] - boxes_xyxy[:, axis]
        bad = (size < min_size) | (size < 0.5 * orig)
        j[bad, axis] = boxes_xyxy[bad, axis]
        j[bad, axis + 2] = boxes_xyxy[bad, axis + 2]
    return j


def resize_clip(
    clip: np.ndarray, boxes_xyxy: np.ndarray, scale: float, engine: str = "torch"
) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear resize of a clip by ``scale``; boxes scaled by the exact size ratio.

    Args:
        clip: ``(T, H, W)`` float32 (or any ``(C, H, W)`` stack of planes, e.g. zone masks).
        boxes_xyxy: ``(N, 4)`` float32 pixels of ``clip``.
        scale: output size is ``round(H * scale) x round(W * scale)``.
        engine: one of :data:`RESIZE_ENGINES`.

    Returns:
        ``(clip, boxes)``: ``(T, H', W')`` and ``(N, 4)`` in pixels of the output (the inputs
        themselves when ``scale`` is 1).
    """
    if engine not in RESIZE_ENGINES:
        raise ValueError(f"resize engine must be one of {RESIZE_ENGINES}, got {engine!r}")
    if scale == 1.0:
        return clip, boxes_xyxy
    _, h, w = clip.shape
    oh, ow = max(1, round(h * scale)), max(1, round(w * scale))
    if engine == "numpy":
        out = _resize_bilinear(clip, oh, ow)
    else:
        import torch
        import torch.nn.functional as F

        # (T, H, W) -> (1, T, H, W): interpolate treats T as channels, one 2-D resize per frame.
        out = F.interpolate(torch.from_numpy(clip)[None], size=(oh, ow), mode="bilinear", align_corners=False)[0]
        out = out.numpy()
    factor = np.array([ow / w, oh / h, ow / w, oh / h], dtype=boxes_xyxy.dtype)
    return out, boxes_xyxy * factor


def _linear_taps(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(i0, i1, w0, w1)``, each ``(out_size,)``: output pixel ``j`` is ``w0 * x[i0] + w1 * x[i1]``.

    PyTorch's bilinear sampling with ``align_corners=False``: pixel centres line up, so
    ``j`` samples ``(j + 0.5) * in / out - 0.5``, clamped at 0; the last pixel repeats
    past the far edge.
    """
    ratio = np.float32(in_size) / np.float32(out_size)
    src = np.maximum(ratio * (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) - np.float32(0.5),
                     np.float32(0.0))
    i0 = src.astype(np.int64)  # floor: src >= 0
    i1 = i0 + (i0 < in_size - 1)
    w1 = np.clip(src - i0.astype(np.float32), 0.0, 1.0).astype(np.float32)
    return i0, i1, np.float32(1.0) - w1, w1


def _resize_bilinear(planes: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """``(C, H, W)`` -> ``(C, out_h, out_w)`` float32, as ``F.interpolate(..., "bilinear",
    align_corners=False)`` (no antialiasing), to float32 rounding."""
    _, h, w = planes.shape
    y0, y1, a0, a1 = _linear_taps(h, out_h)
    x0, x1, b0, b1 = _linear_taps(w, out_w)
    rows0, rows1 = planes[:, y0], planes[:, y1]  # (C, H', W)
    top = b0 * rows0[:, :, x0] + b1 * rows0[:, :, x1]  # (C, H', W')
    bottom = b0 * rows1[:, :, x0] + b1 * rows1[:, :, x1]
    return (a0[:, None] * top + a1[:, None] * bottom).astype(np.float32, copy=False)


# --- random augmentation ----------------------------------------------------------------


@dataclass
class AugmentParams:
    """One draw of augmentation parameters for one clip.

    Attributes:
        hflip, vflip: mirror the frame horizontally / vertically.
        quarter_turns: ``np.rot90`` turns (odd values only for square frames).
        temp_offset: °C added to every pixel.
        temp_gain: relative gain of the contrast around the background (0 = none).
        box_noise: ``(N, 4)`` pixels added to the box corners (native resolution).
        time_shift: frames the window centre moves (the keyframe boxes stay the same).
        drop_room: the clip is shown without its room (empty zone masks, ``has_layout = 0``).
    """

    hflip: bool = False
    vflip: bool = False
    quarter_turns: int = 0
    temp_offset: float = 0.0
    temp_gain: float = 0.0
    box_noise: np.ndarray | None = None
    time_shift: int = 0
    drop_room: bool = False


@dataclass(frozen=True)
class Augmenter:
    """Draws :class:`AugmentParams` from a numpy generator.

    Args:
        flip: random horizontal and vertical flips (each with probability 1/2).
        rotate: random rotations: 180° for non-square frames, any quarter turn for square
            ones (quarter turns of non-square frames happen per batch, see module doc).
        temp_offset: °C, std of a global temperature offset.
        temp_gain: relative std of the gain around the background (clamped to >= -0.5).
        box_jitter: pixels, std of the noise on each box corner.
        temporal_jitter: frames, the window centre moves uniformly in ``[-j, j]``.
        room_dropout: probability that a clip is shown without its room, so a model that
            reads the room still learns the people themselves and predicts sensibly where no
            layout is known (drawn last: 0 leaves every other draw as it was).
    """

    flip: bool = True
    rotate: bool = True
    temp_offset: float = 1.5
    temp_gain: float = 0.1
    box_jitter: float = 0.5
    temporal_jitter: int = 2
    room_dropout: float = 0.0

    def sample(self, rng: np.random.Generator, num_boxes: int, height: int, width: int) -> AugmentParams:
        p = AugmentParams()
        if self.flip:
            p.hflip, p.vflip = bool(rng.random() < 0.5), bool(rng.random() < 0.5)
        if self.rotate:
            p.quarter_turns = int(rng.integers(4)) if height == width else 2 * int(rng.integers(2))
        if self.temp_offset > 0:
            p.temp_offset = float(rng.normal(0.0, self.temp_offset))
        if self.temp_gain > 0:
            p.temp_gain = float(max(-0.5, rng.normal(0.0, self.temp_gain)))
        if self.box_jitter > 0 and num_boxes:
            p.box_noise = rng.normal(0.0, self.box_jitter, size=(num_boxes, 4))
        if self.temporal_jitter > 0:
            p.time_shift = int(rng.integers(-self.temporal_jitter, self.temporal_jitter + 1))
        if self.room_dropout > 0:
            p.drop_room = bool(rng.random() < self.room_dropout)
        return p


def apply_temperature(clip: np.ndarray, background: float, params: AugmentParams) -> float:
    """Offset and gain around the background, in place on ``(T, H, W)`` °C.

    Returns:
        The new background level (``background + offset``; the median commutes with the
        increasing affine map, so it need not be recomputed).
    """
    # bg + (T - bg) * (1 + g) + o  ==  T * (1 + g) + (o - g * bg): two passes over the clip.
    if params.temp_gain:
        clip *= 1.0 + params.temp_gain
    shift = params.temp_offset - params.temp_gain * background
    if shift:
        clip += shift
    return background + params.temp_offset


def apply_geometry(
    clip: np.ndarray, boxes_xyxy: np.ndarray, params: AugmentParams
) -> tuple[np.ndarray, np.ndarray]:
    """Flips and rotations of ``(T, H, W)`` and its ``(N, 4)`` boxes (views, no copy)."""
    _, h, w = clip.shape
    if params.hflip:
        boxes_xyxy = hflip_boxes(boxes_xyxy, w)
    if params.vflip:
        boxes_xyxy = vflip_boxes(boxes_xyxy, h)
    if params.quarter_turns % 4:
        boxes_xyxy = rot90_boxes(boxes_xyxy, params.quarter_turns, h, w)
    return flip_rotate(clip, params), boxes_xyxy


def flip_rotate(planes: np.ndarray, params: AugmentParams) -> np.ndarray:
    """The flips and rotation of ``params`` applied to a ``(C, H, W)`` stack of planes (views,
    no copy): the frames of a clip, or the zone masks that must move exactly like them."""
    _, h, w = planes.shape
    if params.hflip:
        planes = planes[:, :, ::-1]
    if params.vflip:
        planes = planes[:, ::-1, :]
    if params.quarter_turns % 4:
        if params.quarter_turns % 2 and h != w:
            raise ValueError(f"a quarter turn of a {h}x{w} clip changes its shape; rotate the batch instead")
        planes = np.rot90(planes, params.quarter_turns, axes=(1, 2))
    return planes
