"""A fall-free day of one resident: hours of frames for the fall-alert benchmark.

A false alert costs a carer a trip; what raises them is a person lying, kneeling or bending
where a model has learned to see a fall. :func:`generate_day` writes one long recording of
one resident in a furnished room (a bed, a couch, chairs) who never falls::

    bed_hour (22.5 ± 0.5)                wake_hour (7 ± 0.5)
      |  asleep in bed: turns over every 20-90 min,      |  out of bed, then until bed_hour:
      |  now and then out of the room (bathroom) and back |  sitting on the couch or a chair for
      v                                                   v  long spells, naps on the couch or bed,
    ------------------------------------------------------   sitting on the bed's edge, walking,
                                                             kneeling, bending, crouching beside
                                                             furniture (picking things up), leaning,
                                                             out of the room for a while

The clock starts at ``start_hour`` (21:00 by default: an evening, the night, the next
day). Labels are the 14 classes of the synthetic dataset (never 3 or 7: no fall); frames
where the resident is out of the room have :data:`OUT_OF_VIEW`.

Output, in a dataset folder like :func:`~thermal_action.data.synth.write.generate_dataset`'s:
``frames/<sensor_id>.h5`` (written in chunks of ``chunk_frames``: one hour is 21,600 frames,
~207 MB of float32, and memory stays at a few chunks), ``frames/sensor_info.json``,
``annotations/day.json`` (a keyframe every ``keyframe_seconds`` with the resident's box and
the furniture as ``context_objects``), ``annotations/class_mapping.json`` and ``rooms.json``.

Speed: long holds (sleep, sitting) are drawn at once, bodies are rendered in a window around
them per chunk, frames out of view are not rendered; the time goes to the noise and to
gzip. The same config gives the same files whatever ``chunk_frames``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from thermal_action.data.packets import pack_frame
from thermal_action.data.rooms import LayoutTimeline, RoomMap, write_rooms
from thermal_action.data.synth.config import H, W
from thermal_action.data.synth.people import _bedside, _beside, _PersonPlan, _random_floor_point, _varied
from thermal_action.data.synth.postures import (
    _ASPECT_Y,
    _LOWER,
    _PI,
    _POSTURES,
    _SIZE_FIELDS,
    LEANING,
    LYING_BED,
    LYING_RISK,
    OTHER,
    SITTING,
    STANDING,
    TRANS_BED,
    TRANS_NORMAL,
    TRANS_RISK,
)
from thermal_action.data.synth.render import _render_blobs, _tight_boxes
from thermal_action.data.synth.room import _make_room, _Rect, _Room
from thermal_action.data.synth.sensor import _PACKET_LOSS_WEIGHTS, _quantize, bursty_timestamps
from thermal_action.data.synth.timeline import _Residual, _Timeline
from thermal_action.data.synth.write import _iso, _norm_box, _write_json, class_mapping, create_h5
from thermal_action.structures import DEFAULT_CLASS_NAMES

log = logging.getLogger(__name__)

#: Label of the frames where the resident is out of the room (no box).
OUT_OF_VIEW = -1
#: Frames per second the day is planned at (the sensor's ~6 Hz).
FPS = 6.0
#: Day activities and their weights (naps weigh three times more after lunch, 13-16 h).
_DAY_WEIGHTS = {
    "pick_up": 0.28, "walk": 0.22, "stand": 0.1, "couch": 0.07, "chair": 0.07, "bed_edge": 0.05, "lean": 0.05,
    "other": 0.05, "out": 0.04, "couch_nap": 0.02, "floor_sit": 0.02, "bed_rest": 0.01,
}


@dataclass
class DayConfig:
    """What :func:`generate_day` writes."""

    hours: float = 24.0  # length of the recording (h); one hour is 21,600 frames
    start_hour: float = 21.0  # clock time of the first frame (h, 0-24; UTC on the timestamps)
    bed_hour: float = 22.5  # the resident goes to bed around then (± 0.5 h)
    wake_hour: float = 7.0  # ... and gets up around then (± 0.5 h)
    seed: int = 0  # everything is a function of the seed
    keyframe_seconds: float = 10.0  # one annotated keyframe every this many seconds
    chunk_frames: int = 1024  # frames rendered and written at once (memory: ~0.15 MB per frame of a chunk)
    noise_std: float = 0.3  # °C, temporal noise of the sensor
    dropped_fraction: float = 0.05  # share of frames (never a keyframe) that lost packets
    sensor_id: str = "DAY00"  # the recording's sensor id (file name)
    date_ms: int = 1_760_054_400_000  # midnight (UTC, ms since the epoch) of the day the clock starts on

    @property
    def frames(self) -> int:
        return int(round(self.hours * 3600 * FPS))

    def validate(self) -> None:
        if not self.hours > 0 or self.frames < 2:
            raise ValueError(f"hours must give at least 2 frames, got {self.hours}")
        for name in ("start_hour", "bed_hour", "wake_hour"):
            if not 0 <= getattr(self, name) < 24:
                raise ValueError(f"{name} must be in [0, 24), got {getattr(self, name)}")
        if self.keyframe_seconds <= 0:
            raise ValueError(f"keyframe_seconds must be positive, got {self.keyframe_seconds}")
        if self.chunk_frames < 1:
            raise ValueError(f"chunk_frames must be >= 1, got {self.chunk_frames}")
        if not 0 <= self.dropped_fraction < 1:
            raise ValueError(f"dropped_fraction must be in [0, 1), got {self.dropped_fraction}")


@dataclass
class DayPlan:
    """The resident's day, frame by frame (before rendering).

    Attributes:
        room: the room (background, furniture, sensor).
        person: per-frame pose and label (``labels`` has :data:`OUT_OF_VIEW` out of the room).
        door: ``(x, y)`` where the resident leaves the frame.
    """

    room: _Room
    person: _PersonPlan
    door: tuple[float, float]

    @property
    def labels(self) -> np.ndarray:
        return self.person.labels


def _day_room(seed: int, noise_std: float) -> _Room:
    """A flat's living room: the first of the seed's candidate rooms with a bed, a couch and a chair."""
    for k in range(1000):
        room = _make_room(seed, 10_000 + k, noise_std)
        subs = {r.subcategory for r in room.furniture}
        if {"bed", "couch", "chair"} <= subs:
            return room
    raise RuntimeError(f"no room with a bed, a couch and a chair for seed {seed}")  # pragma: no cover


def _door(rng: np.random.Generator, room: _Room) -> tuple[float, float, float, float]:
    """A point just inside a wall, clear of the furniture, and the point outside it."""
    for _ in range(200):
        side = int(rng.integers(4))
        if side < 2:
            y = float(rng.uniform(8, H - 8))
            x_in, x_out = (3.0, -9.0) if side == 0 else (W - 3.0, W + 9.0)
            inside, outside = (x_in, y), (x_out, y)
        else:
            x = float(rng.uniform(8, W - 8))
            y_in, y_out = (3.0, -9.0) if side == 2 else (H - 3.0, H + 9.0)
            inside, outside = (x, y_in), (x, y_out)
        if not any(r.x1 - 4 < inside[0] < r.x2 + 4 and r.y1 - 4 < inside[1] < r.y2 + 4 for r in room.things):
            return (*inside, *outside)
    return 3.0, H / 2, -9.0, H / 2


def plan_day(config: DayConfig) -> DayPlan:
    """Plans the resident's day (module docstring); no frame is rendered."""
    config.validate()
    n = config.frames
    room = _day_room(config.seed, config.noise_std)
    rng = np.random.default_rng([config.seed, 21])
    door_in_x, door_in_y, door_out_x, door_out_y = _door(rng, room)
    amp, size = float(rng.uniform(6.0, 8.0)), float(rng.uniform(0.9, 1.1))
    things = room.things
    bed = next(r for r in things if r.subcategory == "bed")
    couch = next(r for r in things if r.subcategory == "couch")
    chairs = [r for r in things if r.subcategory == "chair"]
    blockers = room.furniture
    residuals: list[_Residual] = []

    def minutes(lo: float, hi: float) -> int:
        return int(rng.uniform(lo, hi) * 60 * FPS)

    def seconds(lo: float, hi: float) -> int:
        return max(1, int(rng.uniform(lo, hi) * FPS))

    def clock(t: int) -> float:
        return (config.start_hour + t / FPS / 3600) % 24

    # The night of the clock's first day and of every later one: (bed time, wake time) in
    # frames, with a fresh ± 0.5 h each night.
    nights = []
    for day in range(-1, int(config.hours // 24) + 2):
        bed_at = (day * 24 + config.bed_hour + rng.uniform(-0.5, 0.5) - config.start_hour) * 3600 * FPS
        wake_at = ((day + 1) * 24 + config.wake_hour + rng.uniform(-0.5, 0.5) - config.start_hour) * 3600 * FPS
        if config.wake_hour > config.bed_hour:  # a night owl going to bed after midnight
            wake_at -= 24 * 3600 * FPS
        nights.append((int(bed_at), int(wake_at)))

    def night_at(t: int) -> tuple[int, int] | None:
        return next(((b, w) for b, w in nights if b <= t < w), None)

    def until_night(t: int) -> int:
        return min((b - t for b, _ in nights if b > t), default=n)

    asleep = night_at(0) is not None
    if asleep:
        tl = _Timeline(n, rng, bed.cx, bed.cy, 0.0 if bed.w >= bed.h else np.pi / 2, _POSTURES["lying"])
    else:
        x, y = _random_floor_point(rng, room)
        tl = _Timeline(n, rng, x, y, float(rng.uniform(0, 2 * np.pi)), _POSTURES["standing"])

    def leave_residual(frac: float) -> None:
        residuals.append(_Residual(tl.t, tl.x, tl.y, tl.theta, tl.shape.copy(), frac * amp,
                                   float(rng.uniform(30, 80))))

    def walk(x: float, y: float) -> None:
        tl.walk_to(x, y, float(rng.uniform(0.55, 1.1)))

    def lie_down(r: _Rect) -> tuple[float, float]:
        sx, sy, _, _ = _bedside(rng, r)
        walk(sx, sy)
        theta = (0.0 if r.w >= r.h else np.pi / 2) + (np.pi if rng.random() < 0.5 else 0.0) + rng.normal(0, 0.08)
        tl.morph(int(rng.integers(8, 19)), _POSTURES["lying"], TRANS_BED, dx=r.cx + rng.uniform(-1, 1) - tl.x,
                 dy=r.cy + rng.uniform(-1, 1) - tl.y, theta=theta)
        return sx, sy

    def get_up(to: tuple[float, float]) -> None:
        leave_residual(0.35)
        tl.morph(int(rng.integers(8, 19)), _POSTURES["standing"], TRANS_BED, dx=to[0] - tl.x, dy=to[1] - tl.y)

    def rest(frames: int) -> None:
        """Lying (asleep), turning over every 20-90 min."""
        end = tl.t + frames
        while tl.t < end and not tl.full:
            tl.hold(min(minutes(20, 90), end - tl.t), LYING_BED, sway=0.02)
            if tl.t < end:
                tl.morph(int(rng.integers(10, 17)), _POSTURES["lying"], LYING_BED,
                         theta=tl.theta + np.pi + rng.normal(0, 0.1))

    def away(frames: int) -> None:
        """Out through the door, away for ``frames``, back in."""
        walk(door_in_x, door_in_y)
        walk(door_out_x, door_out_y)
        tl.x, tl.y = -40.0, -40.0  # far out of view: not rendered
        tl.hold(frames, OUT_OF_VIEW, sway=0.0)
        tl.x, tl.y = door_out_x, door_out_y
        walk(door_in_x, door_in_y)

    def sit(r: _Rect, frames: int, on_edge: bool = False) -> None:
        theta = float(rng.uniform(0, 2 * np.pi))
        sx, sy = r.cx + rng.uniform(-0.2, 0.2) * r.w, r.cy + rng.uniform(-0.2, 0.2) * r.h
        if on_edge:
            bx, by, ddx, ddy = _bedside(rng, r)
            theta = float(np.arctan2(-ddy, -ddx) + rng.normal(0, 0.2))
            sx = r.x1 + 2.0 if ddx > 0 else r.x2 - 2.0 if ddx < 0 else bx
            sy = r.y1 + 2.0 * _ASPECT_Y if ddy > 0 else r.y2 - 2.0 * _ASPECT_Y if ddy < 0 else by
            walk(bx, by)
        else:
            walk(sx - 3.0 * np.cos(theta), sy - 3.0 * np.sin(theta))
        tl.morph(int(rng.integers(6, 13)), _POSTURES["sitting"], TRANS_NORMAL, dx=sx - tl.x, dy=sy - tl.y,
                 theta=theta)
        tl.hold(frames, SITTING, sway=0.04)
        leave_residual(0.3)
        tl.morph(int(rng.integers(6, 13)), _POSTURES["standing"], TRANS_NORMAL, dx=4.0 * np.cos(theta),
                 dy=4.0 * np.sin(theta))

    def lower(kind: str, frames: int, beside: _Rect | None) -> None:
        name, label = _LOWER[kind]
        theta = float(rng.uniform(0, 2 * np.pi))
        if beside is not None:
            spot = _beside(rng, beside, blockers)
            if spot is not None:
                walk(spot[0], spot[1])
                theta = spot[2] + float(rng.normal(0, 0.2))
        tl.morph(int(rng.integers(6, 13)), _varied(rng, name), TRANS_NORMAL, theta=theta)
        tl.hold(frames, label, sway=0.05)
        tl.morph(int(rng.integers(6, 13)), _POSTURES["standing"], TRANS_NORMAL)

    acts = list(_DAY_WEIGHTS)
    while not tl.full:
        t = tl.t
        night = night_at(t)
        if night is not None:
            if asleep:  # in bed already (the clock started at night)
                bedside = _bedside(rng, bed)[:2]
            else:
                bedside = lie_down(bed)
                asleep = True
            left = night[1] - tl.t
            trip = rng.random() < 0.6 and left > 4 * 3600 * FPS  # to the bathroom, once in most nights
            if trip:
                first = int(left * rng.uniform(0.3, 0.7))
                rest(first)
                get_up(bedside)
                away(minutes(3, 10))
                bedside = lie_down(bed)
                left = night[1] - tl.t
            rest(left)
            if not tl.full:
                get_up(bedside)
            asleep = False
            continue
        cap = until_night(t) - int(60 * FPS)  # long activities end before bed time, with room to get there
        weights = np.array([_DAY_WEIGHTS[a] * (3.0 if a.endswith("nap") and 13 <= clock(t) < 16 else 1.0)
                            for a in acts])
        act = acts[int(rng.choice(len(acts), p=weights / weights.sum()))]

        if act == "couch":
            sit(couch, max(1, min(minutes(10, 60), cap)))
        elif act == "chair":
            sit(chairs[int(rng.integers(len(chairs)))], max(1, min(minutes(5, 30), cap)))
        elif act == "bed_edge":
            sit(bed, max(1, min(minutes(1, 5), cap)), on_edge=True)
        elif act in ("couch_nap", "bed_rest"):
            r = couch if act == "couch_nap" else bed
            side = lie_down(r)
            rest(max(1, min(minutes(15, 60), cap)))
            get_up(side)
        elif act == "walk":
            for _ in range(int(rng.integers(1, 5))):
                walk(*_random_floor_point(rng, room, (tl.x, tl.y)))
        elif act == "stand":
            tl.hold(seconds(10, 90), STANDING)
        elif act == "pick_up":
            kind = str(rng.choice(["kneel", "bend", "crouch"]))
            lower(kind, seconds(5, 40), blockers[int(rng.integers(len(blockers)))] if rng.random() < 0.7 else None)
        elif act == "floor_sit":
            lower("lower_other", seconds(20, 120), None)
        elif act == "lean":
            walk(*_random_floor_point(rng, room, (tl.x, tl.y)))
            tl.morph(int(rng.integers(2, 5)), _POSTURES["leaning"], LEANING)
            tl.hold(seconds(10, 60), LEANING, sway=0.05)
            tl.morph(int(rng.integers(2, 4)), _POSTURES["standing"], STANDING)
        elif act == "other":
            tl.morph(int(rng.integers(3, 6)), _varied(rng, "other"), OTHER)
            tl.hold(seconds(5, 20), OTHER, sway=0.1, arm_wave=float(rng.uniform(0.1, 0.3)))
            tl.morph(int(rng.integers(3, 6)), _POSTURES["standing"], OTHER)
        elif act == "out":
            away(max(1, min(minutes(5, 60), cap)))
        if tl.t == t:
            tl.hold(1, STANDING)
    xs, ys, thetas, shapes, labels, arms = tl.arrays()
    shapes[:, _SIZE_FIELDS] *= size
    for r in residuals:
        r.shape = r.shape.copy()
        r.shape[_SIZE_FIELDS] *= size
    assert not np.isin(labels, (LYING_RISK, TRANS_RISK)).any(), "a fall-free day has no fall"
    return DayPlan(room, _PersonPlan(xs, ys, thetas, shapes, labels, arms, amp, residuals),
                   (door_in_x, door_in_y))


def _drift(rng: np.random.Generator, n: int, start_hour: float) -> np.ndarray:
    """``(n,)`` °C: the room's day (±0.8 °C, warmest at 15 h) plus a slow mean-reverting wander."""
    hours = start_hour + np.arange(n) / FPS / 3600
    steps = rng.normal(0, 0.01, size=n).tolist()
    wander = np.empty(n)
    w = 0.0
    for i, e in enumerate(steps):  # AR(1), time constant ~1000 frames (3 min), std ~0.2 °C
        w = 0.999 * w + e
        wander[i] = w
    return 0.8 * np.cos((hours - 15.0) / 24.0 * 2 * np.pi) + wander


def _render_chunk(plan: DayPlan, background: np.ndarray, drift: np.ndarray, t0: int, t1: int,
                  noise: np.random.Generator, noise_std: float) -> np.ndarray:
    """Frames ``[t0, t1)`` as the sensor reports them (°C, quantized), before packet loss."""
    p = plan.person
    frames = background[None] + drift[t0:t1, None, None]  # (T, H, W)
    seen = np.flatnonzero(p.labels[t0:t1] != OUT_OF_VIEW)
    if len(seen):
        i = seen + t0
        frames[seen] += _render_blobs(p.xs[i], p.ys[i], p.thetas[i], p.shapes[i], p.arms[i],
                                      np.full(len(i), p.amp))
    for r in p.residuals:
        end = r.t0 + int(6 * r.tau)  # below 0.3 % of its start
        a, b = max(t0, r.t0), min(t1, end)
        if a >= b:
            continue
        amps = r.amp * np.exp(-(np.arange(a, b) - r.t0) / r.tau)
        shape = r.shape.copy()
        shape[_PI["a1"]] = shape[_PI["a2"]] = shape[_PI["a3"]] = 0.0  # the torso's imprint only
        m = b - a
        frames[a - t0:b - t0] += _render_blobs(np.full(m, r.x), np.full(m, r.y), np.full(m, r.theta),
                                               np.repeat(shape[None], m, 0), np.zeros(m), amps)
    frames += noise.normal(0, noise_std, size=frames.shape)
    return _quantize(np.clip(frames, 4.0, 45.0))


def generate_day(out_dir: str | Path, config: DayConfig | None = None) -> dict:
    """Writes a fall-free day of one resident (module docstring).

    Args:
        out_dir: dataset folder (created): ``frames/``, ``annotations/day.json``, ``rooms.json``.
        config: what to write; default :class:`DayConfig()` (24 h).

    Returns:
        A JSON-serialisable summary: frames, hours, seconds per class, keyframes, the time it
        took and how much faster than real time that was.
    """
    config = config or DayConfig()
    config.validate()
    started = time.perf_counter()
    out = Path(out_dir)
    for sub in ("frames", "annotations"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    plan = plan_day(config)
    room, person, n = plan.room, plan.person, config.frames
    rng = np.random.default_rng([config.seed, 22])
    timestamps = bursty_timestamps(rng, n, config.date_ms + int(config.start_hour * 3_600_000))
    drift = _drift(rng, n, config.start_hour)
    background = room.background + rng.normal(0, 0.15, size=(H, W))  # fixed-pattern noise
    step = max(1, int(round(config.keyframe_seconds * FPS)))
    keyframes = np.arange(int(rng.integers(0, step)), n, step)
    candidates = np.setdiff1d(np.arange(n), keyframes)
    dropped = np.sort(candidates[rng.random(len(candidates)) < config.dropped_fraction])
    lost_k = rng.choice([1, 2, 3, 4], size=len(dropped), p=[0.7, 0.12, 0.08, 0.10])
    packet_rng = np.random.default_rng([config.seed, 24])
    noise = np.random.default_rng([config.seed, 23])

    path = out / "frames" / f"{config.sensor_id}.h5"
    created = int(timestamps[-1]) + 86_400_000
    with create_h5(path, config.sensor_id, room.mac_address, timestamps, created) as f:
        for t0 in range(0, n, config.chunk_frames):
            t1 = min(n, t0 + config.chunk_frames)
            frames = _render_chunk(plan, background, drift, t0, t1, noise, room.noise_std)
            a, b = np.searchsorted(dropped, [t0, t1])
            for t, k in zip(dropped[a:b], lost_k[a:b]):
                lost = tuple(sorted(int(i) for i in packet_rng.choice(4, size=int(k), replace=False,
                                                                         p=_PACKET_LOSS_WEIGHTS)))
                frames[t - t0] = pack_frame(frames[t - t0], lost)
            f["frames"][t0:t1] = frames

    # Annotations: the resident's box at every keyframe where they are in view, and the furniture.
    tight = _tight_boxes(person.xs[keyframes], person.ys[keyframes], person.thetas[keyframes],
                         person.shapes[keyframes], person.arms[keyframes])
    margin = rng.uniform(0, 1.0, size=(len(keyframes), 4)) * np.array([-1, -1, 1, 1])
    boxes = tight + margin
    boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, W)
    boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, H)
    images, anns, context = [], [], []
    for j, kf in enumerate(keyframes):
        ts = int(timestamps[kf])
        image_id = f"{config.sensor_id}_{ts}"
        images.append({"id": image_id, "sensor_id": config.sensor_id, "mac_address": room.mac_address,
                       "timestamp": ts, "width": W, "height": H, "frame_idx": int(kf)})
        label, (x1, y1, x2, y2) = int(person.labels[kf]), tight[j]
        if label != OUT_OF_VIEW and x2 - x1 >= 2 and y2 - y1 >= 2:
            anns.append({"id": len(anns), "image_id": image_id, "bbox": _norm_box(boxes[j]), "category_id": label,
                         "category_name": DEFAULT_CLASS_NAMES[label], "object_id": 0, "attribute_obscured": "0%"})
        context += [{"image_id": image_id, "bbox": _norm_box(np.array([r.x1, r.y1, r.x2, r.y2])),
                     "category": r.category, "subcategory": r.subcategory, "object_id": i + 1,
                     "attribute_obscured": "0%", "attribute_heat_residual": "no"} for i, r in enumerate(room.things)]
    categories = [{"id": i, "name": c} for i, c in enumerate(DEFAULT_CLASS_NAMES)]
    day = {"images": images, "annotations": anns, "categories": categories,
           "info": {"description": f"Synthetic fall-free day ({config.hours:g} h from {config.start_hour:g} h), "
                                   f"seed {config.seed}", "version": "1.0", "year": 2025},
           "context_objects": context}
    _write_json(out / "annotations" / "day.json", day, None)
    _write_json(out / "annotations" / "class_mapping.json", class_mapping(), 2)
    _write_json(out / "frames" / "sensor_info.json", {config.sensor_id: {
        "hdf5_path": f"{out.name}/frames/{path.name}", "mac_address": room.mac_address, "total_frames": n,
        "corrupted_frames": 0, "annotation_count": len(images), "min_timestamp": int(timestamps[0]),
        "max_timestamp": int(timestamps[-1])}}, 2)
    write_rooms(RoomMap({room.mac_address: LayoutTimeline([room.layout("rooms file", int(timestamps[0]))])}),
                out / "rooms.json")

    seconds = time.perf_counter() - started
    counts = np.bincount(person.labels[person.labels >= 0], minlength=len(DEFAULT_CLASS_NAMES))
    recorded_s = (int(timestamps[-1]) - int(timestamps[0])) / 1000
    summary = {
        "out_dir": str(out), "sensor_id": config.sensor_id, "mac_address": room.mac_address,
        "frames": n, "hours": config.hours, "start": _iso(int(timestamps[0])), "end": _iso(int(timestamps[-1])),
        "keyframes": len(images), "boxes": len(anns), "dropped_frames": int(len(dropped)),
        "furniture": [r.subcategory for r in room.furniture],
        "class_seconds": {c: round(float(k) / FPS, 1) for c, k in zip(DEFAULT_CLASS_NAMES, counts)},
        "out_of_view_seconds": round(float(np.sum(person.labels == OUT_OF_VIEW)) / FPS, 1),
        "falls": 0, "seconds": round(seconds, 2), "faster_than_real_time": round(recorded_s / max(seconds, 1e-9), 1),
    }
    log.info("wrote a %g h fall-free day (%d frames) to %s in %.1f s", config.hours, n, out, seconds)
    return summary


__all__ = ["FPS", "OUT_OF_VIEW", "DayConfig", "DayPlan", "generate_day", "plan_day"]
