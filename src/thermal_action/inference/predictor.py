"""Predictions on new recordings: every person, every ``step`` frames, every class.

::

    recording.h5 ──read_recording──► frames (N, H, W) °C, repaired
                                         │
    person boxes, first available of:    │
      1. annotations (keyframes only)    │
      2. a detections file  ─(tracker)─┐ │
      3. built-in detector + tracker ──┴─┼─► keyframes 0, step, 2*step, ... with boxes
                                         ▼
                  ClipBuilder (the training preprocessing) ─► clips, batched
                                         ▼
                  backend (PyTorch or ONNX Runtime) ─► logits ─► softmax/sigmoid
                                         ▼
          predictions.json / .csv  +  fall alerts (alerts.json / .csv)  +  run.json

:class:`Predictor` holds the model and the preprocessing; :func:`predict_recording`
scores one recording, :func:`predict_recordings` is the ``thermal-action predict``
command (files in, files out).

Detections files (person boxes from the user's own detector), one of:

- JSON: a list of records, ``{"detections": [...]}``, or JSON lines (one record per
  line). A record is ``{"frame_idx": int, "bbox": [cx, cy, w, h], "score"?: float,
  "track_id"?: int, "sensor_id"?: str, "class"?: 0 | "person"}`` with ``bbox``
  normalized like the annotations. ``{"image_id": "<sensor>_<timestamp>", ...}`` in
  place of ``frame_idx`` (the ``evaluate`` detections format) also works: the
  timestamp picks the frame. Records with a ``sensor_id`` apply to that recording
  only; a file without sensor ids may be used for one recording at a time.
- A directory of YOLO text files, ``<frame_idx>.txt`` (zero padding allowed), or
  ``<sensor_id>/<frame_idx>.txt`` for several recordings, with lines ``class cx cy w h
  [score [track_id]]`` (Ultralytics ``save_txt`` / ``save_conf`` order). Only class 0
  (person) is used; other lines are counted and logged.

A frame absent from a detections file has no person. Boxes without track ids go
through the built-in tracker (every box kept from its first frame, none invented;
tracks survive 6 frames without a box, so detect at least every 6 frames or give
track ids); with ``step > 1`` a grid frame with no entry in the file
takes the nearest listed frame within ``step // 2`` (for detectors run every few
frames).
"""

from __future__ import annotations

import csv
import json
import logging
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from thermal_action.data.clips import BuiltClip, ClipBuilder, clip_offsets
from thermal_action.errors import DatasetError
from thermal_action.data.hdf5 import Recording, read_recording
from thermal_action.structures import (
    FALL_CLASS_NAME,
    FALLBACK_FALL_THRESHOLD,
    boxes_cxcywh_norm_to_xyxy,
    boxes_xyxy_to_cxcywh_norm,
    pack_pathways,
)

logger = logging.getLogger(__name__)

BOX_SOURCES = ("auto", "annotations", "detections", "detector")
BACKENDS = ("torch", "onnx")
#: Frames per second of the sensors (the frame index is the time axis).
SENSOR_FPS = 6.0


# ----------------------------------------------------------------------------- results


@dataclass
class Prediction:
    """Action scores of one person in one frame.

    Attributes:
        sensor_id: the recording's sensor id.
        frame_idx: the keyframe (centre of the clip window).
        timestamp: its timestamp, ms since epoch.
        track_id: the person (annotation ``object_id`` or tracker id; -1 unknown).
        box_xyxy: ``(4,)`` pixel corners in the native frame.
        box_cxcywh_norm: ``(4,)`` the same box, normalized centre format.
        scores: ``(K,)`` class probabilities (softmax or sigmoid of the logits).
        class_names: the K class names.
        box_score: detector confidence (1 for annotated boxes).
        box_source: ``"annotations"``, ``"detections"``, ``"detector"`` or ``"given"``.
        recording: the recording file name (empty for streams).
    """

    sensor_id: str
    frame_idx: int
    timestamp: int
    track_id: int
    box_xyxy: np.ndarray
    box_cxcywh_norm: np.ndarray
    scores: np.ndarray
    class_names: Sequence[str]
    box_score: float = 1.0
    box_source: str = ""
    recording: str = ""

    @property
    def top_index(self) -> int:
        return int(np.argmax(self.scores))

    @property
    def top_class(self) -> str:
        return str(self.class_names[self.top_index])

    @property
    def top_score(self) -> float:
        return float(self.scores[self.top_index])

    @property
    def image_id(self) -> str:
        """``<sensor>_<timestamp>``, the keyframe id convention of the annotations."""
        return f"{self.sensor_id}_{self.timestamp}"

    def to_record(self) -> dict[str, Any]:
        """One ``predictions.json`` record (a superset of the ``evaluate`` format)."""
        return {
            "image_id": self.image_id,
            "bbox": [float(v) for v in self.box_cxcywh_norm],
            "scores": [float(v) for v in self.scores],
            "track_id": int(self.track_id) if self.track_id >= 0 else None,
            "box_score": float(self.box_score),
            "recording": self.recording,
            "sensor_id": self.sensor_id,
            "frame_idx": int(self.frame_idx),
            "timestamp": int(self.timestamp),
            "box_xyxy": [float(v) for v in self.box_xyxy],
            "top_class": self.top_class,
            "top_class_id": self.top_index,
            "top_score": self.top_score,
            "box_source": self.box_source,
        }

    @classmethod
    def from_record(cls, rec: Mapping[str, Any], class_names: Sequence[str]) -> "Prediction":
        """Inverse of :meth:`to_record` (for rendering and alerts from a file)."""
        sensor = str(rec.get("sensor_id") or str(rec["image_id"]).rsplit("_", 1)[0])
        box_norm = np.asarray(rec["bbox"], dtype=np.float64)
        box_xyxy = rec.get("box_xyxy")
        return cls(
            sensor_id=sensor,
            frame_idx=int(rec["frame_idx"]),
            timestamp=int(rec.get("timestamp") or 0),
            track_id=-1 if rec.get("track_id") is None else int(rec["track_id"]),
            box_xyxy=np.asarray(box_xyxy if box_xyxy is not None else [np.nan] * 4, dtype=np.float64),
            box_cxcywh_norm=box_norm,
            scores=np.asarray(rec["scores"], dtype=np.float64),
            class_names=class_names,
            box_score=float(rec.get("box_score") if rec.get("box_score") is not None else 1.0),
            box_source=str(rec.get("box_source", "")),
            recording=str(rec.get("recording", "")),
        )


