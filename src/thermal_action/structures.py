"""Named data structures shared by data, model, training and inference code.

Box formats are in the names:

- ``boxes_cxcywh_norm``: YOLO style, normalized centre x, centre y, width, height in
  [0, 1] relative to the frame (the annotation format on disk).
- ``boxes_xyxy``: pixel corners ``x1, y1, x2, y2`` in continuous pixel coordinates of
  the (possibly resized) input frame: pixel ``i`` covers ``[i, i + 1)``, so a box from
  x=3 to x=13 covers ten pixels and is ten pixels wide.
- ``rois``: ``(R, 5)`` rows of ``(batch_index, x1, y1, x2, y2)`` in input pixels.

Dimension letters: B clips, C channels, T frames, H, W pixels, N boxes in one clip,
R boxes in a batch, K classes, Z zone kinds a model sees (:data:`MODEL_ZONE_KINDS`), F
person-to-zone features (:data:`ZONE_FEATURE_NAMES`).

This module imports no torch (an ONNX Runtime install has none): the tensors of
:class:`ClipSample` and :class:`Batch` belong to the torch side, and :func:`pack_pathways`
takes numpy arrays as well as tensors.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from thermal_action.errors import DatasetError

if TYPE_CHECKING:
    import torch

#: The 14 action classes of the format (ids 0-13), in category-id order.
DEFAULT_CLASS_NAMES: tuple[str, ...] = (
    "sitting",
    "standing",
    "walking",
    "lying down-lying with risk",
    "lying down-lying on the bed/couch",
    "leaning",
    "transition-normal transition",
    "transition-lying with risk transition",
    "transition-lying on the bed transition",
    "lower position-other",
    "lower position-kneeling",
    "lower position-bending",
    "lower position-crouching",
    "other",
)
FALL_CLASS_NAME = "lying down-lying with risk"
#: Fall operating threshold when neither the user nor a calibration (``train``) gives one
#: (the default :class:`~thermal_action.alert_rule.AlertRule`'s).
FALLBACK_FALL_THRESHOLD = 0.5


@dataclass(frozen=True)
class PredictionDefaults:
    """The defaults of prediction, streaming, alerts and rendering, in one place (the CLI reads
    them too): change one here and every entry point follows. The alert rule's defaults are
    :class:`~thermal_action.alert_rule.AlertRule`'s."""

    fps: float = 6.0  # sensor frames per second (turns frame counts into seconds)
    step: int = 6  # frames between predictions (about once a second at 6 fps)


#: The one instance every default refers to.
PREDICTION = PredictionDefaults()
#: °C. Readings outside are impossible for an indoor thermopile array (dropped packets read
#: 0 K = -273.15 °C): the reader repairs them (``data.valid_range``), the person detector
#: ignores them. The one definition; the config's default is this.
DEFAULT_VALID_RANGE: tuple[float, float] = (-40.0, 200.0)
KELVIN_OFFSET = 273.15
#: Readings whose median is above this are in Kelvin (rooms are ~290 K, ~17 °C).
KELVIN_MEDIAN_ABOVE = 200.0


def looks_like_kelvin(values: np.ndarray) -> bool:
    """Whether temperatures are in Kelvin: the median of the plausible readings (finite, not
    a 0 K / -273 °C dropped-packet sentinel, below 1000) is above :data:`KELVIN_MEDIAN_ABOVE`.
    The one Kelvin test, used by the reader (per recording) and the detector (per frame)."""
    v = np.asarray(values, dtype=np.float32).reshape(-1)
    with np.errstate(invalid="ignore"):
        v = v[np.isfinite(v) & (v > 1.0) & (v < 1000.0)]
    return bool(v.size) and float(np.median(v)) > KELVIN_MEDIAN_ABOVE


