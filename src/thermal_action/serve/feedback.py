"""Operators' feedback on alerts, turned into training data in the project's own dataset format
(``docs/data-format.md``)::

    thermal-action feedback export DATA_DIR --out DATASET_DIR

    DATASET_DIR/frames/<sensor>_<alert_id>.h5     the clip of each alert with a usable answer
    DATASET_DIR/frames/sensor_info.json           per recording: frames, times, sensor and alert
    DATASET_DIR/annotations/train.json            keyframes about once a second, the fallen
                                                  person's box labelled with the answer
    DATASET_DIR/annotations/class_mapping.json    the 14 classes

Which label (the newest answer on each alert counts; :mod:`~thermal_action.serve.operators`):
``real_fall`` -> "lying down-lying with risk"; ``false_alarm`` with reason ``in_bed`` ->
"lying down-lying on the bed/couch", ``sitting`` -> "sitting", ``kneeling`` -> "lower
position-kneeling"; ``other`` and ``not_sure`` are left out (counted in the summary): no class
says "not a fall, something else".

Which keyframes: from the alert's start (the person's first high fall score: before it they
were most likely upright, a posture nobody confirmed) to the clip's end, or the alert's end
when that comes first; one every :data:`KEYFRAME_EVERY_MS` (the first frame at or after each
second from the start on which the fallen person has a tracked box). Only that person is labelled; the other
people in the clip are nobody's answer. Frames whose timestamp repeats the previous one are
left out of the recording (the format's timestamps strictly increase). Frames are written as
the sensor sent them (float32 °C): the reader repairs dropped packets as for any recording.

No names leave the service: the residents and the staff who answered are not exported.

Use it beside a dataset, e.g. ``data.extra_train_root=DATASET_DIR`` (mixed into training), or as
a dataset of its own (``data.root=DATASET_DIR data.val_ann=annotations/train.json``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from thermal_action.serve.clips import CLIPS_DIR, Clip
from thermal_action.serve.store import DB_FILE, Store
from thermal_action.structures import DEFAULT_CLASS_NAMES, boxes_xyxy_to_cxcywh_norm

logger = logging.getLogger(__name__)

#: (answer, reason) -> the class the fallen person's box gets; pairs not here are left out.
FEEDBACK_LABELS = {
    ("real_fall", ""): "lying down-lying with risk",
    ("false_alarm", "in_bed"): "lying down-lying on the bed/couch",
    ("false_alarm", "sitting"): "sitting",
    ("false_alarm", "kneeling"): "lower position-kneeling",
}
#: One keyframe per this many ms of the labelled span.
KEYFRAME_EVERY_MS = 1000


@dataclass
class ExportSummary:
    """What :func:`export_feedback` wrote.

    Attributes:
        out_dir: the dataset directory.
        recordings: one per exported clip: ``recording, sensor_id, alert_id, answer, reason, label,
            frames, keyframes``.
        keyframes, boxes: annotated keyframes and boxes (one box per keyframe).
        class_counts: boxes per class.
        left_out: why alerts with feedback were not exported -> how many.
    """

    out_dir: str
    recordings: list[dict[str, Any]] = field(default_factory=list)
    keyframes: int = 0
    boxes: int = 0
    class_counts: dict[str, int] = field(default_factory=dict)
    left_out: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _keyframes(clip: Clip, keep: np.ndarray, start_ms: int, end_ms: int) -> list[tuple[int, np.ndarray]]:
    """``(index in the kept frames, fallen person's box_xyxy)`` about once a second in [start, end]."""
    kept = np.flatnonzero(keep)
    ts = clip.timestamps[kept]
    out: list[tuple[int, np.ndarray]] = []
    target = start_ms
    for j, i in enumerate(kept):
        t = int(ts[j])
        if t < target:
            continue
        if t > end_ms:
            break
        boxes, ids = clip.boxes(int(i))
        mine = boxes[ids == clip.track_id]
        if len(mine):
            out.append((j, mine[0]))
            while target <= t:  # a fixed grid of seconds from the start: frame bursts do not drift it
                target += KEYFRAME_EVERY_MS
    return out


def export_feedback(data_dir: str | Path, out_dir: str | Path, overwrite: bool = False) -> ExportSummary:
    """Writes the clips of alerts with feedback as a dataset (module docstring).

    Args:
        data_dir: a service's data directory (``serve.db``, ``clips/``); the service may be running.
        out_dir: the dataset directory to write (created).
        overwrite: replace an earlier export in ``out_dir``.

    Returns:
        The :class:`ExportSummary` (also what was left out, and why).

    Raises:
        FileNotFoundError: ``data_dir`` holds no service database.
        FileExistsError: ``out_dir`` already holds an export and ``overwrite`` is False.
    """
    from thermal_action.data.synth.write import class_mapping, write_h5

    data_dir, out = Path(data_dir), Path(out_dir)
    if not (data_dir / DB_FILE).is_file():
        raise FileNotFoundError(f"{data_dir}: no {DB_FILE} here; give the data_dir of a thermal-action serve")
    train_json = out / "annotations" / "train.json"
    if train_json.exists() and not overwrite:
        raise FileExistsError(f"{out}: already holds an export ({train_json}); choose another directory or overwrite")
    (out / "frames").mkdir(parents=True, exist_ok=True)
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    summary = ExportSummary(str(out))
    store = Store(data_dir / DB_FILE)
    try:
        alerts = store.alerts_with_feedback()
    finally:
        store.close()

    def leave_out(why: str) -> None:
        summary.left_out[why] = summary.left_out.get(why, 0) + 1

    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    sensor_info: dict[str, dict[str, Any]] = {}
    for alert in alerts:
        fb = alert["feedback"]
        label = FEEDBACK_LABELS.get((fb["answer"], fb["reason"] or ""))
        if label is None:
            leave_out(fb["answer"] + (f" ({fb['reason']})" if fb["reason"] else ""))
            continue
        try:
            clip = Clip.load(data_dir / CLIPS_DIR / alert["clip"])
        except (OSError, ValueError, KeyError) as e:
            logger.warning("alert %d: clip %s not readable: %s", alert["id"], alert["clip"], e)
            leave_out("clip file missing or unreadable")
            continue
        keep = np.ones(len(clip), bool)
        keep[1:] = np.diff(clip.timestamps) > 0
        end = int(clip.timestamps[-1]) if len(clip) else 0
        if alert["ended_ms"] is not None:
            end = min(end, int(alert["ended_ms"]))
        keys = _keyframes(clip, keep, int(alert["started_ms"]), end) if len(clip) else []
        if not keys:
            leave_out("no box of the fallen person in the clip")
            continue
        recording = f"{alert['sensor_id']}_{alert['id']}"
        frames = clip.frames[keep].astype(np.float32)
        ts = clip.timestamps[keep].astype(np.int64)
        h, w = frames.shape[1:]
        write_h5(out / "frames" / f"{recording}.h5", recording, "", frames, ts, int(clip.fired_ms))
        category = DEFAULT_CLASS_NAMES.index(label)
        for j, box in keys:
            image_id = f"{recording}_{int(ts[j])}"
            images.append({"id": image_id, "sensor_id": recording, "mac_address": "", "timestamp": int(ts[j]),
                           "width": int(w), "height": int(h), "frame_idx": int(j)})
            box = np.clip(np.asarray(box, np.float64), 0, [w, h, w, h])
            annotations.append({"id": len(annotations), "image_id": image_id,
                                "bbox": [round(float(v), 6) for v in boxes_xyxy_to_cxcywh_norm(box[None], w, h)[0]],
                                "category_id": category, "category_name": label, "object_id": int(clip.track_id),
                                "attribute_obscured": "0%"})
        summary.class_counts[label] = summary.class_counts.get(label, 0) + len(keys)
        sensor_info[recording] = {"hdf5_path": f"{out.name}/frames/{recording}.h5", "mac_address": "",
                                  "total_frames": int(len(ts)), "corrupted_frames": 0,
                                  "annotation_count": len(keys), "min_timestamp": int(ts.min()),
                                  "max_timestamp": int(ts.max()), "sensor_id": alert["sensor_id"],
                                  "alert_id": alert["id"]}
        summary.recordings.append({"recording": recording, "sensor_id": alert["sensor_id"], "alert_id": alert["id"],
                                   "answer": fb["answer"], "reason": fb["reason"], "label": label,
                                   "frames": int(len(ts)), "keyframes": len(keys)})
    summary.keyframes = summary.boxes = len(annotations)
    categories = [{"id": i, "name": c} for i, c in enumerate(DEFAULT_CLASS_NAMES)]
    year = datetime.now(timezone.utc).year
    train = {"images": images, "annotations": annotations, "categories": categories,
             "info": {"description": f"thermal-action serve: operators' feedback on alerts ({data_dir.name})",
                      "version": "1.0", "year": year}}
    train_json.write_text(json.dumps(train, indent=1), encoding="utf-8")
    (out / "annotations" / "class_mapping.json").write_text(json.dumps(class_mapping(), indent=2), encoding="utf-8")
    (out / "frames" / "sensor_info.json").write_text(json.dumps(sensor_info, indent=2), encoding="utf-8")
    logger.info("feedback export: %d clips, %d keyframes to %s; left out: %s", len(summary.recordings),
                summary.keyframes, out, summary.left_out or "none")
    return summary