# ----------------------------------------------------------------------------- backends


class TorchBackend:
    """Runs an :class:`~thermal_action.models.ActionDetector` in PyTorch.

    Args:
        model: the detector (put in eval mode here).
        device: where inputs go.
        use_memory: pass clip keys so an interaction model reads and writes its
            feature bank; ignored for models without one.
    """

    name = "torch"

    def __init__(self, model: torch.nn.Module, device: str | torch.device = "cpu", use_memory: bool = True):
        self.model = model.eval()
        self.device = torch.device(device)
        self.use_memory = use_memory and getattr(model, "feature_bank", None) is not None

    @property
    def alpha(self) -> int:
        return int(self.model.alpha)

    def __call__(self, slow: torch.Tensor, fast: torch.Tensor, rois: torch.Tensor,
                 clip_keys: Sequence[tuple[str, int]] | None = None) -> torch.Tensor:
        with torch.inference_mode():
            logits = self.model(
                slow.to(self.device), fast.to(self.device), rois.to(self.device),
                clip_keys=list(clip_keys) if (self.use_memory and clip_keys is not None) else None,
            )
        return logits.float().cpu()


class OnnxBackend:
    """Runs an ONNX file written by :func:`thermal_action.inference.export.export_onnx`.

    Args:
        path: the ``.onnx`` file.
        num_threads: ONNX Runtime intra-op threads (0 = its default).
    """

    name = "onnx"
    use_memory = False

    def __init__(self, path: str | Path, num_threads: int = 0):
        import onnxruntime as ort

        from thermal_action.inference.export import read_onnx_metadata

        self.path = Path(path)
        self.metadata = read_onnx_metadata(self.path)
        opts = ort.SessionOptions()
        if num_threads:
            opts.intra_op_num_threads = num_threads
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])

    @property
    def alpha(self) -> int:
        return int(self.metadata["alpha"])

    def __call__(self, slow: torch.Tensor, fast: torch.Tensor, rois: torch.Tensor,
                 clip_keys: Sequence[tuple[str, int]] | None = None) -> torch.Tensor:
        feeds = {
            "slow": slow.detach().cpu().numpy().astype(np.float32, copy=False),
            "fast": fast.detach().cpu().numpy().astype(np.float32, copy=False),
            "rois": rois.detach().cpu().numpy().astype(np.float32, copy=False),
        }
        (logits,) = self.session.run(["logits"], feeds)
        return torch.from_numpy(logits)


# ----------------------------------------------------------------------------- predictor


@dataclass
class ClipRequest:
    """One keyframe to classify.

    Attributes:
        frames: ``(L, H, W)`` °C, repaired; the whole recording or a window of it.
        frame_idx: the keyframe's index into ``frames``.
        boxes_xyxy: ``(N, 4)`` person boxes in native pixels of the keyframe.
        clip_key: ``(sensor_id, frame_idx)`` in the recording, for memory models.
    """

    frames: np.ndarray
    frame_idx: int
    boxes_xyxy: np.ndarray
    clip_key: tuple[str, int] | None = None