@dataclass
class FrameBoxes:
    """Person boxes of one frame in native pixels: what the built-in detector finds (no track
    ids yet, all -1) and what the tracker reports (with track ids). The one per-frame pixel
    box structure (:class:`ImageBoxes` is the normalized per-keyframe one).

    Attributes:
        boxes_xyxy: ``(N, 4)`` float32 pixel corners; pixel ``i`` covers ``[i, i + 1)``.
        scores: ``(N,)`` float32 box confidence in (0, 1].
        track_ids: ``(N,)`` int64 (-1: not tracked / unknown); None gives all -1.
    """

    boxes_xyxy: np.ndarray
    scores: np.ndarray
    track_ids: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.boxes_xyxy = np.asarray(self.boxes_xyxy, dtype=np.float32).reshape(-1, 4)
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        if self.track_ids is None:
            self.track_ids = np.full(len(self.boxes_xyxy), -1, np.int64)
        self.track_ids = np.asarray(self.track_ids, dtype=np.int64).reshape(-1)
        if not len(self.boxes_xyxy) == len(self.scores) == len(self.track_ids):
            raise ValueError(f"{len(self.boxes_xyxy)} boxes but {len(self.scores)} scores and "
                             f"{len(self.track_ids)} track ids")

    def __len__(self) -> int:
        return len(self.scores)

    @classmethod
    def empty(cls) -> "FrameBoxes":
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32))


class ImageBoxes(NamedTuple):
    """Person boxes of one keyframe without labels: a detections file's, or boxes given instead
    of the annotated ones (unpacks as ``boxes, scores``). The one per-keyframe box structure of
    the data and evaluation layers."""

    boxes_cxcywh_norm: np.ndarray  # (N, 4) normalized cx, cy, w, h
    scores: np.ndarray  # (N,) detector confidence (1 when unknown)


FRAME_HEIGHT = 40
FRAME_WIDTH = 60

#: The furniture kinds a model sees, in zone-mask channel order (``data/rooms.py`` draws
#: the masks and measures the features; the models only need the counts).
MODEL_ZONE_KINDS: tuple[str, ...] = ("bed", "couch", "chair")
#: Per person: layout known (1/0), share of the box on each model kind, distance from the
#: box centre to the nearest zone of each kind (frame diagonals, 0 inside, 1 when none).
ZONE_FEATURE_NAMES: tuple[str, ...] = ("has_layout",) + tuple(f"on_{k}" for k in MODEL_ZONE_KINDS) + tuple(
    f"near_{k}" for k in MODEL_ZONE_KINDS)
NUM_ZONE_KINDS = len(MODEL_ZONE_KINDS)
NUM_ZONE_FEATURES = len(ZONE_FEATURE_NAMES)
#: ``model.room`` settings (how a model reads the room: ``models/room.py``).
ROOM_INPUTS = ("none", "masks", "features", "masks+features")


@dataclass(frozen=True)
class RoomInputs:
    """The room inputs of a model (``models/room.py`` feeds them; an exported model's
    metadata names them, so the ONNX backend reads them without torch).

    Attributes:
        zone_channels: ``Z``, zone-mask channels added to the frames (0: none).
        zone_features: ``F``, person-to-zone features added to the head's input (0: none).
    """

    zone_channels: int = 0
    zone_features: int = 0

    @classmethod
    def from_setting(cls, room: str) -> RoomInputs:
        """The inputs of a ``model.room`` setting (one of :data:`ROOM_INPUTS`).

        Raises:
            ValueError: an unknown setting, naming the valid ones.
        """
        if room not in ROOM_INPUTS:
            raise ValueError(f"unknown model.room {room!r}; expected one of {', '.join(ROOM_INPUTS)}")
        parts = room.split("+")
        return cls(NUM_ZONE_KINDS if "masks" in parts else 0, NUM_ZONE_FEATURES if "features" in parts else 0)

    @property
    def setting(self) -> str:
        """The ``model.room`` setting these inputs come from."""
        parts = [name for name, on in (("masks", self.zone_channels), ("features", self.zone_features)) if on]
        return "+".join(parts) or "none"


def boxes_cxcywh_norm_to_xyxy(boxes: np.ndarray, width: float, height: float) -> np.ndarray:
    """Converts ``(N, 4)`` normalized centre boxes to pixel corners (no rounding).

    A box of normalized width ``w`` becomes exactly ``w * width`` pixels wide.
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    cx, cy, w, h = b[:, 0] * width, b[:, 1] * height, b[:, 2] * width, b[:, 3] * height
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)


def boxes_xyxy_to_cxcywh_norm(boxes: np.ndarray, width: float, height: float) -> np.ndarray:
    """Inverse of :func:`boxes_cxcywh_norm_to_xyxy`.

    The centre is ``(x1 + x2) / 2``, one rounding fewer than ``x1 + w / 2``; the synthetic
    generator's files depend on this exact arithmetic (its output is compared byte for byte).
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.stack(
        [(b[:, 0] + b[:, 2]) / 2 / width, (b[:, 1] + b[:, 3]) / 2 / height,
         (b[:, 2] - b[:, 0]) / width, (b[:, 3] - b[:, 1]) / height],
        axis=1,
    )


