"""The service's store, on SQLite and on PostgreSQL (every test before the migration tests): alert events make one row per alert (a person's raises folded
while unacknowledged), statuses survive a reopen, an older database is migrated, sensor
details and feedback are kept, predictions are kept and purged."""

from __future__ import annotations

import sqlite3

import pytest
from helpers.serve import alert_event

from thermal_action.errors import AlertIsOngoing, StoreError
from thermal_action.serve.operators import Feedback, SensorInfo
from thermal_action.serve.store import FoldRule, Store, box_gap
from thermal_action.serve.store_schema import MIGRATIONS, SCHEMA_VERSION


@pytest.fixture(params=["sqlite", "postgresql"])
def open_store(request, tmp_path):
    """``open_store(name, fold, instance)``: a store on this test's backend; the same name is the
    same database (opened again: a restart). PostgreSQL: a new database of the session's
    private cluster (conftest ``postgres``)."""
    urls: dict[str, str] = {}
    opened: list[Store] = []

    def make(name: str = "db", fold: FoldRule = FoldRule(), instance: str = "") -> Store:
        if request.param == "sqlite":
            target = tmp_path / name
        else:
            if name not in urls:
                urls[name] = request.getfixturevalue("postgres").create_database()
            target = urls[name]
        opened.append(Store(target, fold, instance))
        return opened[-1]

    yield make
    for store in opened:
        try:
            store.close()
        except Exception:  # noqa: BLE001 - closed by the test already
            pass


def raise_alert(s: Store, sensor, track, start, fired, peak):
    return s.record_alert(alert_event("raised", sensor, track, start, fired, peak)).alert


def end_alert(s: Store, sensor, track, start, end, peak):
    return s.record_alert(alert_event("ended", sensor, track, start, end, peak)).alert


def test_alert_life_open_acknowledged_resolved_survives_reopen(open_store):
    s = open_store("serve")
    a = raise_alert(s, "S1", 3, 1000, 6000, 0.8)
    assert (a["status"], a["state"], a["ended_ms"], a["started_ms"], a["raised_ms"]) == ("open", "ongoing", None,
                                                                                         1000, 6000)
    assert (a["room"], a["resident"], a["repeats"], a["feedback"], a["has_clip"]) == ("S1", "", 0, None, False)
    again = raise_alert(s, "S1", 3, 1000, 6500, 0.9)  # the same fall reported again
    assert again["id"] == a["id"] and again["peak_score"] == pytest.approx(0.9) and again["repeats"] == 0
    ended = end_alert(s, "S1", 3, 1000, 9000, 0.85)
    assert ended["state"] == "ended" and ended["ended_ms"] == 9000 and ended["status"] == "open"
    acked = s.set_alert_status(a["id"], "acknowledged", "nurse A")
    assert acked["status"] == "acknowledged" and acked["acknowledged_by"] == "nurse A" and acked["acknowledged_at"]
    s.close()

    s = open_store("serve")  # a restart
    row = s.alert(a["id"])
    assert row["status"] == "acknowledged" and row["acknowledged_by"] == "nurse A"
    done = s.set_alert_status(a["id"], "resolved", "nurse B")
    assert done["status"] == "resolved" and done["resolved_by"] == "nurse B" and done["acknowledged_by"] == "nurse A"
    # Acknowledging a resolved alert does not reopen it.
    assert s.set_alert_status(a["id"], "acknowledged", "late")["status"] == "resolved"
    assert s.set_alert_status(999, "resolved", "x") is None
    assert s.count_alerts() == {"open": 0, "acknowledged": 0, "resolved": 1, "ongoing": 0}