class Predictor:
    """A trained detector plus the exact preprocessing it was trained with.

    Args:
        backend: :class:`TorchBackend` or :class:`OnnxBackend`.
        clip_builder: the training preprocessing (``build_clip_builder(cfg.data)``).
        class_names: the K class names.
        score_activation: ``"softmax"`` (one class per person) or ``"sigmoid"``.
        max_clips_per_batch: clips per forward pass; more clips are split. 4 suits
            CPUs (a larger batch is no faster per clip there); raise it on a GPU.
        fall_threshold: the fall operating threshold that came with the model (the one
            ``train`` calibrated on validation data, or 0.5 for a model without one); fall
            alerts use it unless the caller gives another.
        frame_size: ``(H, W)`` of the frames the model was trained on (None: unknown);
            :func:`predict_recordings` refuses recordings of another size unless asked.

    Example::

        predictor = Predictor.from_checkpoint("runs/x/best.ckpt")
        scores = predictor.predict_clip(frames_window, boxes_xyxy)   # (N, K)
    """

    def __init__(
        self,
        backend: TorchBackend | OnnxBackend,
        clip_builder: ClipBuilder,
        class_names: Sequence[str],
        score_activation: str = "softmax",
        max_clips_per_batch: int = 4,
        fall_threshold: float = FALLBACK_FALL_THRESHOLD,
        frame_size: tuple[int, int] | None = None,
    ):
        if score_activation not in ("softmax", "sigmoid"):
            raise ValueError(f"score_activation must be 'softmax' or 'sigmoid', got {score_activation!r}")
        if max_clips_per_batch < 1:
            raise ValueError("max_clips_per_batch must be >= 1")
        self.backend = backend
        self.clip_builder = clip_builder
        self.class_names = tuple(str(n) for n in class_names)
        self.score_activation = score_activation
        self.max_clips_per_batch = max_clips_per_batch
        self.fall_threshold = float(fall_threshold)
        self.frame_size = tuple(int(v) for v in frame_size) if frame_size else None
        offsets = clip_offsets(clip_builder.num_frames, clip_builder.frame_stride)
        #: Raw frames the window reaches before / after its keyframe.
        self.frames_before = int(-offsets.min())
        self.frames_after = int(offsets.max())
        self.forward_passes = 0  # for tests and benchmarks

    # -- construction

    @classmethod
    def from_checkpoint(
        cls,
        checkpoint: str | Path,
        device: str | torch.device = "cpu",
        backend: str = "torch",
        onnx_path: str | Path | None = None,
        max_clips_per_batch: int = 4,
        num_threads: int = 0,
    ) -> "Predictor":
        """Loads a training checkpoint (``.ckpt``) or an exported ``.onnx`` file.

        Args:
            checkpoint: a ``.ckpt`` from ``thermal-action train`` or an ``.onnx`` from
                ``thermal-action export`` (which carries the preprocessing with it).
            device: PyTorch device (torch backend).
            backend: ``"torch"`` or ``"onnx"``; an ``.onnx`` checkpoint implies onnx.
            onnx_path: with ``backend="onnx"`` and a ``.ckpt``: where to export it
                (default: next to the checkpoint, ``<name>.onnx``).
            max_clips_per_batch: clips per forward pass.
            num_threads: ONNX Runtime threads (0 = default).
        """
        checkpoint = Path(checkpoint)
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if checkpoint.suffix == ".onnx" or backend == "onnx":
            if checkpoint.suffix != ".onnx":
                from thermal_action.inference.export import export_onnx

                target = Path(onnx_path) if onnx_path else checkpoint.with_suffix(".onnx")
                export_onnx(checkpoint, target)
                checkpoint = target
            onnx_backend = OnnxBackend(checkpoint, num_threads=num_threads)
            meta = onnx_backend.metadata
            builder = ClipBuilder(**meta["clip_builder"])
            return cls(onnx_backend, builder, meta["class_names"], meta["score_activation"], max_clips_per_batch,
                       fall_threshold=float(meta.get("fall_threshold", FALLBACK_FALL_THRESHOLD)),
                       frame_size=meta.get("frame_size"))

        from thermal_action.data.dataset import build_clip_builder
        from thermal_action.models.checkpoint import load_checkpoint

        loaded = load_checkpoint(checkpoint, device=device)
        info = loaded.info
        return cls(TorchBackend(loaded.model, device), build_clip_builder(info.config.data), info.class_names,
                   info.score_activation,
                   max_clips_per_batch, fall_threshold=info.fall_threshold, frame_size=info.frame_size)

    # -- properties

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def alpha(self) -> int:
        return self.backend.alpha

    @property
    def window_length(self) -> int:
        """Raw frames a window spans, keyframe included."""
        return self.frames_before + self.frames_after + 1

    def fall_index(self, fall_class: str = FALL_CLASS_NAME) -> int:
        from thermal_action.inference.alerts import fall_class_index

        return fall_class_index(self.class_names, fall_class)

    # -- prediction

    def build_clip(self, frames: np.ndarray, frame_idx: int, boxes_xyxy: np.ndarray) -> BuiltClip:
        """The training preprocessing without augmentation (edge frames repeat at the ends)."""
        return self.clip_builder.build(frames, frame_idx, boxes_xyxy)

    def _scores(self, logits: torch.Tensor) -> np.ndarray:
        if self.score_activation == "softmax":
            return torch.softmax(logits, dim=-1).numpy()
        return torch.sigmoid(logits).numpy()

    def predict_clips(self, requests: Sequence[ClipRequest]) -> list[np.ndarray]:
        """Scores of every box of every request, batched over clips and boxes.

        Clips without boxes cost nothing. Requests go through the model
        ``max_clips_per_batch`` clips at a time.

        Returns:
            One ``(N_i, K)`` float array per request.
        """
        out: list[np.ndarray] = [np.zeros((0, self.num_classes), np.float32) for _ in requests]
        todo = [i for i, r in enumerate(requests) if len(np.asarray(r.boxes_xyxy).reshape(-1, 4))]
        for start in range(0, len(todo), self.max_clips_per_batch):
            chunk = todo[start: start + self.max_clips_per_batch]
            clips, rois, counts, keys = [], [], [], []
            for b, i in enumerate(chunk):
                req = requests[i]
                built = self.build_clip(req.frames, req.frame_idx, np.asarray(req.boxes_xyxy, np.float32).reshape(-1, 4))
                clips.append(built.clip)  # (1, T, H', W')
                n = built.boxes_xyxy.shape[0]
                rois.append(torch.cat([torch.full((n, 1), float(b)), built.boxes_xyxy.float()], dim=1))
                counts.append(n)
                keys.append(req.clip_key)
            batch = torch.stack(clips)  # (B, 1, T, H', W')
            slow, fast = pack_pathways(batch, self.alpha)
            use_keys = self.backend.use_memory and all(k is not None for k in keys)
            logits = self.backend(slow, fast, torch.cat(rois), clip_keys=keys if use_keys else None)
            self.forward_passes += 1
            scores = self._scores(logits)  # (R, K)
            for i, part in zip(chunk, np.split(scores, np.cumsum(counts)[:-1])):
                out[i] = part
        return out

    def predict_clip(self, frames_window: np.ndarray, boxes_xyxy: np.ndarray, keyframe: int | None = None) -> np.ndarray:
        """Scores of the boxes of one keyframe.

        Args:
            frames_window: ``(L, H, W)`` °C (repaired) around the keyframe; missing
                context at either end is padded with the edge frame.
            boxes_xyxy: ``(N, 4)`` person boxes in native pixels.
            keyframe: index of the keyframe in ``frames_window``; default
                ``min(frames_before, L - 1)`` (a full window has its keyframe there).

        Returns:
            ``(N, K)`` class probabilities.
        """
        frames_window = np.asarray(frames_window, dtype=np.float32)
        if frames_window.ndim != 3:
            raise ValueError(f"frames_window must be (L, H, W), got shape {frames_window.shape}")
        k = min(self.frames_before, len(frames_window) - 1) if keyframe is None else int(keyframe)
        return self.predict_clips([ClipRequest(frames_window, k, boxes_xyxy)])[0]


