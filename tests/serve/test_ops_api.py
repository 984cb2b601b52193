"""The operators' API (the contract the dashboard codes against), in-process on a hub without
worker processes: sensor details, alerts as events with their room and person, acknowledging
and resolving with a name, the audit trail, feedback, the clip, the summary per room, and
how far behind the service is."""

from __future__ import annotations

import base64
import io
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from helpers.serve import FakePool, alert_event
from thermal_action.alert_rule import AlertRule
from thermal_action.serve.app import create_app
from thermal_action.serve.config import ServeConfig
from thermal_action.serve.hub import Hub
from thermal_action.serve.model import ModelInfo
from thermal_action.serve.protocol import FrameIn
from thermal_action.serve.store import Store
from thermal_action.serve.messages import FrameTracks, Round
from thermal_action.structures import DEFAULT_CLASS_NAMES, FALL_CLASS_NAME, FrameBoxes

FALL = DEFAULT_CLASS_NAMES.index(FALL_CLASS_NAME)
T0 = int(time.time() * 1000) - 600_000
STEP = 166
TOKEN = "t0ken"
#: The fields of an alert row the dashboard relies on (README, "Live service").
ALERT_FIELDS = {"id", "sensor_id", "room", "resident", "track_id", "state", "started_ms", "raised_ms", "ended_ms",
                "peak_score", "acknowledged_by", "acknowledged_at", "resolved_by", "resolved_at", "repeats",
                "last_raised_ms", "feedback", "has_clip"}


@pytest.fixture
def hub(tmp_path):
    cfg = ServeConfig(data_dir=str(tmp_path), clip_seconds_before=1.0, clip_seconds_after=1.0)
    info = ModelInfo(DEFAULT_CLASS_NAMES, (40, 60), FALL, AlertRule(), lag_frames=6, window_length=16)
    h = Hub(cfg, info, Store(tmp_path / "serve.db"), FakePool())
    yield h
    h.store.close()


