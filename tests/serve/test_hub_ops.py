"""The hub's side of operating a care home, without worker processes: the clip of each alert
(before and after its raise, with the tracked boxes), how far behind the service is, drops told
at once, sensor details in the sensor list, notifications of every alert event."""

from __future__ import annotations

import base64
import io
import time

import numpy as np
import pytest
from PIL import Image

from helpers.serve import FakePool, alert_event, wait_for
from thermal_action.alert_rule import AlertRule
from thermal_action.config import replace_values
from thermal_action.serve.clips import render_clip, render_strip, strip_indices
from thermal_action.serve.config import ServeConfig
from thermal_action.serve.hub import Hub
from thermal_action.serve.model import ModelFile, ModelInfo
from thermal_action.serve.notify import Notifier, Outbox
from thermal_action.serve.operators import AlertAction, SensorInfo
from thermal_action.serve.protocol import FrameIn
from thermal_action.serve.store import Store
from thermal_action.serve.messages import Frames, FrameTracks, QueuedFrame, Round
from thermal_action.serve.workers import WorkerOptions, _Worker
from thermal_action.structures import DEFAULT_CLASS_NAMES, FALL_CLASS_NAME, FrameBoxes
from thermal_action.visualize import HIGHLIGHT_COLOR

FALL = DEFAULT_CLASS_NAMES.index(FALL_CLASS_NAME)
T0 = int(time.time() * 1000) - 3_600_000  # an hour ago: inside keep_clip_days
STEP = 166


class ListSink:
    name = "list"

    def __init__(self):
        self.messages = []

    def send(self, message):
        self.messages.append(message)

    def close(self):
        pass


@pytest.fixture
def sink():
    return ListSink()


@pytest.fixture
def hub(tmp_path, sink):
    cfg = ServeConfig(data_dir=str(tmp_path), clip_seconds_before=2.0, clip_seconds_after=2.0, fps=6.0)
    info = ModelInfo(DEFAULT_CLASS_NAMES, (40, 60), FALL, AlertRule(), lag_frames=6, window_length=16)
    h = Hub(cfg, info, Store(tmp_path / "serve.db"), FakePool(), notifier=Notifier([Outbox(sink, backoff=0.01)]))
    h.notifier.start()
    yield h
    h.notifier.stop()
    h.store.close()


def stamps(first: int, n: int) -> list[int]:
    return [T0 + STEP * i for i in range(first, first + n)]


def send(hub, first: int, n: int, sensor: str = "S1"):
    """Frames ``first .. first + n - 1``: frame i is 20 °C plus i / 100 (so it can be recognised)."""
    return hub.submit(sensor, [FrameIn(np.full((40, 60), 20.0 + i / 100, np.float32), ts)
                               for i, ts in zip(range(first, first + n), stamps(first, n))], "ws")


def tracked(first: int, n: int) -> FrameTracks:
    """What a worker reports of frames ``first ..``: person 7 lies at (10, 10)-(20, 16), person 2 walks."""
    return FrameTracks.pack([(ts, FrameBoxes(np.array([[10, 10, 20, 16], [40, 5, 46, 15]], np.float32),
                                             np.ones(2, np.float32), np.array([7, 2])))
                             for ts in stamps(first, n)])


def raised_at(frame: int, track: int = 7, peak: float = 0.87):
    return alert_event("raised", "S1", track, T0 + STEP * (frame - 30), T0 + STEP * frame, peak)


def test_a_clip_spans_before_and_after_the_raise_with_its_boxes(hub, tmp_path):
    send(hub, 0, 40)
    hub.on_message(0, Round(tracks={"S1": tracked(0, 40)}, alerts=[raised_at(36)]))
    (row,) = hub.store.alerts()
    assert not row["has_clip"]  # 2 s after the raise have not come yet
    send(hub, 40, 10)  # up to frame 49: past the clip's end (frame 36 + 12)
    hub.on_message(0, Round(tracks={"S1": tracked(40, 5)}))
    assert not hub.store.alert(row["id"])["has_clip"]  # frames 45-48 still have no boxes
    hub.on_message(0, Round(tracks={"S1": tracked(45, 5)}))
    assert hub.store.alert(row["id"])["has_clip"]

    clip = hub.clip(row["id"])
    assert (tmp_path / "clips" / f"{row['id']}.npz").is_file()
    first = 36 - 12  # 2 s at 166 ms: frames 24 .. 48
    assert clip.timestamps.tolist() == stamps(first, 25)
    assert clip.frames.dtype == np.float16 and clip.frames.shape == (25, 40, 60)
    assert clip.frames[0, 0, 0] == pytest.approx(20.0 + first / 100, abs=0.01)
    assert clip.timestamps[clip.fired_index] == T0 + STEP * 36 and clip.track_id == 7
    boxes, ids = clip.boxes(clip.fired_index)
    assert ids.tolist() == [7, 2] and boxes[0].tolist() == [10, 10, 20, 16]
    assert clip.peak_score == pytest.approx(0.87)