# ----------------------------------------------------------------------------- person boxes


@dataclass
class FrameBoxes:
    """Person boxes of one frame.

    Attributes:
        boxes_xyxy: ``(N, 4)`` float32 native pixels.
        track_ids: ``(N,)`` int64 (-1 unknown).
        scores: ``(N,)`` float32 box confidence.
    """

    boxes_xyxy: np.ndarray
    track_ids: np.ndarray
    scores: np.ndarray

    def __post_init__(self) -> None:
        self.boxes_xyxy = np.asarray(self.boxes_xyxy, dtype=np.float32).reshape(-1, 4)
        self.track_ids = np.asarray(self.track_ids, dtype=np.int64).reshape(-1)
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        if not len(self.boxes_xyxy) == len(self.track_ids) == len(self.scores):
            raise ValueError("boxes_xyxy, track_ids and scores must have the same length")

    def __len__(self) -> int:
        return len(self.scores)

    @classmethod
    def empty(cls) -> "FrameBoxes":
        return cls(np.zeros((0, 4)), np.zeros(0), np.zeros(0))


@dataclass
class PersonBoxes:
    """Where the people are in one recording.

    Attributes:
        source: ``"annotations"``, ``"detections"`` or ``"detector"``.
        frames: frame index -> boxes; frames not listed have no person.
        keyframes_only: predict at the listed frames only (annotations), not on the
            ``step`` grid.
    """

    source: str
    frames: dict[int, FrameBoxes]
    keyframes_only: bool = False

    def keyframes(self, num_frames: int, step: int) -> list[tuple[int, FrameBoxes]]:
        """``(frame_idx, boxes)`` to predict: the annotated frames, or every ``step`` frames.

        On the grid, a frame without an entry takes the nearest listed frame within
        ``step // 2`` (detections computed every few frames), else has no person.
        """
        if self.keyframes_only:
            return [(f, self.frames[f]) for f in sorted(self.frames) if 0 <= f < num_frames]
        listed = np.asarray(sorted(self.frames), dtype=np.int64)
        out = []
        for f in range(0, num_frames, step):
            if f in self.frames:
                out.append((f, self.frames[f]))
                continue
            if listed.size == 0 or step < 2:
                continue
            j = int(np.searchsorted(listed, f))
            near = [int(listed[i]) for i in (j - 1, j) if 0 <= i < listed.size]
            best = min(near, key=lambda g: (abs(g - f), g))
            if abs(best - f) <= step // 2:
                out.append((f, self.frames[best]))
        return out


def track_detections(
    detections: Sequence[tuple[np.ndarray, np.ndarray]],
    tracker_factory: Callable[[], Any] | None = None,
) -> dict[int, FrameBoxes]:
    """Gives track ids to per-frame boxes with the built-in tracker.

    Args:
        detections: one ``(boxes_xyxy (N, 4), scores (N,))`` per frame, in order
            (empty arrays for frames without people: the tracker must see them to age
            its tracks).
        tracker_factory: makes a fresh tracker (default: ``inference.tracker.Tracker``).

    Returns:
        frame index -> tracked boxes, for frames with at least one box.
    """
    from thermal_action.inference.detector import Detections

    if tracker_factory is None:
        from thermal_action.inference.tracker import Tracker

        tracker_factory = Tracker
    tracker = tracker_factory()
    out: dict[int, FrameBoxes] = {}
    for f, (boxes, scores) in enumerate(detections):
        tracked = tracker.update(Detections(boxes, scores))
        if tracked:
            out[f] = FrameBoxes(
                np.asarray([t.box_xyxy for t in tracked], np.float32),
                np.asarray([t.track_id for t in tracked], np.int64),
                np.asarray([t.score for t in tracked], np.float32),
            )
    return out


def boxes_from_detector(recording: Recording, detector: Any | None = None,
                        tracker_factory: Callable[[], Any] | None = None) -> PersonBoxes:
    """Runs the built-in person detector and tracker over a whole recording."""
    if detector is None:
        from thermal_action.inference.detector import PersonDetector

        detector = PersonDetector()
    dets = detector.detect_recording(recording.frames)
    tracked = track_detections([(d.boxes_xyxy, d.scores) for d in dets], tracker_factory)
    return PersonBoxes("detector", tracked)


def boxes_from_annotations(annotations: Any, recording: Recording) -> PersonBoxes | None:
    """The annotated keyframes of ``recording`` (an ``AnnotationSet``), or None when it has none."""
    frames: dict[int, FrameBoxes] = {}
    for kf in annotations.keyframes:
        if kf.sensor_id != recording.sensor_id:
            continue
        if not 0 <= kf.frame_idx < recording.num_frames:
            raise DatasetError(annotations.path, f"frame_idx {kf.frame_idx} out of range for {recording.path} "
                               f"({recording.num_frames} frames)", record=kf.image_id)
        xyxy = boxes_cxcywh_norm_to_xyxy(kf.boxes_cxcywh_norm, recording.width, recording.height)
        frames[int(kf.frame_idx)] = FrameBoxes(xyxy, kf.track_ids, np.ones(kf.num_boxes))
    if not frames:
        return None
    return PersonBoxes("annotations", frames, keyframes_only=True)


# ----------------------------------------------------------------------------- detections files


@dataclass
class RawDetection:
    """One person box from a detections file (before tracking)."""

    frame_idx: int
    box_cxcywh_norm: tuple[float, float, float, float]
    score: float
    track_id: int | None
    sensor_id: str | None


