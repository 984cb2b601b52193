"""Two ``serve`` instances share the sensors through RabbitMQ and one PostgreSQL store (README,
"More than one machine"), started as the README tells a user: the gateways (``replay``) publish
over MQTT to RabbitMQ; each instance takes its partitions from the broker. One instance is
killed (SIGKILL) while the falls it raised are ongoing: its sensors resume on the other, every
fall is alerted exactly once, and the alert an operator acknowledged stays acknowledged.

Each replayed sensor sees one person lying still the whole recording: one fall event per
sensor (the tiny checkpoint is untrained; threshold 1e-6 makes every person a fall).
"""

from __future__ import annotations

import signal
import threading
import time

import httpx
import numpy as np
import pytest

from helpers.infer import person_blob, write_recording, write_tiny_checkpoint
from helpers.serve import start_serve_cli, wait_for
from thermal_action.serve.amqp import binding_key, sensor_id_from_routing_key
from thermal_action.serve.replay.player import replay
from thermal_action.serve.store import Store

pytestmark = pytest.mark.slow

FRAMES = 480  # ~88 s of recording, replayed at twice real time
SPEED = 2.0
SENSORS = 6
TOKEN = "cluster-test-token"


def test_routing_keys_carry_the_sensor_id_as_rabbitmqs_mqtt_plugin_writes_them():
    assert binding_key("thermal/+/frames") == "thermal.*.frames"
    assert sensor_id_from_routing_key("thermal.bed-3.frames", "thermal/+/frames") == "bed-3"
    assert sensor_id_from_routing_key("thermal.ward/2.frames", "thermal/+/frames") == "ward.2"  # '.' in a topic level
    with pytest.raises(ValueError):
        sensor_id_from_routing_key("other.bed-3.frames", "thermal/+/frames")


def lying_still(n: int, seed: int = 0) -> np.ndarray:
    """``(n, 40, 60)`` °C: one warm person on the floor, not moving."""
    rng = np.random.default_rng(seed)
    frames = 18.0 + rng.normal(0, 0.3, (n, 40, 60)).astype(np.float32)
    return frames + person_blob(40, 60, 24.0, 20.0, sx=4.0, sy=2.0).astype(np.float32)


class Instance:
    """A ``serve`` child process; its output is drained (and kept) by a thread."""

    def __init__(self, name: str, checkpoint, tmp_path, **cfg):
        self.name = name
        self.proc, address = start_serve_cli(checkpoint, tmp_path / name, env={"THERMAL_ACTION_TOKEN": TOKEN},
                                             instance=name, **cfg)
        self.url = address.split("/?")[0]
        self.output: list[str] = []
        self._drain = threading.Thread(target=lambda: self.output.extend(self.proc.stdout), daemon=True)
        self._drain.start()

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except Exception:  # noqa: BLE001 - then harder
                self.proc.kill()
                self.proc.wait()
        self._drain.join(5)


def test_two_instances_share_the_sensors_and_a_killed_ones_falls_resume_on_the_other_alerted_once(
        tmp_path, rabbitmq, postgres):
    checkpoint = write_tiny_checkpoint(tmp_path / "tiny.ckpt")
    recording = write_recording(tmp_path / "recordings" / "ward.h5", lying_still(FRAMES))
    store_url = postgres.create_database()
    cfg = dict(store_url=store_url, amqp_url=rabbitmq.url, amqp_partitions=4, silent_seconds=2.0,
               end_stream_seconds=4.0, takeover_seconds=600.0)
    instances = {name: Instance(name, checkpoint, tmp_path, **cfg) for name in ("a", "b")}
    store = Store(store_url)
    stop_replay = threading.Event()
    replayed: list = []
    gateway = threading.Thread(target=lambda: replayed.append(replay(
        [recording], rabbitmq.mqtt_url, speed=SPEED, sensors=SENSORS, qos=1, stop=stop_replay)), daemon=True)
    try:
        gateway.start()

        def raised_by() -> dict[str, set[str]]:
            out: dict[str, set[str]] = {}
            for r in store.raises():
                out.setdefault(r["sensor_id"], set()).add(r["instance"])
            return out

        # Every sensor's fall raised, and both instances hold sensors (the partitions are shared).
        wait_for(lambda: len(raised_by()) == SENSORS and {i for s in raised_by().values() for i in s} == {"a", "b"},
                 timeout=120, what=f"falls of {SENSORS} sensors raised by both instances")
        before = raised_by()
        victim = next(s for s in sorted(before) if before[s] == {"a"})
        a_sensors = {s for s, who in before.items() if "a" in who and "b" not in who}
        # An operator acknowledges the victim sensor's alert on instance b's dashboard (one store).
        with instances["b"].api() as api:
            alert = api.get("/api/alerts", params={"sensor": victim}).json()["alerts"][0]
            assert alert["state"] == "ongoing"
            acked = api.post(f"/api/alerts/{alert['id']}/acknowledge", json={"who": "nurse"})
            assert acked.status_code == 200 and acked.json()["status"] == "acknowledged"

        instances["a"].proc.kill()  # mid-alert: its falls are ongoing, the gateways keep publishing
        instances["a"].proc.wait(10)
        killed = time.monotonic()
        assert gateway.is_alive(), "the recording ended before the kill: make it longer"
        # a's sensors resume on b: b raises their falls again, folded into a's alerts.
        wait_for(lambda: all("b" in raised_by()[s] for s in a_sensors), timeout=90,
                 what="a's sensors raised again on b")
        print(f"\n{len(a_sensors)} sensors of a raised again on b {time.monotonic() - killed:.1f} s after the kill")
        gateway.join(timeout=FRAMES / 6 / SPEED + 60)
        assert not gateway.is_alive() and replayed[0].totals()["frames_failed"] == 0
        # b ends every stream (end_stream_seconds after the last frame), and with them the falls.
        wait_for(lambda: store.count_alerts()["ongoing"] == 0, timeout=60, what="every alert ended")

        alerts = store.alerts(limit=1000)
        per_sensor = {s: [a for a in alerts if a["sensor_id"] == s] for s in before}
        assert {s: len(v) for s, v in per_sensor.items()} == {s: 1 for s in before}  # each fall alerted once
        for s, (a,) in per_sensor.items():
            actions = [e["action"] for e in store.alert_events(a["id"])]
            assert actions.count("raised") == 1 and actions[-1] == "ended", (s, actions)
        kept = per_sensor[victim][0]
        assert (kept["status"], kept["acknowledged_by"]) == ("acknowledged", "nurse")  # no acknowledged alert lost
        assert any("moved from instance a to b" in e["note"] for e in store.alert_events(kept["id"]))
        assert all(not r["active"] for r in store.raises())
        # The dashboard of b shows every alert of both instances.
        with instances["b"].api() as api:
            shown = api.get("/api/alerts", params={"limit": 1000}).json()["alerts"]
        assert sorted(a["id"] for a in shown) == sorted(a["id"] for a in alerts)
    finally:
        stop_replay.set()
        for inst in instances.values():
            inst.stop()
        store.close()
        print("".join(instances["b"].output[-40:]))