#: Pixels a box may poke out of the frame and still be clipped rather than rejected
#: (annotators drag boxes to the border; one real box sits 0.06 px above the top edge).
DEFAULT_MAX_BOX_OVERHANG = 2.0
#: Boxes narrower or lower than this (pixels, after clipping) are "of zero size".
MIN_BOX_SIZE = 0.5
#: Overhangs below this (pixels) are float noise of normalized corners, not an overhang.
OVERHANG_NOISE_PX = 1e-6
#: Any box value beyond this is not normalized (pixel boxes are the usual mistake).
_NORMALIZED_LIMIT = 1.5


def box_overhang_px(boxes_xyxy: np.ndarray, width: float, height: float) -> np.ndarray:
    """``(N,)`` pixels each corner box pokes out of the ``width x height`` frame (0 inside)."""
    b = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    over = np.max(np.stack([np.zeros(len(b)), -b[:, 0], -b[:, 1], b[:, 2] - width, b[:, 3] - height], 1), 1,
                  initial=0.0)
    return np.where(over < OVERHANG_NOISE_PX, 0.0, over)


def as_boxes_cxcywh_norm(
    boxes: Any, *, source: object, record: object | None = None, single: bool = False
) -> np.ndarray:
    """Boxes as read (one box of 4 numbers, or ``(N, 4)``; ``single``: exactly one box) ->
    ``(N, 4)`` float64, checking only that they are finite numbers: the first half of
    :func:`check_boxes_cxcywh_norm`, for readers that learn the frame size later.

    Raises:
        DatasetError: naming ``source`` and ``record``: not 4 numbers per box, non-finite.
    """
    if not single and isinstance(boxes, np.ndarray) and boxes.dtype.kind in "iuf" and boxes.ndim == 2 \
            and boxes.shape[1] == 4:
        b = boxes.astype(np.float64)
    elif _four_numbers(boxes):
        b = np.asarray(boxes, dtype=np.float64).reshape(1, 4)
    elif not single and isinstance(boxes, (list, tuple, np.ndarray)) and all(_four_numbers(v) for v in boxes):
        b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    else:
        raise DatasetError(source, f"'bbox' must be 4 numbers [cx, cy, w, h] normalized, got {_show(boxes)}",
                           record=record)
    if not np.isfinite(b).all():
        raise DatasetError(source, f"'bbox' has a non-finite value: {_show(boxes)}", record=record)
    return b


def check_box_cxcywh_norm(
    box: Any,
    *,
    width: float = FRAME_WIDTH,
    height: float = FRAME_HEIGHT,
    source: object,
    record: object | None = None,
    max_overhang_px: float | None = DEFAULT_MAX_BOX_OVERHANG,
) -> np.ndarray:
    """:func:`check_boxes_cxcywh_norm` for a record holding exactly one box -> ``(4,)``."""
    return check_boxes_cxcywh_norm(box, width=width, height=height, source=source, record=record,
                                   max_overhang_px=max_overhang_px, single=True)[0]