def test_a_raise_and_its_end_in_one_go_and_an_end_without_its_raise(open_store):
    s = open_store("db")
    raised = alert_event("raised", "S1", 2, 1000, 2000, 0.7)
    ended = alert_event("ended", "S1", 2, 1000, 3000, 0.8, fired_timestamp=2000)
    a, b = s.record_alert(raised), s.record_alert(ended)
    assert a.actions == ("raised",) and b.actions == ("ended",) and a.alert["id"] == b.alert["id"]
    b = b.alert
    assert (b["state"], b["raised_ms"], b["ended_ms"], b["peak_score"]) == ("ended", 2000, 3000, 0.8)
    # The end of an alert whose raise never arrived is the whole alert, already over.
    c = s.record_alert(alert_event("ended", "S1", 3, 5000, 7000, 0.9, fired_timestamp=6000))
    assert c.actions == ("raised", "ended")
    assert (c.alert["status"], c.alert["state"], c.alert["raised_ms"], c.alert["ended_ms"]) == ("open", "ended", 6000,
                                                                                                  7000)
    assert s.count_alerts()["open"] == 2
    # A late "raised" of an ended alert does not make it active again.
    late = s.record_alert(raised)
    assert late.alert["state"] == "ended" and late.actions == ()


def test_the_active_alerts_of_some_sensors_end(open_store):
    s = open_store("db")
    for sensor in ("S1", "S2", "S3"):
        raise_alert(s, sensor, 0, 1, 2, 0.6)
    ended = s.end_all_active(["S2", "S3", "S4"], why="worker 1 died")  # a dead worker's sensors
    assert sorted(a["sensor_id"] for a in ended) == ["S2", "S3"] and s.end_all_active([]) == []
    assert {a["sensor_id"]: a["state"] for a in s.alerts()} == {"S1": "ongoing", "S2": "ended", "S3": "ended"}
    assert [(e["action"], e["who"], e["note"]) for e in s.alert_events(ended[0]["id"])][-1] == (
        "ended", "system", "worker 1 died")


def test_resolving_an_open_alert_acknowledges_it_too(open_store):
    s = open_store("db")
    a = raise_alert(s, "S2", 0, 5, 5, 0.7)
    end_alert(s, "S2", 0, 5, 9, 0.7)
    r = s.set_alert_status(a["id"], "resolved", "ops")
    assert r["acknowledged_by"] == "ops" and r["resolved_by"] == "ops"
    with pytest.raises(ValueError, match="acknowledged or resolved"):
        s.set_alert_status(a["id"], "open", "x")


def test_resolving_an_ongoing_alert_needs_the_confirmation(open_store):
    s = open_store("db")
    a = raise_alert(s, "S2", 0, 5, 5, 0.7)
    with pytest.raises(AlertIsOngoing, match="confirm_ongoing"):
        s.set_alert_status(a["id"], "resolved", "ops")
    assert s.alert(a["id"])["status"] == "open" and s.alert_events(a["id"])[-1]["action"] == "raised"
    r = s.set_alert_status(a["id"], "resolved", "ops", note="with her now", confirm_ongoing=True)
    assert (r["status"], r["state"]) == ("resolved", "ongoing")


def test_active_alerts_end_at_start_and_filters(open_store):
    s = open_store("db")
    raise_alert(s, "S1", 0, 1, 2, 0.6)
    b = raise_alert(s, "S2", 1, 1, 2, 0.6)
    s.set_alert_status(b["id"], "acknowledged", "x")
    assert [a["sensor_id"] for a in s.alerts(state="ongoing")] == ["S2", "S1"]
    assert len(s.end_all_active()) == 2
    assert all(a["state"] == "ended" for a in s.alerts()) and s.alerts(state="ongoing") == []
    assert [a["sensor_id"] for a in s.alerts("open")] == ["S1"]
    assert [a["sensor_id"] for a in s.alerts("unresolved")] == ["S2", "S1"]
    assert [a["sensor_id"] for a in s.alerts(sensor_id="S2")] == ["S2"]
    assert s.open_alerts_by_sensor() == {"S1": 1}
    with pytest.raises(ValueError, match="status must be"):
        s.alerts("gone")
    with pytest.raises(ValueError, match="state must be"):
        s.alerts(state="open")


def test_predictions_timeline_and_purge(open_store):
    s = open_store("db")
    s.add_predictions([("S1", 1000 + i, i, 0, "standing", 0.9, 0.05, 1, 2, 3, 4) for i in range(5)]
                      + [("S2", 1000, 0, 1, "walking", 0.5, 0.1, 1, 2, 3, 4)])
    items = s.timeline("S1", since_ms=1002)
    assert [i["timestamp"] for i in items] == [1002, 1003, 1004]
    assert items[0]["action"] == "standing" and items[0]["fall_score"] == pytest.approx(0.05)
    assert s.count_predictions() == 6 and s.count_predictions("S2") == 1
    assert s.purge_predictions(older_than_ms=0) == 0
    assert s.purge_predictions(older_than_ms=2**62) == 6