def test_a_clip_is_saved_with_what_it_has_when_the_stream_ends(hub):
    send(hub, 0, 38)
    hub.on_message(0, Round(tracks={"S1": tracked(0, 30)}, alerts=[raised_at(36)]))
    hub.sensors["S1"].last_arrival -= hub.cfg.end_stream_seconds + 1
    hub.tick()
    clip = hub.clip(hub.store.alerts()[0]["id"])
    assert len(clip) == 38 - 24 and clip.box_counts.tolist() == [2] * 6 + [0] * 8  # frames 30-37 never got boxes


def test_a_new_clock_saves_the_pending_clip_on_the_next_tick_not_on_the_ingest_path(hub):
    send(hub, 0, 40)
    hub.on_message(0, Round(tracks={"S1": tracked(0, 40)}, alerts=[raised_at(36)]))
    hub.submit("S1", [FrameIn(np.full((40, 60), 20.0, np.float32), T0 - 60_000)], "ws")  # the sensor's clock restarted
    (row,) = hub.store.alerts()
    assert not row["has_clip"] and not hub.sensors["S1"].pending_clips and len(hub.sensors["S1"].ring.frames) == 1
    hub.tick()
    assert len(hub.clip(row["id"])) == 40 - 24


def test_the_ring_keeps_the_recent_past_of_what_was_processed_and_is_bounded(hub):
    seconds = hub.cfg.clip_seconds_before + hub.info.lag_frames / hub.cfg.fps + 5.0  # before + lag + margin
    send(hub, 0, 60)  # 10 s in one burst, not processed yet: all kept
    ring = hub.sensors["S1"].ring
    assert len(ring.frames) == 60
    hub.on_message(0, Round(tracks={"S1": tracked(0, 60)}))
    span = ring.frames[-1].timestamp - ring.frames[0].timestamp
    assert seconds * 1000 - STEP <= span <= seconds * 1000 and all(f.tracked is not None for f in ring.frames)
    send(hub, 60, 400)  # a worker that never answers: the ring stops at its bound
    assert len(ring.frames) == int(np.ceil(seconds * hub.cfg.fps * 1.5))
    assert ring.nbytes == len(ring.frames) * 40 * 60 * 2 and hub.stats()["ring_bytes"] == ring.nbytes


def test_the_clip_is_drawn_with_the_fallen_person_in_red(hub):
    send(hub, 0, 50)
    hub.on_message(0, Round(tracks={"S1": tracked(0, 50)}, alerts=[raised_at(36)]))
    clip = hub.clip(hub.store.alerts()[0]["id"])
    out = render_clip(clip, scale=4)
    assert (out["width"], out["height"], out["fired_index"], len(out["frames"])) == (240, 160, 12, 25)
    assert out["fps"] == pytest.approx(1000 / STEP, rel=1e-3) and len(out["timestamps"]) == 25
    img = np.asarray(Image.open(io.BytesIO(base64.b64decode(out["frames"][out["fired_index"]]))))
    assert img.shape == (160, 240, 3)
    # The fallen person's box outline (x 10..20, y 10..16, scale 4) is red; the other person's is not.
    assert tuple(img[12 * 4, 10 * 4]) == HIGHLIGHT_COLOR and tuple(img[8 * 4, 40 * 4]) != HIGHLIGHT_COLOR
    strip = Image.open(io.BytesIO(render_strip(clip, scale=2)))
    assert strip.size[0] == 6 * 60 * 2 + 7 * 4 and len(strip_indices(clip)) == 6


def test_clips_older_than_keep_clip_days_are_deleted_the_alert_kept(hub, tmp_path):
    send(hub, 0, 50)
    hub.on_message(0, Round(tracks={"S1": tracked(0, 50)}, alerts=[raised_at(36)]))
    (row,) = hub.store.alerts()
    assert hub.purge_clips(now_ms_=T0 + 86_400_000) == 0
    assert hub.purge_clips(now_ms_=T0 + 31 * 86_400_000) == 1
    assert not (tmp_path / "clips" / f"{row['id']}.npz").exists() and hub.clip(row["id"]) is None
    assert not hub.store.alert(row["id"])["has_clip"] and len(hub.store.alerts()) == 1


def test_delay_is_measured_when_frames_are_processed(hub):
    now_ms = int(time.time() * 1000)
    ts = [now_ms - 3000 + STEP * i for i in range(6)]
    hub.submit("S1", [FrameIn(np.full((40, 60), 20.0, np.float32), t) for t in ts], "ws")
    assert hub.sensors_status()[0]["delay_s"] is None and hub.stats()["delay_p95_s"] is None
    hub.on_message(0, Round(tracks={"S1": FrameTracks.pack([(t, FrameBoxes.empty()) for t in ts])}))
    st = hub.sensors_status()[0]
    assert st["delay_s"] == pytest.approx(3.0 - 5 * STEP / 1000, abs=0.5) and st["delay_last_s"] is not None
    s = hub.stats()
    assert s["delay_p95_s"] == pytest.approx(st["delay_s"], abs=0.5) and s["behind"] is False
    hub.cfg = replace_values(hub.cfg, {"delay_warning_seconds": 1.0})
    assert hub.stats()["behind"] is True
    assert "thermal_behind 1.0" in hub.metrics_text()


