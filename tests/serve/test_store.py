"""The service's SQLite store: alert events make one row per alert, states survive a reopen,
predictions are kept and purged."""

from __future__ import annotations

import pytest

from helpers.serve import alert_event
from thermal_action.serve.store import Store


def raise_alert(s: Store, sensor, track, start, fired, peak):
    return s.record_alert(alert_event("raised", sensor, track, start, fired, peak))[0]


def end_alert(s: Store, sensor, track, start, end, peak):
    return s.record_alert(alert_event("ended", sensor, track, start, end, peak))[0]


def test_alert_life_open_acknowledged_resolved_survives_reopen(tmp_path):
    db = tmp_path / "serve.db"
    s = Store(db)
    a = raise_alert(s, "S1", 3, 1000, 6000, 0.8)
    assert (a["state"], a["active"], a["end_timestamp"]) == ("open", True, None)
    again = raise_alert(s, "S1", 3, 1000, 6500, 0.9)  # the same fall reported again
    assert again["id"] == a["id"] and again["peak_score"] == pytest.approx(0.9)
    ended = end_alert(s, "S1", 3, 1000, 9000, 0.85)
    assert ended["active"] is False and ended["end_timestamp"] == 9000 and ended["state"] == "open"
    acked = s.set_alert_state(a["id"], "acknowledged", "nurse A")
    assert acked["state"] == "acknowledged" and acked["acknowledged_by"] == "nurse A" and acked["acknowledged_at"]
    s.close()

    s = Store(db)  # a restart
    row = s.alert(a["id"])
    assert row["state"] == "acknowledged" and row["acknowledged_by"] == "nurse A"
    done = s.set_alert_state(a["id"], "resolved", "nurse B")
    assert done["state"] == "resolved" and done["resolved_by"] == "nurse B" and done["acknowledged_by"] == "nurse A"
    # Acknowledging a resolved alert does not reopen it.
    assert s.set_alert_state(a["id"], "acknowledged", "late")["state"] == "resolved"
    assert s.set_alert_state(999, "resolved", "x") is None
    assert s.count_alerts() == {"open": 0, "acknowledged": 0, "resolved": 1}


def test_a_raise_and_its_end_in_one_go_and_an_end_without_its_raise(tmp_path):
    s = Store(tmp_path / "db")
    raised = alert_event("raised", "S1", 2, 1000, 2000, 0.7)
    ended = alert_event("ended", "S1", 2, 1000, 3000, 0.8, fired_timestamp=2000)
    (a, new_a), (b, new_b) = s.record_alert(raised), s.record_alert(ended)
    assert new_a and not new_b and a["id"] == b["id"]
    assert (b["active"], b["fired_timestamp"], b["end_timestamp"], b["peak_score"]) == (False, 2000, 3000, 0.8)
    # The end of an alert whose raise never arrived is the whole alert, already over.
    c, new_c = s.record_alert(alert_event("ended", "S1", 3, 5000, 7000, 0.9, fired_timestamp=6000))
    assert new_c and (c["state"], c["active"], c["fired_timestamp"], c["end_timestamp"]) == ("open", False, 6000, 7000)
    assert s.count_alerts()["open"] == 2
    # A late "raised" of an ended alert does not make it active again.
    assert s.record_alert(raised)[0]["active"] is False


def test_the_active_alerts_of_some_sensors_end(tmp_path):
    s = Store(tmp_path / "db")
    for sensor in ("S1", "S2", "S3"):
        raise_alert(s, sensor, 0, 1, 2, 0.6)
    assert s.end_all_active(["S2", "S3", "S4"]) == 2 and s.end_all_active([]) == 0  # a dead worker's sensors
    assert {a["sensor_id"]: a["active"] for a in s.alerts()} == {"S1": True, "S2": False, "S3": False}


