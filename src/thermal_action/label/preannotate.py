"""Pre-annotation: the keyframes, people and tracks the labeller starts from, and the model's
scores when a checkpoint is given.

::

    recording.h5 ──read_recording──► frames (N, H, W) °C, repaired
          │
          ├─ built-in person detector + tracker (inference.boxes.boxes_from_detector)
          │        └─► boxes and track ids on keyframes 0, every, 2*every, ...
          │
          └─ checkpoint given: predict_recording at those keyframes and boxes
                   └─► (K,) action scores per person and keyframe (Prediction, as ``predict``)

The pre-annotation of a recording is computed once and kept in the labels folder
(``cache/<sensor>.boxes.json``): the labeller's edits name its track ids, so it must never
change under them. Scores are kept per checkpoint (``cache/<sensor>.scores.json``).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from thermal_action.data.hdf5 import Recording
from thermal_action.errors import DatasetError
from thermal_action.inference.outputs import Prediction
from thermal_action.label.journal import write_json_atomic
from thermal_action.structures import FrameBoxes, boxes_xyxy_to_cxcywh_norm

logger = logging.getLogger(__name__)

#: Frames between keyframes by default: about one a second at ~6 fps.
DEFAULT_EVERY = 6


@dataclass
class PreAnnotation:
    """The starting point of one recording.

    Attributes:
        keyframes: frame indices ``0, every, 2 * every, ...``.
        boxes: keyframe -> track id -> ``[x1, y1, x2, y2]`` pixels (the detector's).
        every: frames between keyframes.
    """

    keyframes: list[int]
    boxes: dict[int, dict[int, list[float]]]
    every: int

    def to_dict(self) -> dict[str, Any]:
        return {"every": self.every, "keyframes": self.keyframes,
                "boxes": {str(f): {str(t): b for t, b in per.items()} for f, per in self.boxes.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreAnnotation:
        return cls([int(f) for f in data["keyframes"]],
                   {int(f): {int(t): [float(v) for v in b] for t, b in per.items()}
                    for f, per in data["boxes"].items()}, int(data["every"]))


def detect_people(recording: Recording, every: int = DEFAULT_EVERY) -> PreAnnotation:
    """Keyframes every ``every`` frames with the built-in detector's tracked people."""
    from thermal_action.inference.boxes import boxes_from_detector

    if every < 1:
        raise ValueError(f"every (frames between keyframes) must be >= 1, got {every}")
    found = boxes_from_detector(recording)
    keyframes = list(range(0, recording.num_frames, every))
    boxes: dict[int, dict[int, list[float]]] = {f: {} for f in keyframes}
    for f, fb in found.keyframes(recording.num_frames, every):
        boxes[f] = {int(t): [round(float(v), 3) for v in b] for t, b in zip(fb.track_ids, fb.boxes_xyxy)}
    return PreAnnotation(keyframes, boxes, every)


def load_or_detect(recording: Recording, cache: Path, every: int) -> PreAnnotation:
    """The recording's pre-annotation from ``cache``, else detected and written there.

    Raises:
        DatasetError: the cache was made with another keyframe spacing (the labels made on
            it name those keyframes).
    """
    if cache.is_file():
        import json

        pre = PreAnnotation.from_dict(json.loads(cache.read_text(encoding="utf-8")))
        if pre.every != every:
            raise DatasetError(cache, f"these labels were made on keyframes every {pre.every} frames, not {every}; "
                                      f"label with --every {pre.every}, or choose another --out folder")
        return pre
    pre = detect_people(recording, every)
    write_json_atomic(cache, pre.to_dict(), indent=None)
    return pre


def checkpoint_key(checkpoint: str | Path) -> str:
    """Names a checkpoint's scores: its path, size and modification time."""
    p = Path(checkpoint).resolve()
    st = p.stat()
    return hashlib.sha1(f"{p}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]


def score_people(predictor: Any, recording: Recording, pre: PreAnnotation) -> list[Prediction]:
    """The model's action scores for every pre-annotated person, as ``predict`` makes them
    (:func:`~thermal_action.inference.recordings.predict_recording` at these keyframes)."""
    from thermal_action.inference.boxes import PersonBoxes
    from thermal_action.inference.recordings import predict_recording

    frames = {}
    for f, per in pre.boxes.items():
        if per:
            tracks = sorted(per)
            frames[f] = FrameBoxes(np.asarray([per[t] for t in tracks], np.float32), np.ones(len(tracks), np.float32),
                                   np.asarray(tracks, np.int64))
    return predict_recording(predictor, recording, PersonBoxes("detector", frames, keyframes_only=True))


def predictions_to_json(preds: list[Prediction]) -> list[dict[str, Any]]:
    return [{"frame": p.frame_idx, "track": p.track_id, "timestamp": p.timestamp,
             "box": [float(v) for v in p.box_xyxy], "scores": [round(float(s), 5) for s in p.scores]} for p in preds]


def predictions_from_json(rows: list[dict[str, Any]], recording: Recording, class_names: list[str]) -> list[Prediction]:
    out = []
    for r in rows:
        box = np.asarray(r["box"], np.float64)
        out.append(Prediction(recording.sensor_id, int(r["frame"]), int(r["timestamp"]), int(r["track"]), box,
                              boxes_xyxy_to_cxcywh_norm(box[None], recording.width, recording.height)[0],
                              np.asarray(r["scores"], np.float32), class_names, box_source="detector",
                              recording=recording.path.name))
    return out


def load_or_score(predictor_factory: Any, checkpoint: str | Path, recording: Recording, pre: PreAnnotation,
                  cache_dir: Path) -> list[Prediction]:
    """The scores of ``checkpoint`` for the recording's people, from the cache or computed
    (``predictor_factory()`` gives the :class:`~thermal_action.inference.predictor.Predictor`)."""
    import json

    cache = cache_dir / f"{recording.sensor_id}.scores.{checkpoint_key(checkpoint)}.json"
    if cache.is_file():
        data = json.loads(cache.read_text(encoding="utf-8"))
        return predictions_from_json(data["predictions"], recording, list(data["class_names"]))
    predictor = predictor_factory()
    preds = score_people(predictor, recording, pre)
    write_json_atomic(cache, {"checkpoint": str(checkpoint), "class_names": list(predictor.class_names),
                              "predictions": predictions_to_json(preds)}, indent=None)
    return preds