@dataclass
class DetectionsFile:
    """A parsed detections file (see the module docstring for the formats).

    Attributes:
        path: the file or directory.
        records: the person boxes.
        image_ids: records given by ``image_id`` (resolved per recording), as
            ``(image_id, box, score, track_id)``.
        skipped_non_person: boxes of other classes left out.
    """

    path: Path
    records: list[RawDetection] = field(default_factory=list)
    image_ids: list[tuple[str, tuple[float, float, float, float], float, int | None]] = field(default_factory=list)
    skipped_non_person: int = 0

    def sensor_ids(self) -> set[str]:
        return {r.sensor_id for r in self.records if r.sensor_id is not None} | {
            i.rsplit("_", 1)[0] for i, *_ in self.image_ids
        }

    def has_unnamed(self) -> bool:
        return any(r.sensor_id is None for r in self.records)


def _check_bbox(path: Path, bbox: Any, where: str) -> tuple[float, float, float, float]:
    if (
        not isinstance(bbox, (list, tuple))
        or len(bbox) != 4
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in bbox)
    ):
        raise DatasetError(path, f"bbox must be 4 finite numbers [cx, cy, w, h], got {bbox!r}", record=where)
    if max(abs(v) for v in bbox) > 1.5:
        raise DatasetError(path, f"bbox {list(bbox)} is not normalized: expected [cx, cy, w, h] in [0, 1]",
                           record=where)
    if bbox[2] <= 0 or bbox[3] <= 0:
        raise DatasetError(path, f"bbox {list(bbox)} has a width or height <= 0", record=where)
    return tuple(float(v) for v in bbox)  # type: ignore[return-value]


def _is_person(cls: Any) -> bool:
    return cls in (0, "0", "person") or cls is None


def _parse_json_detections(path: Path) -> DetectionsFile:
    text = path.read_text()
    try:
        data = json.loads(text)
        lines = None
    except json.JSONDecodeError:
        data, lines = None, text.splitlines()
    if lines is not None:
        records = []
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                records.append((f"line {n}", json.loads(line)))
            except json.JSONDecodeError as e:
                raise DatasetError(path, f"neither JSON nor JSON lines: {e}", record=f"line {n}") from e
    else:
        if isinstance(data, Mapping) and isinstance(data.get("detections"), list):
            data = data["detections"]
        if isinstance(data, Mapping):
            data = [data]  # JSON lines with a single line
        if not isinstance(data, list):
            raise DatasetError(path, f"expected a JSON list of detections, got {type(data).__name__}")
        records = [(f"record {i}", rec) for i, rec in enumerate(data)]
    out = DetectionsFile(path)
    for where, rec in records:
        if not isinstance(rec, Mapping):
            raise DatasetError(path, f"a detection must be an object, got {type(rec).__name__}", record=where)
        # Only "class": "category_id" in evaluate-style files is an action label, not a detector class.
        cls = rec.get("class")
        if not _is_person(cls):
            out.skipped_non_person += 1
            continue
        if "bbox" not in rec:
            raise DatasetError(path, "a detection needs 'bbox' ([cx, cy, w, h] normalized)", record=where)
        bbox = _check_bbox(path, rec["bbox"], where)
        score = rec.get("score", 1.0)
        score = 1.0 if score is None else score
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
            raise DatasetError(path, f"score must be a finite number, got {score!r}", record=where)
        track = rec.get("track_id")
        if track is not None and (isinstance(track, bool) or not isinstance(track, int) or track < 0):
            raise DatasetError(path, f"track_id must be an integer >= 0, got {track!r}", record=where)
        if "frame_idx" in rec:
            f = rec["frame_idx"]
            if isinstance(f, bool) or not isinstance(f, int) or f < 0:
                raise DatasetError(path, f"frame_idx must be an integer >= 0, got {f!r}", record=where)
            sensor = rec.get("sensor_id")
            out.records.append(RawDetection(f, bbox, float(score), track, None if sensor is None else str(sensor)))
        elif "image_id" in rec:
            image_id = str(rec["image_id"])
            if "_" not in image_id or not image_id.rsplit("_", 1)[1].lstrip("-").isdigit():
                raise DatasetError(path, f"image_id {image_id!r} is not '<sensor_id>_<timestamp>'", record=where)
            out.image_ids.append((image_id, bbox, float(score), track))
        else:
            raise DatasetError(path, "a detection needs 'frame_idx' (or 'image_id')", record=where)
    return out


_FRAME_FILE = re.compile(r"^(?:.*?[_-])?(\d+)\.txt$")


def _parse_yolo_file(path: Path, frame_idx: int, sensor: str | None, out: DetectionsFile) -> None:
    for n, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        where = f"line {n}"
        if len(parts) not in (5, 6, 7):
            raise DatasetError(path, f"expected 'class cx cy w h [score [track_id]]', got {line!r}", record=where)
        try:
            cls = int(float(parts[0]))
            values = [float(v) for v in parts[1:]]
        except ValueError as e:
            raise DatasetError(path, f"not numbers: {line!r}", record=where) from e
        if cls != 0:
            out.skipped_non_person += 1
            continue
        bbox = _check_bbox(path, values[:4], where)
        score = values[4] if len(values) > 4 else 1.0
        track = None
        if len(values) > 5:
            if values[5] < 0 or not float(values[5]).is_integer():
                raise DatasetError(path, f"track_id must be an integer >= 0, got {parts[6]!r}", record=where)
            track = int(values[5])
        out.records.append(RawDetection(frame_idx, bbox, float(score), track, sensor))