def test_one_sensors_failing_insert_does_not_lose_the_others_predictions(open_store):
    s = open_store("db")
    good = [("S1", 1000 + i, i, 0, "standing", 0.9, 0.05, 1, 2, 3, 4) for i in range(3)]
    bad = ("S2", 10**19, 0, 0, "standing", 0.9, 0.05, 1, 2, 3, 4)  # past SQLite's 64-bit integers
    failed = s.add_predictions([good[0], bad, *good[1:], ("S3", 1000, 0, 1, "walking", 0.5, 0.1, 1, 2, 3, 4)])
    assert list(failed) == ["S2"] and "S2" in failed["S2"]
    assert s.count_predictions("S1") == 3 and s.count_predictions("S3") == 1 and s.count_predictions("S2") == 0
    assert s.add_predictions(good) == {}


def test_every_acknowledgement_and_resolution_goes_to_the_audit_trail(open_store):
    s = open_store("db")
    a = raise_alert(s, "S1", 0, 1000, 1000, 0.9)
    s.set_alert_status(a["id"], "acknowledged", "nurse A", note="on my way")
    second = s.set_alert_status(a["id"], "acknowledged", "nurse B")
    assert second["acknowledged_by"] == "nurse A"  # the columns keep the first acknowledgement
    end_alert(s, "S1", 0, 1000, 4000, 0.9)
    s.set_alert_status(a["id"], "resolved", "nurse B", note="helped up, no injury")
    events = s.alert_events(a["id"])
    assert [(e["alert_id"], e["action"], e["who"], e["note"]) for e in events] == [
        (a["id"], "raised", "system", "track 0, fall score 0.90"),
        (a["id"], "acknowledged", "nurse A", "on my way"), (a["id"], "acknowledged", "nurse B", ""),
        (a["id"], "ended", "system", ""), (a["id"], "resolved", "nurse B", "helped up, no injury")]
    assert all(e["at"] >= a["created_at"] for e in events)
    assert s.set_alert_status(999, "acknowledged", "x") is None and s.alert_events(999) == []


def test_a_person_raised_again_while_unacknowledged_is_one_alert_with_repeats(open_store):
    s = open_store("db")
    first = s.record_alert(alert_event("raised", "S1", 2, 1000, 6000, 0.7))
    s.record_alert(alert_event("ended", "S1", 2, 1000, 8000, 0.7, fired_timestamp=6000))
    again = s.record_alert(alert_event("raised", "S1", 2, 20_000, 25_000, 0.9))  # fell again, nobody came yet
    assert again.actions == ("repeat",) and again.alert["id"] == first.alert["id"]
    a = again.alert
    assert (a["repeats"], a["last_raised_ms"], a["raised_ms"], a["state"], a["ended_ms"]) == (1, 25_000, 6000,
                                                                                              "ongoing", None)
    assert a["peak_score"] == pytest.approx(0.9)
    other = s.record_alert(alert_event("raised", "S1", 5, 20_000, 25_000, 0.8))  # another person: its own alert
    assert other.actions == ("raised",) and other.alert["id"] != a["id"]
    ended = s.record_alert(alert_event("ended", "S1", 2, 20_000, 30_000, 0.9, fired_timestamp=25_000))
    assert ended.actions == ("ended",) and (ended.alert["state"], ended.alert["ended_ms"]) == ("ended", 30_000)
    assert [(e["action"], e["who"]) for e in s.alert_events(a["id"])] == [
        ("raised", "system"), ("ended", "system"), ("repeat", "system"), ("ended", "system")]
    assert [(r["start_timestamp"], r["alert_id"]) for r in s.raises(sensor_id="S1") if r["track_id"] == 2] == [
        (1000, a["id"]), (20_000, a["id"])]
    # Once acknowledged, the next fall of the person is a new alert.
    s.set_alert_status(a["id"], "acknowledged", "nurse")
    third = s.record_alert(alert_event("raised", "S1", 2, 40_000, 45_000, 0.8))
    assert third.actions == ("raised",) and third.alert["id"] not in (a["id"], other.alert["id"])
    assert len(s.alerts()) == 3


