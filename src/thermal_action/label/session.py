"""A labelling session over a folder of recordings: pre-annotation, edits, saving, export.

::

    DATA_DIR (a dataset folder with frames/*.h5, or a folder of bare *.h5)
        │  every recording, in time order
        ▼
    pre-annotation (cached) ──► base labels ──► + journal's edits ──► labels shown
                                                   ▲                     │
    page: POST an edit ──► checked on a copy ──► appended + fsynced      ▼
                                                 then acknowledged   export (atomic):
                                                                     OUT/raw_annotations/, OUT/annotations/,
                                                                     OUT/rooms.json

``OUT`` (``DATA_DIR/labels`` by default) is a dataset folder of its own: ``OUT/frames`` links
to the recordings, so ``thermal-action validate OUT`` and ``train data.root=OUT`` read it as it is.

Furniture zones are drawn once per recording; a recording without zones of its own shows
(and exports) those of the latest earlier recording of the same sensor (same MAC address,
else the same sensor id), or of ``DATA_DIR/rooms.json``, until the labeller changes them.
"""

from __future__ import annotations

import copy
import getpass
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from thermal_action.data.hdf5 import Recording, read_recording
from thermal_action.data.rooms import RoomMap, read_rooms
from thermal_action.errors import DatasetError
from thermal_action.inference.outputs import Prediction
from thermal_action.label.export import RecordingExport, export_labels
from thermal_action.label.journal import Journal
from thermal_action.label.model import (
    OP_KINDS,
    LabelError,
    Op,
    RecordingLabels,
    Touch,
    base_labels,
    replay,
)
from thermal_action.label.preannotate import (
    DEFAULT_EVERY,
    load_or_detect,
    load_or_score,
)
from thermal_action.structures import DEFAULT_CLASS_NAMES

logger = logging.getLogger(__name__)

JOURNAL = "journal.jsonl"


def default_annotator() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "annotator"


def frames_dir_of(data_dir: Path) -> Path:
    """``DATA_DIR/frames`` for a dataset folder, else ``DATA_DIR`` itself (bare recordings)."""
    if (data_dir / "frames").is_dir():
        return data_dir / "frames"
    if any(data_dir.glob("*.h5")):
        return data_dir
    raise DatasetError(data_dir, "no recordings here: expected frames/<sensor>.h5 (a dataset folder) or *.h5 files")


@dataclass
class RecordingSession:
    """One recording's part of the session."""

    sensor_id: str
    path: Path
    recording: Recording
    base: RecordingLabels
    ops: list[Op] = field(default_factory=list)  # edits in effect, oldest first (undo pops)
    state: RecordingLabels | None = None
    predictions: list[Prediction] = field(default_factory=list)

    @property
    def mac_address(self) -> str | None:
        mac = self.recording.attrs.get("mac_address")
        return None if mac is None else str(mac)

    @property
    def sensor_key(self) -> str:
        """What makes two recordings the same sensor: the MAC address, else the sensor id."""
        return (self.mac_address or self.sensor_id).lower()

    @property
    def start_ms(self) -> int:
        return int(self.recording.timestamps[0])


