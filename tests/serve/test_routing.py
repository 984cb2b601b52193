"""Which worker owns a sensor: its home by id, and a move when its worker falls behind."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from helpers.serve import FakePool, alert_event
from thermal_action.alert_rule import AlertRule
from thermal_action.serve.config import ServeConfig
from thermal_action.serve.hub import Hub
from thermal_action.serve.model import ModelInfo
from thermal_action.serve.messages import Round
from thermal_action.serve.protocol import FrameIn
from thermal_action.serve.routing import MovePolicy, worker_for
from thermal_action.serve.store import Store
from thermal_action.structures import DEFAULT_CLASS_NAMES, FALL_CLASS_NAME

T0 = 1_760_000_000_000
BED = {"zones": [{"kind": "bed", "box": [0.6, 0.3, 0.95, 0.6]}]}
#: Two sensors whose home is worker 0, one whose home is worker 1.
SLOW_A, SLOW_B = [s for s in (f"S{i}" for i in range(100)) if worker_for(s, 2) == 0][:2]
FAST = next(s for s in (f"S{i}" for i in range(100)) if worker_for(s, 2) == 1)


@pytest.fixture
def hub(tmp_path):
    cfg = ServeConfig(data_dir=str(tmp_path), move_queue_frames=10, move_interval_seconds=3600.0)
    info = ModelInfo(DEFAULT_CLASS_NAMES, (40, 60), DEFAULT_CLASS_NAMES.index(FALL_CLASS_NAME), AlertRule(), 7, 16)
    h = Hub(cfg, info, Store(tmp_path / "serve.db"), FakePool(n=2))
    yield h
    h.store.close()


def frames(n, t0=T0):
    return [FrameIn(np.full((40, 60), 20.0, np.float32), t0 + 166 * i) for i in range(n)]


def status(hub):
    return {s["sensor_id"]: s for s in hub.sensors_status()}


def test_a_sensor_starts_on_its_home_worker_and_stays_while_its_worker_keeps_up(hub):
    for t0 in (T0, T0 + 1000, T0 + 2000):
        for s in (SLOW_A, SLOW_B, FAST):
            assert hub.submit(s, frames(4, t0), "ws").accepted == 4
        hub.pool.done(0)  # worker 0 keeps up: never more than 8 frames waiting
    assert {s: st["worker"] for s, st in status(hub).items()} == {SLOW_A: 0, SLOW_B: 0, FAST: 1}
    assert hub.pool.ended == [] and all(st["worker_moves"] == 0 for st in status(hub).values())


def test_a_worker_that_falls_behind_sheds_a_sensor_and_nothing_is_lost(hub, caplog):
    hub.set_zones(SLOW_A, BED)
    for s in (SLOW_A, SLOW_B, FAST):
        assert hub.submit(s, frames(6), "ws").accepted == 6
    hub.pool.done(1)  # worker 1 keeps up; worker 0 does not (12 frames waiting, over 10)
    with caplog.at_level(logging.WARNING, logger="thermal_action.serve.hub"):
        r = hub.submit(SLOW_A, frames(3, T0 + 1000), "ws")
    assert (r.accepted, r.dropped) == (3, 0)
    # The old worker ends SLOW_A's stream behind the 6 frames it holds; the new one gets its room first.
    assert hub.pool.inbox[-3:] == [("end", 0, SLOW_A), ("layout", 1, SLOW_A), ("frames", 1, SLOW_A)]
    assert hub.pool.layouts[-1][2].source == "api"
    moved = [r.getMessage() for r in caplog.records if "moved from worker 0" in r.getMessage()]
    assert moved == [f"sensor {SLOW_A} moved from worker 0 (12 frames waiting) to worker 1 (0 waiting); "
                     "its window restarts there"]
    st = status(hub)[SLOW_A]
    assert (st["worker"], st["worker_moves"]) == (1, 1) and "window restarts" in st["last_move"]
    assert 'thermal_sensor_moves_total{sensor="%s"} 1.0' % SLOW_A in hub.metrics_text()

    # Worker 0 is still behind, but sheds one sensor per interval: SLOW_B stays, and moves
    # once the interval has passed.
    hub.submit(SLOW_B, frames(3, T0 + 1000), "ws")
    assert hub.pool.put[-1][:2] == (0, SLOW_B)
    hub.router.policy = MovePolicy(queue_frames=10, interval_s=0.0)
    hub.submit(SLOW_B, frames(3, T0 + 2000), "ws")
    assert hub.pool.put[-1][:2] == (1, SLOW_B) and hub.pool.ended[-1] == (0, SLOW_B)
    # A moved sensor's next room change goes to its new worker.
    hub.delete_zones(SLOW_A)
    assert hub.pool.layouts[-1][:2] == (1, SLOW_A)

    # Nothing lost: every frame of every sensor was queued somewhere, in order per worker.
    assert {s: st["frames"] for s, st in status(hub).items()} == {SLOW_A: 9, SLOW_B: 12, FAST: 6}
    assert all(st["dropped"] == 0 for st in status(hub).values())
    queued = {}
    for worker, sensor, stamps in hub.pool.put:
        queued.setdefault(sensor, []).extend(stamps)
    assert queued[SLOW_A] == [T0 + 166 * i for i in range(6)] + [T0 + 1000 + 166 * i for i in range(3)]


def test_alerts_of_a_moved_sensor_and_of_the_others_are_recorded_once(hub):
    for s in (SLOW_A, SLOW_B, FAST):
        hub.submit(s, frames(6), "ws")
    hub.pool.done(1)
    hub.submit(SLOW_A, frames(3, T0 + 1000), "ws")  # moves to worker 1
    # The old worker's backlog held a fall of SLOW_A: raised, then ended by the end of the stream there.
    hub.on_message(0, Round(alerts=[alert_event("raised", SLOW_A, 3, T0, T0 + 800, 0.9),
                                    alert_event("raised", SLOW_B, 1, T0, T0 + 800, 0.8)]))
    hub.on_message(0, Round(alerts=[alert_event("ended", SLOW_A, 3, T0, T0 + 996, 0.9, fired_timestamp=T0 + 800)]))
    hub.on_message(1, Round(alerts=[alert_event("raised", FAST, 2, T0, T0 + 800, 0.7)]))
    alerts = {a["sensor_id"]: a for a in hub.store.alerts()}
    assert sorted(alerts) == sorted([SLOW_A, SLOW_B, FAST]) and len(hub.store.alerts()) == 3
    assert alerts[SLOW_A]["state"] == "ended" and alerts[SLOW_B]["state"] == "ongoing"
    assert hub.stats()["alerts_raised_total"] == 3


def test_a_sensor_with_a_fall_going_on_stays_on_its_worker(hub):
    for s in (SLOW_A, FAST):
        hub.submit(s, frames(6), "ws")
    hub.on_message(0, Round(alerts=[alert_event("raised", SLOW_A, 3, T0, T0 + 800, 0.9)]))
    hub.submit(SLOW_B, frames(6), "ws")
    hub.pool.done(1)
    hub.submit(SLOW_A, frames(3, T0 + 1000), "ws")  # worker 0 is behind, but SLOW_A's fall lives there
    assert status(hub)[SLOW_A]["worker"] == 0 and hub.pool.ended == []


def test_no_move_with_move_queue_frames_0_or_one_worker(tmp_path):
    info = ModelInfo(DEFAULT_CLASS_NAMES, (40, 60), None, AlertRule(), 7, 16)
    for n, limit in ((2, 0), (1, 10)):
        cfg = ServeConfig(data_dir=str(tmp_path / f"{n}-{limit}"), move_queue_frames=limit)
        hub = Hub(cfg, info, Store(tmp_path / f"{n}-{limit}.db"), FakePool(n=n))
        hub.submit(SLOW_A, frames(50), "ws")
        hub.submit(SLOW_A, frames(5, T0 + 10_000), "ws")
        assert hub.pool.ended == [] and {w for w, _, _ in hub.pool.put} == {0}
        hub.store.close()
