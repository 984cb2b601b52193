"""The service's centre: frames in, routed to the worker that owns their sensor, worker results
turned into stored predictions, alerts, clips and dashboard events.

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

Rooms: each sensor's zones (:mod:`~thermal_action.serve.zones`) go to its worker ahead of the
frames they hold for.

Alerts: each event of the fall monitor is recorded by the store, which makes it a new alert,
folds it into an unacknowledged alert of the same person (a "repeat") or ends an alert
(:mod:`~thermal_action.serve.store`); each of these, and every acknowledgement and resolution,
goes to the dashboards and to the notification destinations (:mod:`~thermal_action.serve.notify`,
never waited for). A new alert starts its clip (:mod:`~thermal_action.serve.clips`): the hub
keeps every sensor's recent frames and the boxes its worker tracked in them.

How far behind: each sensor's delay samples (:mod:`~thermal_action.serve.sensors`); the
service is ``behind`` when the p95 of all sensors' samples of the last minute passes
``delay_warning_seconds``. Frames dropped are counted as they are dropped and the dashboards
told at once (a ``sensor`` event, at most every :data:`DROP_EVENT_INTERVAL_S` per sensor).

The hub coordinates; the parts live beside it: each sensor's state in
:mod:`~thermal_action.serve.sensors`, which worker owns a sensor and what it was told in
:mod:`~thermal_action.serve.routing`, what a worker's round does to the sensors' state in
:mod:`~thermal_action.serve.results`, what the dashboards show in
:mod:`~thermal_action.serve.views`, counters and ``/metrics`` in
:mod:`~thermal_action.serve.monitoring`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from thermal_action.data.rooms import RoomLayout, RoomMap
from thermal_action.inference.alerts import AlertEvent
from thermal_action.serve.alert_clips import AlertClips, take_finished
from thermal_action.serve.clips import Clip, PendingClip, ring_for
from thermal_action.serve.config import ServeConfig
from thermal_action.serve.messages import Failed, OutboxMessage, QueuedFrame, Ready, Round
from thermal_action.serve.model import ModelInfo
from thermal_action.serve.monitoring import Monitor, SensorNumbers
from thermal_action.serve.notify import Notifier
from thermal_action.serve.operators import AlertAction, Feedback, SensorInfo
from thermal_action.serve.protocol import FrameFormatError, FrameIn, check_sensor_id, dropped_error
from thermal_action.serve.results import record_round, record_tracks
from thermal_action.serve.routing import MovePolicy, Router
from thermal_action.serve.sensors import SensorState, SensorTable
from thermal_action.serve.store import Store, now_ms
from thermal_action.serve.views import live_view, sensor_status, snapshot
from thermal_action.serve.workers import WorkerPool
from thermal_action.serve.zones import SensorRooms

logger = logging.getLogger(__name__)

#: A sensor dropping frames tells the dashboards at most this often.
DROP_EVENT_INTERVAL_S = 0.5


@dataclass
class SubmitResult:
    """What became of one ingest message's frames."""

    accepted: int = 0
    dropped: int = 0
    errors: list[str] = field(default_factory=list)