#: A resident lying on the floor (pixels of a 40x60 frame), the box a new track id finds them in
#: (overlapping: the same place), a box 3 px to its right, and a second person across the room.
ON_FLOOR = (10.0, 20.0, 26.0, 28.0)
FOUND_AGAIN = (12.0, 19.0, 27.0, 29.0)
NEARBY = (29.0, 20.0, 40.0, 28.0)
ACROSS_THE_ROOM = (44.0, 4.0, 56.0, 14.0)


def test_box_gap_is_zero_for_overlapping_boxes_and_the_shortest_distance_otherwise():
    assert box_gap(ON_FLOOR, FOUND_AGAIN) == 0.0 and box_gap(ON_FLOOR, ON_FLOOR) == 0.0
    assert box_gap(ON_FLOOR, NEARBY) == pytest.approx(3.0)  # beside it
    assert box_gap((0, 0, 2, 2), (5, 6, 9, 9)) == pytest.approx(5.0)  # corner to corner: 3, 4 -> 5
    assert box_gap((5, 6, 9, 9), (0, 0, 2, 2)) == pytest.approx(5.0)


def test_a_new_track_id_of_the_same_person_folds_into_the_open_alert(open_store):
    """The tracker lost a resident lying still (track 3) and found them again as track 7: one alert."""
    s = open_store("db")  # the default rule: 120 s, 5 px
    first = s.record_alert(alert_event("raised", "S1", 3, 1000, 6000, 0.8, box=ON_FLOOR))
    s.record_alert(alert_event("ended", "S1", 3, 1000, 9000, 0.8, fired_timestamp=6000, box=ON_FLOOR))
    again = s.record_alert(alert_event("raised", "S1", 7, 40_000, 45_000, 0.9, box=FOUND_AGAIN))  # 31 s later
    assert again.actions == ("repeat",) and again.alert["id"] == first.alert["id"]
    a = again.alert
    assert (a["repeats"], a["state"], a["last_raised_ms"], a["track_id"]) == (1, "ongoing", 45_000, 3)
    note = s.alert_events(a["id"])[-1]
    assert note["action"] == "repeat" and "track 7" in note["note"] and "new track id" in note["note"]
    assert "last seen 31 s before" in note["note"]
    assert [(r["track_id"], r["alert_id"], r["box"]) for r in s.raises(sensor_id="S1")] == [
        (3, a["id"], list(ON_FLOOR)), (7, a["id"], list(FOUND_AGAIN))]
    # While the earlier track is still down too (not yet ended by the monitor), and beside it: folded.
    t2 = s.record_alert(alert_event("raised", "S1", 8, 46_000, 47_000, 0.7, box=NEARBY))
    assert t2.actions == ("repeat",) and t2.alert["id"] == a["id"] and "still down" in s.alert_events(a["id"])[-1]["note"]
    assert len(s.alerts()) == 1


def test_a_second_person_elsewhere_in_the_room_gets_an_alert_of_their_own(open_store):
    s = open_store("db")
    first = s.record_alert(alert_event("raised", "S1", 3, 1000, 6000, 0.8, box=ON_FLOOR))
    other = s.record_alert(alert_event("raised", "S1", 4, 2000, 7000, 0.8, box=ACROSS_THE_ROOM))  # meanwhile
    assert other.actions == ("raised",) and other.alert["id"] != first.alert["id"]
    # Another sensor's person in the same pixels is another room.
    assert s.record_alert(alert_event("raised", "S2", 9, 2000, 7000, 0.8, box=ON_FLOOR)).actions == ("raised",)
    # The same place, but long after the first person was last seen: a new alert.
    s.record_alert(alert_event("ended", "S1", 3, 1000, 9000, 0.8, fired_timestamp=6000, box=ON_FLOOR))
    late = s.record_alert(alert_event("raised", "S1", 5, 9000 + 121_000, 135_000, 0.8, box=FOUND_AGAIN))
    assert late.actions == ("raised",)
    # Without a box (an older worker, a gateway without one) nothing folds across track ids.
    assert s.record_alert(alert_event("raised", "S1", 6, 10_000, 11_000, 0.8)).actions == ("raised",)
    assert len(s.alerts(sensor_id="S1")) == 4


