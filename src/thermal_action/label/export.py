"""The labels as the project's files: the labelling tool's raw JSONL, the COCO-like
``train.json`` / ``val.json`` and a ``rooms.json``, so ``convert-annotations``, ``validate``
and ``train`` read them unchanged.

::

    labels of each recording (complete keyframes: every person labelled)
          │
          ├─► raw_annotations/<sensor>_annotation.json   one line per keyframe: person boxes
          │        (subcategory = action, object_id = track), furniture boxes, annotator_id
          │
          ├─► annotations/train.json, val.json, class_mapping.json
          │        made from those lines by data.convert.convert_annotations: one conversion,
          │        the same split rule (whole recordings held out, a later time block with one);
          │        each image gets the keyframe's annotator_id
          │
          └─► rooms.json   each recording's furniture zones (its own, or carried from the
                           sensor's earlier recording), by sensor id

Every file is replaced atomically (:func:`~thermal_action.label.journal.write_atomic`).
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from thermal_action.data.convert import RAW_SUFFIX, convert_annotations
from thermal_action.label.journal import write_atomic, write_json_atomic
from thermal_action.label.model import RecordingLabels
from thermal_action.structures import DEFAULT_CLASS_NAMES

logger = logging.getLogger(__name__)

#: ``object_id`` of a recording's first furniture box (person track ids stay below it).
FURNITURE_ID_BASE = 10_000


@dataclass
class RecordingExport:
    """What one recording contributes to the export.

    Attributes:
        sensor_id, mac_address: the recording's.
        timestamps: capture time (ms) of every frame, indexed by frame.
        width, height: frame size in pixels.
        labels: its labels.
        zones: the furniture that holds for it (its own or carried), or None.
        default_annotator: the name for keyframes no edit touched.
    """

    sensor_id: str
    mac_address: str | None
    timestamps: Sequence[int]
    width: int
    height: int
    labels: RecordingLabels
    zones: list[dict[str, Any]] | None
    default_annotator: str


def _cxcywh(box: Sequence[float], width: int, height: int) -> list[float]:
    x1, y1, x2, y2 = box
    return [(x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width, (y2 - y1) / height]


def raw_lines(rec: RecordingExport, class_names: Sequence[str] = DEFAULT_CLASS_NAMES) -> list[dict[str, Any]]:
    """The labelling tool's lines of one recording: one per complete keyframe, in frame order."""
    lab = rec.labels
    furniture = []
    for i, z in enumerate(rec.zones or []):
        x1, y1, x2, y2 = z["box"]
        furniture.append({"bbox": [(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], "category": "furniture",
                          "subcategory": z["kind"], "attribute_obscured": "0%", "attribute_heat_residual": "no",
                          "object_id": FURNITURE_ID_BASE + i})
    lines = []
    for f in lab.complete_keyframes():
        touch = lab.touched.get(f)
        people = [{"bbox": _cxcywh(lab.boxes[f][t], rec.width, rec.height), "category": "person",
                   "subcategory": class_names[lab.label_at(t, f)],  # type: ignore[index]
                   "attribute_obscured": "0%", "attribute_heat_residual": None, "object_id": int(t)}
                  for t in sorted(lab.boxes[f])]
        lines.append({"data_id": rec.sensor_id, "mac_address": rec.mac_address,
                      "annotator_id": touch.annotator if touch and touch.annotator else rec.default_annotator,
                      "annotation_time": touch.time_ms if touch else None,
                      "data_time": int(rec.timestamps[f]), "annotations": people + furniture})
    return lines


def _empty_coco(desc: str) -> dict[str, Any]:
    return {"images": [], "annotations": [], "categories": [{"id": i, "name": c} for i, c in
                                                             enumerate(DEFAULT_CLASS_NAMES)],
            "info": {"description": f"Thermal Sensor Human Action Detection Dataset ({desc})", "version": "1.0",
                     "year": 2025}, "context_objects": []}


def export_labels(out_dir: str | Path, frames_dir: str | Path, recordings: Sequence[RecordingExport]) -> dict:
    """Writes the raw JSONL, the COCO files and ``rooms.json`` of ``recordings`` into ``out_dir``.

    Args:
        out_dir: the labels folder (``raw_annotations/``, ``annotations/``, ``rooms.json``).
        frames_dir: the recordings (``<sensor>.h5``), for the keyframes' frame matching.
        recordings: every recording of the session (one without complete keyframes
            writes no raw file; an earlier one of it is removed).

    Returns:
        ``{"keyframes": ..., "person_boxes": ..., "per_recording": {sensor: keyframes}}``.
    """
    out_dir = Path(out_dir)
    raw_dir = out_dir / "raw_annotations"
    ann_dir = out_dir / "annotations"
    per_rec = {}
    annotators: dict[str, str] = {}  # image id -> annotator
    for rec in recordings:
        lines = raw_lines(rec)
        per_rec[rec.sensor_id] = len(lines)
        annotators.update({f"{rec.sensor_id}_{line['data_time']}": line["annotator_id"] for line in lines})
        path = raw_dir / f"{rec.sensor_id}{RAW_SUFFIX}"
        if lines:
            write_atomic(path, "".join(json.dumps(line) + "\n" for line in lines))
        elif path.is_file():
            path.unlink()
    total = sum(per_rec.values())
    if total:
        with tempfile.TemporaryDirectory(dir=out_dir, prefix=".convert-") as tmp:
            convert_log = logging.getLogger("thermal_action.data.convert")
            level = convert_log.level
            convert_log.setLevel(logging.ERROR)  # its split note would repeat on every edit; the session logs it once
            try:
                summary = convert_annotations(raw_dir, frames_dir, tmp, overwrite=True)
            finally:
                convert_log.setLevel(level)
            for name in ("train", "val"):
                coco = json.loads((Path(tmp) / f"{name}.json").read_text(encoding="utf-8"))
                for image in coco["images"]:  # who labelled it (loaders keep unknown image keys as extras)
                    image["annotator_id"] = annotators[image["id"]]
                write_json_atomic(ann_dir / f"{name}.json", coco)
            write_atomic(ann_dir / "class_mapping.json", (Path(tmp) / "class_mapping.json").read_bytes())
        boxes = sum(summary["split"]["boxes"].values())
        split_note = summary["split"]["note"]
    else:
        write_json_atomic(ann_dir / "train.json", _empty_coco("Training"))
        write_json_atomic(ann_dir / "val.json", _empty_coco("Validation"))
        write_json_atomic(ann_dir / "class_mapping.json", {"classes": list(DEFAULT_CLASS_NAMES), "class_to_id": {
            c: i for i, c in enumerate(DEFAULT_CLASS_NAMES)}}, indent=2)
        boxes, split_note = 0, "no complete keyframe yet"
    rooms = {"sensors": {r.sensor_id: {"zones": [{"kind": z["kind"], **({"name": z["name"]} if z.get("name") else {}),
                                                  "box": z["box"]} for z in r.zones]}
                         for r in recordings if r.zones is not None}}
    write_json_atomic(out_dir / "rooms.json", rooms)
    return {"keyframes": total, "person_boxes": boxes, "per_recording": per_rec, "split": split_note}
