"""Replay recordings as live sensors into ``thermal-action serve`` (for tests, demos, benchmarks).

``replay(["a.h5", "b.h5"], "ws://127.0.0.1:8765", token=...)`` sends each recording as one
sensor, frame by frame at the times the recording was captured: frame ``i`` leaves at
``start + (t_i - t_0) / speed``, so the sensor's bursts (steps of ~165 ms, a ~0.5 s gap, 2-3
frames ~37 ms apart, gaps of seconds) reach the service as they would live. The frames go as
stored in the file, dropped packets (0 K tails) included: repairing them is the service's job.

Timestamps. Each sent frame carries its scheduled send time (ms since epoch): the replay's
first frame is "now", and the steps are the recording's divided by ``speed``. With ``loop``
the recording starts again one typical frame step (the median step) after its last frame, so
the timestamps keep increasing across repetitions. They are made strictly increasing (a
recording whose timestamps repeat or go backwards is sent with 1 ms steps there).

Sensors. One per recording, named by the file stem; ``sensors=N`` more than the recordings
cycles them with ids ``<stem>-<k>`` (``k``: the copy, from 0). Sensor ``j`` of ``N`` starts
``j / N * stagger_seconds`` late, so copies of one recording do not all burst at once.

Targets (one connection per sensor, except MQTT: one client for all):

- ``ws://HOST:PORT``: WebSocket ``/ws/sensors/{id}?token=...``, one binary message (TAF1
  records, :func:`~thermal_action.serve.protocol.encode_frames`) per send; the server's JSON
  error messages are counted.
- ``http://HOST:PORT``: ``POST /api/sensors/{id}/frames`` with ``Authorization: Bearer``,
  binary body; the answer's ``errors`` and ``dropped`` are counted.
- ``mqtt://HOST:PORT``: publish to ``topic`` (``{sensor}`` replaced by the id).

Drops. What the server dropped (its queue full) is what it says: the HTTP answers'
``dropped``, the WebSocket error messages that say ``N frame(s) dropped``, and, when the
service's ``/api/sensors`` answers the token, each sensor's ``dropped`` counter read before
and after the replay (the difference wins over the messages: the counters miss nothing).
Over MQTT the broker answers nothing about the service: the drops are unknown (``None``).

A send normally holds one frame; frames that are already due when the sender gets to them
(it fell behind) go together in one message and count as late when more than
``late_ms`` behind the schedule. When the server goes away the sender reconnects with an
exponential backoff (0.2 s doubling up to 5 s); the frames due meanwhile are not sent
(counted as failed), like a live sensor's, and the schedule goes on in real time. A refused
token (HTTP 401 / WebSocket close 4401) stops that sensor: retrying cannot help.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import numpy as np

from thermal_action.errors import ReplayAuthError
from thermal_action.serve.protocol import (
    MQTT_FRAMES_TOPIC,
    WS_UNAUTHORIZED,
    IngestLimits,
    check_sensor_id,
    dropped_in,
    encode_frames,
)

logger = logging.getLogger(__name__)

#: The topic ``replay`` publishes to by default (the service's default subscription).
DEFAULT_TOPIC = MQTT_FRAMES_TOPIC
#: Frames in one message at most when a sender catches up: what the service takes by default.
MAX_BATCH_FRAMES = IngestLimits().max_frames
#: Server errors kept per sensor (the rest only counted).
KEEP_ERRORS = 5
_BACKOFF = (0.2, 5.0)  # first and largest wait before reconnecting, seconds
_FALLBACK_STEP_MS = 1000.0 / 6.0  # one frame of a ~6 Hz sensor, for one-frame recordings


# -- recordings and schedule ------------------------------------------------------------------


@dataclass
class RawRecording:
    """One recording as stored (no repair).

    Attributes:
        path: the HDF5 file.
        frames: ``(N, H, W)`` float32 temperatures as stored, dropped packets included.
        timestamps: ``(N,)`` int64 capture times, ms since epoch.
    """

    path: Path
    frames: np.ndarray
    timestamps: np.ndarray

    @property
    def name(self) -> str:
        """The file stem."""
        return self.path.stem


def read_raw_recording(path: str | Path) -> RawRecording:
    """Reads the ``frames`` and ``timestamps`` of a recording exactly as stored (``docs/data-format.md``).

    The reader's :func:`~thermal_action.data.hdf5.read_raw` (same checks as
    ``read_recording``), with nothing repaired: a replayed sensor sends what the real one
    sent (as float32, the wire format's type).

    Raises:
        DatasetError: as :func:`~thermal_action.data.hdf5.read_raw`.
    """
    from thermal_action.data.hdf5 import read_raw

    path = Path(path)
    frames, timestamps, _, _ = read_raw(path)
    return RawRecording(path, np.asarray(frames, dtype=np.float32), timestamps)


def frame_step_ms(timestamps: np.ndarray) -> float:
    """The recording's typical step: the median of its positive timestamp steps (ms)."""
    d = np.diff(np.asarray(timestamps, dtype=np.int64))
    d = d[d > 0]
    return float(np.median(d)) if d.size else _FALLBACK_STEP_MS


def schedule(timestamps: np.ndarray, speed: float = 1.0, loop: bool = False) -> Iterator[tuple[int, float]]:
    """When each frame of a recording is sent: ``(frame index, seconds after the sensor's start)``.

    Frame ``i`` of repetition ``r`` is due at ``(t_i - t_0 + r * cycle) / speed`` ms, where
    ``cycle`` is the recording's span plus one :func:`frame_step_ms`; times never go backwards
    (a recording whose timestamps do keeps the previous time).

    Args:
        timestamps: ``(N,)`` the recording's timestamps (ms).
        speed: playback speed (2: twice as fast).
        loop: repeat forever (the iterator never ends) instead of once.

    Yields:
        ``(i, seconds)`` in send order.
    """
    if speed <= 0:
        raise ValueError(f"speed must be > 0, got {speed}")
    t = np.asarray(timestamps, dtype=np.int64)
    rel = np.maximum.accumulate(t - t[0]).astype(np.float64)  # (N,) ms since the first frame
    cycle = float(rel[-1]) + frame_step_ms(t)
    r = 0
    while True:
        base = r * cycle
        for i, ms in enumerate(rel):
            yield i, (base + float(ms)) / speed / 1000.0
        if not loop:
            return
        r += 1


def sensor_ids(names: Sequence[str], sensors: int | None = None) -> list[tuple[str, int]]:
    """Assigns sensor ids to recordings: ``[(sensor_id, recording index), ...]``.

    Args:
        names: the recordings' names (file stems); characters a sensor id cannot hold become ``_``.
        sensors: how many sensors; None: one per recording. At most the recordings: the first
            ``sensors`` recordings under their names. More: the recordings cycled, ids
            ``<name>-<k>`` (``k``: the copy, from 0).

    Raises:
        ValueError: no recordings or ``sensors`` < 1.
    """
    if not names:
        raise ValueError("no recordings to replay")
    n = len(names) if sensors is None else int(sensors)
    if n < 1:
        raise ValueError(f"sensors must be >= 1, got {n}")
    clean = [re.sub(r"[^A-Za-z0-9._-]", "_", name)[:56] or "sensor" for name in names]
    copies = n > len(names)
    out: list[tuple[str, int]] = []
    used: set[str] = set()
    for j in range(n):
        rec = j % len(names)
        sid = f"{clean[rec]}-{j // len(names)}" if copies else clean[rec]
        base, k = sid, 1
        while sid in used:  # two files with one stem (from different directories)
            sid, k = f"{base}.{k}", k + 1
        used.add(check_sensor_id(sid))
        out.append((sid, rec))
    return out


# -- reports ----------------------------------------------------------------------------------


@dataclass
class SensorReport:
    """What one replayed sensor did.

    Attributes:
        sensor_id: the id it sent as.
        recording: the recording's file.
        frames_sent: frames the transport took (WebSocket/MQTT) or the server answered for (HTTP).
        messages_sent: messages (one or more frames each).
        frames_failed: frames not delivered (server away or refused the connection).
        frames_late: frames sent more than ``late_ms`` after their scheduled time.
        max_lag_ms: the largest delay behind the schedule at a send.
        repetitions: times the recording started (``loop``).
        reconnects: connections opened after the first.
        server_errors: errors the server answered (HTTP ``errors``, WebSocket error messages).
        frames_dropped: frames the server said it dropped (module docstring); None where it
            could not say (MQTT).
        errors: the first few server errors and connection problems, as text.
        fatal: why the sensor stopped early (refused token), else None.
    """

    sensor_id: str
    recording: str
    frames_sent: int = 0
    messages_sent: int = 0
    frames_failed: int = 0
    frames_late: int = 0
    max_lag_ms: float = 0.0
    repetitions: int = 0
    reconnects: int = 0
    server_errors: int = 0
    frames_dropped: int | None = 0
    errors: list[str] = field(default_factory=list)
    fatal: str | None = None

    def note(self, text: str) -> None:
        """Keeps ``text`` among the first :data:`KEEP_ERRORS` problems."""
        if len(self.errors) < KEEP_ERRORS:
            self.errors.append(text)


@dataclass
class ReplaySummary:
    """The outcome of :func:`replay`.

    Attributes:
        target: where the frames went.
        speed: playback speed.
        loop: whether recordings repeated.
        seconds: wall-clock duration.
        interrupted: stopped by Ctrl-C.
        sensors: one :class:`SensorReport` per sensor.
        drops_source: where the dropped counts come from (``"server counters"``: the
            service's ``/api/sensors``; ``"server replies"``: its answers and error messages),
            None when the server could not say (MQTT).
    """

    target: str
    speed: float
    loop: bool
    seconds: float = 0.0
    interrupted: bool = False
    sensors: list[SensorReport] = field(default_factory=list)
    drops_source: str | None = "server replies"

    def totals(self) -> dict[str, Any]:
        """Sums over sensors (``max_lag_ms``: the largest; ``frames_dropped``: None when unknown)."""
        keys = ("frames_sent", "messages_sent", "frames_failed", "frames_late", "reconnects", "server_errors")
        out: dict[str, Any] = {k: sum(getattr(s, k) for s in self.sensors) for k in keys}
        drops = [s.frames_dropped for s in self.sensors]
        out["frames_dropped"] = None if None in drops else sum(drops)
        out["max_lag_ms"] = round(max((s.max_lag_ms for s in self.sensors), default=0.0), 1)
        out["frames_per_second"] = round(out["frames_sent"] / self.seconds, 1) if self.seconds > 0 else 0.0
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (totals included)."""
        d = asdict(self)
        d["seconds"] = round(self.seconds, 3)
        for s in d["sensors"]:
            s["max_lag_ms"] = round(s["max_lag_ms"], 1)
        d["totals"] = self.totals()
        return d

    def format_text(self) -> str:
        """A table: one line per sensor, then the totals."""
        t = self.totals()
        head = (f"replay to {self.target}: {len(self.sensors)} sensors, {self.seconds:.1f} s at speed {self.speed:g}"
                f"{', looped' if self.loop else ''}{', interrupted' if self.interrupted else ''}")
        cols = ("sent", "failed", "late", "lag_ms", "reconn", "srv_err", "dropped")
        width = max([len("sensor")] + [len(s.sensor_id) for s in self.sensors])
        lines = [head, f"{'sensor':<{width}}  " + "  ".join(f"{c:>7}" for c in cols)]
        for s in self.sensors:
            vals = (s.frames_sent, s.frames_failed, s.frames_late, f"{s.max_lag_ms:.0f}", s.reconnects,
                    s.server_errors, "?" if s.frames_dropped is None else s.frames_dropped)
            lines.append(f"{s.sensor_id:<{width}}  " + "  ".join(f"{v:>7}" for v in vals))
            for e in s.errors:
                lines.append(f"{'':<{width}}    ! {e}")
            if s.fatal:
                lines.append(f"{'':<{width}}    stopped: {s.fatal}")
        drops = (f"server drops: unknown over {urlsplit(self.target).scheme.upper()}" if t["frames_dropped"] is None
                 else f"{t['frames_dropped']} dropped by the server ({self.drops_source})")
        lines.append(f"total: {t['frames_sent']} frames sent ({t['frames_per_second']}/s), {t['frames_failed']} "
                     f"failed, {t['frames_late']} late (max lag {t['max_lag_ms']:.0f} ms), {t['server_errors']} "
                     f"server errors, {drops}")
        return "\n".join(lines)


# -- what the server says about drops ----------------------------------------------------------


def server_drop_counters(to: str, token: str, timeout: float) -> dict[str, int] | None:
    """``{sensor id: frames dropped}`` from the service's ``GET /api/sensors`` (a ``ws://`` or
    ``http://`` target's host), or None when it does not answer with them (not the
    service, a refused token, MQTT)."""
    parts = urlsplit(to)
    if parts.scheme not in ("ws", "wss", "http", "https"):
        return None
    cls = http.client.HTTPSConnection if parts.scheme in ("wss", "https") else http.client.HTTPConnection
    conn = cls(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request("GET", f"{parts.path.rstrip('/')}/api/sensors",
                     headers={"Authorization": f"Bearer {token}"} if token else {})
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            return None
        return {str(s["sensor_id"]): int(s["dropped"]) for s in json.loads(body)["sensors"]}
    except (OSError, http.client.HTTPException, ValueError, KeyError, TypeError) as e:
        logger.debug("replay: no drop counters from %s: %s", to, e)
        return None
    finally:
        conn.close()


def _settled_counters(to: str, token: str, timeout: float, wait: float = 1.0) -> dict[str, int] | None:
    """:func:`server_drop_counters` once two reads 0.1 s apart agree (the service may still be
    taking the last messages in), at most ``wait`` seconds."""
    last = server_drop_counters(to, token, timeout)
    deadline = time.monotonic() + wait
    while last is not None and time.monotonic() < deadline:
        time.sleep(0.1)
        now = server_drop_counters(to, token, timeout)
        if now == last:
            break
        last = now
    return last


# -- transports -------------------------------------------------------------------------------


class _WsTransport:
    """One WebSocket connection to ``/ws/sensors/{id}``."""

    def __init__(self, base: str, sensor_id: str, token: str, timeout: float):
        self.url = f"{base.rstrip('/')}/ws/sensors/{quote(sensor_id)}"
        if token:
            self.url += f"?token={quote(token)}"
        self.timeout = timeout
        self.ws = None
        self.stack = contextlib.ExitStack()

    def connect(self) -> None:
        from websockets.exceptions import InvalidStatus
        from websockets.sync.client import connect

        try:
            # Entered like a context manager (what websockets >= 17.1 asks for); close() exits it.
            stack = contextlib.ExitStack()
            self.ws = stack.enter_context(connect(self.url, open_timeout=self.timeout, close_timeout=1,
                                                  max_size=None, compression=None))
            self.stack = stack
        except InvalidStatus as e:
            status = e.response.status_code
            if status in (401, 403):
                raise ReplayAuthError(f"the server refused the token (HTTP {status})") from None
            raise ConnectionError(f"WebSocket handshake answered HTTP {status}") from None

    def send(self, payload: bytes, n: int) -> tuple[list[str], int]:
        from websockets.exceptions import ConnectionClosed

        try:
            self.ws.send(payload)
            errors = self._drain(0)
            return errors, dropped_in(errors)
        except ConnectionClosed as e:
            code = e.rcvd.code if e.rcvd is not None else None
            if code == WS_UNAUTHORIZED:
                raise ReplayAuthError(f"the server refused the token (WebSocket close {WS_UNAUTHORIZED})") from None
            raise ConnectionError(f"WebSocket closed ({code})") from None

    def _drain(self, timeout: float, until_quiet: bool = False) -> list[str]:
        """The server's messages waiting now (``timeout`` for the first); with ``until_quiet``
        every message waits up to ``timeout`` for the next: notices about the last frames can
        arrive one by one, and a drain that stopped at the first gap undercounted the drops."""
        errors = []
        while True:
            try:
                msg = self.ws.recv(timeout=timeout)
            except TimeoutError:
                return errors
            if not until_quiet:
                timeout = 0
            try:
                obj = json.loads(msg)
                if isinstance(obj, dict) and obj.get("type") == "error":
                    errors.append(str(obj.get("error")))
            except (TypeError, ValueError):
                errors.append(f"unexpected message from the server: {str(msg)[:100]}")

    def close(self, linger: float = 0.0) -> list[str]:
        """Closes the connection; first waits up to ``linger`` s for errors about the last frames."""
        errors: list[str] = []
        if self.ws is None:
            return errors
        try:
            if linger > 0:
                errors = self._drain(linger, until_quiet=True)
        except Exception:  # noqa: BLE001 - the connection is going anyway
            pass
        try:
            self.stack.close()
        except Exception:  # noqa: BLE001
            pass
        self.ws = None
        return errors


class _HttpTransport:
    """A kept-alive HTTP connection POSTing to ``/api/sensors/{id}/frames``."""

    def __init__(self, base: str, sensor_id: str, token: str, timeout: float):
        parts = urlsplit(base)
        self.https = parts.scheme == "https"
        self.host, self.port = parts.hostname, parts.port
        self.path = f"{parts.path.rstrip('/')}/api/sensors/{quote(sensor_id)}/frames"
        self.headers = {"Content-Type": "application/octet-stream"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.timeout = timeout
        self.conn: http.client.HTTPConnection | None = None

    def connect(self) -> None:
        cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
        self.conn = cls(self.host, self.port, timeout=self.timeout)
        self.conn.connect()

    def send(self, payload: bytes, n: int) -> tuple[list[str], int]:
        try:
            self.conn.request("POST", self.path, body=payload, headers=self.headers)
            resp = self.conn.getresponse()
            body = resp.read()
        except (OSError, http.client.HTTPException) as e:
            raise ConnectionError(f"HTTP: {e or type(e).__name__}") from None
        if resp.status == 401:
            raise ReplayAuthError("the server refused the token (HTTP 401)")
        try:
            answer = json.loads(body)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            if resp.status >= 400:
                return [f"HTTP {resp.status}: {body[:200].decode('utf-8', 'replace')}"], 0
            return [], 0
        errors = [str(e) for e in answer.get("errors") or []]
        if resp.status >= 400 and not errors:
            errors = [f"HTTP {resp.status}: {answer.get('detail', answer)}"]
        return errors, int(answer.get("dropped") or 0)

    def close(self, linger: float = 0.0) -> list[str]:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        return []


class _MqttLink:
    """One paho client shared by every replayed sensor (publishing is thread-safe)."""

    def __init__(self, url: str, qos: int, timeout: float):
        import paho.mqtt.client as mqtt

        parts = urlsplit(url)
        self.qos = qos
        self.timeout = timeout
        self.up = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"thermal-action-replay-{uuid.uuid4().hex[:12]}")
        if parts.username:
            self.client.username_pw_set(parts.username, parts.password)
        self.client.reconnect_delay_set(*_BACKOFF)
        self.client.on_connect = lambda c, u, f, rc, p: rc.is_failure or self.up.set()
        self.client.on_disconnect = lambda c, u, f, rc, p: self.up.clear()
        self.client.connect_async(parts.hostname, parts.port or 1883, keepalive=30)
        self.client.loop_start()

    def publish(self, topic: str, payload: bytes) -> Any:
        import paho.mqtt.client as mqtt

        if not self.up.is_set():
            raise ConnectionError("not connected to the MQTT broker")
        info = self.client.publish(topic, payload, qos=self.qos)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise ConnectionError(f"MQTT publish failed: {mqtt.error_string(info.rc)}")
        return info

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class _MqttTransport:
    """A sensor's view of the shared :class:`_MqttLink`: its own topic."""

    def __init__(self, link: _MqttLink, topic: str):
        self.link, self.topic, self.last = link, topic, None

    def connect(self) -> None:
        if not self.link.up.wait(self.link.timeout):
            raise ConnectionError("no connection to the MQTT broker")

    def send(self, payload: bytes, n: int) -> tuple[list[str], int]:
        self.last = self.link.publish(self.topic, payload)
        return [], 0

    def close(self, linger: float = 0.0) -> list[str]:
        if self.last is not None and linger > 0:
            try:
                self.last.wait_for_publish(timeout=linger)  # the tail leaves before the client stops
            except (RuntimeError, ValueError):
                pass
        return []


