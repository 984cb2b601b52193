"""Room layouts (zones) per sensor in the service: store, hub (API > rooms file > none), workers."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.serve import FakePool
from thermal_action.data.rooms import NO_LAYOUT, parse_rooms
from thermal_action.alert_rule import AlertRule
from thermal_action.errors import RoomsError
from thermal_action.serve.config import ServeConfig
from thermal_action.serve.hub import Hub
from thermal_action.serve.model import ModelFile, ModelInfo
from thermal_action.serve.protocol import FrameIn
from thermal_action.serve.store import Store
from thermal_action.serve.messages import Frames, QueuedFrame, SetLayout
from thermal_action.serve.routing import worker_for
from thermal_action.serve.workers import _Worker, WorkerOptions
from thermal_action.structures import DEFAULT_CLASS_NAMES, FALL_CLASS_NAME

T0 = 1_760_000_000_000
BED = {"zones": [{"kind": "bed", "name": "bed by the window", "box": [0.6, 0.3, 0.95, 0.6]}]}
COUCH = {"zones": [{"kind": "couch", "polygon": [[0.1, 0.1], [0.4, 0.1], [0.4, 0.3]]}]}
#: The layout file: S1's bed until T0 + 10 s, then a chair; nothing for S2.
ROOMS = parse_rooms({"sensors": {"S1": [{"zones": BED["zones"]},
                                        {"valid_from": T0 + 10_000, "zones": [{"kind": "chair",
                                                                              "box": [0.1, 0.6, 0.2, 0.8]}]}]}},
                    "rooms.json")


def _hub(tmp_path, rooms=ROOMS, pool=None) -> Hub:
    cfg = ServeConfig(data_dir=str(tmp_path))
    info = ModelInfo(DEFAULT_CLASS_NAMES, (40, 60), DEFAULT_CLASS_NAMES.index(FALL_CLASS_NAME), 0.5, 7, 16)
    return Hub(cfg, info, Store(tmp_path / "serve.db"), pool or FakePool(), rooms=rooms)


def _frames(n: int, t0: int = T0) -> list[FrameIn]:
    return [FrameIn(np.full((40, 60), 20.0, np.float32), t0 + 166 * i) for i in range(n)]


def test_store_keeps_zones_across_a_reopen(tmp_path):
    s = Store(tmp_path / "serve.db")
    assert s.zones("S1") is None and s.all_zones() == {}
    s.set_zones("S1", BED)
    s.set_zones("S1", COUCH)  # replaces
    s.set_zones("S2", BED)
    s.close()
    s = Store(tmp_path / "serve.db")
    assert s.zones("S1")["layout"] == COUCH and s.zones("S1")["updated_at"] > 0
    assert sorted(s.all_zones()) == ["S1", "S2"]
    assert s.delete_zones("S1") and not s.delete_zones("S1") and s.zones("S1") is None


def test_a_new_sensor_gets_its_room_before_its_first_frames(tmp_path):
    hub = _hub(tmp_path)
    hub.submit("S1", _frames(3), "ws")
    hub.submit("S2", _frames(2), "ws")
    w1, w2 = worker_for("S1", 2), worker_for("S2", 2)
    assert hub.pool.inbox == [("layout", w1, "S1"), ("frames", w1, "S1"), ("frames", w2, "S2")]
    ((_, _, s1),) = hub.pool.layouts
    assert s1.source == "rooms file" and [z.kind for z in s1.zones] == ["bed"]  # at the frames' time
    # S2 is not in the file: its worker's default, no room.
    assert hub.zones("S2") == {"sensor_id": "S2", "source": "none", "zones": [], "updated_at": None}


def test_api_zones_win_over_the_file_and_delete_falls_back_to_it(tmp_path):
    hub = _hub(tmp_path)
    hub.submit("S1", _frames(2), "ws")
    events = []
    hub.add_listener(events.append)
    view = hub.set_zones("S1", COUCH)
    assert view["source"] == "api" and view["zones"][0]["kind"] == "couch" and view["updated_at"] > 0
    worker, sensor, layout = hub.pool.layouts[-1]
    assert (worker, sensor, layout.source) == (worker_for("S1", 2), "S1", "api")
    assert events[-1]["type"] == "zones" and events[-1]["source"] == "api"
    assert hub.zones("S1")["zones"] == COUCH["zones"]
    back = hub.delete_zones("S1")
    assert back["source"] == "rooms file" and back["zones"][0]["kind"] == "bed"
    assert hub.pool.layouts[-1][2].source == "rooms file"
    assert hub.delete_zones("S1") is None  # nothing set through the API any more
    # A sensor that has not sent a frame yet can get zones too: they wait in its worker.
    hub.set_zones("S9", BED)
    assert hub.pool.layouts[-1][:2] == (worker_for("S9", 2), "S9")


def test_bad_zones_are_refused_naming_the_zone_and_change_nothing(tmp_path):
    hub = _hub(tmp_path)
    hub.set_zones("S1", BED)
    sent = len(hub.pool.layouts)
    bad = {"zones": [BED["zones"][0], {"kind": "sofa", "box": [0.1, 0.1, 0.2, 0.2]}]}
    with pytest.raises(RoomsError, match=r"zones of sensor S1, zone 1: unknown zone kind 'sofa'"):
        hub.set_zones("S1", bad)
    with pytest.raises(RoomsError, match=r"zone 0: the zone lies wholly outside the frame"):
        hub.set_zones("S1", {"zones": [{"kind": "bed", "box": [1.1, 0.2, 1.4, 0.5]}]})
    with pytest.raises(RoomsError, match="a layout must be an object with a 'zones' list"):
        hub.set_zones("S1", [1, 2])
    assert hub.zones("S1")["zones"] == BED["zones"] and len(hub.pool.layouts) == sent
    assert hub.store.zones("S1")["layout"] == BED


def test_zones_survive_a_restart_of_the_hub(tmp_path):
    hub = _hub(tmp_path)
    hub.set_zones("S1", COUCH)
    hub.store.close()
    again = _hub(tmp_path)
    assert again.zones("S1")["source"] == "api" and again.zones("S1")["zones"] == COUCH["zones"]
    again.submit("S1", _frames(1), "ws")
    assert again.pool.layouts[0][2].source == "api"


def test_the_files_next_layout_is_sent_when_its_time_comes_and_after_a_worker_restart(tmp_path):
    hub = _hub(tmp_path)
    hub.submit("S1", _frames(3), "ws")
    hub.submit("S1", _frames(3, t0=T0 + 1000), "ws")
    assert len(hub.pool.layouts) == 1  # nothing changed
    hub.submit("S1", _frames(2, t0=T0 + 12_000), "ws")  # the sensor's clock passes valid_from
    assert [z.kind for z in hub.pool.layouts[-1][2].zones] == ["chair"] and len(hub.pool.layouts) == 2
    assert hub.pool.inbox[-2:] == [("layout", worker_for("S1", 2), "S1"), ("frames", worker_for("S1", 2), "S1")]
    hub.on_restart(worker_for("S1", 2), lost=0)
    assert len(hub.pool.layouts) == 3 and hub.pool.layouts[-1][1] == "S1"  # the new process gets it again


class _Stream:
    """Records what the worker does to the streaming predictor, in order."""

    def __init__(self):
        self.calls: list[tuple] = []
        self.predictor = type("P", (), {"window_length": 8})()
        self.stats = type("S", (), {"seconds_model": 0.0, "forward_passes": 0})()
        self.lag_frames = 0

    def frames_seen(self, sensor_id):
        return 0

    def push_many(self, frames, errors=None):
        self.calls.append(("frames", len(frames)))
        return []

    def set_layout(self, sensor_id, layout):
        self.calls.append(("layout", sensor_id, layout.source))

    def pop_alerts(self):
        return []

    def latest(self, sensor_id):
        return None

    def recent_boxes(self, sensor_id, n):
        return []


def test_the_worker_applies_a_layout_between_the_frames_before_and_after_it():
    stream = _Stream()
    worker = _Worker(0, WorkerOptions.from_config(ServeConfig(), ModelFile("unused", ""), AlertRule(), alerts=True), stream)
    frame = np.zeros((40, 60), np.float32)
    layout = parse_rooms({"sensors": {"S1": BED}}, "x").layout_for("S1")
    worker.round([Frames("S1", 0.0, (QueuedFrame(T0, frame),) * 2), SetLayout("S1", layout),
                  Frames("S1", 0.0, (QueuedFrame(T0 + 500, frame),))])
    assert stream.calls == [("frames", 2), ("layout", "S1", "rooms file"), ("frames", 1)]


def test_streaming_predictor_keeps_a_layout_per_sensor():
    from thermal_action.inference.streaming import StreamingPredictor

    stream = StreamingPredictor.__new__(StreamingPredictor)  # no model needed to hold layouts
    stream._layouts, stream.rooms = {}, None  # no rooms file either
    layout = parse_rooms({"sensors": {"S1": BED}}, "x").layout_for("S1")
    assert stream.layout("S1") == NO_LAYOUT
    stream.set_layout("S1", layout)
    assert stream.layout("S1") is layout and stream.layout("S2") == NO_LAYOUT
