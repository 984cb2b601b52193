"""``thermal-action evaluate --events``: the fall events a deployment would have alerted.

Keyframe metrics score the model on annotated boxes; a care home gets something else: bare
frames, the built-in person detector and tracker, the model, and the alert rule. This runs
exactly that chain on annotated recordings and holds the alerts against the annotated fall
events (:mod:`thermal_action.evaluation.events`)::

    annotations ─► fall events (runs of fall keyframes of one person)
                                                               │
    frames ─► person detector + tracker ─► model ─► alert rule ─► alerts ─► match_events
                  (boxes="detector": the annotations' boxes are never used)      │
                                                                                 ▼
                             events found, delay to the alert, false alerts per sensor-hour

The room comes from ``rooms`` (a layout file) when given, else from the annotations'
furniture (``context_objects``, turned into a layout file the way ``thermal-action rooms
extract`` does), else none.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from thermal_action.alert_rule import AlertOverrides, AlertRule
from thermal_action.data.annotations import load_annotations
from thermal_action.data.hdf5 import read_timestamps
from thermal_action.data.room_files import extract_rooms
from thermal_action.evaluation.events import DEFAULT_SLACK_S, AlertSpan, LabelledBox, event_table, fall_events, \
    match_events
from thermal_action.inference.predictor import Predictor
from thermal_action.inference.recordings import predict_recordings
from thermal_action.structures import PREDICTION

logger = logging.getLogger(__name__)


def evaluate_events(
    checkpoint: str | Path | Predictor,
    data_root: str | Path,
    ann_file: str | Path,
    out_dir: str | Path,
    alert_rule: AlertRule | AlertOverrides | None = None,
    rooms: str | Path | None = None,
    slack_s: float = DEFAULT_SLACK_S,
    step: int = PREDICTION.step,
    frames_dir: str = "frames",
    **predict_kwargs: Any,
) -> dict[str, Any]:
    """Fall events of the annotated recordings found by the whole deployed chain.

    Args:
        checkpoint: a ``.ckpt`` / ``.onnx`` or a ready :class:`Predictor`.
        data_root: the dataset folder (``frames/<sensor>.h5``).
        ann_file: annotations whose fall keyframes define the events (their boxes are not used
            for prediction).
        out_dir: ``events.json``, ``events.md`` and the predictions (``predictions/``) go here.
        alert_rule: as :func:`~thermal_action.inference.recordings.predict_recordings`.
        rooms: a layout file; None: the annotations' furniture made into one
            (``out_dir/rooms.json``, as ``thermal-action rooms extract`` makes it), or no room
            when they have none.
        slack_s: see :mod:`thermal_action.evaluation.events`.
        step: frames between predictions.
        predict_kwargs: passed on to ``predict_recordings`` (``rooms``, ``backend``...).

    Returns:
        :func:`~thermal_action.evaluation.events.match_events`' report plus ``alert_rule``,
        ``recordings`` and ``table`` (Markdown).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ann = load_annotations(ann_file)
    sensors = sorted({kf.sensor_id for kf in ann.keyframes})
    if not sensors:
        raise ValueError(f"{ann_file}: no keyframes, so no recordings to evaluate")
    frames = Path(data_root) / frames_dir
    recordings = [frames / f"{s}.h5" for s in sensors]
    room_source = "rooms file" if rooms is not None else "none"
    if rooms is None and any(kf.layout.known and kf.layout.zones for kf in ann.keyframes):
        extract_rooms([ann_file], out / "rooms.json")
        rooms, room_source = out / "rooms.json", "the annotations' furniture"
    run = predict_recordings(checkpoint, recordings, out / "predictions", step=step, boxes="detector",
                             alert_rule=alert_rule, rooms=rooms, **predict_kwargs)
    rule = run.alert_rule
    if rule.fall_class not in ann.class_names:
        raise ValueError(f"{ann_file}: the alert rule's fall class {rule.fall_class!r} is not one of its classes")
    fall = ann.class_names.index(rule.fall_class)
    boxes = [LabelledBox(kf.sensor_id, int(t), int(kf.timestamp), int(lab) == fall)
             for kf in ann.keyframes for lab, t in zip(kf.labels, kf.track_ids)]
    events = fall_events(boxes)
    alerts = [AlertSpan(a.sensor_id, a.fired_timestamp, a.start_timestamp, a.end_timestamp, a.track_id)
              for a in run.alerts]
    seconds = {}
    for sensor, path in zip(sensors, recordings):
        ts = read_timestamps(path)
        seconds[sensor] = float(ts[-1] - ts[0]) / 1000.0 if len(ts) > 1 else 0.0
    report = match_events(events, alerts, seconds, slack_s=slack_s)
    report["alert_rule"] = rule.to_dict()
    report["recordings"] = [str(p) for p in recordings]
    report["box_source"] = "detector"
    report["rooms"] = {"source": room_source, "file": None if rooms is None else str(rooms)}
    report["table"] = event_table(report)
    (out / "events.json").write_text(json.dumps(report, indent=1))
    (out / "events.md").write_text(report["table"] + "\n")
    pooled = report["pooled"]
    logger.info("fall events: %d of %d found, %d false alerts in %.2f sensor-hours", pooled["found"],
                pooled["events"], pooled["false_alerts"], pooled["sensor_hours"])
    return report