# -- the senders ------------------------------------------------------------------------------


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
        self.backoff = _BACKOFF[0]
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
        self.connected, self.backoff = True, _BACKOFF[0]

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
        self.backoff = min(self.backoff * 2, _BACKOFF[1])

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
    """Sends recordings as live sensors to a running service (module docstring).

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
    link = _MqttLink(to, qos, timeout) if scheme in ("mqtt", "tcp") else None
    counters_before = None if link is not None else server_drop_counters(to, token, timeout)
    clock = _Clock()
    threads = []
    try:
        for j, (sid, k) in enumerate(ids):
            report = SensorReport(sid, str(recs[k].path))
            summary.sensors.append(report)
            if link is not None:
                transport: Any = _MqttTransport(link, topic.replace("{sensor}", sid))
            elif scheme.startswith("ws"):
                transport = _WsTransport(to, sid, token, timeout)
            else:
                transport = _HttpTransport(to, sid, token, timeout)
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
    _count_drops(summary, to, token, timeout, counters_before, mqtt=link is not None)
    return summary


def _count_drops(summary: ReplaySummary, to: str, token: str, timeout: float,
                 before: dict[str, int] | None, mqtt: bool) -> None:
    """Sets each sensor's ``frames_dropped`` from what the server says (module docstring)."""
    if mqtt:
        summary.drops_source = None
        for s in summary.sensors:
            s.frames_dropped = None
        return
    after = _settled_counters(to, token, timeout) if before is not None else None
    if after is None:
        summary.drops_source = "server replies"
        return
    summary.drops_source = "server counters"
    for s in summary.sensors:
        s.frames_dropped = after.get(s.sensor_id, 0) - before.get(s.sensor_id, 0)