def _parse_yolo_dir(path: Path) -> DetectionsFile:
    out = DetectionsFile(path)

    def frame_files(d: Path) -> list[tuple[int, Path]]:
        found = []
        for p in sorted(d.glob("*.txt")):
            m = _FRAME_FILE.match(p.name)
            if m is None:
                raise DatasetError(p, "a YOLO detections file must be named <frame_idx>.txt")
            found.append((int(m.group(1)), p))
        return found

    top = frame_files(path)
    subdirs = [d for d in sorted(path.iterdir()) if d.is_dir()]
    if top and subdirs:
        raise DatasetError(path, "mixes <frame_idx>.txt files and per-sensor subdirectories")
    if top:
        for f, p in top:
            _parse_yolo_file(p, f, None, out)
    for d in subdirs:
        for f, p in frame_files(d):
            _parse_yolo_file(p, f, d.name, out)
    return out


def read_detections_file(path: str | Path) -> DetectionsFile:
    """Parses a detections JSON / JSON-lines file or a YOLO directory (module docstring).

    Raises:
        DatasetError: naming the file and the record that is wrong.
    """
    path = Path(path)
    if path.is_dir():
        out = _parse_yolo_dir(path)
    elif path.is_file():
        out = _parse_json_detections(path)
    else:
        raise DatasetError(path, "detections file or directory not found")
    if out.skipped_non_person:
        logger.info("%s: left out %d boxes of classes other than person (0)", path, out.skipped_non_person)
    return out


def boxes_from_detections(
    dets: DetectionsFile,
    recording: Recording,
    single_recording: bool,
    tracker_factory: Callable[[], Any] | None = None,
) -> PersonBoxes | None:
    """The detections of ``recording`` (None when the file has none for it).

    Args:
        dets: from :func:`read_detections_file`.
        recording: the recording they are for.
        single_recording: whether only this recording is being predicted (then boxes
            without a sensor id belong to it; otherwise they are ambiguous: an error).
        tracker_factory: tracker for boxes without track ids.
    """
    sensor = recording.sensor_id
    if dets.has_unnamed() and not single_recording:
        raise DatasetError(dets.path, "detections without a sensor_id (or per-sensor directory) are ambiguous "
                           "when several recordings are predicted; predict one recording at a time or add sensor_id")
    mine = [r for r in dets.records if r.sensor_id in (None, sensor)]
    ts_to_frame = None
    for image_id, bbox, score, track in dets.image_ids:
        s, ts = image_id.rsplit("_", 1)
        if s != sensor:
            continue
        if ts_to_frame is None:
            ts_to_frame = {int(t): i for i, t in enumerate(recording.timestamps)}
        if int(ts) not in ts_to_frame:
            raise DatasetError(dets.path, f"no frame of {recording.path} has timestamp {ts}", record=image_id)
        mine.append(RawDetection(ts_to_frame[int(ts)], bbox, score, track, sensor))
    if not mine:
        return None
    n = recording.num_frames
    out_of_range = [r.frame_idx for r in mine if r.frame_idx >= n]
    if out_of_range:
        raise DatasetError(dets.path, f"frame_idx {out_of_range[0]} out of range for {recording.path} ({n} frames)",
                           record=f"frame {out_of_range[0]}")
    with_ids = [r.track_id is not None for r in mine]
    if any(with_ids) and not all(with_ids):
        raise DatasetError(dets.path, f"some boxes of {sensor} have a track_id and some do not; give all or none")
    per_frame: dict[int, list[RawDetection]] = {}
    for r in mine:
        per_frame.setdefault(r.frame_idx, []).append(r)

    def xyxy(rs: list[RawDetection]) -> np.ndarray:
        return boxes_cxcywh_norm_to_xyxy(np.asarray([r.box_cxcywh_norm for r in rs]), recording.width, recording.height)

    if all(with_ids):
        frames = {
            f: FrameBoxes(xyxy(rs), [r.track_id for r in rs], [r.score for r in rs]) for f, rs in per_frame.items()
        }
    else:
        empty = (np.zeros((0, 4), np.float32), np.zeros(0, np.float32))
        seq = [
            (xyxy(per_frame[f]), np.asarray([r.score for r in per_frame[f]])) if f in per_frame else empty
            for f in range(max(per_frame) + 1)
        ]
        frames = track_detections(seq, tracker_factory or _detections_tracker)
    return PersonBoxes("detections", frames)


def _detections_tracker() -> Any:
    """The tracker for a user's detections: every box is reported from its first frame
    (no confirmation delay) and no box is invented on frames the file leaves empty."""
    from thermal_action.inference.tracker import Tracker

    return Tracker(min_hits=1, report_coasting=False)


# ----------------------------------------------------------------------------- recordings


def predict_recording(
    predictor: Predictor,
    recording: Recording,
    boxes: PersonBoxes,
    step: int = 6,
) -> list[Prediction]:
    """Scores every person of one recording at the keyframes ``boxes`` gives.

    Args:
        predictor: the model.
        recording: from :func:`~thermal_action.data.hdf5.read_recording`.
        boxes: the people (annotations, detections or the built-in detector).
        step: frames between predictions on the grid (ignored for annotations).

    Returns:
        Predictions ordered by frame, then track id.
    """
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step}")
    keyframes = [(f, fb) for f, fb in boxes.keyframes(recording.num_frames, step) if len(fb)]
    requests = [
        ClipRequest(recording.frames, f, fb.boxes_xyxy, clip_key=(recording.sensor_id, f)) for f, fb in keyframes
    ]
    if predictor.backend.use_memory:
        # An interaction model reads neighbouring keyframes from its feature bank:
        # fill it in a first pass (as evaluation does), then predict.
        predictor.predict_clips(requests)
    all_scores = predictor.predict_clips(requests)
    w, h = recording.width, recording.height
    out = []
    for (f, fb), scores in zip(keyframes, all_scores):
        norm = boxes_xyxy_to_cxcywh_norm(fb.boxes_xyxy, w, h)
        order = np.argsort(fb.track_ids, kind="stable")
        for i in order:
            out.append(Prediction(
                sensor_id=recording.sensor_id, frame_idx=int(f), timestamp=int(recording.timestamps[f]),
                track_id=int(fb.track_ids[i]), box_xyxy=fb.boxes_xyxy[i].astype(np.float64),
                box_cxcywh_norm=norm[i], scores=scores[i], class_names=predictor.class_names,
                box_score=float(fb.scores[i]), box_source=boxes.source, recording=recording.path.name,
            ))
    return out