def test_an_acknowledged_alert_or_a_rule_turned_off_folds_no_new_track_id(open_store):
    s = open_store("db")
    a = s.record_alert(alert_event("raised", "S1", 3, 1000, 6000, 0.8, box=ON_FLOOR)).alert
    s.set_alert_status(a["id"], "acknowledged", "nurse")  # someone is on the way: a new raise is news
    assert s.record_alert(alert_event("raised", "S1", 7, 8000, 9000, 0.8, box=ON_FLOOR)).actions == ("raised",)
    off = open_store("off.db", FoldRule(seconds=None))
    off.record_alert(alert_event("raised", "S1", 3, 1000, 6000, 0.8, box=ON_FLOOR))
    assert off.record_alert(alert_event("raised", "S1", 7, 8000, 9000, 0.8, box=ON_FLOOR)).actions == ("raised",)
    near = open_store("near.db", FoldRule(seconds=120.0, distance_px=2.0))  # NEARBY is 3 px off
    near.record_alert(alert_event("raised", "S1", 3, 1000, 6000, 0.8, box=ON_FLOOR))
    assert near.record_alert(alert_event("raised", "S1", 7, 8000, 9000, 0.8, box=NEARBY)).actions == ("raised",)
    with pytest.raises(ValueError, match="fold rule"):
        FoldRule(seconds=-1.0)


def test_sensor_details_name_the_room_of_sensors_and_alerts(open_store):
    s = open_store("db")
    assert s.sensor_info("S1") == {"sensor_id": "S1", "room": "", "resident": "", "bed_label": "", "notes": "",
                                   "updated_at": None}
    a = raise_alert(s, "S1", 0, 1, 2, 0.6)
    assert (a["room"], a["resident"]) == ("S1", "")  # the room falls back to the sensor id
    got = s.set_sensor_info("S1", SensorInfo("Room 12", "A. Jones", "window bed", "uses a walker"))
    assert got["room"] == "Room 12" and got["updated_at"] is not None
    assert {k: s.alert(a["id"])[k] for k in ("room", "resident")} == {"room": "Room 12", "resident": "A. Jones"}
    s.set_sensor_info("S1", SensorInfo(resident="A. Jones"))  # replaced whole: no room
    assert s.alert(a["id"])["room"] == "S1" and list(s.all_sensor_info()) == ["S1"]


def test_feedback_is_kept_newest_first_and_in_the_audit_trail(open_store):
    s = open_store("db")
    a = raise_alert(s, "S1", 0, 1, 2, 0.6)
    assert s.add_feedback(999, Feedback("real_fall", "x")) is None
    s.add_feedback(a["id"], Feedback("not_sure", "nurse A"))
    row = s.add_feedback(a["id"], Feedback("false_alarm", "nurse B", "in_bed", "asleep"))
    assert {k: row["feedback"][k] for k in ("answer", "reason", "who", "note")} == {
        "answer": "false_alarm", "reason": "in_bed", "who": "nurse B", "note": "asleep"}
    assert [(e["action"], e["who"], e["note"]) for e in s.alert_events(a["id"])][1:] == [
        ("feedback", "nurse A", "not_sure"), ("feedback", "nurse B", "false_alarm (in_bed): asleep")]
    assert s.alerts_with_feedback() == []  # no clip: nothing to learn from
    s.set_clip(a["id"], f"{a['id']}.npz")
    (with_clip,) = s.alerts_with_feedback()
    assert with_clip["clip"] == f"{a['id']}.npz" and with_clip["has_clip"]
    assert s.clips_raised_before(3) == [(a["id"], f"{a['id']}.npz")] and s.clips_raised_before(2) == []


