"""The result record of ``predict`` and its files: :class:`Prediction`, ``predictions.csv``,
reading a ``predictions.json`` back.

``predictions.json`` itself is written and checked by
:func:`thermal_action.evaluation.io.write_predictions` (its records are a superset of the
``evaluate`` format).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from thermal_action.errors import DatasetError


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
        bed_share: share (0-1) of the box on a bed/couch zone of the room, None when the
            room is not known; a fall alert rule may hold such a person to its stricter
            ``bed_threshold`` (:class:`~thermal_action.alert_rule.AlertRule`).
        room_source: where the room layout the model saw came from: ``"annotations"``,
            ``"rooms file"``, ``"api"``, or ``"none"`` (no layout known: empty zone masks,
            ``has_layout = 0``); empty when not recorded (older files).
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
    bed_share: float | None = None
    room_source: str = ""

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
            "bed_share": None if self.bed_share is None else float(self.bed_share),
            "room_source": self.room_source,
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
            bed_share=None if rec.get("bed_share") is None else float(rec["bed_share"]),
            room_source=str(rec.get("room_source", "")),
        )


def write_predictions_csv(path: str | Path, predictions: Sequence[Prediction], class_names: Sequence[str]) -> Path:
    """One CSV row per prediction: where, who, box, the room's source, every class score, the top class."""
    path = Path(path)
    head = ["recording", "sensor_id", "frame_idx", "timestamp", "track_id", "cx", "cy", "w", "h",
            "x1", "y1", "x2", "y2", "box_score", "box_source", "room_source", "top_class", "top_score"]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(head + [f"score:{n}" for n in class_names])
        for p in predictions:
            w.writerow([
                p.recording, p.sensor_id, p.frame_idx, p.timestamp, p.track_id if p.track_id >= 0 else "",
                *(f"{v:.6f}" for v in p.box_cxcywh_norm), *(f"{v:.3f}" for v in p.box_xyxy),
                f"{p.box_score:.4f}", p.box_source, p.room_source, p.top_class, f"{p.top_score:.6f}",
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

