"""What sensors send to ``thermal-action serve``: one frame format for WebSocket, HTTP and MQTT.

Binary (the compact form, what ``thermal-action replay`` sends): one or more records back to
back, each little-endian::

    bytes 0-3    b"TAF1"                 magic
    bytes 4-11   int64   timestamp       capture time, ms since epoch (-1: arrival time)
    bytes 12-13  uint16  height
    bytes 14-15  uint16  width
    bytes 16-    float32 height*width    temperatures, row-major, °C or K

JSON (for gateways that cannot pack bytes): one frame ``{"timestamp": 1700000000000,
"frame": [[...], ...]}`` (``timestamp`` may be left out or null: arrival time; optional
``"boxes": [[x1, y1, x2, y2], ...]`` in pixels when the gateway detects people itself), or
several as ``{"frames": [<frame>, ...]}``.

A sensor id is 1-64 characters of letters, digits, ``.``, ``_`` and ``-``; it names the
sensor in the URL (``/ws/sensors/{id}``, ``/api/sensors/{id}/frames``) or the MQTT topic.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

MAGIC = b"TAF1"
HEADER = struct.Struct("<4sqHH")
#: Timestamp value meaning "use the arrival time".
NO_TIMESTAMP = -1
SENSOR_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
#: Frames per message at most (a burst larger than this is refused as a whole).
MAX_FRAMES_PER_MESSAGE = 10_000
#: Height and width at most (a thermopile array; a larger header is a corrupt message).
MAX_SIDE = 1024


class FrameFormatError(ValueError):
    """A message that is not a frame (or frames) in one of the two formats; the text says why."""


@dataclass
class FrameIn:
    """One received frame.

    Attributes:
        frame: ``(H, W)`` float32 temperatures, as sent (dropped packets not yet repaired).
        timestamp: capture time in ms since epoch, or None (the service uses the arrival time).
        boxes: ``(N, 4)`` pixel boxes ``x1, y1, x2, y2`` the sender detected, or None
            (the service's built-in detector finds the people).
    """

    frame: np.ndarray
    timestamp: int | None = None
    boxes: np.ndarray | None = None


def check_sensor_id(sensor_id: str) -> str:
    """Returns ``sensor_id`` if it is a valid id, else raises :class:`FrameFormatError`."""
    if not isinstance(sensor_id, str) or not SENSOR_ID.match(sensor_id):
        raise FrameFormatError(
            f"sensor id {sensor_id!r} is not 1-64 characters of letters, digits, '.', '_' or '-'")
    return sensor_id


def encode_frame(frame: np.ndarray, timestamp: int | None = None) -> bytes:
    """One binary record for ``frame`` (``(H, W)``, any float dtype) at ``timestamp`` (ms)."""
    a = np.ascontiguousarray(frame, dtype="<f4")
    if a.ndim != 2:
        raise FrameFormatError(f"a frame must be (H, W), got shape {a.shape}")
    h, w = a.shape
    ts = NO_TIMESTAMP if timestamp is None else int(timestamp)
    return HEADER.pack(MAGIC, ts, h, w) + a.tobytes()


def encode_frames(frames: Any, timestamps: Any = None) -> bytes:
    """Several records back to back (``frames``: ``(T, H, W)`` or a list of ``(H, W)``)."""
    stamps = [None] * len(frames) if timestamps is None else list(timestamps)
    return b"".join(encode_frame(f, t) for f, t in zip(frames, stamps))


def decode_binary(data: bytes) -> list[FrameIn]:
    """The frames of a binary message (module docstring)."""
    out: list[FrameIn] = []
    pos, n = 0, len(data)
    if n == 0:
        raise FrameFormatError("empty message")
    while pos < n:
        if n - pos < HEADER.size:
            raise FrameFormatError(f"record {len(out)}: {n - pos} bytes left, a header needs {HEADER.size}")
        magic, ts, h, w = HEADER.unpack_from(data, pos)
        if magic != MAGIC:
            raise FrameFormatError(f"record {len(out)}: starts with {magic!r}, not {MAGIC!r}")
        if not (0 < h <= MAX_SIDE and 0 < w <= MAX_SIDE):
            raise FrameFormatError(f"record {len(out)}: frame size {h}x{w} is not a sensor's")
        size = h * w * 4
        start = pos + HEADER.size
        if n - start < size:
            raise FrameFormatError(
                f"record {len(out)}: header says {h}x{w} float32 ({size} bytes), {n - start} bytes follow")
        frame = np.frombuffer(data, dtype="<f4", count=h * w, offset=start).reshape(h, w).astype(np.float32)
        out.append(FrameIn(frame, None if ts == NO_TIMESTAMP else int(ts)))
        pos = start + size
        if len(out) > MAX_FRAMES_PER_MESSAGE:
            raise FrameFormatError(f"more than {MAX_FRAMES_PER_MESSAGE} frames in one message")
    return out


def _frame_from_json(obj: Any, i: int) -> FrameIn:
    if not isinstance(obj, dict) or "frame" not in obj:
        raise FrameFormatError(f"frame {i}: expected an object with a 'frame' key")
    try:
        frame = np.asarray(obj["frame"], dtype=np.float32)
    except (TypeError, ValueError):
        raise FrameFormatError(f"frame {i}: 'frame' is not a rectangular array of numbers (rows of equal length)") from None
    if frame.ndim != 2 or frame.size == 0:
        raise FrameFormatError(f"frame {i}: 'frame' must be rows of numbers (H, W), got shape {frame.shape}")
    ts = obj.get("timestamp")
    if ts is not None and (isinstance(ts, bool) or not isinstance(ts, (int, float))):
        raise FrameFormatError(f"frame {i}: 'timestamp' must be ms since epoch, got {ts!r}")
    boxes = obj.get("boxes")
    if boxes is not None:
        try:
            boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        except (TypeError, ValueError):
            raise FrameFormatError(f"frame {i}: 'boxes' must be a list of [x1, y1, x2, y2]") from None
        if not np.isfinite(boxes).all() or (boxes[:, 2:] <= boxes[:, :2]).any():
            raise FrameFormatError(f"frame {i}: every box needs finite x1 < x2 and y1 < y2")
    return FrameIn(frame, None if ts is None or ts == NO_TIMESTAMP else int(ts), boxes)


def decode_json(data: str | bytes | Any) -> list[FrameIn]:
    """The frames of a JSON message (text, bytes, or already parsed)."""
    if isinstance(data, (str, bytes, bytearray)):
        try:
            data = json.loads(data)
        except (ValueError, UnicodeDecodeError) as e:
            raise FrameFormatError(f"not valid JSON: {e}") from None
    if isinstance(data, dict) and "frames" in data:
        frames = data["frames"]
        if not isinstance(frames, list) or not frames:
            raise FrameFormatError("'frames' must be a non-empty list")
        if len(frames) > MAX_FRAMES_PER_MESSAGE:
            raise FrameFormatError(f"more than {MAX_FRAMES_PER_MESSAGE} frames in one message")
        return [_frame_from_json(f, i) for i, f in enumerate(frames)]
    return [_frame_from_json(data, 0)]


def decode_message(data: bytes | str) -> list[FrameIn]:
    """Binary records (they start with the magic) or JSON, whichever ``data`` is."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        data = bytes(data)
        if data[:4] == MAGIC:
            return decode_binary(data)
        return decode_json(data)
    return decode_json(data)
