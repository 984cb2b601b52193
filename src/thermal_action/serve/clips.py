"""The moment itself: a short clip of every alert, from ``clip_seconds_before`` its raise to
``clip_seconds_after`` it, with the people's tracked boxes, kept for ``keep_clip_days``.

Per sensor the hub keeps a :class:`FrameRing` of its recent frames (as the sensor sent them,
float16) and the boxes the worker tracked in each (they arrive a round later). The ring spans
the clip's "before" part plus the model's lag (an alert is raised when its keyframe is scored,
``lag`` seconds after the keyframe's frame arrived) plus a margin for queueing, at most
``1.5 x fps`` frames per second of that::

    frames   ...........|<------ before ------>R<------ after ------>|
    ring     [ oldest ............ newest processed ... queued ]
                                                 R: the alert's raise (its keyframe's time);
                                                 the raise arrives ~lag s after R's frame
    pending clip: the ring's frames from R - before, then every new frame until R + after
                  and its boxes arrived (or the stream ended, the worker died, the service
                  stopped, or ``after`` + 60 s of wall time passed): then it is saved

Memory: a 40x60 frame is 4.8 kB in float16; with the defaults (10 s before, 5 s lag, 5 s
margin, 6 fps) a sensor's ring holds 120 frames (0.6 MB), at most 180 (0.9 MB) for a sensor
that sends faster than ``fps``: about 150 MB for 256 sensors.

A saved clip is ``<data_dir>/clips/<alert_id>.npz`` (:class:`Clip`): ``frames`` (T, H, W)
float16 °C as sent (dropped packets not repaired: the clip shows what the sensor saw),
``timestamps`` (T,) ms, the boxes of every frame (``box_counts`` (T,), ``boxes_xyxy`` (M, 4),
``box_track_ids`` (M,)), the fallen person's ``track_id``, ``fired_index`` (the frame of the
raise), and the alert's ``peak_score``, ``started_ms``, ``fired_ms``. Drawn with the project's
colour map (:mod:`thermal_action.visualize`), the fallen person's box red and labelled
"FALL 0.87" (its peak fall score).
"""

from __future__ import annotations

import base64
import io
import math
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: Seconds the ring keeps beyond the clip's "before" part and the model's lag (queueing).
RING_MARGIN_S = 5.0
#: A sensor may send up to this many times the configured fps before the ring drops by count.
RING_RATE_FACTOR = 1.5
#: Wall-clock seconds a pending clip waits past its "after" part for frames and boxes.
PENDING_GRACE_S = 60.0
#: Snapshots in an alert's strip.
STRIP_TILES = 6
CLIPS_DIR = "clips"


@dataclass
class ClipFrame:
    """One frame of a sensor's recent past.

    Attributes:
        timestamp: capture time, ms.
        frame: ``(H, W)`` float16 °C as the sensor sent it.
        tracked: ``(boxes_xyxy (N, 4) float32 pixels, track_ids (N,) int64)``, set in one
            assignment (another thread may read it) when the worker reports them; None until then.
    """

    timestamp: int
    frame: np.ndarray
    tracked: tuple[np.ndarray, np.ndarray] | None = None


class FrameRing:
    """A sensor's recent frames: those not yet processed by its worker, and those of the last
    ``seconds`` (by the sensor's clock) before the newest processed one; at most ``max_frames``.

    Measured from the newest *processed* frame, not the newest arrived: an alert comes from a
    processed frame, so a burst or a backlog in the worker's queue does not push the frames
    before the raise out of the ring (only ``max_frames``, the memory bound, can).

    Args:
        seconds: how far back from the newest processed frame to keep.
        max_frames: the most frames kept, whatever their timestamps.
    """

    def __init__(self, seconds: float, max_frames: int):
        self.span_ms = int(seconds * 1000)
        self.frames: deque[ClipFrame] = deque(maxlen=max(1, int(max_frames)))

    def add(self, timestamp: int, frame: np.ndarray) -> ClipFrame:
        item = ClipFrame(int(timestamp), np.asarray(frame, np.float16))
        self.frames.append(item)  # beyond max_frames the oldest goes
        return item

    def attach(self, timestamp: int, boxes_xyxy: np.ndarray, track_ids: np.ndarray) -> bool:
        """Gives the oldest frame of ``timestamp`` still without boxes its tracked boxes; False
        when the ring holds no such frame (dropped from the ring, or a new stream)."""
        found = False
        for item in self.frames:
            if item.timestamp == timestamp and item.tracked is None:
                item.tracked = (np.asarray(boxes_xyxy, np.float32).reshape(-1, 4),
                                np.asarray(track_ids, np.int64).reshape(-1))
                found = True
                break
            if item.timestamp > timestamp:
                break
        while self.frames and self.frames[0].timestamp < timestamp - self.span_ms:
            self.frames.popleft()
        return found

    def since(self, timestamp: int) -> list[ClipFrame]:
        """The frames at or after ``timestamp``, oldest first."""
        return [f for f in self.frames if f.timestamp >= timestamp]

    def clear(self) -> None:
        self.frames.clear()

    @property
    def nbytes(self) -> int:
        return sum(f.frame.nbytes for f in self.frames)


