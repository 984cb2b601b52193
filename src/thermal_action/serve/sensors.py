"""Every sensor's state in the hub, and which sensors it keeps when too many ids arrive.

Not thread-safe by itself: the hub calls in here with its lock held.

How far behind: when a worker reports a sensor's frames processed, ``now - the newest frame's
capture time`` is one delay sample; a sensor's ``delay_s`` is the p95 of its samples of the
last :data:`DELAY_WINDOW_S`.

Many ids (junk, or renamed sensors): beyond ``max_sensors`` a new id takes the place of the
longest-quiet id that never sent a usable frame, else of one idle for ``forget_seconds`` (no
connection, stream ended, no fall going on), else is refused (:meth:`SensorTable.get_or_add`).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from thermal_action.serve.clips import FrameRing, PendingClip
from thermal_action.serve.messages import LiveFrame

logger = logging.getLogger(__name__)

#: Seconds of delay samples behind ``delay_s`` and ``delay_p95_s``.
DELAY_WINDOW_S = 60.0


def percentile(values: list[float], q: float) -> float | None:
    """The ``q``-th percentile of ``values``; None when there are none."""
    return float(np.percentile(np.asarray(values), q)) if values else None


@dataclass(frozen=True)
class PersonNow:
    """A tracked person's latest scored action (the live view's label).

    Attributes:
        action: the top class.
        score: its probability.
        fall_score: the fall class's probability (None: the model has no fall class).
        timestamp: the keyframe's capture time, ms since epoch.
        bed_share: share of the box on a bed or couch zone (None: no layout).
        room_source: where the room the model saw came from.
    """

    action: str
    score: float
    fall_score: float | None
    timestamp: int
    bed_share: float | None = None
    room_source: str = "none"


@dataclass
class SensorState:
    """What the hub knows of one sensor: counters, its stream, its live view, its recent frames.

    ``worker`` is the worker that owns the sensor now (:mod:`~thermal_action.serve.routing`).
    """

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
    # which worker, and moves between workers (routing)
    moves: int = 0  # times the sensor moved to a less loaded worker
    last_move: str | None = None  # why and where it last moved
    moved_at: float = 0.0  # time.time() of the last move
    # live view
    live: LiveFrame | None = None  # the newest processed frame, for the dashboards
    tracks: dict[int, PersonNow] = field(default_factory=dict)  # track id -> latest action
    active_alerts: set = field(default_factory=set)  # (track_id, start_timestamp) of alerts not yet ended
    alert_peaks: dict = field(default_factory=dict)  # track_id -> the fall score that raised its ongoing alert (peak)
    stored_at: dict[int, tuple[int, str]] = field(default_factory=dict)  # track -> (timestamp, action) last stored
    # the moment itself, and how far behind
    ring: FrameRing | None = None  # recent frames and their tracked boxes (clips of alerts)
    pending_clips: list[PendingClip] = field(default_factory=list)
    delays: deque = field(default_factory=lambda: deque(maxlen=2000))  # (time.time(), s) processed - captured
    drop_event_at: float = 0.0  # when the dashboards were last told of drops

    def delay(self, now: float) -> tuple[float | None, float | None]:
        """``(p95 over the last minute, latest)`` of the delay samples, seconds; None without any."""
        recent = [d for t, d in self.delays if now - t <= DELAY_WINDOW_S]
        return percentile(recent, 95), (recent[-1] if recent else None)

    def fps(self, now: float) -> float:
        """The sensor's frame rate by its own clock (capture timestamps of the last 10 s of
        frames), so a burst of late frames does not read as a fast sensor; 0 when silent."""
        if self.last_arrival is None or now - self.last_arrival > 10.0 or len(self.recent_timestamps) < 2:
            return 0.0
        last = self.recent_timestamps[-1]
        recent = [t for t in self.recent_timestamps if last - t <= 10_000]
        span = (recent[-1] - recent[0]) / 1000.0
        return (len(recent) - 1) / span if span > 0 else 0.0

    def status(self, now: float, silent_seconds: float) -> str:
        """``live``, ``silent`` (no frame for ``silent_seconds``), ``ended`` or ``error``."""
        if self.last_arrival is None:
            return "error" if self.last_error else "silent"
        if self.stream_ended:
            return "ended"
        if now - self.last_arrival > silent_seconds:
            return "silent"
        return "live"

    @property
    def connected(self) -> int:
        """Open connections, all transports."""
        return sum(self.connections.values())

    def new_stream(self) -> list[PendingClip]:
        """The stream ended (silence, a new clock, its worker died): its recent frames belong to
        the past; returns its pending clips, as complete as they will get (to be saved)."""
        if self.ring is not None:
            self.ring.clear()
        finished, self.pending_clips = self.pending_clips, []
        return finished


class SensorTable:
    """The sensors the hub knows, at most ``max_sensors`` (module docstring).

    Args:
        max_sensors: sensors at most.
        forget_seconds: idle this long, a sensor that sent frames may make room for a new one.
        make_ring: a new sensor's frame ring (None: no ring).
        home: the worker a new sensor starts on.
    """

    def __init__(self, max_sensors: int, forget_seconds: float, make_ring: Callable[[], FrameRing | None],
                 home: Callable[[str], int]):
        self.max_sensors = max_sensors
        self.forget_seconds = forget_seconds
        self.make_ring = make_ring
        self.home = home
        self.sensors: dict[str, SensorState] = {}
        self.refused = 0
        self.forgotten = 0

    def __iter__(self) -> Iterator[SensorState]:
        return iter(self.sensors.values())

    def __len__(self) -> int:
        return len(self.sensors)

    def get(self, sensor_id: str) -> SensorState | None:
        return self.sensors.get(sensor_id)

    def get_or_add(self, sensor_id: str, now: float | None = None) -> SensorState | None:
        """The sensor's state (made for a new id while there is room, or room can be made);
        None when the table is full. Marks the sensor seen."""
        now = time.time() if now is None else now
        st = self.sensors.get(sensor_id)
        if st is None:
            if len(self.sensors) >= self.max_sensors and not self._forget_one(now):
                self.refused += 1
                return None
            st = SensorState(sensor_id, self.home(sensor_id), ring=self.make_ring())
            self.sensors[sensor_id] = st
            logger.info("new sensor %s (worker %d)", sensor_id, st.worker)
        st.last_seen = now
        return st

    def _forget_one(self, now: float) -> bool:
        """Makes room for a new sensor: forgets the longest-quiet one that never sent a usable
        frame (junk ids must not lock real sensors out), else the longest-quiet one idle for
        ``forget_seconds``; never one that is streaming, connected or has a fall going on."""
        junk = [st for st in self.sensors.values() if st.frames == 0]
        idle = [st for st in self.sensors.values()
                if (st.stream_ended or st.last_arrival is None) and not st.connected
                and not st.active_alerts and now - st.last_seen > self.forget_seconds]
        candidates = junk or idle
        if not candidates:
            return False
        gone = min(candidates, key=lambda s: s.last_seen)
        del self.sensors[gone.sensor_id]
        self.forgotten += 1
        logger.info("sensor %s forgotten to make room (%s)", gone.sensor_id,
                    "never sent a usable frame" if junk else "idle")
        return True