@pytest.fixture
def client(hub):
    with TestClient(create_app(hub, TOKEN), headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        yield c


def raise_alert(hub, sensor="S1", track=3, frame=30, with_frames=True) -> dict:
    """Frames 0..59 of ``sensor`` (with person ``track`` boxed) and an alert raised at ``frame``."""
    ts = [T0 + STEP * i for i in range(60)]
    if with_frames:
        hub.submit(sensor, [FrameIn(np.full((40, 60), 20.0, np.float32), t) for t in ts], "ws")
    boxes = FrameBoxes(np.array([[10, 10, 20, 16]], np.float32), np.ones(1, np.float32), np.array([track]))
    event = alert_event("raised", sensor, track, T0 + STEP * (frame - 30), T0 + STEP * frame, 0.87)
    tracks = {sensor: FrameTracks.pack([(t, boxes) for t in ts])} if with_frames else {}
    hub.on_message(0, Round(tracks=tracks, alerts=[event]))
    return hub.store.alerts(sensor_id=sensor)[0]


def test_sensor_details_are_checked_stored_and_shown(client, hub):
    assert client.get("/api/sensors/S1/info").json() == {"sensor_id": "S1", "room": "", "resident": "",
                                                         "bed_label": "", "notes": "", "updated_at": None}
    body = {"room": " Room 12 ", "resident": "A. Jones", "bed_label": "window bed", "notes": "walker\nat night"}
    r = client.put("/api/sensors/S1/info", json=body)
    assert r.status_code == 200 and r.json()["room"] == "Room 12" and r.json()["notes"] == "walker\nat night"
    assert client.get("/api/sensors/S1/info").json()["resident"] == "A. Jones"
    (row,) = client.get("/api/sensors").json()["sensors"]
    assert (row["sensor_id"], row["room"], row["resident"], row["status"]) == ("S1", "Room 12", "A. Jones", "silent")
    for bad, field in (({"room": "x" * 65}, "room"), ({"resident": 7}, "resident"), ({"color": "red"}, "color"),
                       ({"bed_label": "a\x00b"}, "bed_label"), (["Room 1"], "body"), ({"notes": "n" * 1001}, "notes")):
        r = client.put("/api/sensors/S1/info", json=bad)
        assert r.status_code == 400 and r.json()["detail"].startswith(f"{field}:"), (bad, r.json())
    assert client.put("/api/sensors/S1/info", content=b"{not json").status_code == 400
    assert client.put("/api/sensors/..%2Fx/info", json={}).status_code in (400, 404)
    assert client.get("/api/sensors/S1/info").json()["room"] == "Room 12"  # refused requests changed nothing


def test_alert_rows_carry_the_contract_fields_and_the_room(client, hub):
    client.put("/api/sensors/S1/info", json={"room": "Room 12", "resident": "A. Jones"})
    a = raise_alert(hub)
    (row,) = client.get("/api/alerts").json()["alerts"]
    assert ALERT_FIELDS <= set(row)
    assert (row["room"], row["resident"], row["state"], row["repeats"], row["ended_ms"], row["has_clip"]) == (
        "Room 12", "A. Jones", "ongoing", 0, None, True)
    assert row["raised_ms"] == T0 + STEP * 30 and row["started_ms"] == T0 and row["id"] == a["id"]
    assert client.get("/api/alerts", params={"state": "ended"}).json()["alerts"] == []
    assert len(client.get("/api/alerts", params={"status": "open", "state": "ongoing"}).json()["alerts"]) == 1
    r = client.get("/api/alerts", params={"state": "unresolved"})
    assert r.status_code == 400 and "status=" in r.json()["detail"]
    assert client.get("/api/alerts", params={"status": "gone"}).status_code == 400
    one = client.get(f"/api/alerts/{a['id']}").json()
    assert one["id"] == a["id"] and [x["fired_timestamp"] for x in one["raises"]] == [T0 + STEP * 30]


def test_acknowledge_and_resolve_need_a_name_and_an_ongoing_fall_a_confirmation(client, hub):
    a = raise_alert(hub)
    for body in (None, {}, {"who": "  "}, {"by": "nurse"}, {"who": 5}):
        r = client.post(f"/api/alerts/{a['id']}/acknowledge", json=body)
        assert r.status_code == 400, body
    assert "who" in client.post(f"/api/alerts/{a['id']}/acknowledge", json={}).json()["detail"]
    r = client.post(f"/api/alerts/{a['id']}/acknowledge", json={"who": "nurse Ada", "note": "on my way"})
    assert r.status_code == 200 and r.json()["status"] == "acknowledged" and r.json()["acknowledged_by"] == "nurse Ada"
    r = client.post(f"/api/alerts/{a['id']}/resolve", json={"who": "nurse Ada"})
    assert r.status_code == 409 and "still down" in r.json()["detail"] and "confirm_ongoing" in r.json()["detail"]
    assert client.post(f"/api/alerts/{a['id']}/resolve", json={"who": "nurse Ada", "confirm_ongoing": "yes"}
                       ).status_code == 400
    r = client.post(f"/api/alerts/{a['id']}/resolve", json={"who": "nurse Ada", "confirm_ongoing": True})
    assert r.status_code == 200 and (r.json()["status"], r.json()["state"]) == ("resolved", "ongoing")
    assert client.post("/api/alerts/999/acknowledge", json={"who": "x"}).status_code == 404
    assert client.post(f"/api/alerts/{2**63}/acknowledge", json={"who": "x"}).status_code == 404
    events = client.get(f"/api/alerts/{a['id']}/events").json()["events"]
    assert [(e["action"], e["who"], e["note"]) for e in events] == [
        ("raised", "system", "track 3, fall score 0.87"), ("acknowledged", "nurse Ada", "on my way"),
        ("resolved", "nurse Ada", "")]
    assert client.get("/api/alerts/999/events").status_code == 404


def test_a_fall_that_ended_resolves_without_confirmation(client, hub):
    a = raise_alert(hub)
    hub.on_message(0, Round(alerts=[alert_event("ended", "S1", 3, T0, T0 + STEP * 40, 0.87,
                                                             fired_timestamp=T0 + STEP * 30)]))
    r = client.post(f"/api/alerts/{a['id']}/resolve", json={"who": "nurse Bo"})
    assert r.status_code == 200 and r.json()["acknowledged_by"] == "nurse Bo" and r.json()["ended_ms"] is not None
    assert [e["action"] for e in client.get(f"/api/alerts/{a['id']}/events").json()["events"]] == [
        "raised", "ended", "resolved"]


def test_feedback_is_checked_and_stored(client, hub):
    a = raise_alert(hub)
    for body, field in (({"answer": "maybe", "who": "x"}, "answer"), ({"answer": "false_alarm", "who": "x"}, "reason"),
                        ({"answer": "false_alarm", "reason": "dancing", "who": "x"}, "reason"),
                        ({"answer": "real_fall", "reason": "in_bed", "who": "x"}, "reason"),
                        ({"answer": "real_fall"}, "who"), ({"answer": "real_fall", "who": "x", "extra": 1}, "extra")):
        r = client.post(f"/api/alerts/{a['id']}/feedback", json=body)
        assert r.status_code == 400 and r.json()["detail"].startswith(f"{field}:"), (body, r.json())
    r = client.post(f"/api/alerts/{a['id']}/feedback", json={"answer": "false_alarm", "reason": "in_bed",
                                                            "who": "nurse Ada", "note": "asleep"})
    assert r.status_code == 200
    assert {k: r.json()["feedback"][k] for k in ("answer", "reason", "who")} == {
        "answer": "false_alarm", "reason": "in_bed", "who": "nurse Ada"}
    assert client.get("/api/alerts").json()["alerts"][0]["feedback"]["answer"] == "false_alarm"
    assert client.get(f"/api/alerts/{a['id']}/events").json()["events"][-1]["action"] == "feedback"
    assert client.post("/api/alerts/999/feedback", json={"answer": "not_sure", "who": "x"}).status_code == 404


def test_the_clip_and_the_strip(client, hub):
    no_clip = raise_alert(hub, "S2", with_frames=False)
    assert client.get(f"/api/alerts/{no_clip['id']}/clip").status_code == 404
    a = raise_alert(hub)
    clip = client.get(f"/api/alerts/{a['id']}/clip", params={"scale": 2}).json()
    assert {"width", "height", "fps", "timestamps", "fired_index", "frames"} <= set(clip)
    assert (clip["width"], clip["height"]) == (120, 80) and len(clip["frames"]) == len(clip["timestamps"]) == 13
    assert clip["timestamps"][clip["fired_index"]] == T0 + STEP * 30
    assert Image.open(io.BytesIO(base64.b64decode(clip["frames"][0]))).size == (120, 80)
    r = client.get(f"/api/alerts/{a['id']}/strip.png")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(r.content)).size[0] == 6 * 60 * 4 + 7 * 4
    assert client.get(f"/api/alerts/{a['id']}/clip", params={"scale": 99}).status_code == 400
    assert client.get(f"/api/alerts/{no_clip['id']}/strip.png").status_code == 404


