"""The senders: one thread per sensor sends its frames on schedule; :func:`replay` runs them."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from thermal_action.errors import ReplayAuthError
from thermal_action.serve.protocol import (
    MQTT_FRAMES_TOPIC,
    IngestLimits,
    dropped_in,
    encode_frames,
)
from thermal_action.serve.replay.recordings import (
    RawRecording,
    read_raw_recording,
    schedule,
    sensor_ids,
)
from thermal_action.serve.replay.summary import (
    ReplaySummary,
    SensorReport,
    count_drops,
    server_drop_counters,
)
from thermal_action.serve.replay.transports import (
    BACKOFF,
    HttpTransport,
    MqttLink,
    MqttTransport,
    WsTransport,
)

logger = logging.getLogger(__name__)

#: The topic ``replay`` publishes to by default (the service's default subscription).
DEFAULT_TOPIC = MQTT_FRAMES_TOPIC
#: Frames in one message at most when a sender catches up: what the service takes by default.
MAX_BATCH_FRAMES = IngestLimits().max_frames


@dataclass
class _Clock:
    """The replay's common start, set once every sender has connected (or tried to)."""

    go: threading.Event = field(default_factory=threading.Event)
    t0: float = 0.0  # monotonic seconds
    epoch0_ms: float = 0.0  # the same instant, ms since epoch
    stop_at: float | None = None  # monotonic seconds


class _Sender(threading.Thread):
    """Sends one sensor's frames on schedule over its transport."""

    def __init__(self, report: SensorReport, rec: RawRecording, transport: Any, clock: _Clock, delay: float,
                 speed: float, loop: bool, stop: threading.Event, late_ms: float, linger: float):
        super().__init__(name=f"replay-{report.sensor_id}", daemon=True)
        self.report, self.rec, self.transport = report, rec, transport
        self.clock, self.delay = clock, delay
        self.ready = threading.Event()
        self.start_wall = 0.0  # monotonic seconds, once the clock starts
        self.epoch0_ms = 0.0
        self.speed, self.loop, self.stop_event = speed, loop, stop
        self.late_s = late_ms / 1000.0
        self.linger = linger
        self.connected = False
        self.retry_at = 0.0
        self.backoff = BACKOFF[0]
        self.last_ts = -1

    def run(self) -> None:
        try:
            self._run()
        except Exception as e:  # noqa: BLE001 - reported, not raised in a thread
            logger.exception("replay %s: sender failed", self.report.sensor_id)
            self.report.fatal = f"{type(e).__name__}: {e}"
        finally:
            errors = self.transport.close(self.linger if self.connected else 0.0)
            self._server_errors(errors)
            self.report.frames_dropped += dropped_in(errors)  # notices about the last frames

    def _run(self) -> None:
        # Connect before the clock starts: the first frames are not late by the handshake.
        try:
            self._connect()
        except ReplayAuthError as e:
            self._fatal(e, 0)
        except (OSError, TimeoutError) as e:
            self._lost(f"cannot connect: {e or type(e).__name__}", 0)
        finally:
            self.ready.set()
        while not self.clock.go.wait(0.1):
            if self.stop_event.is_set():
                return
        if self.report.fatal:
            return
        self.start_wall = self.clock.t0 + self.delay
        self.epoch0_ms = self.clock.epoch0_ms + self.delay * 1000.0
        self.stop_at = self.clock.stop_at
        items = schedule(self.rec.timestamps, self.speed, self.loop)
        pending = next(items, None)
        while pending is not None and not self.stop_event.is_set():
            due = self.start_wall + pending[1]
            if self.stop_at is not None and due >= self.stop_at:
                return
            wait = due - time.monotonic()
            if wait > 0 and self.stop_event.wait(wait):
                return
            now = time.monotonic()
            batch: list[tuple[int, float]] = []
            while pending is not None and self.start_wall + pending[1] <= now and len(batch) < MAX_BATCH_FRAMES:
                batch.append(pending)
                if pending[0] == 0:
                    self.report.repetitions += 1
                pending = next(items, None)
            lag = now - (self.start_wall + batch[0][1])
            self.report.max_lag_ms = max(self.report.max_lag_ms, lag * 1000.0)
            self.report.frames_late += sum(now - (self.start_wall + s) > self.late_s for _, s in batch)
            if not self._send(batch):
                return

    def _timestamps(self, batch: list[tuple[int, float]]) -> list[int]:
        out = []
        for _, s in batch:
            ts = max(int(round(self.epoch0_ms + s * 1000.0)), self.last_ts + 1)
            out.append(ts)
            self.last_ts = ts
        return out

    def _send(self, batch: list[tuple[int, float]]) -> bool:
        """Sends ``batch``; False when the sensor must stop (refused token)."""
        r = self.report
        stamps = self._timestamps(batch)
        if not self.connected:
            if time.monotonic() < self.retry_at:
                r.frames_failed += len(batch)
                return True
            try:
                self._connect()
            except ReplayAuthError as e:
                return self._fatal(e, len(batch))
            except (OSError, TimeoutError) as e:
                self._lost(f"cannot connect: {e or type(e).__name__}", len(batch))
                return True
        payload = encode_frames(self.rec.frames[[i for i, _ in batch]], stamps)
        try:
            errors, dropped = self.transport.send(payload, len(batch))
        except ReplayAuthError as e:
            return self._fatal(e, len(batch))
        except (OSError, TimeoutError) as e:
            self.transport.close()
            self.connected = False
            self._lost(str(e) or type(e).__name__, len(batch))
            return True
        r.frames_sent += len(batch)
        r.messages_sent += 1
        r.frames_dropped += dropped
        self._server_errors(errors)
        return True

    def _connect(self) -> None:
        self.transport.connect()
        if self.report.messages_sent or self.report.frames_failed or self.report.errors:
            self.report.reconnects += 1
        self.connected, self.backoff = True, BACKOFF[0]

    def _server_errors(self, errors: list[str]) -> None:
        for e in errors:
            self.report.server_errors += 1
            self.report.note(f"server: {e}")

    def _lost(self, why: str, n: int) -> None:
        if not self.report.errors or not self.report.errors[-1].endswith(why):
            logger.warning("replay %s: %s; retrying in %.1f s", self.report.sensor_id, why, self.backoff)
        self.report.note(f"connection: {why}")
        self.report.frames_failed += n
        self.retry_at = time.monotonic() + self.backoff
        self.backoff = min(self.backoff * 2, BACKOFF[1])

    def _fatal(self, e: Exception, n: int) -> bool:
        logger.error("replay %s: %s; this sensor stops", self.report.sensor_id, e)
        self.report.fatal = str(e)
        self.report.frames_failed += n
        return False


