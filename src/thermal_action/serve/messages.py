"""What the hub and its worker processes say to each other: named, picklable types.

A frame's way from a sensor to the model, and the types it takes::

    WebSocket / HTTP / MQTT message (bytes or JSON text)
      -> protocol.FrameIn          decoded and checked at the edge (boxes clipped)
      -> QueuedFrame               accepted by the hub: its capture time decided
      -> Frames                    one message's frames for one sensor, in a worker's inbox
      -> streaming.StreamFrame     inside the worker, with its arrival time (_Arrived)
    and back:
      <- Round                     what one round of a worker produced: ScoredPerson per
                                   person and keyframe, FrameError, LiveFrame, FrameTracks

The hub also keeps each accepted frame in the sensor's ring (:class:`~thermal_action.serve.clips.ClipFrame`)
for the clips of alerts.

Inbox of a worker (in the order the hub queued them): :class:`Frames`, :class:`EndStream`,
:class:`SetLayout`, :class:`Stop`. Outbox: :class:`Ready`, :class:`Failed`, :class:`Round`.
All are frozen but :class:`Round`, which a worker fills during its round and then sends.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np

from thermal_action.data.rooms import RoomLayout
from thermal_action.inference.alerts import AlertEvent

# -- inbox -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueuedFrame:
    """One frame the hub accepted for a sensor.

    Attributes:
        timestamp: capture time, ms since epoch (the arrival time when the sensor sent none).
        frame: ``(H, W)`` float32 temperatures as sent (dropped packets not yet repaired).
        boxes_xyxy: ``(N, 4)`` float32 pixel boxes the gateway detected, or None (the
            worker's person detector finds them).
    """

    timestamp: int
    frame: np.ndarray
    boxes_xyxy: np.ndarray | None = None


@dataclass(frozen=True)
class Frames:
    """Inbox: one ingest message's accepted frames of one sensor, in order.

    Attributes:
        sensor_id: the sensor.
        arrival_s: when the hub queued them (``time.time()``).
        frames: the frames.
    """

    sensor_id: str
    arrival_s: float
    frames: tuple[QueuedFrame, ...]


@dataclass(frozen=True)
class EndStream:
    """Inbox: the sensor's stream ended (silence, a new clock, or it moved to another worker):
    score what is pending, close its alerts, forget its window."""

    sensor_id: str


@dataclass(frozen=True)
class SetLayout:
    """Inbox: ``sensor_id``'s room layout from now on (``NO_LAYOUT``: none); frames queued
    before it keep the old one."""

    sensor_id: str
    layout: RoomLayout


@dataclass(frozen=True)
class Stop:
    """Inbox: finish the round and exit."""


InboxMessage = Union[Frames, EndStream, SetLayout, Stop]

# -- outbox ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ready:
    """Outbox: the worker loaded its model."""

    pid: int


@dataclass(frozen=True)
class Failed:
    """Outbox: the worker could not load its model (it then exits; the pool stops restarting it)."""

    reason: str


@dataclass(frozen=True)
class ScoredPerson:
    """One person's class scores at one keyframe.

    Attributes:
        sensor_id: the sensor.
        frame_idx: the keyframe's index in the sensor's stream on its worker.
        timestamp: the keyframe's capture time, ms since epoch.
        track_id: the tracker's id of the person.
        box_xyxy: ``(x1, y1, x2, y2)`` pixels.
        scores: ``(K,)`` float32 class probabilities.
        arrival_s: when the frame that completed the keyframe's window arrived (``time.time()``).
        bed_share: share of the box on a bed or couch zone, as in
            :class:`~thermal_action.inference.outputs.Prediction` (None: no layout).
        room_source: where the room the model saw came from ("annotations", "file", "api", "none").
    """

    sensor_id: str
    frame_idx: int
    timestamp: int
    track_id: int
    box_xyxy: tuple[float, float, float, float]
    scores: np.ndarray
    arrival_s: float
    bed_share: float | None = None
    room_source: str = "none"


@dataclass(frozen=True)
class FrameError:
    """Frames of one sensor the worker refused in a round, of one kind.

    Attributes:
        sensor_id: the sensor.
        kind: ``"invalid_frame"`` (no valid pixel to start from) or ``"bad_frame"``.
        message: the reason, as the stream gave it.
        count: how many frames.
    """

    sensor_id: str
    kind: str
    message: str
    count: int


@dataclass(frozen=True)
class LiveFrame:
    """A sensor's newest processed frame, for the dashboards.

    Attributes:
        frame: ``(H, W)`` float32 °C, repaired.
        timestamp: its capture time, ms since epoch.
        boxes_xyxy: ``(N, 4)`` float32 pixels of the tracked people.
        track_ids: ``(N,)`` int64.
        repaired_pixels: dropped-packet pixels repaired in the sensor's stream so far.
    """

    frame: np.ndarray
    timestamp: int
    boxes_xyxy: np.ndarray
    track_ids: np.ndarray
    repaired_pixels: int


@dataclass(frozen=True)
class FrameTracks:
    """The tracked boxes of one sensor's frames of a round, packed (one pickle per sensor, not
    per frame): frame ``i`` has ``counts[i]`` boxes, in order.

    Attributes:
        timestamps: ``(F,)`` int64 ms, the frames' capture times, in order.
        counts: ``(F,)`` int64 boxes per frame.
        boxes_xyxy: ``(M, 4)`` float32 pixels, M = counts.sum().
        track_ids: ``(M,)`` int64.
    """

    timestamps: np.ndarray
    counts: np.ndarray
    boxes_xyxy: np.ndarray
    track_ids: np.ndarray

    @classmethod
    def pack(cls, frames: list[tuple[int, Any]]) -> "FrameTracks":
        """From ``(timestamp, FrameBoxes)`` pairs (what the stream's ``recent_boxes`` gives)."""
        boxes = [np.asarray(b.boxes_xyxy, np.float32).reshape(-1, 4) for _, b in frames]
        ids = [np.asarray(b.track_ids, np.int64).reshape(-1) for _, b in frames]
        return cls(np.asarray([t for t, _ in frames], np.int64), np.asarray([len(b) for b in boxes], np.int64),
                   np.concatenate(boxes) if boxes else np.zeros((0, 4), np.float32),
                   np.concatenate(ids) if ids else np.zeros(0, np.int64))

    def __iter__(self) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """``(timestamp, boxes_xyxy (N, 4), track_ids (N,))`` per frame."""
        start = 0
        for ts, n in zip(self.timestamps, self.counts):
            yield int(ts), self.boxes_xyxy[start:start + n], self.track_ids[start:start + n]
            start += int(n)


@dataclass
class Round:
    """Outbox: the results of one worker round (filled by the worker during the round).

    Attributes:
        frames_done: frames taken from the inbox (accepted or refused).
        predictions: one per person and scored keyframe.
        alerts: the alert events of the round ("raised", "ended"), unchanged and in the order
            the monitor emitted them (a raise and the end of the same alert may both be here).
        errors: refused frames, per sensor and kind.
        live: sensor -> its newest frame, for sensors that sent any (at most every
            ``live_interval_s``; a frame held back by that limit follows when the worker is
            next idle).
        repaired: sensor -> dropped-packet pixels repaired in its stream so far (sensors that
            sent frames this round).
        tracks: sensor -> the tracked boxes of each of its frames the round took (clips of
            alerts, and how far behind the service is), in order.
        model_s: seconds in the model this round; forward_passes: batched passes.
    """

    frames_done: int = 0
    predictions: list[ScoredPerson] = field(default_factory=list)
    alerts: list[AlertEvent] = field(default_factory=list)
    errors: list[FrameError] = field(default_factory=list)
    live: dict[str, LiveFrame] = field(default_factory=dict)
    repaired: dict[str, int] = field(default_factory=dict)
    tracks: dict[str, FrameTracks] = field(default_factory=dict)
    model_s: float = 0.0
    forward_passes: int = 0


OutboxMessage = Union[Ready, Failed, Round]
