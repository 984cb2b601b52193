"""The hub without worker processes: what ingest accepts and counts, and what worker results become."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.serve import FakePool, alert_event
from thermal_action.alert_rule import AlertRule
from thermal_action.config import replace_values
from thermal_action.serve.config import ServeConfig
from thermal_action.serve.hub import Hub
from thermal_action.serve.model import ModelInfo
from thermal_action.serve.operators import AlertAction
from thermal_action.serve.protocol import FrameIn
from thermal_action.serve.store import Store
from thermal_action.serve.messages import FrameError, FrameTracks, LiveFrame, Round, ScoredPerson
from thermal_action.serve.routing import worker_for
from thermal_action.structures import DEFAULT_CLASS_NAMES, FALL_CLASS_NAME

FALL = DEFAULT_CLASS_NAMES.index(FALL_CLASS_NAME)
T0 = 1_760_000_000_000


@pytest.fixture
def hub(tmp_path):
    cfg = ServeConfig(data_dir=str(tmp_path), max_sensors=3, new_stream_gap_seconds=60.0, store_every_seconds=5.0)
    info = ModelInfo(DEFAULT_CLASS_NAMES, (40, 60), FALL, AlertRule(), lag_frames=7, window_length=16)
    h = Hub(cfg, info, Store(tmp_path / "serve.db"), FakePool())
    yield h
    h.store.close()


def frames(n, t0=T0, shape=(40, 60), step=166):
    return [FrameIn(np.full(shape, 20.0, np.float32), t0 + step * i) for i in range(n)]


def test_frames_go_to_the_sensors_worker_in_order(hub):
    r = hub.submit("S1", frames(5), "http")
    assert (r.accepted, r.dropped, r.errors) == (5, 0, [])
    assert hub.pool.put == [(worker_for("S1", 2), "S1", [T0 + 166 * i for i in range(5)])]
    st = hub.sensors_status()[0]
    assert st["frames"] == 5 and st["status"] == "live" and st["fps"] == pytest.approx(1000 / 166, rel=1e-3)


def test_other_frame_size_is_refused_naming_sensor_and_sizes(hub):
    r = hub.submit("S2", frames(3, shape=(24, 32)) + frames(1, t0=T0 + 1000), "ws")
    assert r.accepted == 1
    assert r.errors == ["sensor S2: 3 frame(s) of shape 24x32; the model takes 40x60 (another sensor model?)"]
    st = hub.sensors_status()[0]
    assert st["bad_shape"] == 3 and "24x32" in st["last_error"]


def test_timestamps_going_back_or_jumping_start_a_new_stream(hub):
    hub.submit("S1", frames(3), "ws")
    hub.submit("S1", frames(2, t0=T0 - 10_000), "ws")  # reconnected with another clock origin
    hub.submit("S1", frames(2, t0=T0 + 10**7), "ws")  # 3 hours later
    w = worker_for("S1", 2)
    assert hub.pool.ended == [(w, "S1"), (w, "S1")]
    assert hub.sensors_status()[0]["new_streams"] == 2
    assert hub.sensors_status()[0]["frames"] == 7  # none lost


def test_missing_timestamp_is_the_arrival_time(hub):
    hub.submit("S1", [FrameIn(np.zeros((40, 60), np.float32), None)], "mqtt")
    (_, _, stamps), = hub.pool.put
    assert abs(stamps[0] - __import__("time").time() * 1000) < 60_000


def test_full_queue_drops_and_counts(hub):
    hub.pool.room = 4
    assert hub.submit("S1", frames(3), "ws").accepted == 3
    r = hub.submit("S1", frames(100, t0=T0 + 1000), "ws")  # a burst beyond the room left
    assert (r.accepted, r.dropped) == (0, 100) and "dropped" in r.errors[0]
    assert hub.sensors_status()[0]["dropped"] == 100 and hub.stats()["frames_dropped_total"] == 100


def test_sensor_limit_and_bad_ids(hub):
    for s in ("A", "B", "C"):
        assert hub.submit(s, frames(1), "ws").accepted == 1
    r = hub.submit("D", frames(1), "ws")
    assert r.accepted == 0 and "max_sensors=3" in r.errors[0]
    assert hub.submit("../x", frames(1), "ws").errors[0].startswith("sensor id")
    assert hub.stats()["refused_sensors_total"] == 1


def test_rejected_messages_and_connections_are_counted(hub):
    hub.connected("S1", "ws")
    hub.connected("S1", "mqtt")
    hub.reject("S1", "ws", "not valid JSON")
    st = hub.sensors_status()[0]
    assert st["bad_message"] == 1 and st["connected"] == 2 and st["transports"] == ["mqtt", "ws"]
    hub.disconnected("S1", "ws")
    hub.disconnected("S1", "ws")  # one too many: stays at zero
    assert hub.sensors_status()[0]["transports"] == ["mqtt"]


def _scores(top: int, fall: float) -> np.ndarray:
    s = np.full(len(DEFAULT_CLASS_NAMES), 0.01, np.float32)
    s[FALL] = fall
    s[top] = max(s[top], 0.6)
    return s


def test_round_results_become_stored_predictions_alerts_and_events(hub):
    events = []
    hub.add_listener(events.append)
    hub.submit("S1", frames(2), "ws")
    arrival = __import__("time").time()
    box = (1.0, 2.0, 9.0, 8.0)
    preds = [ScoredPerson("S1", 6 * i, T0 + 1000 * i, 0, box, _scores(DEFAULT_CLASS_NAMES.index("standing"), 0.1),
                          arrival, None, "none") for i in range(8)]
    preds.append(ScoredPerson("S1", 48, T0 + 8000, 0, box, _scores(FALL, 0.9), arrival, 0.25, "api"))
    alert = alert_event("raised", "S1", 0, T0 + 8000, T0 + 8000, 0.9)
    live = {"S1": LiveFrame(np.full((40, 60), 21.0, np.float32), T0 + 8000, np.array([[1, 2, 9, 8]], np.float32),
                            np.array([0]), 12)}
    hub.on_message(0, Round(frames_done=2, predictions=preds, alerts=[alert], live=live,
                                         model_s=0.02, forward_passes=2))
    # One stored per 5 s per person, plus every change of action: t=0, 5 s, and the fall at 8 s.
    stored = hub.store.timeline("S1", since_ms=0)
    assert [(i["timestamp"] - T0, i["action"]) for i in stored] == [
        (0, "standing"), (5000, "standing"), (8000, FALL_CLASS_NAME)]
    (row,) = hub.store.alerts()
    assert row["status"] == "open" and row["state"] == "ongoing" and row["peak_score"] == pytest.approx(0.9)
    st = hub.sensors_status()[0]
    assert st["fallen"] and st["open_alerts"] == 1 and st["predictions"] == 9 and st["repaired_pixels"] == 12
    view = hub.live("S1")
    assert view["tracks"] == [{"track_id": 0, "box": [1.0, 2.0, 9.0, 8.0], "action": FALL_CLASS_NAME,
                               "score": pytest.approx(0.9), "fall_score": pytest.approx(0.9), "fallen": True,
                               "alert_peak": pytest.approx(0.9), "prediction_ms": T0 + 8000, "bed_share": 0.25,
                               "room_source": "api"}]
    assert view["frame_png"].startswith("iVBOR")  # base64 of a PNG
    assert [e["type"] for e in events] == ["alert", "live"]
    s = hub.stats()
    assert s["model_ms_p50"] == pytest.approx(10.0) and s["latency_samples"] == 9 and s["alerts_open"] == 1
    # Lying still, the model's fall score of the instant drops; the box in alarm still shows
    # the score that raised the alert.
    hub.on_message(0, Round(predictions=[ScoredPerson("S1", 54, T0 + 9000, 0, box,
                                                      _scores(DEFAULT_CLASS_NAMES.index("standing"), 0.02), arrival)]))
    (now,) = hub.live("S1")["tracks"]
    assert now["fallen"] and now["fall_score"] == pytest.approx(0.02) and now["alert_peak"] == pytest.approx(0.9)

    # The fall ends (person got up): still open until somebody acknowledges it.
    hub.on_message(0, Round(alerts=[alert_event("ended", "S1", 0, T0 + 8000, T0 + 20_000, 0.9,
                                                             fired_timestamp=T0 + 8000)]))
    (row,) = hub.store.alerts()
    assert row["state"] == "ended" and row["ended_ms"] == T0 + 20_000 and row["status"] == "open"
    assert not hub.sensors_status()[0]["fallen"]
    assert hub.live("S1")["tracks"][0]["alert_peak"] is None  # no longer in alarm
    acked = hub.set_alert_status(row["id"], "acknowledged", AlertAction("nurse"))
    assert acked["status"] == "acknowledged"
    assert events[-1] == {"type": "alert", "alert": acked, "actions": ["acknowledged"]}


def test_a_raise_and_its_end_in_one_round_store_the_alert_once(hub):
    events = []
    hub.add_listener(events.append)
    hub.submit("S1", frames(2), "ws")
    raised = alert_event("raised", "S1", 4, T0, T0 + 1000, 0.7)
    ended = alert_event("ended", "S1", 4, T0, T0 + 2000, 0.8, fired_timestamp=T0 + 1000)
    again = alert_event("raised", "S1", 4, T0 + 9000, T0 + 9000, 0.75)  # the person falls again, nobody came yet
    hub.on_message(0, Round(alerts=[raised, ended, again]))
    (row,) = hub.store.alerts()
    assert [(r["track_id"], r["start_timestamp"] - T0, r["fired_timestamp"] - T0, r["active"])
            for r in hub.store.raises()] == [(4, 0, 1000, False), (4, 9000, 9000, True)]
    assert (row["state"], row["repeats"], row["raised_ms"], row["last_raised_ms"]) == ("ongoing", 1, T0 + 1000,
                                                                                       T0 + 9000)
    assert row["peak_score"] == pytest.approx(0.8)
    s = hub.stats()
    assert (s["alerts_raised_total"], s["alert_repeats_total"]) == (1, 1) and hub.sensors_status()[0]["fallen"]
    assert [(e["alert"]["id"], e["actions"]) for e in events] == [
        (row["id"], ["raised"]), (row["id"], ["ended"]), (row["id"], ["repeat"])]
    # An end whose raise was lost (or never sent) still stores the alert.
    hub.on_message(0, Round(alerts=[alert_event("ended", "S1", 5, T0, T0 + 3000, 0.9)]))
    assert len(hub.store.alerts()) == 2 and hub.stats()["alerts_raised_total"] == 2


def test_worker_errors_are_counted_per_sensor(hub):
    hub.submit("S1", frames(1), "ws")
    hub.on_message(0, Round(frames_done=1, errors=[FrameError("S1", "invalid_frame", "no valid temperature", 1)]))
    st = hub.sensors_status()[0]
    assert st["invalid_frames"] == 1 and "no valid temperature" in st["last_error"]


def test_a_worker_restart_starts_new_streams_for_its_sensors(hub):
    for s in ("A", "B", "C"):
        hub.submit(s, frames(2), "ws")
    w = worker_for("A", 2)
    hub.on_message(0, Round(alerts=[alert_event("raised", s, 0, T0, T0, 0.9) for s in ("A", "B", "C")]))
    hub.on_restart(w, lost=5)
    restarted = {s["sensor_id"]: s["new_streams"] for s in hub.sensors_status()}
    # The dead worker's monitor took its alerts along: they end; the other worker's go on.
    assert {a["sensor_id"]: a["state"] == "ongoing" for a in hub.store.alerts()} == {
        s: worker_for(s, 2) != w for s in "ABC"}
    assert restarted == {s: int(worker_for(s, 2) == w) for s in ("A", "B", "C")}
    assert hub.stats()["worker_restarts_total"] == 1 and hub.stats()["frames_dropped_total"] == 5
    # The next frames, with older timestamps than before the crash, do not count as a new clock again.
    hub.submit("A", frames(1), "ws")
    assert hub.sensors_status()[0]["new_streams"] == 1


def test_silent_sensor_ends_its_stream_once(hub, monkeypatch):
    hub.cfg = replace_values(hub.cfg, {"silent_seconds": 1.0, "end_stream_seconds": 2.0})
    hub.submit("S1", frames(2), "ws")
    hub.sensors["S1"].last_arrival -= 1.5
    assert hub.sensors_status()[0]["status"] == "silent"
    hub.tick()
    assert hub.pool.ended == []
    hub.sensors["S1"].last_arrival -= 1.0
    hub.tick()
    hub.tick()
    assert hub.pool.ended == [(worker_for("S1", 2), "S1")]
    assert hub.sensors_status()[0]["status"] == "ended"
    hub.submit("S1", frames(1, t0=T0 + 5000), "ws")  # back: a live stream again, not a "new clock"
    assert hub.sensors_status()[0]["status"] == "live" and hub.sensors_status()[0]["new_streams"] == 0


def test_metrics_parse_as_prometheus_text_with_histogram_sums_and_counts(hub):
    from prometheus_client.parser import text_string_to_metric_families

    from thermal_action.inference.boxes import FrameBoxes

    hub.submit("S1", frames(3), "ws")
    done = FrameTracks.pack([(T0 + 166 * i, FrameBoxes.empty()) for i in range(3)])
    hub.on_message(0, Round(frames_done=3, tracks={"S1": done}, model_s=0.03, forward_passes=3))
    families = {f.name: f for f in text_string_to_metric_families(hub.metrics_text())}
    value = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}
    assert value[("thermal_frames_total", (("sensor", "S1"),))] == 3
    assert families["thermal_delay_seconds"].type == "histogram"
    # One delay sample: the round's newest frame, processed now, captured at T0 + 332 ms.
    assert value[("thermal_delay_seconds_count", ())] == 1
    assert value[("thermal_delay_seconds_sum", ())] == pytest.approx(__import__("time").time() - (T0 + 332) / 1000,
                                                                      abs=5)
    assert value[("thermal_model_seconds_count", ())] == 3
    assert value[("thermal_model_seconds_sum", ())] == pytest.approx(0.03)
    assert value[("thermal_delay_seconds_bucket", (("le", "+Inf"),))] == 1
    for name in ("thermal_sensors_connected", "thermal_frames_per_second", "thermal_queue_depth",
                 "thermal_latency_seconds", "thermal_frames_dropped", "thermal_alerts", "thermal_worker_restarts",
                 "thermal_behind", "thermal_sensor_moves"):
        assert name in families, name
    # A second hub in this process has its own registry: nothing of the first one's.
    other = Hub(hub.cfg, hub.info, hub.store, FakePool())
    assert "thermal_delay_seconds_count 0.0" in other.metrics_text()


def test_clipped_and_refused_boxes_are_counted_per_sensor(hub):
    f = FrameIn(np.full((40, 60), 20.0, np.float32), T0, np.zeros((1, 4), np.float32), repaired_boxes=2,
                refused_boxes=1)
    assert hub.submit("S1", [f, FrameIn(f.frame, T0 + 166, None, 1, 3)], "http").accepted == 2
    st = hub.sensors_status()[0]
    assert (st["repaired_boxes"], st["refused_boxes"]) == (3, 4)
    text = hub.metrics_text()
    assert 'thermal_boxes_repaired_total{sensor="S1"} 3.0' in text
    assert 'thermal_boxes_refused_total{sensor="S1"} 4.0' in text


def test_a_sensors_prediction_that_cannot_be_stored_costs_only_that_sensor(hub):
    hub.submit("S1", frames(1), "ws")
    hub.submit("S2", frames(1), "ws")
    arrival = __import__("time").time()
    box = (1.0, 2.0, 9.0, 8.0)
    preds = [ScoredPerson("S1", 0, T0, 0, box, _scores(0, 0.1), arrival),
             ScoredPerson("S2", 0, 2**64, 0, box, _scores(0, 0.1), arrival)]
    alert = alert_event("raised", "S1", 0, T0, T0, 0.9)
    hub.on_message(0, Round(frames_done=2, predictions=preds, alerts=[alert]))
    assert hub.store.count_predictions("S1") == 1 and hub.store.count_predictions("S2") == 0
    assert len(hub.store.alerts()) == 1  # the round went on past the failed insert
    by_id = {s["sensor_id"]: s for s in hub.sensors_status()}
    assert "could not be stored" in by_id["S2"]["last_error"] and by_id["S1"]["last_error"] is None


def test_junk_sensor_ids_do_not_lock_out_a_real_sensor(tmp_path):
    info = ModelInfo(DEFAULT_CLASS_NAMES, (40, 60), FALL, 0.5, lag_frames=7, window_length=16)
    hub = Hub(ServeConfig(data_dir=str(tmp_path)), info, Store(tmp_path / "db"), FakePool())
    assert hub.cfg.max_sensors == 256
    for i in range(150):  # ids that never sent a usable frame: bad messages, another sensor model
        hub.reject(f"junk-{i}", "ws", "not valid JSON")
        hub.submit(f"junk-shape-{i}", frames(1, shape=(24, 32)), "http")
    hub.connected("junk-connected", "ws")
    assert len(hub.sensors) == 256
    assert hub.submit("real", frames(3), "ws").accepted == 3
    assert "real" in hub.sensors and len(hub.sensors) == 256
    assert hub.stats()["forgotten_sensors_total"] == 46  # the oldest junk made room, one id at a time
    assert "junk-0" not in hub.sensors and "junk-149" in hub.sensors
    hub.store.close()


def test_sensors_with_frames_are_forgotten_only_when_idle_unconnected_and_ended(hub):
    for s in ("A", "B", "C"):
        assert hub.submit(s, frames(1), "ws").accepted == 1
    assert hub.submit("D", frames(1), "ws").accepted == 0  # all three streams run: D is refused
    a = hub.sensors["A"]
    a.stream_ended, a.last_seen = True, a.last_seen - hub.cfg.forget_sensor_seconds - 1
    hub.connected("A", "ws")
    assert hub.submit("D", frames(1), "ws").accepted == 0  # connected: kept
    hub.disconnected("A", "ws")
    a.last_seen -= hub.cfg.forget_sensor_seconds + 1
    a.active_alerts.add((0, T0))
    assert hub.submit("D", frames(1), "ws").accepted == 0  # a fall still going on: kept
    a.active_alerts.clear()
    assert hub.submit("D", frames(1), "ws").accepted == 1  # idle, unconnected, ended: forgotten
    assert sorted(hub.sensors) == ["B", "C", "D"] and hub.stats()["refused_sensors_total"] == 3