def test_summary_groups_unresolved_alerts_per_room(open_store):
    s = open_store("db")
    s.set_sensor_info("S1", SensorInfo("Room 12", "A. Jones"))
    s.set_sensor_info("S2", SensorInfo("Room 12", "B. Smith"))
    a = raise_alert(s, "S1", 0, 1, 100, 0.6)
    raise_alert(s, "S2", 0, 1, 50, 0.6)
    c = raise_alert(s, "S3", 0, 1, 10, 0.6)
    d = raise_alert(s, "S3", 1, 1, 20, 0.6)
    s.set_alert_status(a["id"], "acknowledged", "x")
    s.set_alert_status(d["id"], "resolved", "x", confirm_ongoing=True)
    rooms = s.alerts_summary()
    assert [(r["room"], r["count"], r["unacknowledged"], r["ongoing"]) for r in rooms] == [
        ("Room 12", 2, 1, 2), ("S3", 1, 1, 1)]
    assert rooms[0]["residents"] == ["B. Smith", "A. Jones"] and rooms[0]["oldest_raised_ms"] == 50
    assert rooms[1]["alert_ids"] == [c["id"]]


#: The schema of the service before schema versions (user_version 0), as it was created then.
SCHEMA_BEFORE_VERSIONS = """
CREATE TABLE alerts (id INTEGER PRIMARY KEY AUTOINCREMENT, sensor_id TEXT NOT NULL, track_id INTEGER NOT NULL,
    start_timestamp INTEGER NOT NULL, fired_timestamp INTEGER NOT NULL, end_timestamp INTEGER,
    peak_score REAL NOT NULL, active INTEGER NOT NULL DEFAULT 1, state TEXT NOT NULL DEFAULT 'open',
    acknowledged_by TEXT, acknowledged_at INTEGER, resolved_by TEXT, resolved_at INTEGER,
    created_at INTEGER NOT NULL, UNIQUE (sensor_id, track_id, start_timestamp));
CREATE INDEX alerts_state ON alerts (state, id);
CREATE TABLE predictions (sensor_id TEXT NOT NULL, timestamp INTEGER NOT NULL, frame_idx INTEGER NOT NULL,
    track_id INTEGER NOT NULL, action TEXT NOT NULL, score REAL NOT NULL, fall_score REAL,
    x1 REAL, y1 REAL, x2 REAL, y2 REAL, stored_at INTEGER NOT NULL);
CREATE INDEX predictions_sensor_time ON predictions (sensor_id, timestamp);
CREATE TABLE sensor_zones (sensor_id TEXT PRIMARY KEY, layout TEXT NOT NULL, updated_at INTEGER NOT NULL);
CREATE TABLE alert_events (id INTEGER PRIMARY KEY AUTOINCREMENT, alert_id INTEGER NOT NULL REFERENCES alerts (id),
    action TEXT NOT NULL, who TEXT NOT NULL, at INTEGER NOT NULL, note TEXT NOT NULL DEFAULT '');
CREATE INDEX alert_events_alert ON alert_events (alert_id, id);
INSERT INTO alerts (sensor_id, track_id, start_timestamp, fired_timestamp, end_timestamp, peak_score, active, state,
    acknowledged_by, acknowledged_at, created_at)
    VALUES ('S1', 3, 1000, 6000, 9000, 0.8, 0, 'acknowledged', 'nurse A', 7000, 6001),
           ('S2', 0, 2000, 7000, NULL, 0.7, 1, 'open', NULL, NULL, 7001);
INSERT INTO alert_events (alert_id, action, who, at, note) VALUES (1, 'acknowledged', 'nurse A', 7000, 'on my way');
INSERT INTO predictions VALUES ('S1', 1000, 0, 3, 'standing', 0.9, 0.05, 1, 2, 3, 4, 1000);
INSERT INTO sensor_zones VALUES ('S1', '{"zones": []}', 5);
"""


