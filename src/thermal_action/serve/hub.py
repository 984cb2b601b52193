"""The service's centre: every sensor's state, frames routed to the worker that owns the sensor,
worker results turned into stored predictions, alerts and dashboard events.

Thread-safe: ingest calls :meth:`Hub.submit` from the web server's event loop and from the
MQTT client's thread; worker results arrive on one reader thread per worker; a tick thread
marks silent sensors, ends their streams and sends the dashboards the sensor list.

What a sensor can get wrong, and what happens (never more than that sensor is affected):

==========================  ===============================================================
frame of another size       refused, ``bad_shape`` counted, the error names the sensor and both sizes
message that does not parse refused, ``bad_message`` counted (the sender gets the reason); this covers
                            the edge's checks of timestamps, boxes and limits (:mod:`~thermal_action.serve.protocol`)
boxes outside the frame     clipped (``repaired_boxes``) or dropped (``refused_boxes``) at the edge
NaN / dropped-packet pixels repaired in the worker (``repaired_pixels``)
a frame with no valid pixel as the stream's first: refused (``invalid_frames``); later: filled from the previous frame
a burst of many frames      queued; beyond ``max_queue_frames`` per worker dropped (``dropped``)
silence                     ``silent`` after ``silent_seconds``; stream ended (pending keyframes scored, alerts closed) after ``end_stream_seconds``
timestamps jump or go back  a new stream starts (``new_streams``), as after a reconnect with a new clock
worker process dies         restarted; its sensors start new streams; frames it held counted as dropped
many ids (junk, or renamed) beyond ``max_sensors``: a new id takes the place of the longest-quiet id that
                            never sent a usable frame, else of one idle for ``forget_sensor_seconds``
                            (no connection, stream ended, no fall going on), else is refused
==========================  ===============================================================

Rooms: a sensor's layout (its furniture as zones, :mod:`thermal_action.data.rooms`) is the one
set through the API (``PUT /api/sensors/{id}/zones``, kept in the store), else the layout
file's (``serve --rooms``) valid at the sensor's latest frame time, else none. The hub sends it
to the worker that owns the sensor, in the sensor's queue ahead of the frames it holds for:
with its first frames, whenever it changes (through the API, or a ``valid_from`` of the file
passed by the sensor's clock) and again after that worker restarted.

Alerts: each event of the fall monitor is recorded by the store, which makes it a new alert,
folds it into an unacknowledged alert of the same person (a "repeat") or ends an alert
(:mod:`~thermal_action.serve.store`); each of these, and every acknowledgement and resolution,
goes to the dashboards and to the notification destinations (:mod:`~thermal_action.serve.notify`,
never waited for). A new alert starts its clip (:mod:`~thermal_action.serve.clips`): the hub
keeps every sensor's recent frames and the boxes its worker tracked in them.

How far behind: when a worker reports a sensor's frames processed, ``now - the newest frame's
capture time`` is one delay sample; a sensor's ``delay_s`` is the p95 of its samples of the
last minute, and the service is ``behind`` when the p95 of all sensors' passes
``delay_warning_seconds``. Frames dropped are counted as they are dropped and the dashboards
told at once (a ``sensor`` event, at most every :data:`DROP_EVENT_INTERVAL_S` per sensor).
"""

from __future__ import annotations

import base64
import io
import logging
from pathlib import Path
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from thermal_action.alert_rule import AlertRule
from thermal_action.data.rooms import NO_LAYOUT, RoomLayout, RoomMap, parse_layout
from thermal_action.errors import RoomsError
from thermal_action.inference.alerts import AlertEvent
from thermal_action.serve.clips import CLIPS_DIR, PENDING_GRACE_S, Clip, FrameRing, PendingClip, clip_path, ring_for
from thermal_action.serve.config import ServeConfig
from thermal_action.serve.notify import Notifier
from thermal_action.serve.operators import AlertAction, Feedback, SensorInfo
from thermal_action.serve.protocol import FrameFormatError, FrameIn, check_sensor_id
from thermal_action.serve.store import Store, now_ms
from thermal_action.serve.messages import Failed, LiveFrame, OutboxMessage, QueuedFrame, Ready, Round
from thermal_action.serve.workers import WorkerPool, worker_for

logger = logging.getLogger(__name__)

#: Seconds of delay samples behind ``delay_s`` and ``delay_p95_s``.
DELAY_WINDOW_S = 60.0
#: A sensor dropping frames tells the dashboards at most this often.
DROP_EVENT_INTERVAL_S = 0.5


@dataclass
class ModelInfo:
    """What the service needs to know of the model (read once, in the main process), and the
    alert rule in force (the checkpoint's with the config's overrides)."""

    class_names: tuple[str, ...]
    frame_size: tuple[int, int]
    fall_index: int | None  # of the rule's fall class; None: the model lacks it (no alerts)
    alert_rule: AlertRule
    lag_frames: int
    window_length: int


@dataclass
class SubmitResult:
    """What became of one ingest message's frames."""

    accepted: int = 0
    dropped: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass
class SensorState:
    sensor_id: str
    worker: int
    connections: dict[str, int] = field(default_factory=dict)  # transport -> open connections
    frames: int = 0
    dropped: int = 0
    bad_shape: int = 0
    bad_message: int = 0
    invalid_frames: int = 0
    repaired_pixels: int = 0
    repaired_boxes: int = 0  # gateway boxes clipped to the frame
    refused_boxes: int = 0  # gateway boxes with nothing inside the frame, dropped
    new_streams: int = 0
    predictions: int = 0
    last_error: str | None = None
    last_arrival: float | None = None  # time.time()
    last_seen: float = field(default_factory=time.time)  # any message or connection, usable or not
    last_timestamp: int | None = None
    stream_ended: bool = False
    recent_timestamps: deque = field(default_factory=lambda: deque(maxlen=64))  # capture ms of the last frames
    live: LiveFrame | None = None  # the newest processed frame, for the dashboards
    tracks: dict[int, tuple] = field(default_factory=dict)  # track -> (action, score, fall_score, timestamp)
    active_alerts: set = field(default_factory=set)  # (track_id, start_timestamp) of alerts not yet ended
    stored_at: dict[int, tuple[int, str]] = field(default_factory=dict)  # track -> (timestamp, action) last stored
    # the moment itself, and how far behind
    ring: FrameRing | None = None  # recent frames and their tracked boxes (clips of alerts)
    pending_clips: list[PendingClip] = field(default_factory=list)
    delays: deque = field(default_factory=lambda: deque(maxlen=2000))  # (time.time(), s) processed - captured
    drop_event_at: float = 0.0  # when the dashboards were last told of drops

    def delay(self, now: float) -> tuple[float | None, float | None]:
        """``(p95 over the last minute, latest)`` of the delay samples, seconds; None without any."""
        recent = [d for t, d in self.delays if now - t <= DELAY_WINDOW_S]
        return _percentile(recent, 95), (recent[-1] if recent else None)

    def fps(self, now: float) -> float:
        """The sensor's frame rate by its own clock (capture timestamps of the last 10 s of
        frames), so a burst of late frames does not read as a fast sensor; 0 when silent."""
        if self.last_arrival is None or now - self.last_arrival > 10.0 or len(self.recent_timestamps) < 2:
            return 0.0
        last = self.recent_timestamps[-1]
        recent = [t for t in self.recent_timestamps if last - t <= 10_000]
        span = (recent[-1] - recent[0]) / 1000.0
        return (len(recent) - 1) / span if span > 0 else 0.0

    def status(self, now: float, cfg: ServeConfig) -> str:
        if self.last_arrival is None:
            return "error" if self.last_error else "silent"
        if self.stream_ended:
            return "ended"
        if now - self.last_arrival > cfg.silent_seconds:
            return "silent"
        return "live"


def _percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(np.asarray(values), q)) if values else None