def replay(
    recordings: Sequence[str | Path],
    to: str,
    token: str = "",
    speed: float = 1.0,
    loop: bool = False,
    sensors: int | None = None,
    topic: str = DEFAULT_TOPIC,
    duration: float | None = None,
    stagger_seconds: float = 1.0,
    late_ms: float = 100.0,
    qos: int = 0,
    timeout: float = 5.0,
    progress: Callable[[ReplaySummary], None] | None = None,
    progress_every: float = 5.0,
    stop: threading.Event | None = None,
) -> ReplaySummary:
    """Sends recordings as live sensors to a running service (:mod:`thermal_action.serve.replay`).

    Args:
        recordings: ``.h5`` files (or directories of them).
        to: ``ws://HOST:PORT``, ``http://HOST:PORT`` (or wss/https) or ``mqtt://HOST:PORT``.
        token: the service's access token (WebSocket and HTTP).
        speed: playback speed (2: twice real time).
        loop: repeat the recordings until ``duration`` (or Ctrl-C / ``stop``).
        sensors: sensors to replay as; None: one per recording (:func:`sensor_ids`).
        topic: MQTT topic, ``{sensor}`` replaced by the sensor id.
        duration: stop after this many seconds (None: when the recordings end).
        stagger_seconds: sensor ``j`` of ``N`` starts ``j / N * stagger_seconds`` late.
        late_ms: a frame sent more than this after its scheduled time counts as late.
        qos: MQTT quality of service.
        timeout: seconds to wait for a connection or an answer.
        progress: called with the summary so far every ``progress_every`` seconds.
        progress_every: see ``progress``.
        stop: set it to stop early (from another thread).

    Returns:
        The :class:`ReplaySummary`.

    Raises:
        DatasetError: a recording cannot be read.
        ValueError: an unknown target scheme or a bad argument.
    """
    scheme = urlsplit(to).scheme
    if scheme not in ("ws", "wss", "http", "https", "mqtt", "tcp") or not urlsplit(to).hostname:
        raise ValueError(f"--to {to!r}: expected ws://HOST:PORT, http://HOST:PORT or mqtt://HOST:PORT")
    if speed <= 0:
        raise ValueError(f"speed must be > 0, got {speed}")
    if scheme in ("mqtt", "tcp") and "{sensor}" not in topic:
        raise ValueError(f"MQTT topic {topic!r} must contain {{sensor}} (where the sensor id goes)")
    from thermal_action.data.hdf5 import find_recordings

    paths = find_recordings(recordings)
    recs = [read_raw_recording(p) for p in paths]
    ids = sensor_ids([r.name for r in recs], sensors)
    stop = stop or threading.Event()
    summary = ReplaySummary(target=to, speed=speed, loop=loop)
    link = MqttLink(to, qos, timeout) if scheme in ("mqtt", "tcp") else None
    counters_before = None if link is not None else server_drop_counters(to, token, timeout)
    clock = _Clock()
    threads = []
    try:
        for j, (sid, k) in enumerate(ids):
            report = SensorReport(sid, str(recs[k].path))
            summary.sensors.append(report)
            if link is not None:
                transport: Any = MqttTransport(link, topic.replace("{sensor}", sid))
            elif scheme.startswith("ws"):
                transport = WsTransport(to, sid, token, timeout)
            else:
                transport = HttpTransport(to, sid, token, timeout)
            delay = j / len(ids) * stagger_seconds if len(ids) > 1 else 0.0
            threads.append(_Sender(report, recs[k], transport, clock, delay, speed, loop, stop, late_ms,
                                   linger=min(timeout, 0.5)))
        for th in threads:
            th.start()
        ready_by = time.monotonic() + timeout + 1.0
        for th in threads:
            th.ready.wait(max(0.0, ready_by - time.monotonic()))
        clock.t0, clock.epoch0_ms = time.monotonic(), time.time() * 1000.0
        clock.stop_at = None if duration is None else clock.t0 + duration
        clock.go.set()
        t0 = clock.t0
        next_progress = t0 + progress_every
        try:
            while True:
                alive = [th for th in threads if th.is_alive()]
                if not alive:
                    break
                alive[0].join(timeout=0.1)
                if progress is not None and time.monotonic() >= next_progress:
                    summary.seconds = time.monotonic() - t0
                    progress(summary)
                    next_progress += progress_every
        except KeyboardInterrupt:
            summary.interrupted = True
            stop.set()
            for th in threads:
                th.join(timeout=timeout)
    finally:
        stop.set()
        if link is not None:
            link.close()
    summary.seconds = time.monotonic() - t0
    count_drops(summary, to, token, timeout, counters_before, mqtt=link is not None)
    return summary
