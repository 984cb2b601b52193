"""Replay: the schedule, sensor ids, and sending to a tiny WebSocket / HTTP server and to Mosquitto."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from thermal_action.data.synth.write import write_h5
from thermal_action.errors import DatasetError
from thermal_action.serve.config import ServeConfig
from thermal_action.serve.mqtt import MqttIngest
from thermal_action.serve.protocol import decode_binary
from thermal_action.serve.replay.player import replay
from thermal_action.serve.replay.recordings import (
    frame_step_ms,
    read_raw_recording,
    schedule,
    sensor_ids,
)

T0 = 1_760_482_260_170
#: Receive-time steps like the real sensor's: ~165 ms, a ~510 ms gap, a burst ~37 ms apart.
STEPS = [165, 166, 164, 510, 37, 38, 165, 165, 560, 36, 37]
DROPPED_C = -273.2


def _write(path: Path, seed: int, steps=STEPS) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = len(steps) + 1
    frames = rng.uniform(16, 30, size=(n, 40, 60)).astype(np.float32)
    frames[3].reshape(-1)[-576:] = DROPPED_C  # one lost packet: a 0 K tail
    frames[7].reshape(-1)[-2 * 576:] = DROPPED_C
    stamps = T0 + np.concatenate([[0], np.cumsum(steps)]).astype(np.int64)
    write_h5(path, path.stem, "02:00:00:00:00:01", frames, stamps, int(stamps[0]))
    return frames, stamps


@pytest.fixture
def recordings(tmp_path: Path) -> dict[str, tuple[Path, np.ndarray, np.ndarray]]:
    out = {}
    for seed, name in enumerate(("ROOM_A", "ROOM_B")):
        path = tmp_path / f"{name}.h5"
        out[name] = (path, *_write(path, seed))
    return out


# -- recordings, schedule, ids


def test_read_raw_recording_keeps_the_dropped_packets(recordings):
    path, frames, stamps = recordings["ROOM_A"]
    rec = read_raw_recording(path)
    np.testing.assert_array_equal(rec.frames, frames)  # as stored: the 0 K tails are still there
    assert (rec.frames[7].reshape(-1)[-1152:] == np.float32(DROPPED_C)).all()
    np.testing.assert_array_equal(rec.timestamps, stamps)
    with pytest.raises(DatasetError, match="not found"):
        read_raw_recording(path.with_name("missing.h5"))


def test_schedule_follows_the_bursty_timestamps():
    stamps = T0 + np.concatenate([[0], np.cumsum(STEPS)])
    got = list(schedule(stamps))
    assert [i for i, _ in got] == list(range(len(stamps)))
    np.testing.assert_allclose([s for _, s in got], (stamps - T0) / 1000.0)
    fast = [s for _, s in schedule(stamps, speed=2.0)]
    np.testing.assert_allclose(fast, (stamps - T0) / 2000.0)
    with pytest.raises(ValueError):
        next(schedule(stamps, speed=0))


def test_looped_schedule_is_monotonic_across_repetitions():
    stamps = T0 + np.concatenate([[0], np.cumsum(STEPS)])
    n = len(stamps)
    items = schedule(stamps, speed=1.0, loop=True)
    got = [next(items) for _ in range(3 * n)]
    assert [i for i, _ in got] == list(range(n)) * 3
    times = np.array([s for _, s in got])
    assert (np.diff(times) > 0).all()
    # The next repetition starts one median step after the last frame.
    cycle = (stamps[-1] - T0 + frame_step_ms(stamps)) / 1000.0
    assert frame_step_ms(stamps) == 165.0
    np.testing.assert_allclose(times[n:2 * n] - times[:n], cycle)
    np.testing.assert_allclose(times[2 * n:] - times[:n], 2 * cycle)


def test_schedule_never_goes_backwards():
    stamps = np.array([T0, T0 + 100, T0 + 50, T0 + 200])
    assert [s for _, s in schedule(stamps)] == [0.0, 0.1, 0.1, 0.2]
    assert list(schedule(np.array([T0]), loop=False)) == [(0, 0.0)]


def test_sensor_ids():
    assert sensor_ids(["a", "b"]) == [("a", 0), ("b", 1)]
    assert sensor_ids(["a", "b", "c"], 2) == [("a", 0), ("b", 1)]
    assert sensor_ids(["a", "b"], 5) == [("a-0", 0), ("b-0", 1), ("a-1", 0), ("b-1", 1), ("a-2", 0)]
    assert sensor_ids(["room 1", "room 1"]) == [("room_1", 0), ("room_1.1", 1)]
    with pytest.raises(ValueError):
        sensor_ids([])
    with pytest.raises(ValueError):
        sensor_ids(["a"], 0)


# -- a tiny WebSocket server that records what arrives


class WsRecorder:
    """A websockets sync server on a free port; records ``(sensor_id, arrival, message)``."""

    def __init__(self, token: str = "tok", error_for: str | None = None, close_after: int | None = None,
                 drop_notices: bool = False, drop_counters: bool = False):
        from websockets.sync.server import serve

        self.token, self.error_for, self.close_after = token, error_for, close_after
        # Like the service with a full queue: every message dropped, said in an error message
        # (drop_notices) and/or counted in /api/sensors (drop_counters; 100 dropped before).
        self.drop_notices, self.drop_counters = drop_notices, drop_counters
        self.messages: list[tuple[str, float, bytes]] = []
        self.connections: list[str] = []
        self.lock = threading.Lock()
        self.server = serve(self._handler, "127.0.0.1", 0, process_request=self._auth, max_size=None)
        self.port = self.server.socket.getsockname()[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def _auth(self, connection, request):
        if request.path == "/api/sensors":
            if not self.drop_counters or request.headers.get("Authorization") != f"Bearer {self.token}":
                return connection.respond(401, "no\n")
            with self.lock:
                sensors = sorted({s for s, _, _ in self.messages} | {"ROOM_A"})
                dropped = {s: 100 + sum(m[0] == s for m in self.messages) for s in sensors}
            return connection.respond(200, json.dumps({"sensors": [{"sensor_id": s, "dropped": d}
                                                                    for s, d in dropped.items()]}))
        if f"token={self.token}" not in request.path:
            return connection.respond(401, "bad token\n")
        return None

    def _handler(self, ws):
        path = ws.request.path.split("?")[0]
        sensor = path.rsplit("/", 1)[-1]
        assert path == f"/ws/sensors/{sensor}"
        with self.lock:
            self.connections.append(sensor)
        n = 0
        for msg in ws:
            with self.lock:
                self.messages.append((sensor, time.monotonic(), msg))
            n += 1
            if sensor == self.error_for:
                ws.send(json.dumps({"type": "error", "sensor_id": sensor, "error": "frame is 40x60, want 8x8"}))
            if self.drop_notices:
                k = len(decode_binary(msg))
                ws.send(json.dumps({"type": "error", "sensor_id": sensor, "error": f"sensor {sensor}: {k} frame(s) "
                                    "dropped, worker 0 has 1 frames waiting"}))
            if self.close_after is not None and n == self.close_after and self.connections.count(sensor) == 1:
                ws.close()
                return

    def frames_of(self, sensor: str):
        with self.lock:
            return [(t, f) for s, t, m in self.messages if s == sensor for f in decode_binary(m)]

    def close(self):
        self.server.shutdown()
        self.thread.join(timeout=5)


@pytest.fixture
def ws_server():
    servers = []

    def make(**kw):
        servers.append(WsRecorder(**kw))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def test_replay_over_websocket_sends_frames_as_stored_on_schedule(recordings, ws_server):
    server = ws_server(error_for="ROOM_B-0")
    paths = [recordings[k][0] for k in ("ROOM_A", "ROOM_B")]
    speed = 4.0
    before_ms = time.time() * 1000
    summary = replay(paths, server.url, token="tok", speed=speed, sensors=3, stagger_seconds=0.3)
    after_ms = time.time() * 1000
    ids = [s.sensor_id for s in summary.sensors]
    assert ids == ["ROOM_A-0", "ROOM_B-0", "ROOM_A-1"]
    n = len(STEPS) + 1
    for sid, name in zip(ids, ("ROOM_A", "ROOM_B", "ROOM_A")):
        _, frames, stamps = recordings[name]
        got = server.frames_of(sid)
        assert len(got) == n, sid
        np.testing.assert_array_equal(np.stack([f.frame for _, f in got]), frames)  # dropped packets included
        sent = np.array([f.timestamp for _, f in got])
        assert before_ms - 5 <= sent[0] <= after_ms  # the first frame is "now"
        # The steps are the recording's over the speed (ms rounding aside).
        assert np.abs(np.diff(sent) - np.diff(stamps) / speed).max() <= 1.0
        # The arrivals follow the schedule: a generous bound, whatever the machine's speed.
        arrival = np.array([t for t, _ in got])
        assert np.abs((arrival - arrival[0]) - (stamps - stamps[0]) / 1000 / speed).max() < 0.5
    # Copies of a recording start staggered, not at once.
    first = [server.frames_of(sid)[0][1].timestamp for sid in ids]
    assert first[0] < first[1] < first[2]
    report = {s.sensor_id: s for s in summary.sensors}
    assert all(s.frames_sent == n and s.frames_failed == 0 and s.fatal is None for s in summary.sensors)
    assert report["ROOM_B-0"].server_errors >= 1 and "want 8x8" in report["ROOM_B-0"].errors[0]
    assert report["ROOM_A-0"].server_errors == 0
    totals = summary.totals()
    assert totals["frames_sent"] == 3 * n
    assert "ROOM_A-1" in summary.format_text()
    json.dumps(summary.to_dict())


def test_replay_loop_keeps_timestamps_increasing(recordings, ws_server):
    server = ws_server()
    path, _, stamps = recordings["ROOM_A"]
    speed = 8.0
    span = (stamps[-1] - stamps[0]) / 1000 / speed
    summary = replay([path], server.url, token="tok", speed=speed, loop=True, duration=2.5 * span)
    sent = np.array([f.timestamp for _, f in server.frames_of("ROOM_A")])
    assert summary.sensors[0].repetitions >= 2 and len(sent) > len(stamps)
    assert (np.diff(sent) > 0).all()
    assert summary.sensors[0].frames_sent == len(sent)


def test_replay_reconnects_when_the_server_drops_it(recordings, ws_server):
    server = ws_server(close_after=3)
    path, _, _ = recordings["ROOM_A"]
    summary = replay([path], server.url, token="tok", speed=4.0)
    report = summary.sensors[0]
    assert server.connections == ["ROOM_A", "ROOM_A"]
    assert report.reconnects == 1
    assert report.frames_sent + report.frames_failed == len(STEPS) + 1
    assert len(server.frames_of("ROOM_A")) == report.frames_sent >= 4


def test_a_refused_token_stops_the_sensor(recordings, ws_server):
    server = ws_server(token="right")
    summary = replay([recordings["ROOM_A"][0]], server.url, token="wrong", speed=8.0)
    assert "token" in summary.sensors[0].fatal and summary.sensors[0].frames_sent == 0
    assert server.messages == []


def test_replay_counts_what_the_server_says_it_dropped(recordings, ws_server):
    path = recordings["ROOM_A"][0]
    n = len(STEPS) + 1
    # Its error messages only (its /api/sensors refuses): every frame, said frame by frame.
    summary = replay([path], ws_server(drop_notices=True).url, token="tok", speed=8.0)
    assert summary.sensors[0].frames_dropped == n and summary.drops_source == "server replies"
    assert summary.totals()["frames_dropped"] == n
    assert f"{n} dropped by the server (server replies)" in summary.format_text()
    # Its counters, read before and after (the 100 dropped before the replay are not ours).
    server = ws_server(drop_counters=True)
    summary = replay([path], server.url, token="tok", speed=8.0)
    report = summary.sensors[0]
    assert report.frames_dropped == report.messages_sent > 0 and summary.drops_source == "server counters"
    assert f"{report.messages_sent} dropped by the server (server counters)" in summary.format_text()


def test_cli_replay_progress_is_its_own_option_not_verbose(recordings, ws_server, capsys):
    from thermal_action.cli import build_parser, main

    server = ws_server()
    assert main(["replay", str(recordings["ROOM_A"][0]), "--to", server.url, "--token", "tok", "--speed", "8",
                 "--progress", "--progress-every", "0.1"]) == 0
    captured = capsys.readouterr()
    assert "frames sent" in captured.err and "dropped by the server" in captured.out
    help_text = build_parser()._subparsers._group_actions[0].choices["replay"].format_help()
    assert "--progress " in help_text and "--verbose" not in help_text


# -- HTTP


def test_replay_over_http(recordings):
    got: list[tuple[str, str, bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.append((self.path, self.headers.get("Authorization"), body))
            n = len(decode_binary(body))
            answer = json.dumps({"accepted": n - 1, "dropped": 1, "errors": ["queue full"]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        path, frames, _ = recordings["ROOM_A"]
        summary = replay([path], f"http://127.0.0.1:{server.server_address[1]}", token="tok", speed=8.0)
    finally:
        server.shutdown()
        thread.join(timeout=5)
    assert {p for p, _, _ in got} == {"/api/sensors/ROOM_A/frames"}
    assert {a for _, a, _ in got} == {"Bearer tok"}
    sent = [f for _, _, b in got for f in decode_binary(b)]
    np.testing.assert_array_equal(np.stack([f.frame for f in sent]), frames)
    report = summary.sensors[0]
    assert report.frames_sent == len(frames) and report.frames_dropped == report.messages_sent
    assert report.server_errors == report.messages_sent and report.errors[0] == "server: queue full"


# -- MQTT through a real broker, into the service's ingest


def test_replay_over_mqtt_into_the_ingest(recordings, mosquitto, fake_hub):
    path, frames, _ = recordings["ROOM_B"]
    with MqttIngest(fake_hub, ServeConfig(mqtt_url=mosquitto.url)) as ingest:
        assert ingest.wait_connected(30)
        summary = replay([path], mosquitto.url, speed=8.0, sensors=2, stagger_seconds=0.1, qos=1)
        assert fake_hub.wait_for(lambda h: sum(len(c[2]) for c in h.of("submit")) == 2 * len(frames))
    assert [s.frames_sent for s in summary.sensors] == [len(frames)] * 2
    for sid in ("ROOM_B-0", "ROOM_B-1"):
        got = [f for c in fake_hub.of("submit") if c[1] == sid for f in c[2]]
        np.testing.assert_array_equal(np.stack([f.frame for f in got]), frames)
        assert all(np.diff([f.timestamp for f in got]) > 0)
    assert sorted(c[1] for c in fake_hub.of("connected")) == ["ROOM_B-0", "ROOM_B-1"]
    # The broker says nothing of what the service dropped: unknown, said so.
    assert [s.frames_dropped for s in summary.sensors] == [None, None] and summary.totals()["frames_dropped"] is None
    assert "server drops: unknown over MQTT" in summary.format_text()
    assert summary.to_dict()["drops_source"] is None


# -- CLI


def test_cli_replay_prints_the_summary(recordings, ws_server, capsys):
    from thermal_action.cli import main

    server = ws_server()
    rc = main(["replay", str(recordings["ROOM_A"][0]), "--to", server.url, "--token", "tok", "--speed", "8",
               "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert out["totals"]["frames_sent"] == len(STEPS) + 1
    assert out["sensors"][0]["sensor_id"] == "ROOM_A"
    assert main(["replay", str(recordings["ROOM_A"][0]), "--to", "ftp://x:1"]) == 2


# -- end to end: the real service, fed by replay over WebSocket and over MQTT


@pytest.mark.slow
def test_replay_into_the_service_over_websocket_and_mqtt(tmp_path, mosquitto):
    import httpx

    from helpers.serve import make_frames, serve_overrides, wait_for, write_tiny_checkpoint

    from thermal_action.data.synth.sensor import bursty_timestamps
    from thermal_action.serve.config import load_serve_config
    from thermal_action.serve.service import ServiceThread

    frames = make_frames(30, dropped=(7, 8))[0]  # two frames with lost packets, sent as recorded
    stamps = bursty_timestamps(np.random.default_rng(0), len(frames), T0)
    paths = {}
    for name in ("E2E_WS", "E2E_MQ"):
        paths[name] = tmp_path / f"{name}.h5"
        write_h5(paths[name], name, "02:00:00:00:00:02", frames, stamps, int(stamps[0]))
    ckpt = write_tiny_checkpoint(tmp_path / "tiny.ckpt")
    cfg = load_serve_config(None, serve_overrides(tmp_path / "data", mqtt_url=mosquitto.url))
    with ServiceThread(cfg, ckpt) as svc:
        assert svc.service.mqtt.wait_connected(30)
        ws = replay([paths["E2E_WS"]], svc.url.replace("http://", "ws://"), token=svc.token, speed=4.0)
        mq = replay([paths["E2E_MQ"]], mosquitto.url, speed=4.0, qos=1)
        assert ws.sensors[0].frames_sent == mq.sensors[0].frames_sent == len(frames)
        assert ws.sensors[0].server_errors == 0 and ws.sensors[0].fatal is None

        def sensors():
            got = httpx.get(f"{svc.url}/api/sensors", headers={"Authorization": f"Bearer {svc.token}"}).json()
            by_id = {s["sensor_id"]: s for s in got["sensors"]}
            ok = all(by_id.get(s, {}).get("predictions", 0) > 0 for s in paths)
            return ok and by_id

        by_id = wait_for(sensors, timeout=60, what="predictions of both replayed sensors")
    for name in paths:
        s = by_id[name]
        assert s["frames"] == len(frames) and s["bad_message"] == 0 and s["bad_shape"] == 0, s
        assert s["repaired_pixels"] > 0  # the dropped packets arrived as recorded and were repaired there
    assert by_id["E2E_WS"]["connected"] == 0  # replay closed its WebSocket
    # Drops as the service counts them (its /api/sensors, read by replay before and after); MQTT cannot say.
    assert ws.drops_source == "server counters" and ws.sensors[0].frames_dropped == by_id["E2E_WS"]["dropped"]
    assert mq.drops_source is None and mq.sensors[0].frames_dropped is None