def test_drops_reach_the_dashboards_as_they_happen(hub):
    events = []
    hub.add_listener(events.append)
    hub.pool.room = 5
    send(hub, 0, 5)
    send(hub, 5, 10)  # no room: dropped
    (event,) = [e for e in events if e["type"] == "sensor"]
    assert event["sensor"]["sensor_id"] == "S1" and event["sensor"]["dropped"] == 10
    send(hub, 15, 10)  # again at once: counted, the dashboards are told at most every 0.5 s
    assert len([e for e in events if e["type"] == "sensor"]) == 1 and hub.sensors_status()[0]["dropped"] == 20


def test_sensor_details_show_in_the_sensor_list_even_before_any_frame(hub):
    send(hub, 0, 2)
    hub.set_sensor_info("S9", SensorInfo("Room 9", "C. Brown", "door bed"))
    rows = {r["sensor_id"]: r for r in hub.sensors_status()}
    assert (rows["S1"]["room"], rows["S1"]["resident"]) == ("S1", "")
    assert (rows["S9"]["room"], rows["S9"]["resident"], rows["S9"]["bed_label"], rows["S9"]["status"],
            rows["S9"]["frames"]) == ("Room 9", "C. Brown", "door bed", "silent", 0)


def test_every_alert_event_is_notified(hub, sink):
    send(hub, 0, 2)
    hub.on_message(0, Round(alerts=[raised_at(36, peak=0.9)]))
    (row,) = hub.store.alerts()
    hub.on_message(0, Round(alerts=[
        alert_event("ended", "S1", 7, T0 + STEP * 6, T0 + STEP * 40, 0.9, fired_timestamp=T0 + STEP * 36),
        alert_event("raised", "S1", 7, T0 + STEP * 60, T0 + STEP * 70, 0.8)]))
    hub.set_alert_status(row["id"], "acknowledged", AlertAction("nurse Ada", "on my way"))
    hub.set_alert_status(row["id"], "resolved", AlertAction("nurse Ada", confirm_ongoing=True))
    wait_for(lambda: len(sink.messages) == 5, timeout=10, what="five notifications")
    assert [(m["event"], m["who"], m["alert"]["id"]) for m in sink.messages] == [
        ("raised", "system", row["id"]), ("ended", "system", row["id"]), ("repeat", "system", row["id"]),
        ("acknowledged", "nurse Ada", row["id"]), ("resolved", "nurse Ada", row["id"])]
    assert sink.messages[3]["note"] == "on my way" and sink.messages[0]["alert"]["state"] == "ongoing"
    assert hub.stats()["notify"]["list"]["sent"] == 5


class BufferedStream:
    """A streaming predictor's frame buffer (``window_length`` frames per sensor) and nothing else."""

    def __init__(self, window_length: int = 8):
        self.predictor = type("P", (), {"window_length": window_length})()
        self.stats = type("S", (), {"seconds_model": 0.0, "forward_passes": 0})()
        self.lag_frames = 0
        self.pushes: list[int] = []
        self.buffers: dict[str, list] = {}

    def frames_seen(self, sensor_id):
        return 0

    def push_many(self, frames, errors=None):
        self.pushes.append(len(frames))
        for f in frames:
            buf = self.buffers.setdefault(f.sensor_id, [])
            buf.append((f.timestamp, FrameBoxes(np.array([[1, 1, 5, 5]], np.float32), np.ones(1), np.array([f.timestamp % 97]))))
            del buf[:-self.predictor.window_length]
        return []

    def recent_boxes(self, sensor_id, n):
        return self.buffers.get(sensor_id, [])[-n:]

    def pop_alerts(self):
        return []

    def latest(self, sensor_id):
        return None


def test_the_worker_reports_every_frames_boxes_taking_a_backlog_in_buffer_sized_parts():
    stream = BufferedStream(window_length=8)
    worker = _Worker(0, WorkerOptions.from_config(ServeConfig(), ModelFile("unused", ""), AlertRule(), alerts=True), stream)
    frame = np.zeros((40, 60), np.float32)
    out, _ = worker.round([Frames("A", 0.0, tuple(QueuedFrame(T0 + i, frame) for i in range(20))),
                           Frames("B", 0.0, tuple(QueuedFrame(T0 + i, frame) for i in range(3)))])
    assert stream.pushes == [8, 8, 7]  # A's 20 frames in parts of 8; B's 3 ride along in the last
    assert out.tracks["A"].timestamps.tolist() == [T0 + i for i in range(20)]
    assert [ids.tolist() for _, _, ids in out.tracks["A"]] == [[(T0 + i) % 97] for i in range(20)]
    assert out.tracks["B"].counts.tolist() == [1, 1, 1]