def resolve_boxes(
    recording: Recording,
    source: str = "auto",
    annotations: Any | None = None,
    detections: DetectionsFile | None = None,
    single_recording: bool = True,
    tracker_factory: Callable[[], Any] | None = None,
) -> PersonBoxes:
    """Picks the person boxes of a recording: annotations, else detections, else the detector.

    Args:
        source: ``"auto"`` (that order of preference) or one source to insist on
            (an error when it has nothing for this recording).
        annotations: an ``AnnotationSet`` or None.
        detections: a parsed detections file or None.
    """
    if source not in BOX_SOURCES:
        raise ValueError(f"boxes must be one of {BOX_SOURCES}, got {source!r}")
    if source in ("auto", "annotations") and annotations is not None:
        found = boxes_from_annotations(annotations, recording)
        if found is not None:
            return found
        if source == "annotations":
            raise DatasetError(annotations.path, f"no keyframe of sensor {recording.sensor_id!r}")
        logger.info("%s: no annotated keyframe in %s; trying the next box source", recording.path, annotations.path)
    elif source == "annotations":
        raise ValueError("boxes='annotations' needs an annotations file")
    if source in ("auto", "detections") and detections is not None:
        found = boxes_from_detections(detections, recording, single_recording, tracker_factory)
        if found is not None:
            return found
        if source == "detections":
            raise DatasetError(detections.path, f"no detections for sensor {recording.sensor_id!r}")
        logger.info("%s: no detections for it in %s; using the built-in detector", recording.path, detections.path)
    elif source == "detections":
        raise ValueError("boxes='detections' needs a detections file")
    return boxes_from_detector(recording, tracker_factory=tracker_factory)


# ----------------------------------------------------------------------------- files


def write_predictions_csv(path: str | Path, predictions: Sequence[Prediction], class_names: Sequence[str]) -> Path:
    """One CSV row per prediction: where, who, box, every class score, the top class."""
    path = Path(path)
    head = ["recording", "sensor_id", "frame_idx", "timestamp", "track_id", "cx", "cy", "w", "h",
            "x1", "y1", "x2", "y2", "box_score", "box_source", "top_class", "top_score"]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(head + [f"score:{n}" for n in class_names])
        for p in predictions:
            w.writerow([
                p.recording, p.sensor_id, p.frame_idx, p.timestamp, p.track_id if p.track_id >= 0 else "",
                *(f"{v:.6f}" for v in p.box_cxcywh_norm), *(f"{v:.3f}" for v in p.box_xyxy),
                f"{p.box_score:.4f}", p.box_source, p.top_class, f"{p.top_score:.6f}",
                *(f"{v:.6f}" for v in p.scores),
            ])
    return path


def read_predictions_file(path: str | Path, class_names: Sequence[str] | None = None) -> tuple[list[Prediction], list[str]]:
    """Reads a ``predictions.json`` written by ``predict`` back into predictions.

    Class names come from ``run.json`` beside the file when not given, else default.

    Returns:
        ``(predictions, class_names)``.
    """
    from thermal_action.evaluation.io import read_predictions
    from thermal_action.structures import DEFAULT_CLASS_NAMES

    path = Path(path)
    records = read_predictions(path)
    if class_names is None:
        run = path.with_name("run.json")
        if run.is_file():
            class_names = json.loads(run.read_text()).get("class_names")
    if class_names is None:
        k = len(records[0]["scores"]) if records else len(DEFAULT_CLASS_NAMES)
        class_names = list(DEFAULT_CLASS_NAMES) if k == len(DEFAULT_CLASS_NAMES) else [str(i) for i in range(k)]
    for i, rec in enumerate(records):
        if "frame_idx" not in rec:
            raise DatasetError(path, "a record without 'frame_idx': not written by 'thermal-action predict'",
                               record=f"record {i}")
    return [Prediction.from_record(r, class_names) for r in records], list(class_names)


@dataclass
class PredictRun:
    """What :func:`predict_recordings` wrote and found.

    Attributes:
        out_dir: the output directory.
        predictions: every prediction.
        alerts: the fall alerts.
        box_sources: recording -> box source used.
        files: name -> path of every file written.
        seconds: wall-clock time per stage.
    """

    out_dir: Path
    predictions: list[Prediction]
    alerts: list[Any]
    box_sources: dict[str, str]
    files: dict[str, Path]
    seconds: dict[str, float]

    def summary(self) -> dict[str, Any]:
        return {
            "out_dir": str(self.out_dir),
            "predictions": len(self.predictions),
            "fall_alerts": len(self.alerts),
            "box_sources": self.box_sources,
            "files": {k: str(v) for k, v in self.files.items()},
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
        }


