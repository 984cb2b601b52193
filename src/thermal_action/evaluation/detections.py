"""Detections files: person boxes from the user's own detector, one of:

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

from thermal_action.errors import DatasetError

logger = logging.getLogger(__name__)


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

