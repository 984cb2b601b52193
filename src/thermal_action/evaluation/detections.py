"""Detections files: person boxes from the user's own detector, read once for
``thermal-action evaluate --detections`` and ``thermal-action predict --detections``.

One of:

- JSON: a list of records, ``{"detections": [...]}``, or JSON lines (one record per
  line). A record is ``{"image_id": "<sensor>_<timestamp>" | "frame_idx": int,
  "bbox": [cx, cy, w, h], "score"?: float, "track_id"?: int, "sensor_id"?: str,
  "class"?: 0 | "person"}`` with ``bbox`` normalized like the annotations (not COCO's
  pixel x, y, w, h); ``score`` is 1.0 when absent; other keys (``category_id``...) are
  ignored. ``evaluate`` finds keyframes by ``image_id``; ``predict`` takes either (the
  timestamp of an ``image_id`` picks the frame). Records with a ``sensor_id`` apply to
  that recording only; a file without sensor ids may be used for one recording at a
  time.
- A directory of YOLO text files, ``<frame_idx>.txt`` (zero padding allowed), or
  ``<sensor_id>/<frame_idx>.txt`` for several recordings, with lines ``class cx cy w h
  [score [track_id]]`` (Ultralytics ``save_txt`` / ``save_conf`` order); ``predict``
  only (frame indices, no keyframe ids).

Only persons (class 0, ``"person"`` or no class) are kept; boxes of other classes are
counted and logged. A keyframe or frame absent from the file has no person.

:func:`read_detections_file` parses every form into one :class:`DetectionsFile`;
:func:`read_detections` is ``evaluate``'s view of it, boxes per keyframe id. Errors
name the file and the record (``record 3, image_id 'S1_170...'``, ``line 4``).
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from thermal_action.errors import DatasetError
from thermal_action.structures import ImageBoxes, check_box_cxcywh_norm

logger = logging.getLogger(__name__)


@dataclass
class RawDetection:
    """One person box from a detections file (before tracking).

    Attributes:
        frame_idx: the frame, or None for a record given by ``image_id``.
        box_cxcywh_norm: normalized centre box, as in the file.
        score: detector confidence (1.0 when the file has none).
        track_id: the person's id when the file gives one.
        sensor_id: the recording it belongs to (None: any, for one recording at a time).
        image_id: ``<sensor>_<timestamp>`` keyframe id, when given instead of ``frame_idx``.
        record: where it is in the file, for errors (``"record 3"``, ``"line 4"``).
    """

    frame_idx: int | None
    box_cxcywh_norm: tuple[float, float, float, float]
    score: float
    track_id: int | None
    sensor_id: str | None
    image_id: str | None = None
    record: str = ""


@dataclass
class DetectionsFile:
    """A parsed detections file (see the module docstring for the formats).

    Attributes:
        path: the file or directory.
        records: the person boxes, in file order.
        skipped_non_person: boxes of other classes left out.
    """

    path: Path
    records: list[RawDetection] = field(default_factory=list)
    skipped_non_person: int = 0

    def sensor_ids(self) -> set[str]:
        return {r.sensor_id for r in self.records if r.sensor_id is not None} | {
            r.image_id.rsplit("_", 1)[0] for r in self.records if r.image_id is not None
        }

    def has_unnamed(self) -> bool:
        """Whether some box names no recording (neither ``sensor_id`` nor ``image_id``)."""
        return any(r.sensor_id is None and r.image_id is None for r in self.records)


#: Person boxes of one keyframe from a detections file (``structures.ImageBoxes``).
ImageDetections = ImageBoxes


def _check_bbox(path: Path, bbox: Any, where: str) -> tuple[float, float, float, float]:
    # A detector's boxes are evaluated as given, also where they poke out of the frame.
    box = check_box_cxcywh_norm(bbox, source=path, record=where, max_overhang_px=None)
    return tuple(float(v) for v in box)  # type: ignore[return-value]


def _is_person(cls: Any) -> bool:
    return cls in (0, "0", "person") or cls is None


def _where(label: str, rec: Any) -> str:
    image_id = rec.get("image_id") if isinstance(rec, Mapping) else None
    return label + (f", image_id {image_id!r}" if image_id is not None else "")


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
    for label, rec in records:
        where = _where(label, rec)
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
        sensor = rec.get("sensor_id")
        sensor = None if sensor is None else str(sensor)
        if "frame_idx" in rec:
            f = rec["frame_idx"]
            if isinstance(f, bool) or not isinstance(f, int) or f < 0:
                raise DatasetError(path, f"frame_idx must be an integer >= 0, got {f!r}", record=where)
            out.records.append(RawDetection(f, bbox, float(score), track, sensor, record=where))
        elif "image_id" in rec:
            image_id = rec["image_id"]
            if isinstance(image_id, bool) or not isinstance(image_id, (str, int)):
                raise DatasetError(path, f"image_id must be a string or an integer, got {image_id!r}", record=where)
            out.records.append(RawDetection(None, bbox, float(score), track, sensor, image_id=str(image_id),
                                            record=where))
        else:
            raise DatasetError(path, "a detection needs 'image_id' ('<sensor_id>_<timestamp>') or 'frame_idx'",
                               record=where)
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
        name = path.name if sensor is None else f"{sensor}/{path.name}"
        out.records.append(RawDetection(frame_idx, bbox, float(score), track, sensor, record=f"{name} {where}"))


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



def read_detections(path: str | Path, min_score: float = 0.0) -> dict[str, ImageDetections]:
    """``evaluate``'s view of a detections file: person boxes per keyframe id.

    Args:
        path: a detections file whose records have ``image_id`` (module docstring).
        min_score: boxes with a lower ``score`` are dropped (the count is logged).

    Returns:
        ``{image_id (str): ImageDetections}`` in file order; keyframes absent from the file
        have no detections (one listed with every box dropped maps to zero boxes).

    Raises:
        DatasetError: naming the file and the bad record, also for a record with only
            ``frame_idx`` (or a YOLO directory): keyframes are found by ``image_id``.
    """
    dets = read_detections_file(path)
    boxes: dict[str, list[tuple[float, float, float, float]]] = {}
    scores: dict[str, list[float]] = {}
    dropped = 0
    for r in dets.records:
        if r.image_id is None:
            raise DatasetError(dets.path, "evaluate finds keyframes by 'image_id' ('<sensor_id>_<timestamp>'); "
                               "this detection has only 'frame_idx'", record=r.record)
        boxes.setdefault(r.image_id, [])
        scores.setdefault(r.image_id, [])
        if r.score < min_score:
            dropped += 1
            continue
        boxes[r.image_id].append(r.box_cxcywh_norm)
        scores[r.image_id].append(r.score)
    if dropped:
        logger.info("%s: dropped %d of %d detections with score < %g", dets.path, dropped, len(dets.records),
                    min_score)
    return {
        k: ImageDetections(
            np.asarray(boxes[k], dtype=np.float64).reshape(-1, 4), np.asarray(scores[k], dtype=np.float64)
        )
        for k in boxes
    }
