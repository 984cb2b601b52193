"""The frame formats sensors send: binary TAF1 records and JSON."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from thermal_action.serve.protocol import (
    HEADER, MAGIC, FrameFormatError, IngestLimits, check_sensor_id, decode_binary, decode_json, decode_message,
    encode_frame, encode_frames,
)

NOW_MS = 1_760_000_000_000  # a plausible capture time (2025)


def test_binary_round_trip_keeps_values_timestamps_and_shape():
    rng = np.random.default_rng(0)
    frames = rng.normal(20, 3, (3, 40, 60)).astype(np.float32)
    frames[1, 0, :5] = -273.2  # dropped packet pixels travel as they are
    frames[2, 3, 3] = np.nan
    data = encode_frames(frames, [NOW_MS, None, NOW_MS + 333])
    assert len(data) == 3 * (HEADER.size + 40 * 60 * 4)
    got = decode_binary(data)
    assert [g.timestamp for g in got] == [NOW_MS, None, NOW_MS + 333]
    np.testing.assert_array_equal(np.stack([g.frame for g in got]), frames)  # NaN == NaN here
    assert all(g.frame.dtype == np.float32 and g.boxes is None for g in got)


def test_binary_header_layout_is_little_endian():
    data = encode_frame(np.arange(6, dtype=np.float32).reshape(2, 3), 0x0102030405)
    assert data[:4] == MAGIC
    assert data[4:12] == (0x0102030405).to_bytes(8, "little")
    assert data[12:16] == (2).to_bytes(2, "little") + (3).to_bytes(2, "little")
    assert data[16:20] == np.float32(0).tobytes() and data[-4:] == np.float32(5).tobytes()


@pytest.mark.parametrize("data, message", [
    (b"", "empty"),
    (MAGIC + b"\x00" * 5, "header needs"),
    (b"XXXX" + b"\x00" * 12, "not b'TAF1'"),
    (HEADER.pack(MAGIC, 0, 40, 60) + b"\x00" * 100, "9600 bytes"),
    (HEADER.pack(MAGIC, 0, 0, 60), "not a sensor's"),
])
def test_broken_binary_messages_say_why(data, message):
    with pytest.raises(FrameFormatError, match=message):
        decode_binary(data)


def test_json_single_batch_and_boxes():
    f = np.full((4, 5), 21.5)
    one = decode_json(json.dumps({"timestamp": NOW_MS, "frame": f.tolist()}))
    assert len(one) == 1 and one[0].timestamp == NOW_MS and one[0].frame.shape == (4, 5)
    many = decode_json({"frames": [{"frame": f.tolist()}, {"frame": f.tolist(), "timestamp": None,
                                                           "boxes": [[1, 1, 3, 4]]}]})
    assert [m.timestamp for m in many] == [None, None]
    np.testing.assert_array_equal(many[1].boxes, [[1, 1, 3, 4]])


@pytest.mark.parametrize("obj, message", [
    ("{not json", "not valid JSON"),
    ({"frame": [[1, 2], [3]]}, "rectangular"),
    ({"frame": [1, 2, 3]}, r"\(H, W\)"),
    ({"frame": [[1.0]], "timestamp": "noon"}, "ms since epoch"),
    ({"frame": [[1.0]], "boxes": [[3, 3, 1, 1]]}, "x1 < x2"),
    ({"frames": []}, "non-empty"),
    ({"pixels": []}, "'frame' key"),
])
def test_broken_json_says_why(obj, message):
    with pytest.raises(FrameFormatError, match=message):
        decode_json(obj if isinstance(obj, str) else json.dumps(obj))


def test_decode_message_tells_the_formats_apart():
    f = np.ones((2, 2), np.float32)
    assert decode_message(encode_frame(f, NOW_MS + 5))[0].timestamp == NOW_MS + 5
    assert decode_message(json.dumps({"frame": f.tolist(), "timestamp": NOW_MS + 6}).encode())[0].timestamp == NOW_MS + 6
    assert decode_message(json.dumps({"frame": f.tolist(), "timestamp": NOW_MS + 7}))[0].timestamp == NOW_MS + 7


@pytest.mark.parametrize("good", ["S1", "room-2.bed_a", "x" * 64])
def test_good_sensor_ids(good):
    assert check_sensor_id(good) == good


@pytest.mark.parametrize("bad", ["", "../etc", "a/b", "x" * 65, "sp ace", "ü", ".", "..", "-x", "_"])
def test_bad_sensor_ids_are_refused(bad):
    with pytest.raises(FrameFormatError, match="sensor id"):
        check_sensor_id(bad)


# -- hostile input: boxes, timestamps, JSON that is not quite JSON, limits


def _one(boxes, shape=(40, 60), **kw):
    return decode_json({"timestamp": NOW_MS, "frame": np.zeros(shape).tolist(), "boxes": boxes}, **kw)[0]


def test_boxes_are_clipped_to_the_frame_and_counted_as_repaired():
    got = _one([[-5, 2, 10, 50], [0, 0, 1e30, 1e30], [3, 4, 8, 9]])
    np.testing.assert_array_equal(got.boxes, [[0, 2, 10, 40], [0, 0, 60, 40], [3, 4, 8, 9]])
    assert (got.repaired_boxes, got.refused_boxes) == (2, 0)


def test_boxes_wholly_outside_the_frame_are_refused_and_counted():
    got = _one([[70, 2, 80, 10], [3, 4, 8, 9], [-9, -9, -1, -1], [10, 40, 20, 45]])
    np.testing.assert_array_equal(got.boxes, [[3, 4, 8, 9]])
    assert (got.repaired_boxes, got.refused_boxes) == (0, 3)
    assert _one([]).boxes.shape == (0, 4)


@pytest.mark.parametrize("boxes, message", [
    ([[0, 0, float("inf"), 5]], "finite"),
    ([[float("nan"), 0, 4, 5]], "finite"),
    ([[1, 2, 3, 4, 5, 6, 7, 8]], r"\[x1, y1, x2, y2\]"),
    ([[1, 2, 3]], r"\[x1, y1, x2, y2\]"),
    ([[3, 3, 1, 1]], "x1 < x2"),
])
def test_bad_boxes_refuse_the_message(boxes, message):
    with pytest.raises(FrameFormatError, match=message):
        _one(boxes)


def test_limits_on_boxes_per_frame_and_frames_per_message():
    limits = IngestLimits(max_frames=4, max_boxes=3)
    with pytest.raises(FrameFormatError, match="5 boxes.*at most 3") as e:
        _one([[1, 1, 2, 2]] * 5, limits=limits)
    assert e.value.status == 413
    assert len(_one([[1, 1, 2, 2]] * 3, limits=limits).boxes) == 3
    frame = {"timestamp": NOW_MS, "frame": [[1.0]]}
    with pytest.raises(FrameFormatError, match="5 frames.*at most 4") as e:
        decode_json({"frames": [frame] * 5}, limits=limits)
    assert e.value.status == 413
    with pytest.raises(FrameFormatError, match="at most 4 frames") as e:
        decode_binary(encode_frames(np.zeros((5, 2, 2)), [NOW_MS] * 5), limits=limits)
    assert e.value.status == 413
    assert len(decode_binary(encode_frames(np.zeros((4, 2, 2)), [NOW_MS] * 4), limits=limits)) == 4
    assert IngestLimits() == IngestLimits(max_frames=256, max_boxes=32)


@pytest.mark.parametrize("ts", [1e19, -5, 17, 2**62, "1e3", True, 1.5e12 + 0.5, 946_684_799_999])
def test_implausible_timestamps_are_refused(ts):
    with pytest.raises(FrameFormatError, match="timestamp") as e:
        decode_json({"timestamp": ts, "frame": [[1.0]]})
    assert e.value.status == 422


def test_timestamps_from_2000_to_a_day_ahead_are_accepted():
    now = int(time.time() * 1000)
    for ts in (946_684_800_000, now, now + 86_000_000, float(NOW_MS)):
        assert decode_json({"timestamp": ts, "frame": [[1.0]]})[0].timestamp == int(ts)
    with pytest.raises(FrameFormatError, match="timestamp"):
        decode_json({"timestamp": now + 86_500_000, "frame": [[1.0]]})
    for bad in (2**63 - 1, 5, now + 10**9):
        with pytest.raises(FrameFormatError, match="record 1: timestamp"):
            decode_binary(encode_frames(np.zeros((2, 2, 2)), [now, bad]))
    assert decode_binary(encode_frame(np.zeros((2, 2)), None))[0].timestamp is None  # -1: arrival time


@pytest.mark.parametrize("text, message", [
    ('{"timestamp": NaN, "frame": [[1]]}', "NaN"),
    ('{"timestamp": 1760000000000, "frame": [[Infinity]]}', "Infinity"),
    ('{"timestamp": -Infinity, "frame": [[1]]}', "Infinity"),
    ('{"frame": [[1]], "x": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested deeper than 8"),
    ('{"frame": [[[[[[[[[1]]]]]]]]]}', "nested deeper than 8"),
    ("{not json", "not valid JSON"),
])
def test_json_that_is_not_plain_json_is_a_400(text, message):
    with pytest.raises(FrameFormatError, match=message) as e:
        decode_message(text.encode())
    assert e.value.status == 400


def test_brackets_inside_strings_do_not_count_as_nesting():
    text = json.dumps({"timestamp": NOW_MS, "frame": [[1.0]], "note": "[[[[[[[[[[ \\\" {{{{{{{{{"})
    assert len(decode_json(text)) == 1
