"""``thermal-action predict``: every person, every ``step`` frames, every class.

::

    recording.h5 ──read_recording──► frames (N, H, W) °C, repaired
                                         │
    person boxes (boxes.py), first of:   │
      1. annotations (keyframes only)    │
      2. a detections file  ─(tracker)─┐ │
      3. built-in detector + tracker ──┴─┼─► keyframes 0, step, 2*step, ... with boxes
                                         ▼
    room of each keyframe, first of:     │
      1. the annotated keyframe's own furniture (annotations' context_objects)
      2. the rooms file (--rooms: sensor id or MAC -> layouts valid from a time)
      3. none (predictions still come, marked room_source "none")
                                         ▼
                  ClipBuilder (the training preprocessing) ─► clips + zone masks, batched
                                         ▼
                  backend (PyTorch or ONNX Runtime) ─► logits ─► softmax/sigmoid
                                         ▼
          predictions.json / .csv  +  fall alerts (alerts.json / .csv)  +  run.json

:func:`predict_recording` scores one recording, :func:`predict_recordings` is the
``thermal-action predict`` command (files in, files out).
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from thermal_action.alert_rule import AlertOverrides, AlertRule, resolve_alert_rule
from thermal_action.data.hdf5 import Recording, find_recordings, read_recording
from thermal_action.data.rooms import BED_KINDS, RoomLayout, RoomMap, box_share_on, read_rooms, resolve_layout
from thermal_action.errors import DatasetError
from thermal_action.evaluation.detections import read_detections_file
from thermal_action.inference.alerts import AlertEvent, find_fall_alerts, write_alerts
from thermal_action.inference.boxes import PersonBoxes, layouts_from_annotations, resolve_boxes
from thermal_action.inference.outputs import Prediction, write_predictions_csv
from thermal_action.inference.predictor import ClipRequest, Predictor
from thermal_action.progress import Progress
from thermal_action.structures import PREDICTION, boxes_xyxy_to_cxcywh_norm

logger = logging.getLogger(__name__)


def predict_recording(
    predictor: Predictor,
    recording: Recording,
    boxes: PersonBoxes,
    step: int = PREDICTION.step,
    rooms: RoomMap | None = None,
    own_layouts: Mapping[int, RoomLayout] | None = None,
) -> list[Prediction]:
    """Scores every person of one recording at the keyframes ``boxes`` gives.

    Args:
        predictor: the model.
        recording: from :func:`~thermal_action.data.hdf5.read_recording`.
        boxes: the people (annotations, detections or the built-in detector).
        step: frames between predictions on the grid (ignored for annotations).
        rooms: the rooms file, for keyframes without a layout of their own (by the
            recording's sensor id or MAC address and the keyframe's time).
        own_layouts: frame index -> the annotated keyframe's own room
            (:func:`~thermal_action.inference.boxes.layouts_from_annotations`).

    Returns:
        Predictions ordered by frame, then track id; each says where its room came from
        (``room_source``; "none" too when the model reads no room) and how much of the box
        lies on a bed or couch (``bed_share``, for the alert rule; None without a room).
    """
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step}")
    own_layouts = own_layouts or {}
    mac = recording.attrs.get("mac_address")
    keyframes = [(f, fb) for f, fb in boxes.keyframes(recording.num_frames, step) if len(fb)]
    layouts = [resolve_layout(own_layouts.get(f), rooms, recording.sensor_id, None if mac is None else str(mac),
                              int(recording.timestamps[f])) for f, _ in keyframes]
    requests = [
        ClipRequest(recording.frames, f, fb.boxes_xyxy, clip_key=(recording.sensor_id, f), layout=layout)
        for (f, fb), layout in zip(keyframes, layouts)
    ]
    if predictor.backend.use_memory:
        # An interaction model reads neighbouring keyframes from its feature bank:
        # fill it in a first pass (as evaluation does), then predict.
        predictor.predict_clips(requests)
    all_scores = predictor.predict_clips(requests)
    w, h = recording.width, recording.height
    out = []
    for (f, fb), scores, layout in zip(keyframes, all_scores, layouts):
        norm = boxes_xyxy_to_cxcywh_norm(fb.boxes_xyxy, w, h)
        on_bed = box_share_on(fb.boxes_xyxy, layout, BED_KINDS, h, w)  # None: room unknown
        order = np.argsort(fb.track_ids, kind="stable")
        for i in order:
            out.append(Prediction(
                sensor_id=recording.sensor_id, frame_idx=int(f), timestamp=int(recording.timestamps[f]),
                track_id=int(fb.track_ids[i]), box_xyxy=fb.boxes_xyxy[i].astype(np.float64),
                box_cxcywh_norm=norm[i], scores=scores[i], class_names=predictor.class_names,
                box_score=float(fb.scores[i]), box_source=boxes.source, recording=recording.path.name,
                room_source=predictor.room_source(layout), bed_share=None if on_bed is None else float(on_bed[i]),
            ))
    return out



@dataclass
class PredictRun:
    """What :func:`predict_recordings` wrote and found.

    Attributes:
        out_dir: the output directory.
        predictions: every prediction.
        alerts: the fall alerts (each one's final ``AlertEvent``).
        alert_rule: the rule they were found with.
        box_sources: recording -> box source used.
        files: name -> path of every file written.
        seconds: wall-clock time per stage.
    """

    out_dir: Path
    predictions: list[Prediction]
    alerts: list[AlertEvent]
    alert_rule: AlertRule
    box_sources: dict[str, str]
    files: dict[str, Path]
    seconds: dict[str, float]

    @property
    def room_sources(self) -> dict[str, int]:
        """Predictions per room layout source (``"annotations"``, ``"rooms file"``, ``"none"``)."""
        return dict(Counter(p.room_source for p in self.predictions))

    def summary(self) -> dict[str, Any]:
        return {
            "out_dir": str(self.out_dir),
            "predictions": len(self.predictions),
            "predictions_without_room": self.room_sources.get("none", 0),
            "room_sources": self.room_sources,
            "fall_alerts": len(self.alerts),
            "alert_rule": self.alert_rule.to_dict(),
            "box_sources": self.box_sources,
            "files": {k: str(v) for k, v in self.files.items()},
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
        }


def predict_recordings(
    checkpoint: str | Path | Predictor,
    recordings: Sequence[str | Path],
    out_dir: str | Path,
    step: int = PREDICTION.step,
    boxes: str = "auto",
    detections: str | Path | None = None,
    annotations: str | Path | None = None,
    backend: str = "torch",
    device: str = "cpu",
    batch_size: int | None = None,
    alert_rule: AlertRule | AlertOverrides | None = None,
    fps: float = PREDICTION.fps,
    allow_frame_size: bool = False,
    rooms: str | Path | RoomMap | None = None,
) -> PredictRun:
    """``thermal-action predict``: scores every person of the recordings, writes the files.

    Args:
        checkpoint: a ``.ckpt``, an exported ``.onnx``, or a ready :class:`Predictor`.
        recordings: ``.h5`` files (or directories of them).
        out_dir: where ``predictions.json``, ``predictions.csv``, ``alerts.json``,
            ``alerts.csv`` and ``run.json`` go.
        step: frames between predictions (6 is about once a second at ~6 fps).
        boxes: ``"auto"``, ``"annotations"``, ``"detections"`` or ``"detector"``.
        detections: a detections file or YOLO directory
            (:mod:`thermal_action.evaluation.detections`).
        annotations: an annotations JSON; its keyframes (and tracks) are used for
            the recordings it covers.
        backend: ``"torch"`` or ``"onnx"`` (a ``.ckpt`` is exported to
            ``out_dir/model.onnx`` first).
        device: PyTorch device.
        batch_size: clips per forward pass; default 4 on CPU (larger batches are no
            faster per clip there: 58 / 60 / 99 ms per clip at 1 / 4 / 16 for the CPU
            default model, one thread) and 32 on a GPU.
        alert_rule: the fall alert rule: None uses the model's own (its threshold calibrated
            by ``train``), :class:`~thermal_action.alert_rule.AlertOverrides` change it
            (``predict --fall-threshold`` ...), an :class:`~thermal_action.alert_rule.AlertRule`
            replaces it; its fall class must be one of the model's.
        fps: frames per second of the alerts' clock (:mod:`thermal_action.inference.alerts`).
        allow_frame_size: predict on recordings whose frame size differs from the one the
            model was trained on (refused otherwise, naming the file). Dropped packets of
            such frames are only filled, never realigned (the realignment knows only the
            40x60 sensor's packets).
        rooms: a rooms file (``rooms.json``, :mod:`thermal_action.data.rooms`) or a read
            :class:`~thermal_action.data.rooms.RoomMap`: the room of keyframes whose
            annotations (given with ``annotations``) list no furniture; without either a
            keyframe is predicted without a room (``room_source`` "none", counted in the
            summary's ``predictions_without_room``).

    Returns:
        A :class:`PredictRun`.

    Raises:
        DatasetError: an unusable recording, or one of another frame size than the
            model's without ``allow_frame_size``.
        RoomsError: an unusable rooms file (naming it, the sensor and the zone).
    """
    from thermal_action.evaluation.io import write_predictions

    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = find_recordings(recordings)
    if not paths:
        raise ValueError("no recordings given")
    if isinstance(checkpoint, Predictor):
        predictor = checkpoint
    else:
        if batch_size is None:
            batch_size = 4 if str(device) == "cpu" else 32
        predictor = Predictor.from_checkpoint(checkpoint, device=device, backend=backend,
                                              onnx_path=out_dir / "model.onnx", max_clips_per_batch=batch_size)
    rule = resolve_alert_rule(predictor.alert_rule, alert_rule)
    fall_index = predictor.fall_index(rule.fall_class)  # fail before any work when it is missing
    ann = None
    if annotations is not None:
        from thermal_action.data.annotations import load_annotations

        ann = load_annotations(annotations, class_names=list(predictor.class_names))
    dets = read_detections_file(detections) if detections is not None else None
    room_map = read_rooms(rooms) if isinstance(rooms, (str, Path)) else rooms
    bank = getattr(getattr(predictor.backend, "model", None), "feature_bank", None)
    if bank is not None:
        bank.clear()
    seconds = {"load": time.perf_counter() - t0, "boxes": 0.0, "model": 0.0}
    predictions: list[Prediction] = []
    sources: dict[str, str] = {}
    sensors: list[tuple[str, Any]] = []
    with Progress(len(paths), "predict", "recording", logger) as progress:
        for path in paths:
            # Repaired to the model's data.valid_range; realigns dropped packets of 40x60 frames only.
            rec = read_recording(path, predictor.valid_range)
            trained = predictor.frame_size
            if trained is not None and (rec.height, rec.width) != trained:
                size = (f"frames are {rec.height}x{rec.width} but the model was trained on "
                        f"{trained[0]}x{trained[1]} frames")
                if not allow_frame_size:
                    raise DatasetError(path, f"{size}; pass --allow-frame-size to predict on them anyway",
                                       record="frames")
                logger.warning("%s: %s (--allow-frame-size); dropped packets filled, not realigned", path, size)
            dead = rec.dead_sensor()
            if dead:
                logger.warning("%s: %s; its predictions (if any) say nothing about the room", path, dead)
            t = time.perf_counter()
            person_boxes = resolve_boxes(rec, boxes, ann, dets, single_recording=len(paths) == 1)
            seconds["boxes"] += time.perf_counter() - t
            own = layouts_from_annotations(ann, rec) if ann is not None else {}
            t = time.perf_counter()
            preds = predict_recording(predictor, rec, person_boxes, step=step, rooms=room_map, own_layouts=own)
            seconds["model"] += time.perf_counter() - t
            sources[path.name] = person_boxes.source
            progress.update(done=f"{path}: {len(preds)} predictions from {person_boxes.source} boxes "
                                 f"({rec.repair.repaired_frames} of {rec.num_frames} frames repaired); rooms: "
                                 f"{dict(Counter(p.room_source for p in preds))}")
            predictions.extend(preds)
            sensors.append((rec.sensor_id, rec.attrs.get("mac_address")))
    if room_map is not None:
        unused = room_map.unused_keys([s for s, _ in sensors], [None if m is None else str(m) for _, m in sensors])
        # A file naming more sensors than this run predicts is normal; one naming none of them is not.
        named = [s for s, m in sensors if room_map.layout_for(s, None if m is None else str(m)).known]
        if unused and not named:
            logger.warning("the rooms file names none of the recordings' sensors (ids or MAC addresses), only %s",
                           unused)
        elif unused:
            logger.info("rooms file: no recording of sensor(s) %s in this run", unused)
    alerts = find_fall_alerts(predictions, fall_index, rule, fps=fps)
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
    run = PredictRun(out_dir, predictions, alerts, rule, sources, files, seconds)
    meta = {
        "checkpoint": str(checkpoint) if not isinstance(checkpoint, Predictor) else "",
        "backend": predictor.backend.name,
        "class_names": list(predictor.class_names),
        "score_activation": predictor.score_activation,
        "step": step,
        "window_frames_before": predictor.frames_before,
        "window_frames_after": predictor.frames_after,
        "fps": fps,
        "recordings": [str(p) for p in paths],
        "rooms": str(room_map.path) if room_map is not None and room_map.path is not None else None,
        "model_reads_room": predictor.reads_room,
        **run.summary(),
    }
    files["run_json"].write_text(json.dumps(meta, indent=2))
    return run