def test_a_database_from_before_versions_is_migrated_with_its_data(tmp_path):
    db = tmp_path / "serve.db"
    old = sqlite3.connect(db)
    old.executescript(SCHEMA_BEFORE_VERSIONS)
    old.commit()
    assert old.execute("PRAGMA user_version").fetchone()[0] == 0
    old.close()

    s = Store(db)
    assert s.migrated_from == 0
    tables = {r["name"] for r in s._rows("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"alerts", "alert_raises", "alert_events", "alert_feedback", "sensors_info", "predictions",
            "sensor_zones"} <= tables
    assert s._rows("PRAGMA user_version")[0]["user_version"] == SCHEMA_VERSION
    a, b = s.alert(1), s.alert(2)
    assert (a["status"], a["state"], a["acknowledged_by"], a["ended_ms"], a["repeats"]) == (
        "acknowledged", "ended", "nurse A", 9000, 0)
    assert (b["status"], b["state"], b["raised_ms"], b["last_raised_ms"]) == ("open", "ongoing", 7000, 7000)
    assert s.alert_events(1)[0]["note"] == "on my way"
    assert s.count_predictions() == 1 and s.zones("S1")["layout"] == {"zones": []}
    # The old alerts take part in the new rules: an end, a repeat of an unacknowledged person.
    assert s.record_alert(alert_event("ended", "S2", 0, 2000, 9500, 0.7, fired_timestamp=7000)).actions == ("ended",)
    assert s.record_alert(alert_event("raised", "S2", 0, 20_000, 21_000, 0.75)).alert["repeats"] == 1
    s.close()
    assert Store(db).migrated_from == SCHEMA_VERSION  # nothing left to do


def test_migrations_are_numbered_in_order_and_a_newer_database_is_refused(tmp_path):
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
    db = tmp_path / "future.db"
    con = sqlite3.connect(db)
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    con.close()
    with pytest.raises(StoreError, match="newer than this thermal-action"):
        Store(db)


def test_a_fall_that_moved_to_another_instance_continues_its_alert_whatever_its_status(open_store):
    """Instance A raised and an operator acknowledged; A died, the sensor moved to B, whose
    restarted window raises the person still down under a new track: the same alert."""
    a = open_store("shared", instance="A")
    b = open_store("shared", instance="B")
    first = a.record_alert(alert_event("raised", "S1", 1, 1000, 6000, 0.8, box=ON_FLOOR)).alert
    a.set_alert_status(first["id"], "acknowledged", "nurse")
    change = b.record_alert(alert_event("raised", "S1", 1, 20_000, 26_000, 0.9, box=NEARBY))
    assert change.actions == ("repeat",) and change.alert["id"] == first["id"]
    assert change.alert["status"] == "acknowledged" and change.alert["state"] == "ongoing"
    raises = b.raises(sensor_id="S1")
    assert [(r["track_id"], r["active"], r["end_timestamp"]) for r in raises] == [(1, False, 20_000), (1, True, None)]
    assert "moved from instance A to B" in b.alert_events(first["id"])[-1]["note"]
    # B follows the fall from now on: its end ends the alert.
    ended = b.record_alert(alert_event("ended", "S1", 1, 20_000, 40_000, 0.9, box=NEARBY))
    assert ended.actions == ("ended",) and b.count_alerts()["acknowledged"] == 1
    assert [e["action"] for e in b.alert_events(first["id"])] == ["raised", "acknowledged", "repeat", "ended"]
    # Another person elsewhere on the moved sensor is news.
    assert b.record_alert(alert_event("raised", "S1", 2, 50_000, 56_000, 0.9, box=ACROSS_THE_ROOM)).actions == ("raised",)


def test_a_moved_sensor_whose_fall_is_not_raised_again_ends_the_other_instances_raises(open_store):
    a = open_store("shared", instance="A")
    b = open_store("shared", instance="B")
    first = a.record_alert(alert_event("raised", "S1", 1, 1000, 6000, 0.8, box=ON_FLOOR)).alert
    other = a.record_alert(alert_event("raised", "S2", 1, 1000, 6000, 0.8, box=ON_FLOOR)).alert
    assert b.end_all_active(why="B started") == []  # at B's start: A's alerts are A's
    ended = b.end_raises_of_others("S1", why="the sensor moved to B; no fall here")
    assert [r["id"] for r in ended] == [first["id"]] and ended[0]["state"] == "ended"
    assert b.alert(other["id"])["state"] == "ongoing"
    assert b.alert_events(first["id"])[-1]["note"] == "the sensor moved to B; no fall here"
    assert [r["id"] for r in a.end_all_active(why="A restarted")] == [other["id"]]
