"""The service end to end, with its real worker processes: ingest over HTTP and WebSocket, bad
sensors, auth, alerts in SQLite across a restart, a worker killed and replaced, the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from helpers.serve import (
    frames_with_people, now_stamps, pid_alive, serve_overrides, start_serve_cli, wait_for, write_tiny_checkpoint,
)
from thermal_action.serve.config import load_serve_config
from thermal_action.serve.protocol import encode_frames
from thermal_action.serve.service import ServiceThread

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return write_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.ckpt")


@pytest.fixture(scope="module")
def svc(checkpoint, tmp_path_factory):
    data = tmp_path_factory.mktemp("serve") / "data"
    with ServiceThread(load_serve_config(None, serve_overrides(data, workers=2)), checkpoint) as s:
        yield s


def _auth(svc) -> dict:
    return {"Authorization": f"Bearer {svc.token}"}


def _sensor(svc, sensor_id: str) -> dict | None:
    got = httpx.get(f"{svc.url}/api/sensors", headers=_auth(svc)).json()["sensors"]
    return next((s for s in got if s["sensor_id"] == sensor_id), None)


def _post(svc, sensor_id: str, frames, stamps) -> httpx.Response:
    return httpx.post(f"{svc.url}/api/sensors/{sensor_id}/frames", content=encode_frames(frames, stamps),
                      headers={**_auth(svc), "content-type": "application/octet-stream"})


def test_everything_but_health_needs_the_token(svc):
    assert httpx.get(f"{svc.url}/health").json()["status"] == "ok"
    for path in ("/api/sensors", "/api/alerts", "/api/info", "/metrics"):
        assert httpx.get(svc.url + path).status_code == 401
        assert httpx.get(svc.url + path, headers={"Authorization": "Bearer nope"}).status_code == 401
        assert httpx.get(svc.url + path, params={"token": svc.token}).status_code == 200
    assert httpx.post(f"{svc.url}/api/sensors/S9/frames", content=b"x").status_code == 401
    page = httpx.get(f"{svc.url}/?token=wrong")
    assert page.status_code == 401 and "token" in page.text
    ok = httpx.get(f"{svc.url}/?token={svc.token}")
    assert ok.status_code == 200 and "ta_token" in ok.headers["set-cookie"].lower()
    assert "httponly" in ok.headers["set-cookie"].lower()
    with connect(f"{svc.url.replace('http', 'ws')}/ws/sensors/S9?token=wrong") as ws:
        with pytest.raises(ConnectionClosed) as e:
            ws.recv(timeout=10)
    assert e.value.rcvd.code == 4401
    assert _sensor(svc, "S9") is None  # nothing was registered by refused requests


def test_http_binary_and_json_ingest_predict_and_alert(svc):
    frames = frames_with_people(30)
    r = _post(svc, "H1", frames, now_stamps(30))
    assert r.status_code == 200 and r.json() == {"accepted": 30, "dropped": 0, "errors": []}
    body = {"frames": [{"timestamp": t, "frame": f.tolist()} for f, t in zip(frames, now_stamps(30))]}
    r = httpx.post(f"{svc.url}/api/sensors/H2/frames", json=body, headers=_auth(svc))
    assert r.json()["accepted"] == 30
    for s in ("H1", "H2"):
        st = wait_for(lambda: (x := _sensor(svc, s)) and x["predictions"] > 0 and x, what=f"{s} predictions")
        assert st["frames"] == 30 and st["status"] == "live" and st["fps"] > 5
    alerts = wait_for(lambda: httpx.get(f"{svc.url}/api/alerts", params={"sensor": "H1"},
                                        headers=_auth(svc)).json()["alerts"], what="an alert")
    a = alerts[0]
    assert a["status"] == "open" and a["state"] == "ongoing" and a["sensor_id"] == "H1"
    acked = httpx.post(f"{svc.url}/api/alerts/{a['id']}/acknowledge", json={"who": "nurse Ada"}, headers=_auth(svc))
    assert acked.json()["status"] == "acknowledged"
    assert svc.hub.store.alert(a["id"])["acknowledged_by"] == "nurse Ada"  # in SQLite
    resolved = httpx.post(f"{svc.url}/api/alerts/{a['id']}/resolve", json={"who": "nurse Bo", "confirm_ongoing": True},
                          headers=_auth(svc)).json()
    assert resolved["status"] == "resolved" and resolved["resolved_by"] == "nurse Bo"
    assert httpx.post(f"{svc.url}/api/alerts/999999/resolve", json={"who": "x"}, headers=_auth(svc)).status_code == 404
    assert httpx.get(f"{svc.url}/api/alerts", params={"state": "bogus"}, headers=_auth(svc)).status_code == 400
    timeline = httpx.get(f"{svc.url}/api/sensors/H1/timeline", headers=_auth(svc)).json()["items"]
    assert timeline and {"timestamp", "track_id", "action", "score", "fall_score"} <= set(timeline[0])
    live = httpx.get(f"{svc.url}/api/sensors/H1/live", headers=_auth(svc)).json()
    assert live["height"] == 40 and live["width"] == 60 and live["frame_png"] and live["tracks"]
    info = httpx.get(f"{svc.url}/api/info", headers=_auth(svc)).json()
    assert info["frame_size"] == [40, 60] and len(info["lut"]) == 256
    assert info["fall_threshold"] == info["alert_rule"]["threshold"] == 1e-6  # the config's override


def test_bad_sensors_are_reported_and_do_not_stop_the_others(svc):
    ws_url = f"{svc.url.replace('http', 'ws')}/ws/sensors"
    good = frames_with_people(40)
    stamps = now_stamps(40)
    with connect(f"{ws_url}/W-good?token={svc.token}") as g, connect(f"{ws_url}/W-bad?token={svc.token}") as b:
        b.send(b"garbage that is not a frame")
        assert "not valid JSON" in json.loads(b.recv(timeout=10))["error"]
        b.send(encode_frames(np.zeros((2, 24, 32), np.float32), stamps[:2]))  # another sensor model
        err = json.loads(b.recv(timeout=10))
        assert err["sensor_id"] == "W-bad" and "24x32" in err["error"] and "40x60" in err["error"]
        b.send(encode_frames(np.full((1, 40, 60), np.nan, np.float32), stamps[:1]))  # no valid pixel at all
        b.send(json.dumps({"frame": [[1, 2], [3]]}))
        assert "rectangular" in json.loads(b.recv(timeout=10))["error"]
        for i in range(0, 40, 10):  # the good sensor streams on, in pieces, and a burst
            g.send(encode_frames(good[i:i + 10], stamps[i:i + 10]))
        bad = wait_for(lambda: (x := _sensor(svc, "W-bad")) and x["invalid_frames"] and x, what="invalid frame")
        assert bad["bad_message"] == 2 and bad["bad_shape"] == 2 and bad["connected"] == 1
        ok = wait_for(lambda: (x := _sensor(svc, "W-good")) and x["predictions"] > 0 and x, what="predictions")
        assert ok["bad_message"] == ok["bad_shape"] == ok["invalid_frames"] == 0 and ok["transports"] == ["ws"]
        # NaN and dropped-packet pixels in a running stream are repaired, not refused.
        patched = good[:10].copy()
        patched[:, 5, :] = np.nan
        patched[:, 6, :10] = -273.2
        g.send(encode_frames(patched, now_stamps(10, stamps[-1] + 166)))
        wait_for(lambda: _sensor(svc, "W-good")["repaired_pixels"] >= 600, what="repaired pixels")
        assert _sensor(svc, "W-good")["invalid_frames"] == 0
    wait_for(lambda: _sensor(svc, "W-good")["connected"] == 0, what="disconnect")


def test_bursts_and_new_clocks(svc):
    frames = frames_with_people(100)
    t0 = int(time.time() * 1000)
    assert _post(svc, "B1", frames, now_stamps(100, t0)).json()["accepted"] == 100  # 100 frames at once
    before = wait_for(lambda: (x := _sensor(svc, "B1")) and x["predictions"] >= 10 and x, what="predictions")
    # The sensor reboots: its clock starts again far in the past.
    assert _post(svc, "B1", frames[:30], now_stamps(30, t0 - 86_400_000)).json()["accepted"] == 30
    after = wait_for(lambda: (x := _sensor(svc, "B1")) and x["predictions"] > before["predictions"] and x,
                     what="predictions of the new stream")
    assert after["new_streams"] == 1 and after["frames"] == 130


def test_a_killed_worker_is_replaced_and_its_sensors_resume(svc):
    workers = httpx.get(f"{svc.url}/api/workers", headers=_auth(svc)).json()["workers"]
    assert len(workers) == 2 and all(w["ready"] for w in workers)
    victim = workers[0]
    # One sensor per worker: find ids the hash gives to each.
    from thermal_action.serve.routing import worker_for

    ids = {w: next(f"K{i}" for i in range(100) if worker_for(f"K{i}", 2) == w) for w in (0, 1)}
    frames = frames_with_people(60)
    for w, s in ids.items():
        _post(svc, s, frames[:30], now_stamps(30))
    for s in ids.values():
        wait_for(lambda: (x := _sensor(svc, s)) and x["predictions"] > 0, what=f"{s} predictions")
    os.kill(victim["pid"], signal.SIGKILL)
    replaced = wait_for(lambda: [w for w in httpx.get(f"{svc.url}/api/workers", headers=_auth(svc)).json()["workers"]
                                 if w["index"] == victim["index"] and w["ready"] and w["pid"] != victim["pid"]],
                        timeout=60, what="a new worker")
    assert replaced[0]["restarts"] == 1
    assert httpx.get(f"{svc.url}/health").json()["status"] == "ok"
    s_dead, s_other = ids[victim["index"]], ids[1 - victim["index"]]
    assert _sensor(svc, s_dead)["new_streams"] == 1 and _sensor(svc, s_other)["new_streams"] == 0
    n = _sensor(svc, s_dead)["predictions"]
    _post(svc, s_dead, frames[30:], now_stamps(30))
    wait_for(lambda: _sensor(svc, s_dead)["predictions"] > n, what="predictions after the restart")
    metrics = httpx.get(f"{svc.url}/metrics", headers=_auth(svc)).text
    assert "thermal_worker_restarts_total 1.0" in metrics
    stats = httpx.get(f"{svc.url}/api/stats", headers=_auth(svc)).json()
    assert stats["worker_restarts_total"] == 1 and stats["workers_alive"] == 2


def test_dashboard_socket_sends_sensors_live_and_alert_events(svc):
    with connect(f"{svc.url.replace('http', 'ws')}/ws/dashboard?token={svc.token}") as ws:
        first = json.loads(ws.recv(timeout=10))
        assert first["type"] == "sensors"
        _post(svc, "D1", frames_with_people(30), now_stamps(30))
        seen = set()
        deadline = time.monotonic() + 30
        while {"live", "alert", "sensors"} - seen and time.monotonic() < deadline:
            event = json.loads(ws.recv(timeout=30))
            if event.get("sensor_id", "D1") == "D1" or event["type"] == "sensors":
                seen.add(event["type"])
        assert {"live", "alert", "sensors"} <= seen


def test_alerts_survive_a_restart_and_files_stay_in_the_data_dir(checkpoint, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data"
    cfg = load_serve_config(None, serve_overrides(data))
    with ServiceThread(cfg, checkpoint) as s:
        _post(s, "R1", frames_with_people(30), now_stamps(30))
        wait_for(lambda: len(httpx.get(f"{s.url}/api/alerts", headers=_auth(s)).json()["alerts"]) == 2,
                 what="an alert per person")
        before = httpx.get(f"{s.url}/api/alerts", headers=_auth(s)).json()["alerts"]
        alert = before[0]
        token = s.token
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # nothing written beside it
    assert {"serve.db", "serve_config.yaml", "token"} <= {p.name for p in data.iterdir()}
    assert (data / "token").stat().st_mode & 0o077 == 0
    with ServiceThread(load_serve_config(None, serve_overrides(data, token=token, alert_webhook_secret="hush-hush")),
                       checkpoint) as s:
        rows = httpx.get(f"{s.url}/api/alerts", headers=_auth(s)).json()["alerts"]
        assert [r["id"] for r in rows] == [r["id"] for r in before] and {r["status"] for r in rows} == {"open"}
        assert {r["state"] for r in rows} == {"ended"}  # the model's state did not survive; the alert did
        r = httpx.post(f"{s.url}/api/alerts/{alert['id']}/acknowledge", json={"who": "night shift"}, headers=_auth(s))
        assert r.json()["acknowledged_by"] == "night shift"
    saved = (data / "serve_config.yaml").read_text()  # secrets stay out of the resolved config
    assert token not in saved and "hush-hush" not in saved and "alert_webhook_secret: <set>" in saved


def test_onnx_backend_exports_into_the_data_dir(checkpoint, tmp_path):
    pytest.importorskip("onnxruntime")
    cfg = load_serve_config(None, serve_overrides(tmp_path / "data", backend="onnx"))
    with ServiceThread(cfg, checkpoint) as s:
        assert (tmp_path / "data" / "model.onnx").is_file() and not checkpoint.with_suffix(".onnx").exists()
        _post(s, "O1", frames_with_people(30), now_stamps(30))
        wait_for(lambda: (x := _sensor(s, "O1")) and x["predictions"] > 0, what="onnx predictions")


def test_cli_serve_prints_its_address_binds_localhost_and_stops_on_sigint(checkpoint, tmp_path):
    proc, address = start_serve_cli(checkpoint, tmp_path / "data", env={"THERMAL_ACTION_TOKEN": "s3cret-token"})
    try:
        assert address.startswith("http://127.0.0.1:") and address.endswith("?token=s3cret-token")
        url = address.split("/?")[0]
        assert httpx.get(f"{url}/health").json()["workers_alive"] == 1
        assert httpx.get(f"{url}/api/sensors", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert (tmp_path / "data" / "token").read_text().strip() == "s3cret-token"


def test_cli_serve_refuses_unknown_keys(checkpoint, tmp_path):
    from thermal_action.cli import main

    assert main(["serve", "--checkpoint", str(checkpoint), "prot=1"]) == 2


def test_boxes_a_gateway_sends_are_used_instead_of_the_detector(svc):
    frames = frames_with_people(30)
    box = [10.0, 8.0, 20.0, 18.0]  # deliberately not where the detector would put a person
    body = {"frames": [{"timestamp": t, "frame": f.tolist(), "boxes": [box]} for f, t in zip(frames, now_stamps(30))]}
    assert httpx.post(f"{svc.url}/api/sensors/G1/frames", json=body, headers=_auth(svc)).json()["accepted"] == 30
    live = wait_for(lambda: (x := httpx.get(f"{svc.url}/api/sensors/G1/live", headers=_auth(svc)).json())
                    and x["tracks"] and x["tracks"][0]["action"] and x, what="a scored given box")
    assert [t["box"] for t in live["tracks"]] == [box]


def test_zones_put_get_delete_survive_a_restart_and_bad_zones_get_400(checkpoint, tmp_path):
    data = tmp_path / "data"
    rooms = tmp_path / "rooms.json"
    rooms.write_text(json.dumps({"sensors": {"Z1": {"zones": [{"kind": "bed", "box": [0.5, 0.2, 0.9, 0.6]}]}}}))
    couch = {"zones": [{"kind": "couch", "name": "by the wall", "box": [0.1, 0.1, 0.4, 0.3]}]}
    with ServiceThread(load_serve_config(None, serve_overrides(data, rooms=str(rooms))), checkpoint) as s:
        url = f"{s.url}/api/sensors/Z1/zones"
        assert httpx.get(url).status_code == 401
        got = httpx.get(url, headers=_auth(s)).json()
        assert got["source"] == "rooms file" and got["zones"][0]["kind"] == "bed"  # serve --rooms
        r = httpx.put(url, json=couch, headers=_auth(s))
        assert r.status_code == 200 and r.json()["source"] == "api" and r.json()["zones"] == couch["zones"]
        bad = httpx.put(url, json={"zones": [couch["zones"][0], {"kind": "bed", "box": [0.2, 0.9, 0.1, 1.0]}]},
                        headers=_auth(s))
        assert bad.status_code == 400
        assert bad.json()["detail"] == ("zones of sensor Z1, zone 1: 'box' needs x2 > x1 and y2 > y1, got "
                                        "[0.2, 0.9, 0.1, 1.0]")
        assert httpx.put(url, content=b"{nope", headers=_auth(s)).status_code == 400
        # Frames of the sensor go on being scored with the zones in place.
        _post(s, "Z1", frames_with_people(30), now_stamps(30))
        wait_for(lambda: (x := _sensor(s, "Z1")) and x["predictions"] > 0, what="predictions with zones")
        token = s.token
    with ServiceThread(load_serve_config(None, serve_overrides(data, rooms=str(rooms), token=token)),
                       checkpoint) as s:
        url = f"{s.url}/api/sensors/Z1/zones"
        assert httpx.get(url, headers=_auth(s)).json()["zones"] == couch["zones"]  # kept in serve.db
        back = httpx.delete(url, headers=_auth(s))
        assert back.status_code == 200 and back.json()["source"] == "rooms file"
        assert httpx.delete(url, headers=_auth(s)).status_code == 404
        assert httpx.get(f"{s.url}/api/sensors/Z2/zones", headers=_auth(s)).json()["source"] == "none"


def test_a_bad_rooms_file_stops_the_start_naming_file_and_zone(checkpoint, tmp_path):
    from thermal_action.cli import main
    from thermal_action.errors import RoomsError

    rooms = tmp_path / "rooms.json"
    rooms.write_text(json.dumps({"sensors": {"Z1": {"zones": [{"kind": "bath", "box": [0.5, 0.2, 0.9, 0.6]}]}}}))
    with pytest.raises(RoomsError, match=r"rooms.json: sensor 'Z1', layout 0, zone 0: unknown zone kind 'bath'"):
        ServiceThread(load_serve_config(None, serve_overrides(tmp_path / "data", rooms=str(rooms))), checkpoint)
    assert main(["serve", "--checkpoint", str(checkpoint), "--rooms", str(rooms),
                 *serve_overrides(tmp_path / "data")]) == 2


def test_hostile_gateway_input_is_refused_or_repaired_at_the_edge(svc):
    frames = frames_with_people(30)
    stamps = now_stamps(30)

    def restarts() -> list[int]:  # the module's service is shared: another test may have killed a worker
        return [w["restarts"] for w in httpx.get(f"{svc.url}/api/workers", headers=_auth(svc)).json()["workers"]]

    restarts_before = restarts()

    def post_json(sensor, text):
        return httpx.post(f"{svc.url}/api/sensors/{sensor}/frames", content=text,
                          headers={**_auth(svc), "content-type": "application/json"})

    def body(boxes, ts=stamps):
        return json.dumps({"frames": [{"timestamp": t, "frame": f.tolist(), "boxes": boxes}
                                      for f, t in zip(frames, ts)]})

    # A box reaching to 1e30 once killed the worker (RoIAlign index overflow): now clipped.
    r = post_json("X1", body([[0, 0, 1e30, 1e30]]))
    assert r.status_code == 200 and r.json()["accepted"] == 30
    # A box wholly outside the frame is dropped, not scored.
    assert post_json("X2", body([[100, 100, 120, 130]])).json()["accepted"] == 30
    # Too many boxes, a timestamp past 2^63, NaN, deep nesting: refused with the reason, never a 500.
    r = post_json("X3", body([[1, 1, 5, 5]] * 2000))
    assert r.status_code == 413 and "at most 32 boxes per frame" in r.json()["errors"][0]
    r = post_json("X3", body(None, [1e19] * 30))
    assert r.status_code == 422 and "timestamp 1e+19" in r.json()["errors"][0]
    for text in ('{"timestamp": NaN, "frame": [[1]]}', '{"frame": [[Infinity]]}', "[" * 50_000 + "]" * 50_000):
        r = post_json("X3", text)
        assert r.status_code == 400 and "not valid JSON" in r.json()["errors"][0]
    with connect(f"{svc.url.replace('http', 'ws')}/ws/sensors/X3?token={svc.token}") as ws:
        ws.send(encode_frames(np.zeros((300, 40, 60), np.float32), [stamps[0]] * 300))
        assert "at most 256 frames per message" in json.loads(ws.recv(timeout=10))["error"]
    x1 = wait_for(lambda: (x := _sensor(svc, "X1")) and x["predictions"] > 0 and x, what="X1 predictions")
    assert x1["repaired_boxes"] == 30 and x1["refused_boxes"] == 0
    assert [t["box"] for t in httpx.get(f"{svc.url}/api/sensors/X1/live", headers=_auth(svc)).json()["tracks"]] == [
        [0.0, 0.0, 60.0, 40.0]]
    x2 = wait_for(lambda: (x := _sensor(svc, "X2")) and x["frames"] == 30 and x, what="X2 frames")
    assert x2["refused_boxes"] == 30 and x2["repaired_boxes"] == 0
    assert _sensor(svc, "X3")["bad_message"] == 6 and _sensor(svc, "X3")["frames"] == 0
    assert restarts() == restarts_before
    time.sleep(1.0)  # the round with X2's frames is done: nothing was scored, no alert
    assert _sensor(svc, "X2")["predictions"] == 0
    assert httpx.get(f"{svc.url}/api/alerts", params={"sensor": "X2"}, headers=_auth(svc)).json()["alerts"] == []


def _worker_pids(url: str, token: str) -> list[int]:
    got = httpx.get(f"{url}/api/workers", headers={"Authorization": f"Bearer {token}"}).json()["workers"]
    return [w["pid"] for w in got]


def test_sigterm_stops_like_ctrl_c_and_a_second_service_on_the_data_dir_is_refused(checkpoint, tmp_path):
    data = tmp_path / "data"
    proc, address = start_serve_cli(checkpoint, data, env={"THERMAL_ACTION_TOKEN": "first"}, workers=2)
    try:
        url = address.split("/?")[0]
        workers = _worker_pids(url, "first")
        assert len(workers) == 2 and all(pid_alive(p) for p in workers)
        # A second service on the same data directory: one line, exit code 2, the first one untouched.
        second = subprocess.run([sys.executable, "-m", "thermal_action.cli", "serve", "--checkpoint", str(checkpoint),
                                 *serve_overrides(data, token="second")], capture_output=True, text=True, timeout=60)
        err = second.stderr.strip()
        assert second.returncode == 2 and len(err.splitlines()) == 1, second
        assert "in use by another thermal-action serve" in err
        assert f"pid {proc.pid}" in err and (data / "token").read_text().strip() == "first"
        assert httpx.get(f"{url}/api/sensors", headers={"Authorization": "Bearer first"}).status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0 and out.strip().endswith("stopped"), out
    assert "Traceback" not in out
    assert not [p for p in workers if pid_alive(p)]


def test_workers_exit_when_the_service_is_killed_and_the_generated_token_is_kept(checkpoint, tmp_path, monkeypatch):
    monkeypatch.delenv("THERMAL_ACTION_TOKEN", raising=False)
    data = tmp_path / "data"
    proc, address = start_serve_cli(checkpoint, data, workers=2)
    token = address.split("?token=")[1]
    workers = _worker_pids(address.split("/?")[0], token)
    proc.kill()  # kill -9: no shutdown code runs
    proc.communicate(timeout=30)
    wait_for(lambda: not [p for p in workers if pid_alive(p)], timeout=5, what="the workers to exit")
    assert (data / "token").stat().st_mode & 0o777 == 0o600
    # The lock died with the process; the next start reuses the generated token: gateways keep working.
    proc, address = start_serve_cli(checkpoint, data)
    try:
        assert address.endswith(f"?token={token}")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == 0


def test_alert_ids_beyond_sqlite_ids_and_dot_sensor_ids_are_refused_and_every_ack_is_kept(svc):
    for alert_id in (2**70, 2**63, 0, -1):
        assert httpx.post(f"{svc.url}/api/alerts/{alert_id}/acknowledge", json={"who": "x"},
                          headers=_auth(svc)).status_code == 404
    deep = httpx.post(f"{svc.url}/api/alerts/1/acknowledge", content="[" * 10_000 + "]" * 10_000, headers=_auth(svc))
    assert deep.status_code == 400 and "nested" in deep.json()["detail"]
    deep = httpx.put(f"{svc.url}/api/sensors/A1/zones", content="[" * 100_000 + "]" * 100_000, headers=_auth(svc))
    assert deep.status_code == 400
    for bad in (".", ".."):
        with connect(f"{svc.url.replace('http', 'ws')}/ws/sensors/{bad}?token={svc.token}") as ws:
            with pytest.raises(ConnectionClosed) as e:
                ws.recv(timeout=10)
        assert e.value.rcvd.code == 4400
    _post(svc, "A1", frames_with_people(30), now_stamps(30))
    a = wait_for(lambda: httpx.get(f"{svc.url}/api/alerts", params={"sensor": "A1"}, headers=_auth(svc)).json()["alerts"],
                 what="an alert")[0]
    for who in ("nurse Ada", "nurse Bo"):
        r = httpx.post(f"{svc.url}/api/alerts/{a['id']}/acknowledge", json={"who": who, "note": "coming"},
                       headers=_auth(svc))
        assert r.status_code == 200 and r.json()["acknowledged_by"] == "nurse Ada"
    assert [(e["who"], e["note"]) for e in svc.hub.store.alert_events(a["id"]) if e["action"] == "acknowledged"] == [
        ("nurse Ada", "coming"), ("nurse Bo", "coming")]


def test_the_checkpoint_is_read_once_and_workers_even_restarted_ones_never_open_it(checkpoint, tmp_path):
    own = tmp_path / "own.ckpt"
    own.write_bytes(checkpoint.read_bytes())
    svc = ServiceThread(load_serve_config(None, serve_overrides(tmp_path / "data", workers=1)), own)
    own.unlink()  # read by the service above; its workers start below, without the file
    with svc:
        frames = frames_with_people(60)
        assert _post(svc, "R1", frames[:30], now_stamps(30)).json()["accepted"] == 30
        wait_for(lambda: (x := _sensor(svc, "R1")) and x["predictions"] > 0, what="predictions")
        (worker,) = httpx.get(f"{svc.url}/api/workers", headers=_auth(svc)).json()["workers"]
        os.kill(worker["pid"], signal.SIGKILL)
        wait_for(lambda: [w for w in httpx.get(f"{svc.url}/api/workers", headers=_auth(svc)).json()["workers"]
                          if w["ready"] and w["pid"] != worker["pid"]], timeout=60, what="a new worker")
        n = _sensor(svc, "R1")["predictions"]
        _post(svc, "R1", frames[30:], now_stamps(30))
        wait_for(lambda: _sensor(svc, "R1")["predictions"] > n, what="predictions after the restart")


def test_the_service_process_reads_the_checkpoint_file_once(checkpoint, monkeypatch):
    import torch

    from thermal_action.serve.config import ServeConfig
    from thermal_action.serve.model import load_model
    from thermal_action.serve.workers import WorkerOptions

    reads, loads = [], []
    read_bytes, torch_load = Path.read_bytes, torch.load
    monkeypatch.setattr(Path, "read_bytes", lambda self: reads.append(self) or read_bytes(self))
    monkeypatch.setattr(torch, "load", lambda f, *a, **k: loads.append(f) or torch_load(f, *a, **k))
    model, info = load_model(checkpoint, ServeConfig(), None)
    opts = WorkerOptions.from_config(ServeConfig(), model, info.alert_rule, alerts=True)
    assert reads == [checkpoint] and len(loads) == 1 and not isinstance(loads[0], (str, Path))  # parsed from the bytes
    assert opts.model.data == checkpoint.read_bytes() and len(opts.model.sha256) == 64