def check_boxes_cxcywh_norm(
    boxes: Any,
    *,
    width: float = FRAME_WIDTH,
    height: float = FRAME_HEIGHT,
    source: object,
    record: object | None = None,
    max_overhang_px: float | None = DEFAULT_MAX_BOX_OVERHANG,
    single: bool = False,
) -> np.ndarray:
    """The one check of normalized centre boxes read from a file or given by a user.

    Args:
        boxes: one box ``[cx, cy, w, h]`` or ``(N, 4)``; zero boxes is fine.
        width: the frame the boxes are normalized to (pixels); sizes in messages
            and the zero-size and overhang limits are in these pixels.
        height: the frame's height, as ``width``.
        source: the file (or argument) the boxes come from, named in errors.
        record: which record (annotation id, line...), named in errors.
        max_overhang_px: a box poking out of the frame by at most this is clipped to it,
            further out is an error; None: boxes may lie anywhere and are not clipped
            (a detector's or a model's boxes, evaluated as given).
        single: ``boxes`` must be exactly one box of 4 numbers.

    Returns:
        ``(N, 4)`` float64, clipped to the frame where they poked out.

    Raises:
        DatasetError: naming ``source`` and ``record``, for boxes that are not 4 numbers,
            non-finite, not normalized, of negative size ("negative width"), of zero size
            (under :data:`MIN_BOX_SIZE` px), or further than ``max_overhang_px`` outside.
    """
    b = as_boxes_cxcywh_norm(boxes, source=source, record=record, single=single)
    if len(b) == 0:
        return b
    xyxy = boxes_cxcywh_norm_to_xyxy(b, width, height)
    for i in range(len(b)):
        def fail(message: str) -> None:
            raise DatasetError(source, f"{message}: {_show(b[i] if len(b) > 1 else boxes)}", record=record)

        if np.abs(b[i]).max() > _NORMALIZED_LIMIT:
            fail("box is not normalized: expected [cx, cy, w, h] in [0, 1] of the frame")
        w_px, h_px = xyxy[i, 2] - xyxy[i, 0], xyxy[i, 3] - xyxy[i, 1]
        if w_px < 0 or h_px < 0:
            which = " and ".join(n for n, v in (("width", w_px), ("height", h_px)) if v < 0)
            fail(f"box of negative {which} ({w_px:.2f} x {h_px:.2f} px)")
        if w_px < MIN_BOX_SIZE or h_px < MIN_BOX_SIZE:
            fail(f"box of zero size ({w_px:.2f} x {h_px:.2f} px)")
    if max_overhang_px is None:
        return b
    over = box_overhang_px(xyxy, width, height)
    for i in np.flatnonzero(over > max_overhang_px):
        raise DatasetError(
            source,
            f"box lies {over[i]:.2f} px outside the {width:g}x{height:g} frame (at most {max_overhang_px:g} px "
            f"is clipped): {_show(b[i] if len(b) > 1 else boxes)}",
            record=record,
        )
    out = over > 0
    if out.any():
        clipped = np.clip(xyxy[out], 0.0, [width, height, width, height])
        small = (clipped[:, 2] - clipped[:, 0] < MIN_BOX_SIZE) | (clipped[:, 3] - clipped[:, 1] < MIN_BOX_SIZE)
        if small.any():
            shown = b[np.flatnonzero(out)[np.argmax(small)]]
            raise DatasetError(source, f"box has zero size inside the frame: {_show(shown if len(b) > 1 else boxes)}",
                               record=record)
        b = b.copy()
        b[out] = boxes_xyxy_to_cxcywh_norm(clipped, width, height)
    return b


def _four_numbers(box: Any) -> bool:
    return isinstance(box, (list, tuple, np.ndarray)) and len(box) == 4 and all(
        isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_)) for x in box)


def _show(boxes: Any) -> str:
    """A box as the user wrote it (a list), for messages."""
    if isinstance(boxes, np.ndarray):
        return repr(boxes.tolist())
    return repr(boxes)


