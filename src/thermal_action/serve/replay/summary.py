"""What a replay did: one report per sensor, the summary, and the drops the server counted."""

from __future__ import annotations

import http.client
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

logger = logging.getLogger(__name__)

#: Server errors kept per sensor (the rest only counted).
KEEP_ERRORS = 5


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
        frames_dropped: frames the server said it dropped (:mod:`thermal_action.serve.replay`); None where it
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
    """The outcome of :func:`~thermal_action.serve.replay.player.replay`.

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


def count_drops(summary: ReplaySummary, to: str, token: str, timeout: float,
                 before: dict[str, int] | None, mqtt: bool) -> None:
    """Sets each sensor's ``frames_dropped`` from what the server says (:mod:`thermal_action.serve.replay`)."""
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
