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

A sensor id is 1-64 characters of letters, digits, ``.``, ``_`` and ``-`` that starts with a
letter or digit (so never ``.`` or ``..``); it names the sensor in the URL (``/ws/sensors/{id}``,
``/api/sensors/{id}/frames``) or the MQTT topic.

What the edge refuses or repairs, before anything reaches a worker (:class:`FrameFormatError`
says why; its ``status`` is the HTTP answer):

- a timestamp that is not a whole number of ms between 2000-01-01 and a day from now (-1 in
  binary, null or absent in JSON: the arrival time): the message is refused (422);
- JSON with ``NaN`` / ``Infinity`` (not JSON, though Python writes it) or nested deeper than
  :data:`MAX_JSON_DEPTH`, or that does not parse: refused (400);
- more frames in one message than ``max_frames_per_message``, or more boxes on one frame than
  ``max_boxes_per_frame`` (:class:`IngestLimits`): refused (413);
- a box with a coordinate that is not finite, or with ``x2 <= x1`` or ``y2 <= y1``: refused (422);
- a box partly outside the frame: clipped to it (``FrameIn.repaired_boxes``); a box with nothing
  left inside the frame: dropped (``FrameIn.refused_boxes``), the frame is kept.
"""

from __future__ import annotations

import json
import re
import struct
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from thermal_action.errors import FrameFormatError

MAGIC = b"TAF1"
HEADER = struct.Struct("<4sqHH")
#: Timestamp value meaning "use the arrival time".
NO_TIMESTAMP = -1
SENSOR_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
#: Height and width at most (a thermopile array; a larger header is a corrupt message).
MAX_SIDE = 1024
#: Capture times before 2000-01-01 (ms since epoch) are a clock that was never set.
MIN_TIMESTAMP = 946_684_800_000
#: Capture times more than a day ahead of the service's clock are garbage, not clock drift.
MAX_AHEAD_MS = 86_400_000
#: Arrays and objects nested deeper than this: not a frame message (a batch of frames with boxes is 5).
MAX_JSON_DEPTH = 8
#: Bytes one ingest message may carry, a WebSocket message or an HTTP body alike (about 2,600
#: binary frames of 40x60; a JSON message of ``max_frames_per_message`` frames is well below).
MAX_MESSAGE_BYTES = 25 * 1024 * 1024
#: WebSocket close codes of ``/ws/sensors/{id}``: the token is wrong; the sensor id is not valid.
WS_UNAUTHORIZED = 4401
WS_BAD_SENSOR = 4400
#: The MQTT topic sensors publish frames to by default (``{sensor}``: the sensor id); the
#: service subscribes to it with ``+`` in its place.
MQTT_FRAMES_TOPIC = "thermal/{sensor}/frames"
_DROPPED = re.compile(r"(\d+) frame\(s\) dropped")


@dataclass(frozen=True)
class IngestLimits:
    """How much one message may carry (the service config's ``max_frames_per_message`` and
    ``max_boxes_per_frame``)."""

    max_frames: int = 256  # frames per message (about 42 s of a 6 Hz sensor)
    max_boxes: int = 32  # boxes per frame a gateway may send


@dataclass
class FrameIn:
    """One received frame.

    Attributes:
        frame: ``(H, W)`` float32 temperatures, as sent (dropped packets not yet repaired).
        timestamp: capture time in ms since epoch, or None (the service uses the arrival time).
        boxes: ``(N, 4)`` pixel boxes ``x1, y1, x2, y2`` the sender detected, inside the frame,
            or None (the service's built-in detector finds the people).
        repaired_boxes: boxes the sender put partly outside the frame, clipped to it.
        refused_boxes: boxes with nothing inside the frame, dropped.
    """

    frame: np.ndarray
    timestamp: int | None = None
    boxes: np.ndarray | None = None
    repaired_boxes: int = 0
    refused_boxes: int = 0


def _latest_timestamp() -> int:
    return int(time.time() * 1000) + MAX_AHEAD_MS


def dropped_error(sensor_id: str, n: int, why: str) -> str:
    """The error the service answers when it dropped ``n`` frames of a message (its queue was
    full): what :func:`dropped_in` reads back."""
    return f"sensor {sensor_id}: {n} frame(s) dropped, {why}"


def dropped_in(errors: list[str] | tuple[str, ...]) -> int:
    """Frames the service's error messages say it dropped."""
    return sum(int(m.group(1)) for e in errors for m in [_DROPPED.search(e)] if m)


def check_timestamp(ts: object, where: str, latest: int | None = None) -> int | None:
    """``ts`` as ms since epoch, or None for the arrival time (None or -1); raises
    :class:`FrameFormatError` naming ``where`` unless it is a whole number of ms from 2000-01-01
    to ``latest`` (default: a day from now)."""
    if ts is None or (not isinstance(ts, bool) and ts == NO_TIMESTAMP):
        return None
    latest = _latest_timestamp() if latest is None else latest
    ok = ((isinstance(ts, int) and not isinstance(ts, bool)) or (isinstance(ts, float) and ts.is_integer())) and (
        MIN_TIMESTAMP <= ts <= latest)
    if not ok:
        raise FrameFormatError(f"{where}: timestamp {ts!r} is not a whole number of ms since epoch between "
                               f"2000-01-01 and a day from now (-1 or null: the arrival time)")
    return int(ts)


def check_sensor_id(sensor_id: str) -> str:
    """Returns ``sensor_id`` if it is a valid id, else raises :class:`FrameFormatError`."""
    if not isinstance(sensor_id, str) or not SENSOR_ID.match(sensor_id):
        raise FrameFormatError(
            f"sensor id {sensor_id!r} is not 1-64 characters of letters, digits, '.', '_' or '-' "
            f"starting with a letter or digit")
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


def decode_binary(data: bytes, limits: IngestLimits = IngestLimits()) -> list[FrameIn]:
    """The frames of a binary message (module docstring)."""
    out: list[FrameIn] = []
    pos, n = 0, len(data)
    if n == 0:
        raise FrameFormatError("empty message")
    latest = _latest_timestamp()
    while pos < n:
        if len(out) == limits.max_frames:
            raise FrameFormatError(f"more than {limits.max_frames} frames in one message; at most "
                                   f"{limits.max_frames} frames per message (max_frames_per_message)", 413)
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
        stamp = check_timestamp(ts, f"record {len(out)}", latest)
        frame = np.frombuffer(data, dtype="<f4", count=h * w, offset=start).reshape(h, w).astype(np.float32)
        out.append(FrameIn(frame, stamp))
        pos = start + size
    return out


def _boxes_from_json(value: Any, i: int, shape: tuple[int, int], limits: IngestLimits) -> tuple[np.ndarray, int, int]:
    """``value`` as ``(N, 4)`` boxes inside a frame of ``shape``, and how many were clipped and dropped."""
    usage = f"frame {i}: 'boxes' must be a list of [x1, y1, x2, y2]"
    if not isinstance(value, list):
        raise FrameFormatError(usage)
    if len(value) > limits.max_boxes:
        raise FrameFormatError(f"frame {i}: {len(value)} boxes; at most {limits.max_boxes} boxes per frame "
                               f"(max_boxes_per_frame)", 413)
    try:
        boxes = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise FrameFormatError(usage) from None
    if boxes.size == 0:
        boxes = boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise FrameFormatError(usage)
    if not np.isfinite(boxes).all() or (boxes[:, 2:] <= boxes[:, :2]).any():
        raise FrameFormatError(f"frame {i}: every box needs finite x1 < x2 and y1 < y2")
    h, w = shape
    clipped = np.clip(boxes, 0.0, [w, h, w, h])
    inside = (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
    repaired = int(((clipped != boxes).any(axis=1) & inside).sum())
    return clipped[inside].astype(np.float32), repaired, int((~inside).sum())


def _frame_from_json(obj: Any, i: int, limits: IngestLimits, latest: int) -> FrameIn:
    if not isinstance(obj, dict) or "frame" not in obj:
        raise FrameFormatError(f"frame {i}: expected an object with a 'frame' key")
    try:
        frame = np.asarray(obj["frame"], dtype=np.float32)
    except (TypeError, ValueError):
        raise FrameFormatError(f"frame {i}: 'frame' is not a rectangular array of numbers (rows of equal length)") from None
    if frame.ndim != 2 or frame.size == 0:
        raise FrameFormatError(f"frame {i}: 'frame' must be rows of numbers (H, W), got shape {frame.shape}")
    out = FrameIn(frame, check_timestamp(obj.get("timestamp"), f"frame {i}", latest))
    if obj.get("boxes") is not None:
        out.boxes, out.repaired_boxes, out.refused_boxes = _boxes_from_json(obj["boxes"], i, frame.shape, limits)
    return out


def _refuse_constant(name: str) -> Any:
    raise FrameFormatError(f"not valid JSON: {name} is not a JSON number (send null, or leave the value out)", 400)


_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)  # unrolled: linear, no per-character alternation


def json_depth(data: bytes) -> int:
    """How deep arrays and objects nest in JSON text (brackets inside strings do not count),
    without parsing it: Python's parser recurses, so a deep document must never reach it."""
    if b'"' in data:
        data = _JSON_STRING.sub(b'""', data)
    b = np.frombuffer(data, dtype=np.uint8)
    opens = (b == ord("[")) | (b == ord("{"))
    brackets = np.flatnonzero(opens | (b == ord("]")) | (b == ord("}")))
    if brackets.size == 0:
        return 0
    return int(np.cumsum(np.where(opens[brackets], 1, -1)).max())


def parse_json(data: str | bytes) -> Any:
    """Strict JSON: no ``NaN`` / ``Infinity``, nested at most :data:`MAX_JSON_DEPTH` deep;
    anything else raises :class:`FrameFormatError` (status 400) saying why."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    if json_depth(raw) > MAX_JSON_DEPTH:
        raise FrameFormatError(f"not valid JSON here: arrays and objects nested deeper than {MAX_JSON_DEPTH}", 400)
    try:
        return json.loads(raw, parse_constant=_refuse_constant)
    except FrameFormatError:
        raise
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise FrameFormatError(f"not valid JSON: {e}", 400) from None


def decode_json(data: str | bytes | Any, limits: IngestLimits = IngestLimits()) -> list[FrameIn]:
    """The frames of a JSON message (text, bytes, or already parsed)."""
    if isinstance(data, (str, bytes, bytearray)):
        data = parse_json(data)
    latest = _latest_timestamp()
    if isinstance(data, dict) and "frames" in data:
        frames = data["frames"]
        if not isinstance(frames, list) or not frames:
            raise FrameFormatError("'frames' must be a non-empty list")
        if len(frames) > limits.max_frames:
            raise FrameFormatError(f"{len(frames)} frames in one message; at most {limits.max_frames} frames per "
                                   f"message (max_frames_per_message)", 413)
        return [_frame_from_json(f, i, limits, latest) for i, f in enumerate(frames)]
    return [_frame_from_json(data, 0, limits, latest)]


def decode_message(data: bytes | str, limits: IngestLimits = IngestLimits()) -> list[FrameIn]:
    """Binary records (they start with the magic) or JSON, whichever ``data`` is."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        data = bytes(data)
        if data[:4] == MAGIC:
            return decode_binary(data, limits)
    return decode_json(data, limits)
