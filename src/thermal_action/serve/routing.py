"""Which worker owns each sensor, and what each worker was told about it, in queue order.

A sensor starts on its home worker (:func:`worker_for`, a hash of its id: stable across
restarts and runs) and keeps it: its window, person detector, tracker and fall monitor live
there. It moves only when that worker is behind and another is clearly less loaded
(:meth:`Router.consider_move`):

- behind: more than ``move_queue_frames`` frames wait in the worker's queue;
- clearly less loaded: another worker has at most half as many waiting (the least loaded one
  is chosen);
- a sensor with a fall going on stays (its alert's state lives in its worker's monitor);
- a worker sheds at most one sensor per ``move_interval_s``, and a sensor that moved stays at
  least that long where it went: a burst does not send every sensor across at once, and
  sensors do not bounce between workers.

A move costs the sensor its window: the old worker gets :class:`EndStream` behind the frames
it already holds (they are all processed: nothing is lost), the new one starts a new stream
and gets the sensor's room before its first frames. The hub logs the move once and shows it
in the sensor's status (``worker``, ``worker_moves``, ``last_move``).

The room layout a worker has for each sensor is remembered with the worker it went to, so a
move, a restart or a new layout sends it again, ahead of the frames that need it.

Not thread-safe by itself: the hub calls in here with its lock held.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from thermal_action.data.rooms import NO_LAYOUT, RoomLayout
from thermal_action.serve.messages import QueuedFrame
from thermal_action.serve.sensors import SensorState

logger = logging.getLogger(__name__)


def worker_for(sensor_id: str, n_workers: int) -> int:
    """The home worker of ``sensor_id`` (stable across restarts and runs)."""
    return zlib.crc32(sensor_id.encode()) % n_workers


@dataclass(frozen=True)
class MovePolicy:
    """When a sensor leaves a worker that fell behind (module docstring).

    Attributes:
        queue_frames: frames waiting on a worker beyond which it is behind (0: never move).
        interval_s: a worker sheds at most one sensor this often; a moved sensor stays this long.
    """

    queue_frames: int = 0
    interval_s: float = 5.0


class Router:
    """Routes sensors' frames, stream ends and room layouts to the worker that owns each.

    Args:
        pool: the worker pool (``put_frames``, ``end_stream``, ``set_layout``, ``pending``);
            None: nothing is sent (tests of the hub alone).
        max_queue_frames: frames waiting per worker; beyond, new frames are dropped.
        policy: when sensors move to a less loaded worker.
        sensor: the hub's state of a sensor id (None: not known yet).
    """

    def __init__(self, pool: Any, max_queue_frames: int, policy: MovePolicy,
                 sensor: Callable[[str], SensorState | None]):
        self.pool = pool
        self.n_workers = len(pool) if pool is not None else 1
        self.max_queue_frames = max_queue_frames
        self.policy = policy
        self._sensor = sensor
        self._sent: dict[tuple[str, int], RoomLayout] = {}  # (sensor, worker) -> the layout that worker has
        self._shed_at: dict[int, float] = {}  # worker -> when it last shed a sensor

    def home(self, sensor_id: str) -> int:
        """The worker a new sensor starts on."""
        return worker_for(sensor_id, self.n_workers)

    def worker_of(self, sensor_id: str) -> int:
        """The worker that owns ``sensor_id`` now (its home before the hub knows it)."""
        st = self._sensor(sensor_id)
        return st.worker if st is not None else self.home(sensor_id)

    # -- what goes into the queues

    def put(self, st: SensorState, frames: list[QueuedFrame]) -> bool:
        """Queues frames for the sensor's worker; False when that queue is full (dropped)."""
        return self.pool is None or self.pool.put_frames(st.worker, st.sensor_id, frames, self.max_queue_frames)

    def end_stream(self, st: SensorState) -> None:
        """Tells the sensor's worker its stream ended (behind the frames it already holds)."""
        if self.pool is not None:
            self.pool.end_stream(st.worker, st.sensor_id)

    def send_layout(self, sensor_id: str, layout: RoomLayout) -> bool:
        """Sends the sensor's room to its worker unless that worker already has it (a worker
        never told has none); True when sent."""
        worker = self.worker_of(sensor_id)
        if self._sent.get((sensor_id, worker), NO_LAYOUT) == layout:
            return False
        self._sent[(sensor_id, worker)] = layout
        if self.pool is not None:
            self.pool.set_layout(worker, sensor_id, layout)
        return True

    def worker_restarted(self, worker: int) -> None:
        """The worker's new process knows no room: what it was told is forgotten."""
        self._sent = {key: layout for key, layout in self._sent.items() if key[1] != worker}

    # -- load

    def loads(self) -> list[int]:
        """Frames waiting per worker."""
        return list(self.pool.pending()) if self.pool is not None else [0]

    def consider_move(self, st: SensorState, now: float) -> str | None:
        """Moves the sensor to a clearly less loaded worker when its own is behind (module
        docstring); returns why it moved (also in ``st.last_move``), None when it stays."""
        p = self.policy
        if self.pool is None or self.n_workers < 2 or p.queue_frames <= 0 or st.active_alerts:
            return None
        loads = self.loads()
        old = st.worker
        if loads[old] <= p.queue_frames:
            return None
        if now - st.moved_at < p.interval_s or now - self._shed_at.get(old, -1e18) < p.interval_s:
            return None
        new = min((w for w in range(self.n_workers) if w != old), key=lambda w: loads[w])
        if 2 * loads[new] > loads[old]:
            return None
        self.pool.end_stream(old, st.sensor_id)  # after the frames it holds: none is lost
        st.worker = new
        st.moves += 1
        st.moved_at = now
        self._shed_at[old] = now
        st.last_move = (f"moved from worker {old} ({loads[old]} frames waiting) to worker {new} "
                        f"({loads[new]} waiting); its window restarts there")
        return st.last_move
