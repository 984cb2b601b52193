"""The frame formats sensors send: binary TAF1 records and JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest

from thermal_action.serve.protocol import (
    HEADER, MAGIC, FrameFormatError, check_sensor_id, decode_binary, decode_json, decode_message, encode_frame,
    encode_frames,
)


def test_binary_round_trip_keeps_values_timestamps_and_shape():
    rng = np.random.default_rng(0)
    frames = rng.normal(20, 3, (3, 40, 60)).astype(np.float32)
    frames[1, 0, :5] = -273.2  # dropped packet pixels travel as they are
    frames[2, 3, 3] = np.nan
    data = encode_frames(frames, [1000, None, 1333])
    assert len(data) == 3 * (HEADER.size + 40 * 60 * 4)
    got = decode_binary(data)
    assert [g.timestamp for g in got] == [1000, None, 1333]
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
    one = decode_json(json.dumps({"timestamp": 17, "frame": f.tolist()}))
    assert len(one) == 1 and one[0].timestamp == 17 and one[0].frame.shape == (4, 5)
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
    assert decode_message(encode_frame(f, 5))[0].timestamp == 5
    assert decode_message(json.dumps({"frame": f.tolist(), "timestamp": 6}).encode())[0].timestamp == 6
    assert decode_message(json.dumps({"frame": f.tolist(), "timestamp": 7}))[0].timestamp == 7


@pytest.mark.parametrize("good", ["S1", "room-2.bed_a", "x" * 64])
def test_good_sensor_ids(good):
    assert check_sensor_id(good) == good


@pytest.mark.parametrize("bad", ["", "../etc", "a/b", "x" * 65, "sp ace", "ü"])
def test_bad_sensor_ids_are_refused(bad):
    with pytest.raises(FrameFormatError, match="sensor id"):
        check_sensor_id(bad)