class Hub:
    """Frames in, results out (module docstring).

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
        self._lock = threading.RLock()
        self._listeners: list[Callable[[dict], None]] = []
        self.table = SensorTable(
            cfg.max_sensors, cfg.forget_sensor_seconds,
            make_ring=lambda: ring_for(cfg.clip_seconds_before, info.lag_frames / cfg.fps, cfg.fps),
            home=lambda sensor_id: self.router.home(sensor_id))
        self.router = Router(pool, cfg.max_queue_frames, MovePolicy(cfg.move_queue_frames, cfg.move_interval_seconds),
                             self.table.get)
        self.monitor = Monitor()
        self.monitor.collect_from(self.stats, self._sensor_numbers)
        self.notifier = notifier if notifier is not None else Notifier()
        self.clips = AlertClips(cfg.data_dir, cfg.clip_seconds_before, cfg.clip_seconds_after, cfg.keep_clip_days,
                                store, on_saved=self._clip_saved)
        self._clips_due: list[PendingClip] = []  # ended with their stream on the ingest path: saved by the tick
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._last_purge = 0.0
        self.rooms = SensorRooms(store, rooms)

    @property
    def sensors(self) -> dict[str, SensorState]:
        """Sensor id -> state (read with the lock held, or in tests)."""
        return self.table.sensors

    @property
    def n_workers(self) -> int:
        return self.router.n_workers

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
            pending = [p for st in self.table for p in st.pending_clips] + self._clips_due
            self._clips_due = []
            for st in self.table:
                st.pending_clips = []
        self.clips.save(pending)
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

    def connected(self, sensor_id: str, transport: str) -> None:
        with self._lock:
            st = self.table.get_or_add(sensor_id)
            if st is not None:
                st.connections[transport] = st.connections.get(transport, 0) + 1

    def disconnected(self, sensor_id: str, transport: str) -> None:
        with self._lock:
            st = self.table.get(sensor_id)
            if st is not None and st.connections.get(transport, 0) > 0:
                st.connections[transport] -= 1

    def reject(self, sensor_id: str | None, transport: str, reason: str) -> None:
        """Counts a message that could not be decoded."""
        logger.warning("sensor %s (%s): message refused: %s", sensor_id, transport, reason)
        with self._lock:
            st = self.table.get_or_add(sensor_id) if sensor_id else None
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
            st = self.table.get_or_add(sensor_id, now)
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
                    if not st.stream_ended:
                        self.router.end_stream(st)
                    finished += st.new_stream()
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
                self.monitor.frames_accepted(now, out.accepted)
            tell_drops = out.dropped > 0 and now - st.drop_event_at >= DROP_EVENT_INTERVAL_S
            if tell_drops:
                st.drop_event_at = now
            self._clips_due += finished  # written by the tick thread, not on the ingest path
        if bad_shapes:
            logger.warning(out.errors[-1])
        if tell_drops and self.has_listeners:
            self._emit(self._sensor_event(st, now))
        return out

    def _queue(self, st: SensorState, frames: list[QueuedFrame], out: SubmitResult) -> None:
        moved = self.router.consider_move(st, time.time())
        if moved:
            logger.warning("sensor %s %s", st.sensor_id, moved)
        self._send_layout(st.sensor_id)  # a new room (first frames, a valid_from passed, a move) goes ahead of them
        if self.router.put(st, frames):
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
            self.monitor.frames_dropped(len(frames))
            msg = dropped_error(st.sensor_id, len(frames),
                                f"worker {st.worker} has {self.cfg.max_queue_frames} frames waiting")
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
            self.monitor.worker_restarted(lost)
            orphaned = []
            finished: list[PendingClip] = []
            for st in self.table:
                if st.worker == worker and st.last_arrival is not None:
                    st.new_streams += 1
                    st.last_error = f"worker {worker} restarted; {lost} queued frame(s) of its sensors lost"
                    st.last_timestamp = None
                    st.tracks.clear()
                    st.active_alerts.clear()
                    st.alert_peaks.clear()
                    finished += st.new_stream()
                    orphaned.append(st.sensor_id)
            self.router.worker_restarted(worker)  # the new process knows no room
            for sensor_id in set(self.sensors) | set(self.rooms.api):
                if self.router.worker_of(sensor_id) == worker:
                    self._send_layout(sensor_id)
        self.clips.save(finished)
        # The dead worker's monitor took its alerts' state along: nothing would ever end them.
        for row in self.store.end_all_active(orphaned, why=f"worker {worker} died; its model state is gone"):
            self.notifier.notify("ended", row)
            self._emit({"type": "alert", "alert": row, "actions": ["ended"]})

    def _on_round(self, r: Round) -> None:
        events = []
        now = time.time()
        with self._lock:
            rows, latencies = record_round(self.table, r, self.info, self.cfg.store_every_seconds, now)
        for sensor, why in self.store.add_predictions(rows).items():
            logger.error(why)
            with self._lock:
                st = self.table.get(sensor)
                if st is not None:
                    st.last_error = why
        for a in r.alerts:
            events.append(self._on_alert(a))
        with self._lock:  # after the alerts: a new alert's clip takes its frames from the ring first
            delays = record_tracks(self.table, r, now)
        self.monitor.model(r.model_s, r.forward_passes)
        for seconds in latencies:
            self.monitor.latency(seconds)
        for seconds in delays:
            self.monitor.delay(now, seconds)
        self.clips.save(self._take_finished_clips(set(r.tracks)))
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
        self.monitor.alert(change.new, "repeat" in change.actions)
        with self._lock:
            st = self.table.get(event.sensor_id)
            if st is not None:
                if event.active:
                    st.active_alerts.add(key)
                    st.alert_peaks[event.track_id] = max(event.peak_score, st.alert_peaks.get(event.track_id, 0.0))
                else:
                    st.active_alerts.discard(key)
                    if not any(t == event.track_id for t, _ in st.active_alerts):
                        st.alert_peaks.pop(event.track_id, None)
                if change.new and st.ring is not None:
                    self.clips.start(st, row, event)
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

    def clip(self, alert_id: int) -> Clip | None:
        """The alert's saved clip; None when it has none (not yet complete, deleted, never made)."""
        return self.clips.load(alert_id)

    def purge_clips(self, now_ms_: int | None = None) -> int:
        """Deletes the clips of alerts raised more than ``keep_clip_days`` ago; returns how many."""
        return self.clips.purge(now_ms_)

    def _take_finished_clips(self, sensors: set[str] | None = None, now: float | None = None) -> list[PendingClip]:
        with self._lock:
            return take_finished(self.table, sensors, now)

    def _clip_saved(self, row: dict | None) -> None:
        self.monitor.clip_saved()
        if row is not None:
            self._emit({"type": "alert", "alert": row, "actions": ["clip"]})

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
        """The sensor's room now (:mod:`~thermal_action.serve.zones`)."""
        with self._lock:
            st = self.table.get(sensor_id)
            return self.rooms.layout(sensor_id, st.last_timestamp if st is not None else None)

    def _send_layout(self, sensor_id: str) -> None:
        """Sends the sensor's room to its worker when that worker does not have it yet."""
        with self._lock:
            layout = self.layout_of(sensor_id)
            if not self.router.send_layout(sensor_id, layout):
                return
        logger.info("sensor %s: room layout from %s (%d zones)", sensor_id, layout.source, len(layout.zones))

    def zones(self, sensor_id: str) -> dict:
        """The sensor's room as the API shows it: where it comes from and its zones."""
        return self.rooms.view(sensor_id, self.layout_of(sensor_id))

    def set_zones(self, sensor_id: str, body: Any) -> dict:
        """Sets a sensor's zones (``{"zones": [...]}``, the layout format of rooms.json): checked,
        stored, sent to its worker, shown to the dashboards.

        Raises:
            RoomsError: the layout cannot be used; the message names the zone.
        """
        with self._lock:
            self.rooms.set(sensor_id, body)
        return self._zones_changed(sensor_id)

    def delete_zones(self, sensor_id: str) -> dict | None:
        """Forgets the zones set through the API (the layout file's, if any, applies again);
        None when the sensor had none."""
        with self._lock:
            if not self.rooms.delete(sensor_id):
                return None
        return self._zones_changed(sensor_id)

    def _zones_changed(self, sensor_id: str) -> dict:
        self._send_layout(sensor_id)
        view = self.zones(sensor_id)
        self._emit({"type": "zones", **view})
        return view

    # -- views

    def sensors_status(self) -> list[dict]:
        """Every sensor the hub knows, and every sensor described (``PUT /api/sensors/{id}/info``)
        that has not sent anything yet (status "silent")."""
        now = time.time()
        counts = self.store.open_alerts_by_sensor()
        infos = self.store.all_sensor_info()
        silent = self.cfg.silent_seconds
        with self._lock:
            rows = {st.sensor_id: sensor_status(st, now, silent, counts, infos) for st in self.table}
        for sid in infos.keys() - rows.keys():
            rows[sid] = sensor_status(SensorState(sid, self.router.home(sid), last_seen=0.0), now, silent, counts,
                                      infos)
        return [rows[sid] for sid in sorted(rows)]

    def _sensor_event(self, st: SensorState, now: float) -> dict:
        return {"type": "sensor", "sensor": sensor_status(st, now, self.cfg.silent_seconds,
                                                          self.store.open_alerts_by_sensor(),
                                                          self.store.all_sensor_info())}

    def live(self, sensor_id: str) -> dict | None:
        """The sensor's newest frame (PNG, the project's colour map), its people and their actions."""
        with self._lock:
            st = self.table.get(sensor_id)
            if st is None:
                return None
            view = snapshot(st)
        return live_view(view, self.info.frame_size)

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
            for st in self.table:
                if (st.last_arrival is not None and not st.stream_ended
                        and now - st.last_arrival > self.cfg.end_stream_seconds):
                    st.stream_ended = True
                    st.last_timestamp = None
                    logger.info("sensor %s silent for %.0f s: stream ended", st.sensor_id, now - st.last_arrival)
                    self.router.end_stream(st)
                    finished += st.new_stream()
            finished += self._clips_due
            self._clips_due = []
        self.clips.save(finished + self._take_finished_clips(now=now))
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
                "workers": self.n_workers, "uptime_s": round(time.time() - self.monitor.started, 1)}

    def stats(self) -> dict[str, Any]:
        """Numbers for ``/api/stats``, ``/metrics`` and benchmarks."""
        now = time.time()
        silent = self.cfg.silent_seconds
        with self._lock:
            sensors = list(self.table)
            statuses = [st.status(now, silent) for st in sensors]
            pending_clips = sum(len(st.pending_clips) for st in sensors)
            ring_bytes = sum(st.ring.nbytes for st in sensors if st.ring is not None)
            refused, forgotten = self.table.refused, self.table.forgotten
            moves = sum(st.moves for st in sensors)
        samples = self.monitor.samples(now)
        counts = self.store.count_alerts()
        notify = self.notifier.stats()
        delay_p95 = samples["delay_p95_s"]
        return {
            "sensors_total": len(sensors), "sensors_live": statuses.count("live"),
            "sensors_connected": sum(1 for st in sensors if st.connected > 0),
            **samples, "queue_depth": self.router.loads(),
            "predictions_total": sum(st.predictions for st in sensors),
            "bad_frames_total": sum(st.bad_shape + st.bad_message + st.invalid_frames for st in sensors),
            "repaired_pixels_total": sum(st.repaired_pixels for st in sensors),
            "alerts_open": counts["open"], "alerts_acknowledged": counts["acknowledged"],
            "alerts_resolved": counts["resolved"], "alerts_ongoing": counts["ongoing"],
            "behind": delay_p95 is not None and delay_p95 > self.cfg.delay_warning_seconds,
            "delay_warning_seconds": self.cfg.delay_warning_seconds,
            "notify_sent_total": notify["sent"], "notify_dead_letters_total": notify["dead_letters"],
            "notify_queued": notify["queued"], "notify": notify["sinks"],
            "clips_pending": pending_clips, "ring_bytes": ring_bytes, "sensor_moves_total": moves,
            "workers_alive": self.pool.alive() if self.pool is not None else 1, "workers": self.n_workers,
            "refused_sensors_total": refused, "forgotten_sensors_total": forgotten,
        }

    def _sensor_numbers(self) -> list[SensorNumbers]:
        now = time.time()
        with self._lock:
            return [SensorNumbers.of(st, now) for st in self.table]

    def metrics_text(self) -> str:
        """The Prometheus text exposition (:mod:`~thermal_action.serve.monitoring`)."""
        return self.monitor.metrics_text()