def _find_recordings(paths: Iterable[str | Path]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(p.glob("*.h5"))
            if not found:
                raise DatasetError(p, "no .h5 recordings in this directory")
            out.extend(found)
        else:
            out.append(p)
    return out


def predict_recordings(
    checkpoint: str | Path | Predictor,
    recordings: Sequence[str | Path],
    out_dir: str | Path,
    step: int = 6,
    boxes: str = "auto",
    detections: str | Path | None = None,
    annotations: str | Path | None = None,
    backend: str = "torch",
    device: str = "cpu",
    batch_size: int | None = None,
    fall_class: str = FALL_CLASS_NAME,
    fall_threshold: float | None = None,
    fall_alert_seconds: float = 5.0,
    fps: float = SENSOR_FPS,
    allow_frame_size: bool = False,
) -> PredictRun:
    """``thermal-action predict``: scores every person of the recordings, writes the files.

    Args:
        checkpoint: a ``.ckpt``, an exported ``.onnx``, or a ready :class:`Predictor`.
        recordings: ``.h5`` files (or directories of them).
        out_dir: where ``predictions.json``, ``predictions.csv``, ``alerts.json``,
            ``alerts.csv`` and ``run.json`` go.
        step: frames between predictions (6 is about once a second at ~6 fps).
        boxes: ``"auto"``, ``"annotations"``, ``"detections"`` or ``"detector"``.
        detections: a detections file or YOLO directory (module docstring).
        annotations: an annotations JSON; its keyframes (and tracks) are used for
            the recordings it covers.
        backend: ``"torch"`` or ``"onnx"`` (a ``.ckpt`` is exported to
            ``out_dir/model.onnx`` first).
        device: PyTorch device.
        batch_size: clips per forward pass; default 4 on CPU (larger batches are no
            faster per clip there: 58 / 60 / 99 ms per clip at 1 / 4 / 16 for the CPU
            default model, one thread) and 32 on a GPU.
        fall_class, fall_threshold, fall_alert_seconds, fps: fall alerts (see
            :mod:`thermal_action.inference.alerts`); the class must be one of the model's.
            ``fall_threshold=None`` uses the model's own (calibrated by ``train``).
        allow_frame_size: predict on recordings whose frame size differs from the one the
            model was trained on (refused otherwise, naming the file). Dropped packets of
            such frames are only filled, never realigned (the realignment knows only the
            40x60 sensor's packets).

    Returns:
        A :class:`PredictRun`.

    Raises:
        DatasetError: an unusable recording, or one of another frame size than the
            model's without ``allow_frame_size``.
    """
    from thermal_action.evaluation.io import write_predictions
    from thermal_action.inference.alerts import find_fall_alerts, write_alerts

    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = _find_recordings(recordings)
    if not paths:
        raise ValueError("no recordings given")
    if isinstance(checkpoint, Predictor):
        predictor = checkpoint
    else:
        if batch_size is None:
            batch_size = 4 if str(device) == "cpu" else 32
        predictor = Predictor.from_checkpoint(checkpoint, device=device, backend=backend,
                                              onnx_path=out_dir / "model.onnx", max_clips_per_batch=batch_size)
    fall_index = predictor.fall_index(fall_class)  # fail before any work when it is missing
    if fall_threshold is None:
        fall_threshold = predictor.fall_threshold
    ann = None
    if annotations is not None:
        from thermal_action.data.annotations import load_annotations

        ann = load_annotations(annotations, class_names=list(predictor.class_names))
    dets = read_detections_file(detections) if detections is not None else None
    bank = getattr(getattr(predictor.backend, "model", None), "feature_bank", None)
    if bank is not None:
        bank.clear()
    seconds = {"load": time.perf_counter() - t0, "boxes": 0.0, "model": 0.0}
    predictions: list[Prediction] = []
    sources: dict[str, str] = {}
    for path in paths:
        rec = read_recording(path)  # realigns dropped packets of 40x60 frames only
        trained = predictor.frame_size
        if trained is not None and (rec.height, rec.width) != trained:
            size = f"frames are {rec.height}x{rec.width} but the model was trained on {trained[0]}x{trained[1]} frames"
            if not allow_frame_size:
                raise DatasetError(path, f"{size}; pass --allow-frame-size to predict on them anyway",
                                   record="frames")
            logger.warning("%s: %s (--allow-frame-size); dropped packets filled, not realigned", path, size)
        t = time.perf_counter()
        person_boxes = resolve_boxes(rec, boxes, ann, dets, single_recording=len(paths) == 1)
        seconds["boxes"] += time.perf_counter() - t
        t = time.perf_counter()
        preds = predict_recording(predictor, rec, person_boxes, step=step)
        seconds["model"] += time.perf_counter() - t
        sources[path.name] = person_boxes.source
        logger.info("%s: %d predictions from %s boxes", path, len(preds), person_boxes.source)
        predictions.extend(preds)
    alerts = find_fall_alerts(predictions, fall_index, threshold=fall_threshold, min_seconds=fall_alert_seconds,
                              fps=fps)
    files = {
        "predictions_json": out_dir / "predictions.json",
        "predictions_csv": out_dir / "predictions.csv",
        "alerts_json": out_dir / "alerts.json",
        "alerts_csv": out_dir / "alerts.csv",
        "run_json": out_dir / "run.json",
    }
    write_predictions(files["predictions_json"], [p.to_record() for p in predictions], predictor.num_classes)
    write_predictions_csv(files["predictions_csv"], predictions, predictor.class_names)
    write_alerts(alerts, files["alerts_json"], files["alerts_csv"])
    seconds["total"] = time.perf_counter() - t0
    run = PredictRun(out_dir, predictions, alerts, sources, files, seconds)
    meta = {
        "checkpoint": str(checkpoint) if not isinstance(checkpoint, Predictor) else "",
        "backend": predictor.backend.name,
        "class_names": list(predictor.class_names),
        "score_activation": predictor.score_activation,
        "step": step,
        "window_frames_before": predictor.frames_before,
        "window_frames_after": predictor.frames_after,
        "fall_alert_rule": {"class": fall_class, "threshold": fall_threshold, "min_seconds": fall_alert_seconds,
                        "fps": fps},
        "recordings": [str(p) for p in paths],
        **run.summary(),
    }
    files["run_json"].write_text(json.dumps(meta, indent=2))
    return run
