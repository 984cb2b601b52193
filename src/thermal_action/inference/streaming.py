"""Live prediction: frames arrive one at a time from many sensors.

Per sensor, :class:`StreamingPredictor` keeps a ring buffer of the last frames, repairs
dropped-packet pixels as they arrive, runs the built-in person detector and tracker on
every frame (or takes the boxes you push with the frame), and whenever a window is
complete classifies the people of its keyframe. The windows of every sensor that
completed during one :meth:`~StreamingPredictor.push_many` call go through the model
in one batched forward pass.

When a keyframe is scored (the window of a checkpoint spans ``frames_before`` frames
before its keyframe and ``frames_after`` after it; 32 and 30 for the default 64-frame,
stride-2 clips)::

    frames   ... k-32 ........ k ........ k+30  <- arrives now: keyframe k is scored
    centred  (default): the keyframe is the window centre, as in training; its
             prediction lags it by frames_after frames (30 frames = 5 s at 6 fps),
             plus compute time
    causal:  the keyframe is the newest frame; the frames after it are repeats of it
             (edge padding, as at the end of a recording); no lag, lower accuracy
             (the model never saw the future half of its window frozen in training)

Keyframes are frames ``0, step, 2*step, ...`` of each stream, the grid
``predict_recordings`` uses on a recording; :meth:`~StreamingPredictor.flush`
scores the keyframes still waiting for their future frames when a stream ends (the
window repeats the last frame). So a recording streamed frame by frame with the same
boxes gives exactly the offline predictions.

Dropped packets (pixels at -273.2 °C, NaN, out of range) are repaired with the reader's
:func:`~thermal_action.data.hdf5.repair_frames` applied to the previous (repaired)
frame and the new one: packets the receiver packed forward are realigned against the
previous frame, and a lost pixel takes the previous frame's value. The reader may
also use the next frame (as realignment reference when it is the nearest complete
frame, and as fill when the previous frame lost the same pixel), which a live stream
cannot do. Kelvin input is recognised from a sensor's first frame.

Memory (feature bank) of interaction models is not used while streaming.

The room of each keyframe (what a model with ``model.room`` sees): the layout set for
the sensor through :meth:`~StreamingPredictor.set_layout` (the service's zone API),
else the rooms file given to the constructor (by sensor id, at the keyframe's time),
else none; every prediction says which (``room_source`` "api", "rooms file", "none").
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from thermal_action.alert_rule import AlertOverrides, AlertRule, resolve_alert_rule
from thermal_action.errors import DatasetError
from thermal_action.data.hdf5 import repair_frames
from thermal_action.data.rooms import (
    BED_KINDS,
    NO_LAYOUT,
    RoomLayout,
    RoomMap,
    box_share_on,
    read_rooms,
    resolve_layout,
)
from thermal_action.inference.alerts import AlertEvent, FallAlertMonitor
from thermal_action.inference.boxes import FrameBoxes, track_frame
from thermal_action.people.results import Detections
from thermal_action.inference.outputs import Prediction
from thermal_action.inference.predictor import ClipRequest, Predictor
from thermal_action.structures import KELVIN_OFFSET, PREDICTION, boxes_xyxy_to_cxcywh_norm

logger = logging.getLogger(__name__)


@dataclass
class StreamFrame:
    """One frame of one sensor, for :meth:`StreamingPredictor.push_many`.

    Attributes:
        sensor_id: which stream.
        frame: ``(H, W)`` temperatures (°C or K; dropped packets allowed).
        timestamp: capture time, ms since epoch (None: the arrival time).
        boxes: person boxes of this frame, when you detect people yourself: a
            :class:`FrameBoxes` (with track ids), or ``(N, 4)`` ``boxes_xyxy`` pixels
            (track ids then come from the sensor's tracker). None: built-in detector.
    """

    sensor_id: str
    frame: np.ndarray
    timestamp: int | None = None
    boxes: FrameBoxes | np.ndarray | None = None


@dataclass
class _Due:
    """A keyframe whose window is complete, waiting for the batched forward pass."""

    sensor_id: str
    frame_idx: int
    timestamp: int
    window: np.ndarray  # (L, H, W) °C, the buffer at the time the window completed
    position: int  # the keyframe's index in window
    boxes: FrameBoxes
    layout: RoomLayout  # the room at the keyframe, decided when its window completed


@dataclass
class _Sensor:
    window_length: int
    detector: Any = None
    tracker: Any = None
    frames: deque = field(default_factory=deque)
    timestamps: deque = field(default_factory=deque)
    boxes: deque = field(default_factory=deque)
    frames_seen: int = 0
    kelvin: bool | None = None
    last: np.ndarray | None = None
    repaired_pixels: int = 0
    repaired_frames: int = 0
    predictions: int = 0
    shape: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        self.frames = deque(maxlen=self.window_length)
        self.timestamps = deque(maxlen=self.window_length)
        self.boxes = deque(maxlen=self.window_length)


@dataclass
class StreamStats:
    """Work done so far, for monitoring and benchmarks.

    Attributes:
        frames: frames pushed, all sensors.
        predictions: person predictions returned.
        forward_passes: batched model calls.
        seconds_frames: time spent repairing, detecting and tracking.
        seconds_model: time spent building clips and in the model.
        repaired_pixels: dropped-packet pixels repaired, all sensors.
    """

    frames: int = 0
    predictions: int = 0
    forward_passes: int = 0
    seconds_frames: float = 0.0
    seconds_model: float = 0.0
    repaired_pixels: int = 0


class StreamingPredictor:
    """Scores the people of many live sensors, one frame at a time.

    Args:
        predictor: a :class:`Predictor`, or a checkpoint path (``.ckpt`` or ``.onnx``).
        step: frames between keyframes (6 is about once a second at ~6 fps).
        causal: put the keyframe at the end of the window (no lag, lower accuracy)
            instead of its centre (module docstring).
        detector_factory: makes a per-sensor person detector (default: the built-in
            ``PersonDetector``); used for frames pushed without boxes.
        tracker_factory: makes a per-sensor tracker (default: the built-in ``Tracker``).
        alert_rule: the fall alert rule: None takes the model's own (its threshold
            calibrated by ``train``), :class:`~thermal_action.alert_rule.AlertOverrides`
            change it, an :class:`~thermal_action.alert_rule.AlertRule` replaces it
            (:func:`~thermal_action.alert_rule.resolve_alert_rule`). A rule whose fall class
            the model lacks gives no alerts (a warning).
        alerts: False: no fall alerts at all.
        fps: frames per second of the alerts' clock
            (:class:`~thermal_action.inference.alerts.FallAlertMonitor`).
        backend: for a checkpoint path: ``"torch"`` or ``"onnx"``.
        batch_wait: a completed window may wait this many further ``push_many`` calls
            (ticks) for others to share its forward pass; 0 runs every call's windows
            at once. Sensors started at different times complete their windows on
            different ticks, so waiting up to ``step - 1`` ticks batches all of them
            (fewer, larger passes) at a latency cost of up to that many frames.
        rooms: a rooms file (path or read :class:`~thermal_action.data.rooms.RoomMap`):
            the room of sensors without one set by :meth:`set_layout`; None: only those.

    Example::

        stream = StreamingPredictor("best.ckpt", step=6)
        for sensor_id, frame, ts in source:             # any order of sensors
            for p in stream.push(sensor_id, frame, ts):
                print(p.sensor_id, p.frame_idx, p.track_id, p.top_class, p.top_score)
            for event in stream.pop_alerts():           # AlertEvent: "raised" / "ended"
                notify(event)
    """

    def __init__(
        self,
        predictor: Predictor | str | Path,
        step: int = PREDICTION.step,
        causal: bool = False,
        detector_factory: Any = None,
        tracker_factory: Any = None,
        alert_rule: AlertRule | AlertOverrides | None = None,
        alerts: bool = True,
        fps: float = PREDICTION.fps,
        backend: str = "torch",
        batch_wait: int = 0,
        rooms: RoomMap | str | Path | None = None,
    ):
        if step < 1:
            raise ValueError(f"step must be >= 1, got {step}")
        if batch_wait < 0:
            raise ValueError(f"batch_wait must be >= 0, got {batch_wait}")
        if not isinstance(predictor, Predictor):
            predictor = Predictor.from_checkpoint(predictor, backend=backend)
        self.predictor = predictor
        self.step = step
        self.causal = causal
        self.fps = fps
        if detector_factory is None:
            from thermal_action.people.person_detector import PersonDetector

            detector_factory = PersonDetector
        if tracker_factory is None:
            from thermal_action.people.tracker import Tracker

            tracker_factory = Tracker
        self.detector_factory = detector_factory
        self.tracker_factory = tracker_factory
        self.alert_rule = resolve_alert_rule(predictor.alert_rule, alert_rule)
        self.monitor: FallAlertMonitor | None = None
        if alerts and self.alert_rule.fall_class in predictor.class_names:
            self.monitor = FallAlertMonitor(predictor.fall_index(self.alert_rule.fall_class), self.alert_rule, fps=fps)
        elif alerts:
            logger.warning("class %r is not one of the model's classes: no fall alerts", self.alert_rule.fall_class)
        self.batch_wait = batch_wait
        self.rooms: RoomMap | None = read_rooms(rooms) if isinstance(rooms, (str, Path)) else rooms
        self._sensors: dict[str, _Sensor] = {}
        self._queue: list[list] = []  # [_Due, push_many calls waited]
        self._alerts: list[AlertEvent] = []
        self._layouts: dict[str, RoomLayout] = {}  # sensor -> its room, kept across streams
        self.stats = StreamStats()

    # -- latency

    @property
    def lag_frames(self) -> int:
        """Frames between a keyframe's arrival and the arrival that completes its window."""
        return 0 if self.causal else self.predictor.frames_after

    def lag_seconds(self, fps: float | None = None) -> float:
        """:attr:`lag_frames` in seconds (at ``fps``, default the sensors' ~6 fps); compute time comes on top."""
        return self.lag_frames / (fps or self.fps)

    @property
    def sensors(self) -> list[str]:
        return list(self._sensors)

    def frames_seen(self, sensor_id: str) -> int:
        """Frames of the sensor's current stream so far (its next frame's index)."""
        st = self._sensors.get(sensor_id)
        return st.frames_seen if st is not None else 0

    def latest(self, sensor_id: str) -> tuple[np.ndarray, int, FrameBoxes, int] | None:
        """The sensor's newest repaired frame (°C), its timestamp, its tracked boxes and the
        dropped-packet pixels repaired in the stream so far; None before its first frame."""
        st = self._sensors.get(sensor_id)
        if st is None or not st.frames:
            return None
        return st.frames[-1], int(st.timestamps[-1]), st.boxes[-1], st.repaired_pixels

    # -- the room

    def set_layout(self, sensor_id: str, layout: RoomLayout | None) -> None:
        """The room of ``sensor_id`` from now on (the service's zone API sends the layout it
        resolved: its own zones, "api", or its layout file's); it takes precedence over the
        rooms file given to the constructor and holds across streams until set again.

        :data:`~thermal_action.data.rooms.NO_LAYOUT` (or None) removes it: back to the rooms
        file, else no room. A layout with zones but without a source (built in code) is
        recorded as the API's; a layout without zones from a known source is a room known to
        be empty. Keyframes already waiting for their forward pass keep the room they had.
        """
        if layout is None or (not layout.known and not layout.zones):
            self._layouts.pop(sensor_id, None)
        else:
            self._layouts[sensor_id] = layout if layout.known else dataclasses.replace(layout, source="api")

    def layout(self, sensor_id: str, timestamp: int | None = None) -> RoomLayout:
        """The room a keyframe of ``sensor_id`` at ``timestamp`` (ms) is scored with: the one set
        by :meth:`set_layout`, else the rooms file's, else :data:`~thermal_action.data.rooms.NO_LAYOUT`."""
        return resolve_layout(self._layouts.get(sensor_id, NO_LAYOUT), self.rooms, sensor_id, timestamp_ms=timestamp)

    # -- frames in

    def _state(self, sensor_id: str) -> _Sensor:
        st = self._sensors.get(sensor_id)
        if st is None:
            st = _Sensor(self.predictor.window_length)
            self._sensors[sensor_id] = st
        return st

    def _repair(self, sensor_id: str, st: _Sensor, frame: np.ndarray) -> np.ndarray:
        """The reader's repair, on (previous repaired frame, new frame)."""
        raw = np.asarray(frame, dtype=np.float32)
        where = f"stream {sensor_id}"
        if st.last is None:
            try:
                fixed, stats = repair_frames(raw[None], self.predictor.valid_range, path=where)
            except DatasetError as e:
                raise DatasetError(where, "the first frame holds no valid temperature", record="frame 0") from e
            st.kelvin = stats.converted_from_kelvin
            out = fixed[0]
        else:
            x = raw - KELVIN_OFFSET if st.kelvin else raw
            low, high = self.predictor.valid_range
            if np.isfinite(x).all() and x.min() >= low and x.max() <= high:
                return x  # the common case: nothing to repair, skip the stack
            prev = st.last + KELVIN_OFFSET if st.kelvin else st.last
            fixed, stats = repair_frames(np.stack([prev, raw]), self.predictor.valid_range, path=where)
            out = fixed[1]
        if stats.invalid_pixels:
            st.repaired_pixels += stats.invalid_pixels
            st.repaired_frames += 1
            self.stats.repaired_pixels += stats.invalid_pixels
            logger.debug("%s frame %d: repaired %d pixels", where, st.frames_seen, stats.invalid_pixels)
        return out

    def _boxes(self, st: _Sensor, frame_c: np.ndarray, given: FrameBoxes | np.ndarray | None) -> FrameBoxes:
        if isinstance(given, FrameBoxes) and (given.track_ids >= 0).all():
            return given  # tracked by the sensor (or its gateway)
        if isinstance(given, FrameBoxes):
            dets = given  # boxes without track ids: tracked here
        elif given is not None:
            dets = Detections(np.asarray(given, np.float32).reshape(-1, 4), np.ones(len(np.asarray(given).reshape(-1, 4))))
        else:
            if st.detector is None:
                st.detector = self.detector_factory()
            dets = st.detector.update(frame_c)
        if st.tracker is None:
            st.tracker = self.tracker_factory()
        return track_frame(st.tracker, dets)

    def _due(self, sensor_id: str, st: _Sensor, frame_idx: int) -> _Due:
        """Snapshot of the window of keyframe ``frame_idx`` (which must be in the buffer)."""
        first = st.frames_seen - len(st.frames)  # stream index of buffer[0]
        pos = frame_idx - first
        ts = int(st.timestamps[pos])
        return _Due(sensor_id, frame_idx, ts, np.stack(st.frames), pos, st.boxes[pos], self.layout(sensor_id, ts))

    def _add_frame(self, item: StreamFrame) -> list[_Due]:
        st = self._state(item.sensor_id)
        frame = np.asarray(item.frame)
        if frame.ndim != 2:
            raise ValueError(f"stream {item.sensor_id}: a frame must be (H, W), got shape {frame.shape}")
        if st.shape is None:
            st.shape = frame.shape
        elif frame.shape != st.shape:
            raise ValueError(f"stream {item.sensor_id} frame {st.frames_seen}: shape {frame.shape} differs from "
                             f"earlier frames {st.shape}")
        frame_c = self._repair(item.sensor_id, st, frame)
        st.last = frame_c
        boxes = self._boxes(st, frame_c, item.boxes)
        ts = int(item.timestamp) if item.timestamp is not None else int(time.time() * 1000)
        st.frames.append(frame_c)
        st.timestamps.append(ts)
        st.boxes.append(boxes)
        st.frames_seen += 1
        newest = st.frames_seen - 1
        key = newest - self.lag_frames
        if key >= 0 and key % self.step == 0:
            return [self._due(item.sensor_id, st, key)]
        return []

    # -- predictions out

    def _predict(self, due: Sequence[_Due]) -> list[Prediction]:
        t = time.perf_counter()
        with_people = [d for d in due if len(d.boxes)]
        scores = self.predictor.predict_clips(
            [ClipRequest(d.window, d.position, d.boxes.boxes_xyxy, layout=d.layout) for d in with_people]
        )
        if with_people:
            self.stats.forward_passes += -(-len(with_people) // self.predictor.max_clips_per_batch)
        out: list[Prediction] = []
        for d, sc in zip(with_people, scores):
            h, w = d.window.shape[1:]
            norm = boxes_xyxy_to_cxcywh_norm(d.boxes.boxes_xyxy, w, h)
            on_bed = box_share_on(d.boxes.boxes_xyxy, d.layout, BED_KINDS, h, w)  # None: room unknown
            for i in np.argsort(d.boxes.track_ids, kind="stable"):
                out.append(Prediction(
                    sensor_id=d.sensor_id, frame_idx=d.frame_idx, timestamp=d.timestamp,
                    track_id=int(d.boxes.track_ids[i]), box_xyxy=d.boxes.boxes_xyxy[i].astype(np.float64),
                    box_cxcywh_norm=norm[i], scores=sc[i], class_names=self.predictor.class_names,
                    box_score=float(d.boxes.scores[i]), box_source="stream",
                    room_source=self.predictor.room_source(d.layout),
                    bed_share=None if on_bed is None else float(on_bed[i]),
                ))
        self.stats.seconds_model += time.perf_counter() - t
        self.stats.predictions += len(out)
        if self.monitor is not None:
            by_key = {(p.sensor_id, p.frame_idx): [] for p in out}
            for p in out:
                by_key[(p.sensor_id, p.frame_idx)].append(p)
            for d in due:
                for p in by_key.get((d.sensor_id, d.frame_idx), []):
                    self._alerts.extend(self.monitor.update(p))
                self._alerts.extend(self.monitor.advance(d.sensor_id, d.frame_idx, d.timestamp))
        for p in out:
            self._sensors[p.sensor_id].predictions += 1
        return out

    def push_many(self, frames: Iterable[StreamFrame | tuple],
                  errors: list[tuple[StreamFrame, Exception]] | None = None) -> list[Prediction]:
        """Adds frames (any sensors, each sensor's frames in order) and scores the
        keyframes whose windows completed, in one batched forward pass.

        Args:
            frames: :class:`StreamFrame` or ``(sensor_id, frame, timestamp[, boxes])`` tuples.
            errors: when given, a frame that cannot be used (wrong shape, a first frame with
                no valid temperature) is appended here with its error and skipped, so one
                sensor's bad frame does not stop the others' (a service's choice); when None,
                the error is raised.

        Returns:
            The new predictions, by sensor and keyframe in completion order, then track id
            (with ``batch_wait`` > 0 they may come some calls later).
        """
        t = time.perf_counter()
        n = 0
        for entry in self._queue:
            entry[1] += 1
        for item in frames:
            if not isinstance(item, StreamFrame):
                item = StreamFrame(*item)
            if errors is None:
                self._queue.extend([d, 0] for d in self._add_frame(item))
            else:
                try:
                    self._queue.extend([d, 0] for d in self._add_frame(item))
                except (DatasetError, ValueError) as e:
                    errors.append((item, e))
                    continue
            n += 1
        self.stats.frames += n
        self.stats.seconds_frames += time.perf_counter() - t
        if not self._queue:
            return []
        if len(self._queue) >= self.predictor.max_clips_per_batch or self._queue[0][1] >= self.batch_wait:
            return self._run_queue()
        return []

    def _run_queue(self) -> list[Prediction]:
        due = [d for d, _ in self._queue]
        self._queue = []
        return self._predict(due) if due else []

    def push(self, sensor_id: str, frame: np.ndarray, timestamp: int | None = None,
             boxes: FrameBoxes | np.ndarray | None = None) -> list[Prediction]:
        """Adds one frame of one sensor; returns the predictions it completed (often none)."""
        return self.push_many([StreamFrame(sensor_id, frame, timestamp, boxes)])

    def flush(self, sensor_id: str | None = None) -> list[Prediction]:
        """Ends streams: scores keyframes still waiting for future frames (the window
        repeats the last frame, as at the end of a recording) and closes their alerts.

        The sensor's buffer, detector and tracker are then forgotten; pushing more
        frames for it starts a new stream at frame 0.
        """
        names = [sensor_id] if sensor_id is not None else list(self._sensors)
        for name in names:
            st = self._sensors.get(name)
            if st is None or st.frames_seen == 0:
                continue
            newest = st.frames_seen - 1
            first_pending = newest - self.lag_frames + 1
            for key in range(max(0, first_pending), newest + 1):
                if key % self.step == 0:
                    self._queue.append([self._due(name, st, key), 0])
        # Windows of other sensors stay queued when flushing one sensor with batch_wait.
        mine = [e for e in self._queue if e[0].sensor_id in names]
        self._queue = [e for e in self._queue if e[0].sensor_id not in names]
        out = self._predict([d for d, _ in mine]) if mine else []
        for name in names:
            if self.monitor is not None:
                self._alerts.extend(self.monitor.finish(name))
            self._sensors.pop(name, None)
        return out

    def pop_alerts(self) -> list[AlertEvent]:
        """The alert events ("raised", "ended") since the last call, in the order they happened."""
        out, self._alerts = self._alerts, []
        return out

    @property
    def active_alerts(self) -> list[AlertEvent]:
        """Snapshots of the alerts still going on."""
        return self.monitor.active_alerts if self.monitor is not None else []

    def recent_boxes(self, sensor_id: str, n: int) -> list[tuple[int, FrameBoxes]]:
        """The timestamps and tracked boxes of the sensor's last ``n`` frames, oldest first
        (fewer when its buffer holds fewer; none before its first frame or after a flush)."""
        st = self._sensors.get(sensor_id)
        if st is None or n <= 0:
            return []
        first = max(0, len(st.frames) - n)
        return [(int(st.timestamps[i]), st.boxes[i]) for i in range(first, len(st.frames))]