@dataclass
class PendingClip:
    """An alert's clip while its "after" part comes in (module docstring)."""

    alert_id: int
    sensor_id: str
    track_id: int
    started_ms: int
    fired_ms: int
    peak_score: float
    until_ms: int  # the last frame time it takes
    frames: list[ClipFrame] = field(default_factory=list)
    deadline: float = 0.0  # time.time() after which it is saved with what it has

    def add(self, item: ClipFrame) -> None:
        if item.timestamp <= self.until_ms and (not self.frames or item.timestamp >= self.frames[-1].timestamp):
            self.frames.append(item)

    def complete(self, newest_ms: int | None) -> bool:
        """Whether the sensor is past the clip's end and every frame of the clip has its boxes."""
        if newest_ms is None or newest_ms < self.until_ms:
            return False
        return all(f.tracked is not None for f in self.frames)

    def overdue(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) > self.deadline


@dataclass
class Clip:
    """A saved alert clip (module docstring): ``T`` frames, ``M`` boxes over all of them."""

    alert_id: int
    sensor_id: str
    track_id: int  # the fallen person
    peak_score: float
    started_ms: int
    fired_ms: int
    fired_index: int
    timestamps: np.ndarray  # (T,) int64 ms
    frames: np.ndarray  # (T, H, W) float16 °C
    box_counts: np.ndarray  # (T,) int64 boxes per frame
    boxes_xyxy: np.ndarray  # (M, 4) float32
    box_track_ids: np.ndarray  # (M,) int64

    @classmethod
    def from_pending(cls, p: PendingClip) -> "Clip":
        frames = p.frames
        tracked = [f.tracked for f in frames]  # read once: the worker's reports may still be arriving
        ts = np.asarray([f.timestamp for f in frames], np.int64)
        counts = np.asarray([0 if t is None else len(t[0]) for t in tracked], np.int64)
        boxes = [t[0] for t in tracked if t is not None and len(t[0])]
        ids = [t[1] for t in tracked if t is not None and len(t[0])]
        fired = int(np.searchsorted(ts, p.fired_ms)) if len(ts) else 0
        return cls(p.alert_id, p.sensor_id, p.track_id, p.peak_score, p.started_ms, p.fired_ms,
                   min(fired, max(len(ts) - 1, 0)), ts,
                   np.stack([f.frame for f in frames]).astype(np.float16) if frames else np.zeros((0, 0, 0), np.float16),
                   counts, np.concatenate(boxes).astype(np.float32) if boxes else np.zeros((0, 4), np.float32),
                   np.concatenate(ids).astype(np.int64) if ids else np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.timestamps)

    def boxes(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Frame ``i``'s ``(boxes_xyxy (N, 4), track_ids (N,))``."""
        start = int(self.box_counts[:i].sum())
        end = start + int(self.box_counts[i])
        return self.boxes_xyxy[start:end], self.box_track_ids[start:end]

    @property
    def fps(self) -> float:
        """Frames per second by the clip's own timestamps (0 for fewer than two frames)."""
        span = (int(self.timestamps[-1]) - int(self.timestamps[0])) / 1000 if len(self) > 1 else 0.0
        return (len(self) - 1) / span if span > 0 else 0.0

    def save(self, path: Path) -> None:
        """Writes the ``.npz`` (atomically: a reader never sees half a file)."""
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez_compressed(
            tmp, alert_id=self.alert_id, sensor_id=self.sensor_id, track_id=self.track_id,
            peak_score=self.peak_score, started_ms=self.started_ms, fired_ms=self.fired_ms,
            fired_index=self.fired_index, timestamps=self.timestamps, frames=self.frames,
            box_counts=self.box_counts, boxes_xyxy=self.boxes_xyxy, box_track_ids=self.box_track_ids)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> "Clip":
        with np.load(path, allow_pickle=False) as z:
            return cls(int(z["alert_id"]), str(z["sensor_id"]), int(z["track_id"]), float(z["peak_score"]),
                       int(z["started_ms"]), int(z["fired_ms"]), int(z["fired_index"]), z["timestamps"],
                       z["frames"], z["box_counts"], z["boxes_xyxy"], z["box_track_ids"])


def clip_path(data_dir: str | Path, alert_id: int) -> Path:
    return Path(data_dir) / CLIPS_DIR / f"{int(alert_id)}.npz"


def ring_for(before_s: float, lag_s: float, fps: float) -> FrameRing:
    """The ring a sensor needs for clips of ``before_s`` seconds before a raise (module docstring)."""
    seconds = before_s + lag_s + RING_MARGIN_S
    return FrameRing(seconds, math.ceil(seconds * fps * RING_RATE_FACTOR))


# -- drawing


def _render(clip: Clip, i: int, scale: int, vmin: float, vmax: float) -> np.ndarray:
    from thermal_action.visualize import render_frame

    boxes, ids = clip.boxes(i)
    fallen = [int(t) == clip.track_id for t in ids]
    texts = [f"FALL {clip.peak_score:.2f}" if f else f"#{int(t)}" for t, f in zip(ids, fallen)]
    return render_frame(clip.frames[i].astype(np.float32), boxes, texts=texts, track_ids=[int(t) for t in ids],
                        highlight=fallen, scale=scale, vmin=vmin, vmax=vmax)


def _colour_range(clip: Clip) -> tuple[float, float]:
    from thermal_action.visualize import auto_range

    return auto_range(clip.frames.astype(np.float32))  # one range for the clip: frames do not flicker


def _png(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def render_clip(clip: Clip, scale: int = 6) -> dict:
    """The clip for the dashboard: ``{alert_id, sensor_id, track_id, width, height, fps, timestamps,
    fired_index, peak_score, frames}``, ``frames`` base64 PNGs of ``width`` x ``height`` pixels
    (the frame upscaled by ``scale``)."""
    vmin, vmax = _colour_range(clip)
    frames = [base64.b64encode(_png(_render(clip, i, scale, vmin, vmax))).decode() for i in range(len(clip))]
    h, w = clip.frames.shape[1:] if len(clip) else (0, 0)
    return {"alert_id": clip.alert_id, "sensor_id": clip.sensor_id, "track_id": clip.track_id,
            "width": int(w) * scale, "height": int(h) * scale, "fps": round(clip.fps, 3),
            "timestamps": [int(t) for t in clip.timestamps], "fired_index": clip.fired_index,
            "peak_score": clip.peak_score, "frames": frames}


def strip_indices(clip: Clip, tiles: int = STRIP_TILES) -> list[int]:
    """Frames for the strip: ``tiles`` evenly spaced times from 3 s before the fall began (the
    person's first high fall score) to 3 s after the raise, within the clip; the nearest frame each."""
    if not len(clip):
        return []
    lo = max(int(clip.timestamps[0]), min(clip.started_ms, clip.fired_ms) - 3000)
    hi = min(int(clip.timestamps[-1]), clip.fired_ms + 3000)
    hi = max(hi, lo)
    times = np.linspace(lo, hi, tiles)
    return [int(np.argmin(np.abs(clip.timestamps - t))) for t in times]


def render_strip(clip: Clip, scale: int = 4) -> bytes:
    """A PNG of :data:`STRIP_TILES` snapshots around the moment (:func:`strip_indices`), each
    titled with its time relative to the raise."""
    from thermal_action.visualize import SheetItem, contact_sheet

    vmin, vmax = _colour_range(clip)
    items = []
    for i in strip_indices(clip):
        boxes, ids = clip.boxes(i)
        fallen = [int(t) == clip.track_id for t in ids]
        items.append(SheetItem(
            clip.frames[i].astype(np.float32), boxes,
            texts=[f"FALL {clip.peak_score:.2f}" if f else f"#{int(t)}" for t, f in zip(ids, fallen)],
            title=f"{(int(clip.timestamps[i]) - clip.fired_ms) / 1000:+.1f} s", track_ids=[int(t) for t in ids],
            highlight=fallen))
    return _png(contact_sheet(items, cols=len(items), scale=scale, vmin=vmin, vmax=vmax))