class LabelSession:
    """Everything the labelling page reads and changes; thread-safe.

    Args:
        data_dir: a dataset folder (``frames/*.h5``) or a folder of ``*.h5`` recordings.
        out_dir: the labels folder (default ``data_dir/labels``).
        checkpoint: a ``.ckpt`` or ``.onnx``: action scores for every pre-annotated person.
        every: frames between keyframes.
        annotator: the name on edits that do not carry one.
        predictor_factory: makes the predictor (default: ``Predictor.from_checkpoint``); tests.
    """

    def __init__(self, data_dir: str | Path, out_dir: str | Path | None = None, checkpoint: str | Path | None = None,
                 every: int = DEFAULT_EVERY, annotator: str | None = None,
                 predictor_factory: Callable[[], Any] | None = None):
        self.data_dir = Path(data_dir)
        if not self.data_dir.is_dir():
            raise DatasetError(self.data_dir, "not a folder")
        self.frames_dir = frames_dir_of(self.data_dir)
        self.out_dir = Path(out_dir) if out_dir is not None else self.data_dir / "labels"
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._link_frames()
        self.checkpoint = None if checkpoint is None else Path(checkpoint)
        self.every = every
        self.annotator = annotator or default_annotator()
        self.class_names = list(DEFAULT_CLASS_NAMES)
        self.lock = threading.RLock()
        self.journal = Journal(self.out_dir / JOURNAL)
        self.seen_ids: set[str] = set()
        self.rooms: RoomMap | None = read_rooms(self.data_dir / "rooms.json") \
            if (self.data_dir / "rooms.json").is_file() else None
        self.recordings: dict[str, RecordingSession] = {}
        self._load(predictor_factory)
        self._replay_journal()
        self.last_export = self.export()
        logger.info("labels in %s: %d recordings, %d complete keyframes; split: %s", self.out_dir,
                    len(self.recordings), self.last_export["keyframes"], self.last_export["split"])

    # -- start

    def _link_frames(self) -> None:
        link = self.out_dir / "frames"
        target = self.frames_dir.resolve()
        if link.exists() or link.is_symlink():
            if link.resolve() != target:
                raise DatasetError(link, f"exists and is not the recordings folder {target}; choose another --out")
            return
        os.symlink(os.path.relpath(target, self.out_dir.resolve()), link, target_is_directory=True)

    def _load(self, predictor_factory: Callable[[], Any] | None) -> None:
        paths = sorted(self.frames_dir.glob("*.h5"))
        if not paths:
            raise DatasetError(self.frames_dir, "no .h5 recordings in this folder")
        predictor: list[Any] = []

        def factory() -> Any:  # the model is loaded once, and only when some scores are not cached
            if not predictor:
                if predictor_factory is not None:
                    predictor.append(predictor_factory())
                else:
                    from thermal_action.inference.predictor import Predictor

                    predictor.append(Predictor.from_checkpoint(self.checkpoint))
            return predictor[0]

        sessions = []
        for path in paths:
            rec = read_recording(path)
            pre = load_or_detect(rec, self.out_dir / "cache" / f"{path.stem}.boxes.json", self.every)
            base = base_labels(pre.keyframes, rec.width, rec.height, len(self.class_names), pre.boxes)
            s = RecordingSession(path.stem, path, rec, base, state=copy.deepcopy(base))
            if self.checkpoint is not None:
                s.predictions = load_or_score(factory, self.checkpoint, rec, pre, self.out_dir / "cache")
            sessions.append(s)
        sessions.sort(key=lambda s: (s.start_ms, s.sensor_id))
        self.recordings = {s.sensor_id: s for s in sessions}

    def _replay_journal(self) -> None:
        for i, rec in enumerate(self.journal.read()):
            op = Op.from_dict(rec)
            s = self.recordings.get(op.recording)
            if s is None:
                raise DatasetError(self.journal.path, f"an edit of recording {op.recording!r}, which is not in "
                                                      f"{self.frames_dir}", record=f"line {i + 1}")
            self.seen_ids.add(op.op_id)
            if op.kind == "undo":
                if s.ops:
                    s.ops.pop()
                    s.state = replay(s.base, s.ops)
                continue
            try:
                for f in s.state.apply(op):
                    s.state.touched[f] = Touch(op.annotator, op.time_ms)
            except LabelError as e:  # journaled edits were checked before: the base changed under them
                raise DatasetError(self.journal.path, f"edit no longer applies: {e}", record=f"line {i + 1}") from None
            s.ops.append(op)

    # -- reading

    def recording(self, sensor_id: str) -> RecordingSession:
        try:
            return self.recordings[sensor_id]
        except KeyError:
            raise KeyError(f"no recording {sensor_id!r}; recordings: {', '.join(self.recordings)}") from None

    def zones_of(self, sensor_id: str) -> tuple[list[dict[str, Any]] | None, str]:
        """The zones that hold for a recording and where they come from."""
        s = self.recording(sensor_id)
        if s.state.zones is not None:
            return s.state.zones, "drawn for this recording"
        order = list(self.recordings.values())
        for earlier in reversed(order[:order.index(s)]):
            if earlier.sensor_key == s.sensor_key and earlier.state.zones is not None:
                zones, _ = self.zones_of(earlier.sensor_id)
                return zones, f"carried from {earlier.sensor_id} (same sensor)"
        if self.rooms is not None:
            layout = self.rooms.layout_for(s.sensor_id, s.mac_address, s.start_ms)
            if layout.known:
                return ([{"kind": z.kind, "name": z.name, "box": list(z.bounds)} for z in layout.zones],
                        f"from {self.data_dir / 'rooms.json'}")
        return None, "none drawn yet"

    def summary(self) -> list[dict[str, Any]]:
        out = []
        for s in self.recordings.values():
            complete = s.state.complete_keyframes()
            out.append({"sensor_id": s.sensor_id, "frames": s.recording.num_frames,
                        "keyframes": len(s.state.keyframes), "complete": len(complete),
                        "with_people": sum(1 for f in s.state.keyframes if s.state.boxes[f]),
                        "mac_address": s.mac_address})
        return out

    def view(self, sensor_id: str) -> dict[str, Any]:
        """The page's view of one recording: labels, scores, zones, what can be undone."""
        s = self.recording(sensor_id)
        zones, zones_source = self.zones_of(sensor_id)
        scores: dict[str, dict[str, list[float]]] = {}
        for p in s.predictions:
            scores.setdefault(str(p.frame_idx), {})[str(p.track_id)] = [round(float(v), 4) for v in p.scores]
        return {"sensor_id": sensor_id, **s.state.to_dict(),
                "timestamps": [int(s.recording.timestamps[f]) for f in s.state.keyframes],
                "scores": scores, "zones": zones, "zones_source": zones_source,
                "undo": len(s.ops), "width": s.recording.width, "height": s.recording.height}

    def keyframe_pixels(self, sensor_id: str) -> dict[str, Any]:
        """The keyframes' images as uint8 (0..255 over the recording's colour range), row-major."""
        s = self.recording(sensor_id)
        frames = s.recording.frames[s.state.keyframes]  # (F, H, W) °C, repaired
        lo = float(np.percentile(frames, 1.0))
        hi = max(float(np.median(frames)) + 10.0, lo + 1.0)
        q = np.clip((frames - lo) / (hi - lo) * 255.0, 0, 255).round().astype(np.uint8)
        return {"lo": lo, "hi": hi, "shape": list(q.shape), "pixels": q.tobytes()}

    def label_counts(self) -> dict[str, int]:
        counts = np.zeros(len(self.class_names), np.int64)
        for s in self.recordings.values():
            counts += np.asarray(s.state.label_counts())
        return {c: int(n) for c, n in zip(self.class_names, counts)}

    # -- editing

    def submit(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """Applies one edit from the page, saves it, exports; returns the recording's new view.

        Raises:
            LabelError: a malformed or impossible edit (nothing saved).
            KeyError: an unknown recording.
        """
        kind = data.get("op")
        if kind not in (*OP_KINDS, "undo"):
            raise LabelError(f"unknown edit {kind!r}; edits: {', '.join(OP_KINDS)}, undo")
        args = data.get("args") or {}
        if not isinstance(args, Mapping):
            raise LabelError("'args' must be an object")
        annotator = str(data.get("annotator") or self.annotator).strip()[:80] or self.annotator
        op = Op(str(kind), str(data.get("recording")), dict(args), str(data.get("id") or uuid.uuid4().hex), annotator,
                int(time.time() * 1000))
        with self.lock:
            s = self.recording(op.recording)
            if op.op_id in self.seen_ids:  # the page retried an edit that was saved
                return self.view(op.recording)
            if op.kind == "undo":
                if not s.ops:
                    raise LabelError("nothing to undo in this recording")
                self.journal.append(op.to_dict())
                s.ops.pop()
                s.state = replay(s.base, s.ops)
            else:
                trial = copy.deepcopy(s.state)
                touched = trial.apply(op)
                for f in touched:
                    trial.touched[f] = Touch(op.annotator, op.time_ms)
                self.journal.append(op.to_dict())
                s.state = trial
                s.ops.append(op)
            self.seen_ids.add(op.op_id)
            self.last_export = self.export()
            return self.view(op.recording)

    def export(self) -> dict[str, Any]:
        """Writes the raw JSONL, the COCO files and ``rooms.json`` (atomically)."""
        with self.lock:
            recs = [RecordingExport(s.sensor_id, s.mac_address, s.recording.timestamps, s.recording.width,
                                    s.recording.height, s.state, self.zones_of(s.sensor_id)[0], self.annotator)
                    for s in self.recordings.values()]
            return export_labels(self.out_dir, self.out_dir / "frames", recs)

    # -- what to label next

    def queue(self, n: int = 20, strategy: str = "queue") -> dict[str, Any]:
        """The keyframes to label next: ``thermal_action.active.rank_keyframes`` over the model's
        scores of the keyframes that still have an unlabelled person; without that module, or
        without a checkpoint (no scores to rank by), those keyframes in recording order, with a
        note saying why."""
        try:
            from thermal_action import active
        except ImportError:
            active = None
        with self.lock:
            todo = [(s, f) for s in self.recordings.values()
                    for f in sorted(set(s.state.keyframes) - set(s.state.complete_keyframes())) if s.state.boxes[f]]
            if active is None or self.checkpoint is None:
                why = ("the ranking module (thermal_action.active) is not installed" if active is None
                       else "no --checkpoint, so no model scores to rank by")
                items = [{"recording": s.sensor_id, "frame_index": f, "timestamp": int(s.recording.timestamps[f]) / 1000,
                          "track_id": None, "score": None, "expected_gain": None, "reason": "not labelled yet"}
                         for s, f in todo[:n]]
                return {"ranked": False, "strategy": "keyframe order",
                        "note": f"{why}: keyframes with someone unlabelled, in recording order", "suggestions": items}
            wanted = {(s.sensor_id, f) for s, f in todo}
            per_keyframe: dict[tuple[str, int], list[Prediction]] = {}
            for s in self.recordings.values():
                for p in s.predictions:
                    if (s.sensor_id, p.frame_idx) in wanted:
                        per_keyframe.setdefault((s.sensor_id, p.frame_idx), []).append(p)
            scores = [active.KeyframeScores(rec, frame, preds[0].timestamp / 1000,
                                            np.stack([p.scores for p in preds]).astype(np.float64),
                                            np.asarray([p.track_id for p in preds], np.int64))
                      for (rec, frame), preds in sorted(per_keyframe.items())]
            # The complete keyframes are left out above; their boxes are the label counts.
            ranked = active.rank_keyframes([], scores, strategy=strategy, n=n, label_counts=self.label_counts())
            return {"ranked": True, "strategy": strategy, "note": "",
                    "suggestions": [{"recording": r.recording, "frame_index": r.frame_index,
                                     "timestamp": r.timestamp, "track_id": r.track_id, "score": r.score,
                                     "expected_gain": r.expected_gain, "reason": r.reason} for r in ranked]}