class Hub:
    """Sensors, routing and results (module docstring).

    Args:
        cfg: the service config.
        info: the model's classes, frame size and lag.
        store: the SQLite store.
        pool: the worker pool (started by :meth:`start`); None for tests that feed
            :meth:`on_message` themselves.
        rooms: the layout file's layouts (``serve --rooms``); zones set through the API win.
        notifier: where alert events go besides the dashboards (None: nowhere).
    """

    def __init__(self, cfg: ServeConfig, info: ModelInfo, store: Store, pool: WorkerPool | None,
                 rooms: RoomMap | None = None, notifier: Notifier | None = None):
        self.cfg = cfg
        self.info = info
        self.store = store
        self.pool = pool
        self.n_workers = len(pool) if pool is not None else 1
        self.sensors: dict[str, SensorState] = {}
        self._lock = threading.RLock()
        self._listeners: list[Callable[[dict], None]] = []
        self.started = time.time()
        self.frames_total = 0
        self.dropped_total = 0
        self.alerts_raised = 0
        self.alert_repeats = 0
        self.worker_restarts = 0
        self.refused_sensors = 0
        self.forgotten_sensors = 0
        self._latency: deque = deque(maxlen=5000)  # s, frame arrival -> prediction stored
        self._model_ms: deque = deque(maxlen=2000)  # per forward pass
        self._frame_times: deque = deque(maxlen=20_000)  # (arrival, n)
        self._delays: deque = deque(maxlen=50_000)  # (time.time(), s) of every sensor: delay_p95_s
        self.notifier = notifier if notifier is not None else Notifier()
        self.clips_dir = Path(cfg.data_dir) / CLIPS_DIR
        self.clips_saved = 0
        self._clips_due: list[PendingClip] = []  # ended with their stream on the ingest path: saved by the tick
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._last_purge = 0.0
        self.rooms = rooms
        self._api_layouts: dict[str, RoomLayout] = {}  # sensor -> zones set through the API
        self._sent_layouts: dict[str, RoomLayout] = {}  # sensor -> the layout its worker has
        for sensor_id, row in store.all_zones().items():
            try:
                self._api_layouts[sensor_id] = parse_layout(row["layout"], f"{store.path} [sensor_zones {sensor_id}]",
                                                            "api")
            except RoomsError as e:  # written by an older or hand-edited database: say so, go on
                logger.error("zones of sensor %s not used: %s", sensor_id, e)

    # -- life

    def start(self) -> None:
        self.notifier.start()
        ended = self.store.end_all_active(why="the service stopped while it went on")
        if ended:
            logger.info("%d alerts ongoing at the last stop were ended (their status is kept)", len(ended))
        for row in ended:
            self.notifier.notify("ended", row)
        if self.pool is not None:
            self.pool.start()
        self._ticker = threading.Thread(target=self._tick_loop, name="serve-tick", daemon=True)
        self._ticker.start()

    def stop(self) -> None:
        self._stop.set()
        if self.pool is not None:
            self.pool.stop()
        with self._lock:  # the clips of alerts still waiting for their "after" part keep what they have
            pending = [p for st in self.sensors.values() for p in st.pending_clips] + self._clips_due
            self._clips_due = []
            for st in self.sensors.values():
                st.pending_clips = []
        self._save_clips(pending)
        self.notifier.stop()

    def add_listener(self, fn: Callable[[dict], None]) -> None:
        with self._lock:
            self._listeners.append(fn)

    def remove_listener(self, fn: Callable[[dict], None]) -> None:
        with self._lock:
            if fn in self._listeners:
                self._listeners.remove(fn)

    def _emit(self, event: dict) -> None:
        for fn in list(self._listeners):
            try:
                fn(event)
            except Exception:
                logger.exception("a dashboard listener failed")

    @property
    def has_listeners(self) -> bool:
        return bool(self._listeners)

    # -- ingest

    def _sensor(self, sensor_id: str) -> SensorState | None:
        """The sensor's state (made for a new id while there is room, or room can be made);
        None when the service is full. Call with the lock held."""
        now = time.time()
        st = self.sensors.get(sensor_id)
        if st is None:
            if len(self.sensors) >= self.cfg.max_sensors and not self._forget_one(now):
                self.refused_sensors += 1
                return None
            st = SensorState(sensor_id, worker_for(sensor_id, self.n_workers),
                             ring=ring_for(self.cfg.clip_seconds_before, self.info.lag_frames / self.cfg.fps,
                                           self.cfg.fps))
            self.sensors[sensor_id] = st
            logger.info("new sensor %s (worker %d)", sensor_id, st.worker)
        st.last_seen = now
        return st

    def _forget_one(self, now: float) -> bool:
        """Makes room for a new sensor: forgets the longest-quiet one that never sent a usable
        frame (junk ids must not lock real sensors out), else the longest-quiet one idle for
        ``forget_sensor_seconds``; never one that is streaming, connected or has a fall going on."""
        junk = [st for st in self.sensors.values() if st.frames == 0]
        idle = [st for st in self.sensors.values()
                if (st.stream_ended or st.last_arrival is None) and not any(st.connections.values())
                and not st.active_alerts and now - st.last_seen > self.cfg.forget_sensor_seconds]
        candidates = junk or idle
        if not candidates:
            return False
        gone = min(candidates, key=lambda s: s.last_seen)
        del self.sensors[gone.sensor_id]
        self.forgotten_sensors += 1
        logger.info("sensor %s forgotten to make room (%s)", gone.sensor_id,
                    "never sent a usable frame" if junk else "idle")
        return True

    def connected(self, sensor_id: str, transport: str) -> None:
        with self._lock:
            st = self._sensor(sensor_id)
            if st is not None:
                st.connections[transport] = st.connections.get(transport, 0) + 1

    def disconnected(self, sensor_id: str, transport: str) -> None:
        with self._lock:
            st = self.sensors.get(sensor_id)
            if st is not None and st.connections.get(transport, 0) > 0:
                st.connections[transport] -= 1

    def reject(self, sensor_id: str | None, transport: str, reason: str) -> None:
        """Counts a message that could not be decoded."""
        logger.warning("sensor %s (%s): message refused: %s", sensor_id, transport, reason)
        with self._lock:
            st = self._sensor(sensor_id) if sensor_id else None
            if st is not None:
                st.bad_message += 1
                st.last_error = reason

    def submit(self, sensor_id: str, frames: list[FrameIn], transport: str) -> SubmitResult:
        """Checks and queues one message's frames for the sensor's worker."""
        out = SubmitResult()
        try:
            check_sensor_id(sensor_id)
        except FrameFormatError as e:
            out.errors.append(str(e))
            return out
        h, w = self.info.frame_size
        now = time.time()
        finished: list[PendingClip] = []
        with self._lock:
            st = self._sensor(sensor_id)
            if st is None:
                out.errors.append(f"sensor {sensor_id}: refused, the service already has max_sensors="
                                  f"{self.cfg.max_sensors} sensors")
                return out
            good: list[QueuedFrame] = []
            bad_shapes: dict[tuple, int] = {}
            for f in frames:
                if f.frame.shape != (h, w):
                    bad_shapes[f.frame.shape] = bad_shapes.get(f.frame.shape, 0) + 1
                    continue
                ts = int(now * 1000) if f.timestamp is None else int(f.timestamp)
                if st.last_timestamp is not None and (
                        ts < st.last_timestamp or ts - st.last_timestamp > self.cfg.new_stream_gap_seconds * 1000):
                    # A new clock (the sensor reconnected, or was off for long): a new stream.
                    if good:
                        self._queue(st, good, out)
                        good = []
                    if self.pool is not None and not st.stream_ended:
                        self.pool.end_stream(st.worker, sensor_id)
                    finished += self._new_stream(st)
                    st.new_streams += 1
                    logger.info("sensor %s: timestamp %d after %d: new stream", sensor_id, ts, st.last_timestamp)
                    st.recent_timestamps.clear()
                st.last_timestamp = ts
                st.recent_timestamps.append(ts)
                st.repaired_boxes += f.repaired_boxes
                st.refused_boxes += f.refused_boxes
                good.append(QueuedFrame(ts, f.frame, f.boxes))
            for shape, n in bad_shapes.items():
                shown = "x".join(str(v) for v in shape)
                msg = (f"sensor {sensor_id}: {n} frame(s) of shape {shown}; the model takes {h}x{w} "
                       f"(another sensor model?)")
                st.bad_shape += n
                st.last_error = msg
                out.errors.append(msg)
            if good:
                self._queue(st, good, out)
            if out.accepted:
                st.last_arrival = now
                st.stream_ended = False
                self.frames_total += out.accepted
                self._frame_times.append((now, out.accepted))
            tell_drops = out.dropped > 0 and now - st.drop_event_at >= DROP_EVENT_INTERVAL_S
            if tell_drops:
                st.drop_event_at = now
            self._clips_due += finished  # written by the tick thread, not on the ingest path
        if bad_shapes:
            logger.warning(out.errors[-1])
        if tell_drops and self.has_listeners:
            self._emit({"type": "sensor", "sensor": self.sensor_status(st, now, self.store.open_alerts_by_sensor(),
                                                                       self.store.all_sensor_info())})
        return out

    def _new_stream(self, st: SensorState) -> list[PendingClip]:
        """A sensor's stream ended (silence, a new clock, its worker died): its recent frames
        belong to the past, its pending clips are as complete as they will get (returned, to be
        saved outside the lock). Call with the lock held."""
        if st.ring is not None:
            st.ring.clear()
        finished, st.pending_clips = st.pending_clips, []
        return finished

    def _queue(self, st: SensorState, frames: list[QueuedFrame], out: SubmitResult) -> None:
        self._send_layout(st.sensor_id)  # a new room (first frames, a valid_from passed) goes ahead of them
        ok = self.pool is None or self.pool.put_frames(st.worker, st.sensor_id, frames, self.cfg.max_queue_frames)
        if ok:
            out.accepted += len(frames)
            st.frames += len(frames)
            if st.ring is not None:
                for f in frames:
                    item = st.ring.add(f.timestamp, f.frame)
                    for clip in st.pending_clips:
                        clip.add(item)
        else:
            out.dropped += len(frames)
            st.dropped += len(frames)
            self.dropped_total += len(frames)
            msg = (f"sensor {st.sensor_id}: {len(frames)} frame(s) dropped, worker {st.worker} has "
                   f"{self.cfg.max_queue_frames} frames waiting")
            st.last_error = msg
            out.errors.append(msg)

    # -- results

    def on_message(self, worker: int, msg: OutboxMessage) -> None:
        """A worker's message (called on its reader thread)."""
        if isinstance(msg, Round):
            self._on_round(msg)
        elif isinstance(msg, Failed):
            logger.error("worker %d could not start: %s", worker, msg.reason)
        elif isinstance(msg, Ready):
            logger.info("worker %d ready (pid %d)", worker, msg.pid)

    def on_restart(self, worker: int, lost: int) -> None:
        with self._lock:
            self.worker_restarts += 1
            self.dropped_total += lost
            orphaned = []
            finished: list[PendingClip] = []
            for st in self.sensors.values():
                if st.worker == worker and st.last_arrival is not None:
                    st.new_streams += 1
                    st.last_error = f"worker {worker} restarted; {lost} queued frame(s) of its sensors lost"
                    st.last_timestamp = None
                    st.tracks.clear()
                    st.active_alerts.clear()
                    finished += self._new_stream(st)
                    orphaned.append(st.sensor_id)
            for sensor_id in set(self.sensors) | set(self._api_layouts):
                if worker_for(sensor_id, self.n_workers) == worker:
                    self._send_layout(sensor_id, force=True)  # the new process knows no room
        self._save_clips(finished)
        # The dead worker's monitor took its alerts' state along: nothing would ever end them.
        for row in self.store.end_all_active(orphaned, why=f"worker {worker} died; its model state is gone"):
            self.notifier.notify("ended", row)
            self._emit({"type": "alert", "alert": row, "actions": ["ended"]})

    def _on_round(self, r: Round) -> None:
        rows = []
        events = []
        now = time.time()
        fi = self.info.fall_index
        with self._lock:
            for e in r.errors:
                st = self.sensors.get(e.sensor_id)
                if st is None:
                    continue
                st.invalid_frames += e.count
                st.last_error = f"sensor {e.sensor_id}: {e.count} frame(s) refused: {e.message}"
                logger.warning(st.last_error)
            if r.forward_passes:
                self._model_ms.extend([1000 * r.model_s / r.forward_passes] * r.forward_passes)
            for p in r.predictions:
                st = self.sensors.get(p.sensor_id)
                if st is None:
                    continue
                k = int(np.argmax(p.scores))
                action = self.info.class_names[k]
                fall = float(p.scores[fi]) if fi is not None else None
                ts, track = p.timestamp, p.track_id
                st.predictions += 1
                st.tracks[track] = (action, float(p.scores[k]), fall, ts)
                last = st.stored_at.get(track)
                every = self.cfg.store_every_seconds * 1000
                if last is None or ts - last[0] >= every or action != last[1] or ts < last[0]:
                    rows.append((p.sensor_id, ts, p.frame_idx, track, action, float(p.scores[k]), fall, *p.box_xyxy))
                    st.stored_at[track] = (ts, action)
                self._latency.append(now - p.arrival_s)
            for sensor, repaired in r.repaired.items():
                st = self.sensors.get(sensor)
                if st is not None:
                    st.repaired_pixels = repaired
            for sensor, lv in r.live.items():
                st = self.sensors.get(sensor)
                if st is None:
                    continue
                st.live = lv
                st.repaired_pixels = lv.repaired_pixels
                live = set(int(t) for t in lv.track_ids)
                for t in [t for t in st.tracks if t not in live and lv.timestamp - st.tracks[t][3] > 10_000]:
                    del st.tracks[t]
        for sensor, why in self.store.add_predictions(rows).items():
            logger.error(why)
            with self._lock:
                st = self.sensors.get(sensor)
                if st is not None:
                    st.last_error = why
        for a in r.alerts:
            events.append(self._on_alert(a))
        # After the alerts: a new alert's clip takes its frames from the ring before the ring
        # moves on to this round's newest processed frame.
        with self._lock:
            for sensor, tracked in r.tracks.items():
                st = self.sensors.get(sensor)
                if st is None or not len(tracked.timestamps):
                    continue
                delay = now - int(tracked.timestamps[-1]) / 1000.0
                st.delays.append((now, delay))
                self._delays.append((now, delay))
                if st.ring is not None:
                    for ts, boxes, ids in tracked:
                        st.ring.attach(ts, boxes, ids)
        self._save_clips(self._take_finished_clips(set(r.tracks)))
        if self.has_listeners:
            for sensor in r.live:
                events.append(self.live(sensor))
        for e in events:
            if e is not None:
                self._emit(e)

    def _on_alert(self, event: AlertEvent) -> dict:
        """Stores one alert event (in the order the worker sent them: a "raised" and the
        "ended" of the same alert may come in one round), starts the clip of a new alert, sends
        the notifications and returns the dashboard event."""
        change = self.store.record_alert(event)
        row = change.alert
        key = (event.track_id, event.start_timestamp)
        with self._lock:
            self.alerts_raised += change.new
            self.alert_repeats += "repeat" in change.actions
            st = self.sensors.get(event.sensor_id)
            if st is not None:
                if event.active:
                    st.active_alerts.add(key)
                else:
                    st.active_alerts.discard(key)
                if change.new and st.ring is not None:
                    self._start_clip(st, row, event)
        if change.new or "repeat" in change.actions:
            logger.warning("FALL ALERT %d%s: sensor %s track %d (score %.2f)%s", row["id"],
                           "" if change.new else f" (repeat {row['repeats']})", event.sensor_id, event.track_id,
                           event.peak_score, "" if event.active else ", already over")
        for action in change.actions:
            self.notifier.notify(action, row)
        return {"type": "alert", "alert": row, "actions": list(change.actions)}

    def set_alert_status(self, alert_id: int, status: str, action: AlertAction) -> dict | None:
        """Acknowledge / resolve (from the API); tells the dashboards and the notification
        destinations. None when there is no such alert.

        Raises:
            AlertIsOngoing: resolving an ongoing alert without ``action.confirm_ongoing``.
        """
        row = self.store.set_alert_status(alert_id, status, action.who, action.note, action.confirm_ongoing)
        if row is not None:
            logger.info("alert %d %s by %s", alert_id, status, action.who)
            self.notifier.notify(status, row, action.who, action.note)
            self._emit({"type": "alert", "alert": row, "actions": [status]})
        return row

    def add_feedback(self, alert_id: int, feedback: Feedback) -> dict | None:
        """Stores an operator's answer on an alert; tells the dashboards. None: no such alert."""
        row = self.store.add_feedback(alert_id, feedback)
        if row is not None:
            logger.info("alert %d: feedback %s%s by %s", alert_id, feedback.answer,
                        f" ({feedback.reason})" if feedback.reason else "", feedback.who)
            self._emit({"type": "alert", "alert": row, "actions": ["feedback"]})
        return row

    # -- clips of alerts

    def _start_clip(self, st: SensorState, row: dict, event: AlertEvent) -> None:
        """Begins the clip of a new alert from the sensor's ring. Call with the lock held."""
        fired = int(event.fired_timestamp)
        clip = PendingClip(row["id"], st.sensor_id, int(event.track_id), int(event.start_timestamp), fired,
                           float(event.peak_score), fired + int(self.cfg.clip_seconds_after * 1000),
                           deadline=time.time() + self.cfg.clip_seconds_after + PENDING_GRACE_S)
        for item in st.ring.since(fired - int(self.cfg.clip_seconds_before * 1000)):
            clip.add(item)
        st.pending_clips.append(clip)

    def _take_finished_clips(self, sensors: set[str] | None = None, now: float | None = None) -> list[PendingClip]:
        """Takes the pending clips (of ``sensors``; None: all) that are complete or overdue."""
        out = []
        with self._lock:
            for st in self.sensors.values():
                if not st.pending_clips or (sensors is not None and st.sensor_id not in sensors):
                    continue
                newest = st.last_timestamp
                done = [c for c in st.pending_clips if c.complete(newest) or c.overdue(now)]
                if done:
                    st.pending_clips = [c for c in st.pending_clips if c not in done]
                    out += done
        return out

    def _save_clips(self, clips: list[PendingClip]) -> None:
        """Writes clips to ``<data_dir>/clips`` and records them; one that cannot be written is
        logged, the rest go on."""
        for p in clips:
            if not p.frames:
                logger.warning("alert %d: no frames for its clip (sensor %s)", p.alert_id, p.sensor_id)
                continue
            path = clip_path(self.cfg.data_dir, p.alert_id)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                Clip.from_pending(p).save(path)
                self.store.set_clip(p.alert_id, path.name)
            except Exception:  # noqa: BLE001 - a full disk must not stop the alerts
                logger.exception("alert %d: its clip could not be saved to %s", p.alert_id, path)
                continue
            self.clips_saved += 1
            row = self.store.alert(p.alert_id)
            if row is not None:
                self._emit({"type": "alert", "alert": row, "actions": ["clip"]})

    def clip(self, alert_id: int) -> Clip | None:
        """The alert's saved clip; None when it has none (not yet complete, deleted, never made)."""
        name = self.store.clip_of(alert_id)
        if name is None:
            return None
        try:
            return Clip.load(self.clips_dir / name)
        except FileNotFoundError:
            return None

    def purge_clips(self, now_ms_: int | None = None) -> int:
        """Deletes the clips of alerts raised more than ``keep_clip_days`` ago; returns how many."""
        before = (now_ms() if now_ms_ is None else now_ms_) - int(self.cfg.keep_clip_days * 86_400_000)
        n = 0
        for alert_id, name in self.store.clips_raised_before(before):
            (self.clips_dir / name).unlink(missing_ok=True)
            self.store.set_clip(alert_id, None)
            n += 1
        if n:
            logger.info("%d alert clips older than %g days deleted", n, self.cfg.keep_clip_days)
        return n

    # -- sensor details

    def sensor_info(self, sensor_id: str) -> dict:
        return self.store.sensor_info(sensor_id)

    def set_sensor_info(self, sensor_id: str, info: SensorInfo) -> dict:
        """Stores a sensor's details; the dashboards get the sensor list again."""
        row = self.store.set_sensor_info(sensor_id, info)
        if self.has_listeners:
            self._emit({"type": "sensors", "sensors": self.sensors_status()})
        return row

    # -- rooms

    def layout_of(self, sensor_id: str) -> RoomLayout:
        """The sensor's room now: zones set through the API, else the layout file's at its latest
        frame time (now before any frame), else :data:`NO_LAYOUT`."""
        with self._lock:
            api = self._api_layouts.get(sensor_id)
            if api is not None:
                return api
            if self.rooms is None:
                return NO_LAYOUT
            st = self.sensors.get(sensor_id)
            t = st.last_timestamp if st is not None and st.last_timestamp is not None else now_ms()
            return self.rooms.layout_for(sensor_id, None, t)

    def _send_layout(self, sensor_id: str, force: bool = False) -> None:
        with self._lock:
            layout = self.layout_of(sensor_id)
            if not force and self._sent_layouts.get(sensor_id, NO_LAYOUT) == layout:
                return
            self._sent_layouts[sensor_id] = layout
        if self.pool is not None:
            self.pool.set_layout(worker_for(sensor_id, self.n_workers), sensor_id, layout)
        logger.info("sensor %s: room layout from %s (%d zones)", sensor_id, layout.source, len(layout.zones))

    def zones(self, sensor_id: str) -> dict:
        """The sensor's room as the API shows it: where it comes from and its zones."""
        layout = self.layout_of(sensor_id)
        row = self.store.zones(sensor_id) if layout.source == "api" else None
        return {"sensor_id": sensor_id, "source": layout.source, **layout.to_dict(),
                "updated_at": row["updated_at"] if row else None}

    def set_zones(self, sensor_id: str, body: Any) -> dict:
        """Sets a sensor's zones (``{"zones": [...]}``, the layout format of rooms.json): checked,
        stored, sent to its worker, shown to the dashboards.

        Raises:
            RoomsError: the layout cannot be used; the message names the zone.
        """
        layout = parse_layout(body, f"zones of sensor {sensor_id}", "api")
        layout = RoomLayout(layout.zones, "api")  # holds from now: a valid_from means nothing here
        self.store.set_zones(sensor_id, layout.to_dict())
        with self._lock:
            self._api_layouts[sensor_id] = layout
        self._send_layout(sensor_id)
        view = self.zones(sensor_id)
        self._emit({"type": "zones", **view})
        return view

    def delete_zones(self, sensor_id: str) -> dict | None:
        """Forgets the zones set through the API (the layout file's, if any, applies again);
        None when the sensor had none."""
        if not self.store.delete_zones(sensor_id):
            return None
        with self._lock:
            self._api_layouts.pop(sensor_id, None)
        self._send_layout(sensor_id)
        view = self.zones(sensor_id)
        self._emit({"type": "zones", **view})
        return view

    # -- views

    def sensor_status(self, st: SensorState, now: float, open_alerts: dict[str, int],
                      infos: dict[str, dict]) -> dict:
        info = infos.get(st.sensor_id)
        delay, delay_last = st.delay(now)
        return {
            "sensor_id": st.sensor_id, "room": (info["room"] if info else "") or st.sensor_id,
            "resident": info["resident"] if info else "", "bed_label": info["bed_label"] if info else "",
            "status": st.status(now, self.cfg),
            "connected": sum(st.connections.values()),
            "transports": sorted(t for t, n in st.connections.items() if n > 0),
            "worker": st.worker, "fps": round(st.fps(now), 2),
            "last_frame_age_s": None if st.last_arrival is None else round(now - st.last_arrival, 2),
            "frames": st.frames, "dropped": st.dropped, "bad_shape": st.bad_shape, "bad_message": st.bad_message,
            "invalid_frames": st.invalid_frames, "repaired_pixels": st.repaired_pixels,
            "repaired_boxes": st.repaired_boxes, "refused_boxes": st.refused_boxes,
            "new_streams": st.new_streams, "predictions": st.predictions, "last_error": st.last_error,
            "open_alerts": open_alerts.get(st.sensor_id, 0), "fallen": bool(st.active_alerts),
            "delay_s": None if delay is None else round(delay, 3),
            "delay_last_s": None if delay_last is None else round(delay_last, 3),
        }

    def sensors_status(self) -> list[dict]:
        """Every sensor the hub knows, and every sensor described (``PUT /api/sensors/{id}/info``)
        that has not sent anything yet (status "silent")."""
        now = time.time()
        counts = self.store.open_alerts_by_sensor()
        infos = self.store.all_sensor_info()
        with self._lock:
            known = dict(self.sensors)
            rows = {sid: self.sensor_status(st, now, counts, infos) for sid, st in known.items()}
        for sid in infos.keys() - rows.keys():
            rows[sid] = self.sensor_status(SensorState(sid, worker_for(sid, self.n_workers), last_seen=0.0), now,
                                           counts, infos)
        return [rows[sid] for sid in sorted(rows)]

    def live(self, sensor_id: str) -> dict | None:
        """The sensor's newest frame (PNG, the project's colour map), its people and their actions."""
        from PIL import Image

        from thermal_action.visualize import frame_to_rgb

        with self._lock:
            st = self.sensors.get(sensor_id)
            if st is None:
                return None
            lv = st.live
            frame, ts = (lv.frame, lv.timestamp) if lv is not None else (None, None)
            boxes = lv.boxes_xyxy if lv is not None else np.zeros((0, 4), np.float32)
            ids = lv.track_ids if lv is not None else np.zeros(0, np.int64)
            tracks = dict(st.tracks)
            fallen = bool(st.active_alerts)
            falling = {t for t, _ in st.active_alerts}
        png = None
        h, w = self.info.frame_size
        if frame is not None:
            buf = io.BytesIO()
            Image.fromarray(frame_to_rgb(frame)).save(buf, format="PNG")
            png = base64.b64encode(buf.getvalue()).decode()
            h, w = frame.shape
        people = []
        for box, t in zip(boxes, ids):
            action, score, fall, _ = tracks.get(int(t), (None, None, None, None))
            people.append({"track_id": int(t), "box": [round(float(v), 2) for v in box], "action": action,
                           "score": score, "fall_score": fall, "fallen": int(t) in falling})
        return {"type": "live", "sensor_id": sensor_id, "timestamp": ts, "frame_png": png, "height": h, "width": w,
                "tracks": people, "fallen": fallen}

    def _tick_loop(self) -> None:
        while not self._stop.wait(1.0):
            try:
                self.tick()
            except Exception:
                logger.exception("service tick failed")

    def tick(self) -> None:
        """Once a second: silent sensors, ended streams, clips complete or overdue, old predictions
        and clips, the dashboards' sensor list."""
        now = time.time()
        finished: list[PendingClip] = []
        with self._lock:
            for st in self.sensors.values():
                if (st.last_arrival is not None and not st.stream_ended
                        and now - st.last_arrival > self.cfg.end_stream_seconds):
                    st.stream_ended = True
                    st.last_timestamp = None
                    logger.info("sensor %s silent for %.0f s: stream ended", st.sensor_id, now - st.last_arrival)
                    if self.pool is not None:
                        self.pool.end_stream(st.worker, st.sensor_id)
                    finished += self._new_stream(st)
            finished += self._clips_due
            self._clips_due = []
        self._save_clips(finished + self._take_finished_clips(now=now))
        if now - self._last_purge > 600:
            self._last_purge = now
            self.store.purge_predictions(now_ms() - int(self.cfg.keep_hours * 3600 * 1000))
            self.purge_clips()
        if self.has_listeners:
            self._emit({"type": "sensors", "sensors": self.sensors_status()})

    # -- monitoring

    def health(self) -> dict:
        alive = self.pool.alive() if self.pool is not None else 1
        return {"status": "ok" if alive == self.n_workers else "degraded", "workers_alive": alive,
                "workers": self.n_workers, "uptime_s": round(time.time() - self.started, 1)}

    def frames_per_second(self, window: float = 10.0) -> float:
        now = time.time()
        with self._lock:
            n = sum(k for t, k in self._frame_times if now - t <= window)
        return n / window

    def stats(self) -> dict[str, Any]:
        """Numbers for /metrics and benchmarks."""
        now = time.time()
        with self._lock:
            lat = list(self._latency)
            model = list(self._model_ms)
            sensors = list(self.sensors.values())
            statuses = [st.status(now, self.cfg) for st in sensors]
            delays = [d for t, d in self._delays if now - t <= DELAY_WINDOW_S]
            pending_clips = sum(len(st.pending_clips) for st in sensors)
            ring_bytes = sum(st.ring.nbytes for st in sensors if st.ring is not None)
        queues = [s.pending for s in self.pool.slots] if self.pool is not None else [0]
        counts = self.store.count_alerts()
        delay_p95 = _percentile(delays, 95)
        notify = self.notifier.stats()
        return {
            "sensors_total": len(sensors), "sensors_live": statuses.count("live"),
            "sensors_connected": sum(1 for st in sensors if sum(st.connections.values()) > 0),
            "frames_total": self.frames_total, "frames_dropped_total": self.dropped_total,
            "frames_per_second": self.frames_per_second(), "queue_depth": queues,
            "model_ms_p50": _percentile(model, 50), "model_ms_p95": _percentile(model, 95),
            "latency_s_p50": _percentile(lat, 50), "latency_s_p95": _percentile(lat, 95),
            "latency_s_p99": _percentile(lat, 99), "latency_samples": len(lat),
            "predictions_total": sum(st.predictions for st in sensors),
            "bad_frames_total": sum(st.bad_shape + st.bad_message + st.invalid_frames for st in sensors),
            "repaired_pixels_total": sum(st.repaired_pixels for st in sensors),
            "alerts_raised_total": self.alerts_raised, "alert_repeats_total": self.alert_repeats,
            "alerts_open": counts["open"], "alerts_acknowledged": counts["acknowledged"],
            "alerts_resolved": counts["resolved"], "alerts_ongoing": counts["ongoing"],
            "delay_p95_s": delay_p95, "delay_samples": len(delays),
            "behind": delay_p95 is not None and delay_p95 > self.cfg.delay_warning_seconds,
            "delay_warning_seconds": self.cfg.delay_warning_seconds,
            "notify_sent_total": notify["sent"], "notify_dead_letters_total": notify["dead_letters"],
            "notify_queued": notify["queued"], "notify": notify["sinks"],
            "clips_saved_total": self.clips_saved, "clips_pending": pending_clips, "ring_bytes": ring_bytes,
            "worker_restarts_total": self.worker_restarts,
            "workers_alive": self.pool.alive() if self.pool is not None else 1, "workers": self.n_workers,
            "refused_sensors_total": self.refused_sensors, "forgotten_sensors_total": self.forgotten_sensors,
        }

    def metrics_text(self) -> str:
        """Prometheus text exposition of :meth:`stats` and per-sensor counters."""
        s = self.stats()

        def num(v: float | None) -> str:
            return "NaN" if v is None or v != v else repr(float(v))

        lines = []

        def metric(name: str, kind: str, help_: str, samples: list[tuple[str, float]]) -> None:
            lines.append(f"# HELP {name} {help_}")
            lines.append(f"# TYPE {name} {kind}")
            lines.extend(f"{name}{labels} {num(v)}" for labels, v in samples)

        metric("thermal_sensors_total", "gauge", "Sensors known to the service.", [("", s["sensors_total"])])
        metric("thermal_sensors_live", "gauge", "Sensors that sent a frame recently.", [("", s["sensors_live"])])
        metric("thermal_sensors_connected", "gauge", "Sensors with an open connection.", [("", s["sensors_connected"])])
        with self._lock:
            per = [(st.sensor_id, st.frames, st.dropped, st.bad_shape + st.bad_message + st.invalid_frames,
                    st.predictions) for st in self.sensors.values()]
            now = time.time()
            delays = [(st.sensor_id, st.delay(now)[0]) for st in self.sensors.values()]
            boxes = [(st.sensor_id, st.repaired_boxes, st.refused_boxes) for st in self.sensors.values()]
        metric("thermal_frames_total", "counter", "Frames accepted, per sensor.",
               [(f'{{sensor="{sid}"}}', f) for sid, f, *_ in per])
        metric("thermal_frames_dropped_total", "counter", "Frames dropped (queue full or lost in a worker crash).",
               [("", s["frames_dropped_total"])])
        metric("thermal_sensor_frames_dropped_total", "counter", "Frames dropped because the queue was full, per sensor.",
               [(f'{{sensor="{sid}"}}', d) for sid, _, d, *_ in per])
        metric("thermal_sensor_delay_seconds", "gauge",
               "p95 over the last minute of a frame's processing time minus its capture time, per sensor.",
               [(f'{{sensor="{sid}"}}', d) for sid, d in delays if d is not None])
        metric("thermal_delay_seconds", "summary",
               "A frame's processing time minus its capture time, all sensors, over the last minute.",
               [('{quantile="0.95"}', s["delay_p95_s"])])
        metric("thermal_behind", "gauge", "1 when the delay's p95 is above delay_warning_seconds.",
               [("", int(s["behind"]))])
        metric("thermal_bad_frames_total", "counter", "Frames or messages refused, per sensor.",
               [(f'{{sensor="{sid}"}}', b) for sid, _, _, b, _ in per])
        metric("thermal_boxes_repaired_total", "counter", "Gateway boxes clipped to the frame, per sensor.",
               [(f'{{sensor="{sid}"}}', r) for sid, r, _ in boxes])
        metric("thermal_boxes_refused_total", "counter", "Gateway boxes wholly outside the frame, dropped, per sensor.",
               [(f'{{sensor="{sid}"}}', r) for sid, _, r in boxes])
        metric("thermal_predictions_total", "counter", "Person predictions, per sensor.",
               [(f'{{sensor="{sid}"}}', p) for sid, *_, p in per])
        metric("thermal_frames_per_second", "gauge", "Frames accepted per second, last 10 s.",
               [("", s["frames_per_second"])])
        metric("thermal_queue_depth", "gauge", "Frames waiting per worker.",
               [(f'{{worker="{i}"}}', q) for i, q in enumerate(s["queue_depth"])])
        metric("thermal_model_ms", "summary", "Milliseconds per batched forward pass.",
               [('{quantile="0.5"}', s["model_ms_p50"]), ('{quantile="0.95"}', s["model_ms_p95"])])
        metric("thermal_latency_seconds", "summary",
               "Arrival of the frame that completed a window to its prediction stored (beyond the window's lag).",
               [('{quantile="0.5"}', s["latency_s_p50"]), ('{quantile="0.95"}', s["latency_s_p95"]),
                ('{quantile="0.99"}', s["latency_s_p99"])])
        metric("thermal_alerts_total", "counter", "Fall alerts raised.", [("", s["alerts_raised_total"])])
        metric("thermal_alerts_open", "gauge", "Alerts nobody acknowledged yet.", [("", s["alerts_open"])])
        metric("thermal_alert_repeats_total", "counter", "Raises folded into an unacknowledged alert of the same person.",
               [("", s["alert_repeats_total"])])
        metric("thermal_notify_sent_total", "counter", "Alert notifications delivered, per destination.",
               [(f'{{sink="{k}"}}', v["sent"]) for k, v in s["notify"].items()])
        metric("thermal_notify_dead_letters_total", "counter",
               "Alert notifications given up (retries spent, queue full, service stopped), per destination.",
               [(f'{{sink="{k}"}}', v["dead_letters"]) for k, v in s["notify"].items()])
        metric("thermal_clips_saved_total", "counter", "Alert clips saved.", [("", s["clips_saved_total"])])
        metric("thermal_sensors_refused_total", "counter", "New sensor ids refused: max_sensors reached.",
               [("", s["refused_sensors_total"])])
        metric("thermal_sensors_forgotten_total", "counter", "Sensors forgotten to make room for new ones.",
               [("", s["forgotten_sensors_total"])])
        metric("thermal_worker_restarts_total", "counter", "Worker processes restarted.",
               [("", s["worker_restarts_total"])])
        metric("thermal_workers_alive", "gauge", "Worker processes running.", [("", s["workers_alive"])])
        return "\n".join(lines) + "\n"