def box_iou_xyxy(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of ``(N, 4)`` and ``(M, 4)`` corner boxes -> ``(N, M)``."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def pack_pathways(clip: torch.Tensor | np.ndarray, alpha: int) -> tuple[Any, Any]:
    """Splits a fast clip into SlowFast pathways.

    Args:
        clip: ``(..., C, T, H, W)`` frames at the fast pathway's frame stride: a tensor, or
            a numpy array (the ONNX backend's preprocessing; the same frames, no torch).
        alpha: speed ratio; the slow pathway takes every ``alpha``-th fast frame.

    Returns:
        ``(slow, fast)`` with slow ``(..., C, T // alpha, H, W)``. The slow frames are
        ``s, s + alpha, ...`` with ``s = (T // 2) % alpha``, so the keyframe (fast index
        ``T // 2``) is always one of them: the slow pathway sees the annotated frame.
        With ``alpha == 1`` slow *is* ``clip`` (no copy; one-pathway models such as the
        crop CNN never read it).
    """
    t = clip.shape[-3]
    if alpha < 1 or t < alpha:
        raise ValueError(f"cannot take every {alpha}-th frame of a {t}-frame clip")
    if alpha == 1:
        return clip, clip
    if isinstance(clip, np.ndarray):
        return np.take(clip, np.arange((t // 2) % alpha, t, alpha)[: t // alpha], axis=-3), clip
    import torch

    idx = torch.arange((t // 2) % alpha, t, alpha, device=clip.device)[: t // alpha]
    return clip.index_select(-3, idx), clip


@dataclass
class ClipSample:
    """One keyframe with its clip and person boxes (one dataset item).

    Attributes:
        clip: ``(1, T, H, W)`` float32 normalised temperatures at the fast frame stride.
        boxes_xyxy: ``(N, 4)`` float32 person boxes in pixels of ``clip`` (after resize
            and augmentation).
        boxes_cxcywh_norm: ``(N, 4)`` float32 the same boxes as annotated on disk
            (before augmentation), for writing predictions.
        labels: ``(N,)`` int64 class index (-1 when unknown, e.g. at prediction).
        track_ids: ``(N,)`` int64 person id within the recording (``object_id``).
        annotation_ids: ``(N,)`` int64 annotation ids (-1 when none).
        image_id, sensor_id, frame_idx, timestamp: which keyframe this is.
        zone_masks: ``(Z, H, W)`` float32 share of each pixel of ``clip`` on a bed, couch or
            chair (moved and resized with the frames; zeros without a layout).
        zone_features: ``(N, F)`` float32 person-to-zone geometry of each box
            (:data:`ZONE_FEATURE_NAMES`; ``has_layout = 0`` without a layout).
        room_source: where the layout came from: ``"annotations"``, ``"rooms file"``,
            ``"api"`` or ``"none"``.
        box_scores: ``(N,)`` float32 detector confidence of each box (None: annotated boxes).
    """

    clip: torch.Tensor
    boxes_xyxy: torch.Tensor
    boxes_cxcywh_norm: torch.Tensor
    labels: torch.Tensor
    track_ids: torch.Tensor
    annotation_ids: torch.Tensor
    image_id: str
    sensor_id: str
    frame_idx: int
    timestamp: int
    zone_masks: torch.Tensor
    zone_features: torch.Tensor
    room_source: str
    box_scores: torch.Tensor | None = None


@dataclass
class Batch:
    """A collated batch of clips for a SlowFast detector.

    Attributes:
        slow: ``(B, 1, T // alpha, H, W)`` slow pathway.
        fast: ``(B, 1, T, H, W)`` fast pathway.
        rois: ``(R, 5)`` float32 ``(batch_index, x1, y1, x2, y2)`` in input pixels.
        labels: ``(R,)`` int64 class index (-1 unknown).
        boxes_cxcywh_norm: ``(R, 4)`` float32 boxes as annotated (normalized centre format).
        track_ids: ``(R,)`` int64.
        annotation_ids: ``(R,)`` int64 (-1 when none).
        image_ids, sensor_ids: ``B`` strings.
        frame_idxs, timestamps: ``(B,)`` int64.
        zone_masks: ``(B, Z, H, W)`` float32 furniture masks of each clip (constant over time).
        zone_features: ``(R, F)`` float32 person-to-zone geometry of each box.
        room_sources: ``B`` strings, where each clip's layout came from (``"none"``: no room).
        box_scores: ``(R,)`` float32 detector confidence (1 for annotated boxes), or None
            when every box of the batch is annotated.
    """

    slow: torch.Tensor
    fast: torch.Tensor
    rois: torch.Tensor
    labels: torch.Tensor
    boxes_cxcywh_norm: torch.Tensor
    track_ids: torch.Tensor
    annotation_ids: torch.Tensor
    image_ids: list[str]
    sensor_ids: list[str]
    frame_idxs: torch.Tensor
    timestamps: torch.Tensor
    zone_masks: torch.Tensor
    zone_features: torch.Tensor
    room_sources: list[str]
    box_scores: torch.Tensor | None = None

    @property
    def num_clips(self) -> int:
        return int(self.fast.shape[0])

    @property
    def num_rois(self) -> int:
        return int(self.rois.shape[0])

    def _map_tensors(self, fn) -> "Batch":
        import torch

        changes = {
            f.name: fn(getattr(self, f.name))
            for f in fields(self)
            if isinstance(getattr(self, f.name), torch.Tensor)
        }
        return replace(self, **changes)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "Batch":
        return self._map_tensors(lambda t: t.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> "Batch":
        return self._map_tensors(lambda t: t.pin_memory())