def test_resolving_an_open_alert_acknowledges_it_too(tmp_path):
    s = Store(tmp_path / "db")
    a = raise_alert(s, "S2", 0, 5, 5, 0.7)
    r = s.set_alert_state(a["id"], "resolved", "ops")
    assert r["acknowledged_by"] == "ops" and r["resolved_by"] == "ops"
    with pytest.raises(ValueError, match="acknowledged or resolved"):
        s.set_alert_state(a["id"], "open", "x")


def test_active_alerts_end_at_start_and_filters(tmp_path):
    s = Store(tmp_path / "db")
    raise_alert(s, "S1", 0, 1, 2, 0.6)
    b = raise_alert(s, "S2", 1, 1, 2, 0.6)
    s.set_alert_state(b["id"], "acknowledged", "x")
    assert s.end_all_active() == 2
    assert all(not a["active"] for a in s.alerts())
    assert [a["sensor_id"] for a in s.alerts("open")] == ["S1"]
    assert [a["sensor_id"] for a in s.alerts("unresolved")] == ["S2", "S1"]
    assert [a["sensor_id"] for a in s.alerts(sensor_id="S2")] == ["S2"]
    assert s.open_alerts_by_sensor() == {"S1": 1}
    with pytest.raises(ValueError, match="state must be"):
        s.alerts("gone")


def test_predictions_timeline_and_purge(tmp_path):
    s = Store(tmp_path / "db")
    s.add_predictions([("S1", 1000 + i, i, 0, "standing", 0.9, 0.05, 1, 2, 3, 4) for i in range(5)]
                      + [("S2", 1000, 0, 1, "walking", 0.5, 0.1, 1, 2, 3, 4)])
    items = s.timeline("S1", since_ms=1002)
    assert [i["timestamp"] for i in items] == [1002, 1003, 1004]
    assert items[0]["action"] == "standing" and items[0]["fall_score"] == pytest.approx(0.05)
    assert s.count_predictions() == 6 and s.count_predictions("S2") == 1
    assert s.purge_predictions(older_than_ms=0) == 0
    assert s.purge_predictions(older_than_ms=2**62) == 6


def test_one_sensors_failing_insert_does_not_lose_the_others_predictions(tmp_path):
    s = Store(tmp_path / "db")
    good = [("S1", 1000 + i, i, 0, "standing", 0.9, 0.05, 1, 2, 3, 4) for i in range(3)]
    bad = ("S2", 10**19, 0, 0, "standing", 0.9, 0.05, 1, 2, 3, 4)  # past SQLite's 64-bit integers
    failed = s.add_predictions([good[0], bad, *good[1:], ("S3", 1000, 0, 1, "walking", 0.5, 0.1, 1, 2, 3, 4)])
    assert list(failed) == ["S2"] and "S2" in failed["S2"]
    assert s.count_predictions("S1") == 3 and s.count_predictions("S3") == 1 and s.count_predictions("S2") == 0
    assert s.add_predictions(good) == {}


def test_every_acknowledgement_and_resolution_goes_to_the_audit_trail(tmp_path):
    s = Store(tmp_path / "db")
    a = raise_alert(s, "S1", 0, 1000, 1000, 0.9)
    s.set_alert_state(a["id"], "acknowledged", "nurse A", note="on my way")
    second = s.set_alert_state(a["id"], "acknowledged", "nurse B")
    assert second["acknowledged_by"] == "nurse A"  # the columns keep the first acknowledgement
    s.set_alert_state(a["id"], "resolved", "nurse B", note="helped up, no injury")
    events = s.alert_events(a["id"])
    assert [(e["alert_id"], e["action"], e["who"], e["note"]) for e in events] == [
        (a["id"], "acknowledged", "nurse A", "on my way"), (a["id"], "acknowledged", "nurse B", ""),
        (a["id"], "resolved", "nurse B", "helped up, no injury")]
    assert all(e["at"] >= a["created_at"] for e in events)
    assert s.set_alert_state(999, "acknowledged", "x") is None and s.alert_events(999) == []