def test_the_summary_counts_open_alerts_per_room(client, hub):
    client.put("/api/sensors/S1/info", json={"room": "Room 12"})
    client.put("/api/sensors/S2/info", json={"room": "Room 12"})
    raise_alert(hub, "S1", with_frames=False)
    raise_alert(hub, "S2", with_frames=False)
    c = raise_alert(hub, "S3", with_frames=False)
    client.post(f"/api/alerts/{c['id']}/acknowledge", json={"who": "x"})
    s = client.get("/api/alerts/summary").json()
    assert [(r["room"], r["count"], r["unacknowledged"]) for r in s["rooms"]] == [("Room 12", 2, 2), ("S3", 1, 0)]
    assert (s["open"], s["unacknowledged"], s["ongoing"]) == (3, 2, 3)


def test_stats_and_metrics_say_how_far_behind_and_what_was_given_up(client, hub):
    s = client.get("/api/stats").json()
    assert {"delay_p95_s", "behind", "notify_dead_letters_total", "notify_sent_total"} <= set(s)
    assert s["behind"] is False and s["delay_p95_s"] is None
    raise_alert(hub)  # frames ~10 min old, processed now
    s = client.get("/api/stats").json()
    assert s["delay_p95_s"] > 500 and s["behind"] is True
    assert client.get("/api/sensors").json()["sensors"][0]["delay_s"] > 500
    text = client.get("/metrics").text
    assert "thermal_behind 1.0" in text and "# TYPE thermal_notify_dead_letters_total counter" in text
