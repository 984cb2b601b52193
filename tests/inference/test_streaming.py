"""StreamingPredictor: same predictions as offline, causal mode, many sensors, repair, alerts."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from thermal_action.alert_rule import AlertOverrides
from helpers.infer import ROOM_LAYOUT, make_frames, tiny_config, write_recording, write_tiny_checkpoint
from thermal_action.data.clips import ClipBuilder
from thermal_action.errors import DatasetError
from thermal_action.data.hdf5 import read_recording, repair_frames
from thermal_action.inference.boxes import FrameBoxes, PersonBoxes, boxes_from_detector, track_detections
from thermal_action.people.results import Detections
from thermal_action.inference.predictor import ClipRequest, Predictor
from thermal_action.inference.recordings import predict_recording
from thermal_action.inference.streaming import StreamFrame, StreamingPredictor
from thermal_action.structures import DEFAULT_CLASS_NAMES

N = 40


@pytest.fixture(scope="module")
def predictor(tmp_path_factory) -> Predictor:
    torch.set_num_threads(1)
    ckpt = write_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.ckpt")
    return Predictor.from_checkpoint(ckpt, max_clips_per_batch=8)


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    # Dropped packets in isolated frames: the reader and the stream repair them the same way.
    frames, _ = make_frames(N, dropped=(7, 20))
    path = write_recording(tmp_path_factory.mktemp("rec") / "S1.h5", frames)
    return frames, read_recording(path)


def _stream(sp: StreamingPredictor, sensor: str, frames, timestamps, boxes=None):
    out = []
    for i, f in enumerate(frames):
        out += sp.push(sensor, f, int(timestamps[i]), None if boxes is None else boxes[i])
    return out


def _same(a, b, atol=1e-5):
    assert [(p.sensor_id, p.frame_idx, p.timestamp, p.track_id) for p in a] == \
           [(p.sensor_id, p.frame_idx, p.timestamp, p.track_id) for p in b]
    for p, q in zip(a, b):
        np.testing.assert_allclose(p.scores, q.scores, atol=atol)
        np.testing.assert_allclose(p.box_xyxy, q.box_xyxy, atol=1e-5)


def test_stream_equals_offline_prediction(predictor, recording):
    raw, rec = recording
    offline = predict_recording(predictor, rec, boxes_from_detector(rec), step=6)
    sp = StreamingPredictor(predictor, step=6)
    assert sp.lag_frames == predictor.frames_after == 6
    live = _stream(sp, "S1", raw, rec.timestamps)
    # Keyframe k is scored when frame k + 6 arrives: 0..30 during the stream, 36 at the flush.
    assert sorted({p.frame_idx for p in live}) == [0, 6, 12, 18, 24, 30]
    live += sp.flush()
    _same(offline, live)
    assert sp.stats.repaired_pixels == rec.repair.invalid_pixels
    assert sp.sensors == []  # flushed streams are forgotten


def test_stream_and_recording_track_the_same_boxes_the_same_way(predictor, recording):
    # One person goes unseen on frames 10-13 (the tracker coasts it) and the other
    # appears at frame 5 (the tracker confirms it): both paths share one conversion.
    raw, rec = recording
    _, tracks = make_frames(N)
    per_frame = []
    for f in range(N):
        boxes = [tracks[0][f]] if 10 <= f <= 13 else [tracks[0][f], tracks[1][f]] if f >= 5 else [tracks[0][f]]
        per_frame.append(np.asarray(boxes, np.float32))
    offline_boxes = track_detections([Detections(b, np.ones(len(b))) for b in per_frame])
    offline = predict_recording(predictor, rec, PersonBoxes("detections", offline_boxes), step=1)
    sp = StreamingPredictor(predictor, step=1)
    live = _stream(sp, "S1", raw, rec.timestamps, per_frame) + sp.flush()
    assert len(offline) > N and {p.track_id for p in offline} == {0, 1}
    _same(offline, live)
    assert [p.box_score for p in offline] == pytest.approx([p.box_score for p in live])


def test_keyframe_is_returned_by_the_frame_that_completes_its_window(predictor, recording):
    raw, rec = recording
    sp = StreamingPredictor(predictor, step=6)
    got_at = {}
    for i, f in enumerate(raw):
        for p in sp.push("S1", f, int(rec.timestamps[i])):
            got_at.setdefault(p.frame_idx, i)
    assert got_at == {k: k + 6 for k in range(0, 31, 6)}
    assert sp.lag_seconds(6.0) == pytest.approx(1.0)


def test_causal_mode_has_no_lag_and_pads_the_future(predictor, recording):
    raw, rec = recording
    sp = StreamingPredictor(predictor, step=6, causal=True)
    assert sp.lag_frames == 0
    boxes = FrameBoxes(np.array([[7, 8, 17, 16]]), [1.0], [0])
    got_at = {}
    preds = []
    for i, f in enumerate(raw):
        new = sp.push("S1", f, int(rec.timestamps[i]), boxes)
        preds += new
        for p in new:
            got_at[p.frame_idx] = i
    assert got_at == {k: k for k in range(0, N, 6)}
    assert sp.flush() == []  # nothing waits in causal mode
    # The keyframe's window ends with it: the future half repeats it (edge padding).
    for p in preds:
        want = predictor.predict_clips([ClipRequest(rec.frames[: p.frame_idx + 1], p.frame_idx, boxes.boxes_xyxy)])
        np.testing.assert_allclose(p.scores, want[0][0], atol=1e-5)


def test_many_sensors_share_one_forward_pass(predictor, recording):
    raw, rec = recording
    sensors = ["A", "B", "C"]
    shifted = {s: np.roll(raw, 3 * i, axis=2) for i, s in enumerate(sensors)}  # different content per sensor
    given = [FrameBoxes(np.array([[7, 8, 17, 16], [40, 24, 50, 32]]), [1.0, 1.0], [0, 1])] * N
    sp = StreamingPredictor(predictor, step=6)
    together = []
    for i in range(N):
        before = sp.stats.forward_passes
        new = sp.push_many([StreamFrame(s, shifted[s][i], int(rec.timestamps[i]), given[i]) for s in sensors])
        together += new
        if new:
            assert sp.stats.forward_passes - before == 1  # 3 windows, one batched pass
            assert {p.sensor_id for p in new} == set(sensors)
    together += sp.flush()
    for s in sensors:
        alone = StreamingPredictor(predictor, step=6)
        single = _stream(alone, s, shifted[s], rec.timestamps, given) + alone.flush()
        _same([p for p in together if p.sensor_id == s], single)


def test_batch_wait_gathers_staggered_sensors(predictor, recording):
    raw, rec = recording
    given = FrameBoxes(np.array([[7, 8, 17, 16]]), [1.0], [0])
    # Sensor j joins at tick j: their keyframes complete on three different ticks.
    def ticks(sp):
        out = {}
        for i in range(N):
            items = [StreamFrame(s, raw[i - j], int(rec.timestamps[i - j]), given)
                     for j, s in enumerate("ABC") if i >= j]
            for p in sp.push_many(items):
                out.setdefault((p.sensor_id, p.frame_idx), (i, p))
        for p in sp.flush():
            out.setdefault((p.sensor_id, p.frame_idx), (N, p))
        return out

    eager, patient = StreamingPredictor(predictor, step=6), StreamingPredictor(predictor, step=6, batch_wait=2)
    a, b = ticks(eager), ticks(patient)
    assert a.keys() == b.keys() and len(a) == 3 * 7
    for key in a:
        np.testing.assert_allclose(a[key][1].scores, b[key][1].scores, atol=1e-5)
        assert 0 <= b[key][0] - a[key][0] <= 2  # at most batch_wait ticks later
    assert patient.stats.forward_passes < eager.stats.forward_passes
    with pytest.raises(ValueError, match="batch_wait"):
        StreamingPredictor(predictor, batch_wait=-1)


def test_pushed_boxes_get_track_ids(predictor, recording):
    raw, rec = recording
    _, tracks = make_frames(N)
    sp = StreamingPredictor(predictor, step=6)
    preds = _stream(sp, "S1", raw, rec.timestamps, [np.stack([t[i] for t in tracks]) for i in range(N)])
    preds += sp.flush()
    assert sorted({p.track_id for p in preds}) == [0, 1]
    for p in preds:
        np.testing.assert_allclose(p.box_xyxy, tracks[p.track_id][p.frame_idx], atol=1e-4)


def test_stream_repair_matches_the_reader_and_handles_kelvin(predictor):
    frames, _ = make_frames(12, dropped=(5,))
    want, _ = repair_frames(frames)
    given = FrameBoxes(np.zeros((0, 4)), [], [])
    for offset in (0.0, 273.15):  # the same stream in °C and in Kelvin
        sp = StreamingPredictor(predictor, step=6)
        # A dropped pixel reads 0 K: -273.2 in a °C stream, 0.0 in a Kelvin one.
        raw = np.where(frames < -200, -273.2 + offset, frames + offset).astype(np.float32)
        for i, f in enumerate(raw):
            sp.push("S", f, i, given)
        got = np.stack(sp._sensors["S"].frames)
        np.testing.assert_allclose(got, want[-len(got):], atol=1e-3)
        # ... including the realignment of the packets the receiver packed forward.
        assert np.abs(got[5] - repair_frames(frames, realign=False)[0][5]).max() > 1.0
        assert sp.stats.repaired_pixels == 576  # one lost packet (packet 1: the rest was realigned)
    sp = StreamingPredictor(predictor, step=6)
    with pytest.raises(DatasetError, match="stream S.*first frame"):
        sp.push("S", np.full((40, 60), -273.2, np.float32), 0, given)
    sp.push("T", frames[0], 0, given)
    with pytest.raises(ValueError, match="shape"):
        sp.push("T", frames[0][:, :50], 1, given)


class _FallBackend:
    """Logits that make track boxes left of x=30 'fallen' (class 3) and others standing."""

    name = "fake"
    alpha = 4
    use_memory = False

    def __call__(self, slow, fast, rois, clip_keys=None, zone_masks=None, zone_features=None):
        logits = torch.zeros(rois.shape[0], len(DEFAULT_CLASS_NAMES))
        left = rois[:, 1] < 30
        logits[left, 3] = 5.0
        logits[~left, 1] = 5.0
        return logits


def test_online_fall_alerts(recording):
    raw, rec = recording
    fake = Predictor(_FallBackend(), ClipBuilder(num_frames=16, frame_stride=2), DEFAULT_CLASS_NAMES)
    sp = StreamingPredictor(fake, step=6, alert_rule=AlertOverrides(threshold=0.9, min_seconds=2.0))
    boxes = FrameBoxes(np.array([[7, 8, 17, 16], [40, 24, 50, 32]]), [1.0, 1.0], [0, 1])
    fired_at = None
    for i, f in enumerate(raw):
        sp.push("S1", f, int(rec.timestamps[i]), boxes)
        for a in sp.pop_alerts():
            assert a.kind == "raised" and a.track_id == 0 and a.sensor_id == "S1"
            fired_at = i
    # Keyframes 0, 6, 12 high: 2 s at frame 12, which is scored when frame 18 arrives.
    assert fired_at == 18
    assert [a.track_id for a in sp.active_alerts] == [0]
    sp.flush()
    (ended,) = sp.pop_alerts()
    assert ended.kind == "ended" and (ended.start_frame, ended.end_frame) == (0, 36)
    assert ended.peak_score > 0.9


def test_stream_bad_arguments(predictor):
    with pytest.raises(ValueError, match="step"):
        StreamingPredictor(predictor, step=0)
    sp = StreamingPredictor(predictor, alert_rule=AlertOverrides(fall_class="tumbling"))  # no alerts, no error
    assert sp.monitor is None
    assert StreamingPredictor(predictor, alerts=False).monitor is None
    assert StreamingPredictor(predictor).alert_rule == predictor.alert_rule
    with pytest.raises(ValueError, match="must be"):
        sp.push("S", np.zeros((2, 40, 60)), 0)


def test_prediction_and_streaming_repair_to_the_checkpoints_valid_range(tmp_path, monkeypatch):
    """A model trained with data.valid_range=(-10, 60) repairs a 80 °C pixel in new recordings
    and in streams (the default range, -40..200 °C, would keep it)."""
    from helpers.infer import tiny_config

    ckpt = write_tiny_checkpoint(tmp_path / "narrow.ckpt", tiny_config("data.valid_range=[-10.0, 60.0]"))
    predictor = Predictor.from_checkpoint(ckpt)
    assert predictor.valid_range == (-10.0, 60.0)
    assert Predictor.from_checkpoint(write_tiny_checkpoint(tmp_path / "d.ckpt")).valid_range == (-40.0, 200.0)

    frames, _ = make_frames(n=20, dropped=())
    frames[5, 3, 3] = 80.0
    sp = StreamingPredictor(predictor, step=6)
    _stream(sp, "s", frames, np.arange(20) * 166)
    assert sp.stats.repaired_pixels == 1

    import thermal_action.inference.recordings as recordings

    seen = []

    def reading(path, valid_range=None, **kw):
        seen.append(valid_range)
        return read_recording(path, valid_range, **kw)

    path = write_recording(tmp_path / "rec.h5", frames)
    monkeypatch.setattr(recordings, "read_recording", reading)
    recordings.predict_recordings(predictor, [path], tmp_path / "out", step=6)
    assert seen == [(-10.0, 60.0)]
    assert read_recording(path, predictor.valid_range).repair.invalid_pixels == 1
    assert read_recording(path).repair.invalid_pixels == 0


def test_pushed_boxes_without_track_ids_are_tracked_here(predictor):
    frames, _ = make_frames(n=12, dropped=())
    sp = StreamingPredictor(predictor, step=6)
    untracked = FrameBoxes(np.array([[7, 8, 17, 16]]), [1.0])  # track ids -1
    _stream(sp, "s", frames, np.arange(12) * 166, [untracked] * 12)
    tracked = sp._state("s").boxes[-1]
    assert len(tracked) == 1 and tracked.track_ids[0] >= 0


# --- the room: the API's layout, else the rooms file, else none ---------------------------

@pytest.fixture(scope="module")
def room_predictor(tmp_path_factory) -> Predictor:
    cfg = tiny_config("model.variant=crop_cnn", "model.tube_size=16", "model.room=masks+features")
    ckpt = write_tiny_checkpoint(tmp_path_factory.mktemp("room") / "room.ckpt", cfg)
    return Predictor.from_checkpoint(ckpt, max_clips_per_batch=8)


def test_stream_with_a_rooms_file_equals_offline_prediction_with_it(room_predictor, recording, tmp_path):
    from thermal_action.data.rooms import LayoutTimeline, RoomMap, write_rooms

    raw, rec = recording
    rooms = RoomMap({"S1": LayoutTimeline([ROOM_LAYOUT])})
    write_rooms(rooms, tmp_path / "rooms.json")
    offline = predict_recording(room_predictor, rec, boxes_from_detector(rec), step=6, rooms=rooms)
    sp = StreamingPredictor(room_predictor, step=6, rooms=tmp_path / "rooms.json")
    live = _stream(sp, "S1", raw, rec.timestamps) + sp.flush()
    _same(offline, live)
    assert {p.room_source for p in live} == {"rooms file"} and None not in {p.bed_share for p in live}
    bare = _stream(StreamingPredictor(room_predictor, step=6), "S1", raw, rec.timestamps)
    assert {p.room_source for p in bare} == {"none"}
    assert max(np.abs(a.scores - b.scores).max() for a, b in zip(live, bare)) > 1e-4


def test_set_layout_takes_precedence_and_can_be_removed(room_predictor, recording):
    from thermal_action.data.rooms import NO_LAYOUT, LayoutTimeline, RoomLayout, RoomMap, Zone

    raw, rec = recording
    file_layout = RoomLayout((Zone.from_box("couch", (0.5, 0.5, 0.9, 0.9)),), "rooms file")
    sp = StreamingPredictor(room_predictor, step=6, rooms=RoomMap({"S1": LayoutTimeline([file_layout])}))
    assert sp.layout("S1").source == "rooms file" and sp.layout("S2").source == "none"
    sp.set_layout("S1", RoomLayout(ROOM_LAYOUT.zones))  # built with the default source: recorded as the API's
    assert sp.layout("S1").source == "api" and sp.layout("S1").zones == ROOM_LAYOUT.zones
    first = _stream(sp, "S1", raw[:20], rec.timestamps)
    assert first and {p.room_source for p in first} == {"api"}
    sp.set_layout("S1", NO_LAYOUT)  # the service's "no zones": back to the rooms file
    rest = []
    for i in range(20, N):
        rest += sp.push("S1", raw[i], int(rec.timestamps[i]))
    assert rest and {p.room_source for p in rest} == {"rooms file"}
    # The service sends the layout it resolved, source and all; a layout outlives the stream
    # (flush), and one without zones from a known source is a room known to be empty.
    sp.set_layout("S1", file_layout)
    assert sp.layout("S1") == file_layout
    sp.set_layout("S2", RoomLayout((), "api"))
    sp.flush()
    assert sp.layout("S2").source == "api" and sp.layout("S2").known and not sp.layout("S2").zones
    sp.set_layout("S2", None)
    assert sp.layout("S2") == NO_LAYOUT
