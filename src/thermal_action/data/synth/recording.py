"""One whole recording: room, people, frames, keyframes, dropped packets and dense ground truth."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from thermal_action.data.packets import PACKET_PX, pack_frame
from thermal_action.data.rooms import RoomLayout
from thermal_action.data.synth.config import H, W, SynthConfig
from thermal_action.data.synth.people import _plan_person, _PersonPlan, _Reservations
from thermal_action.data.synth.postures import (
    _FORCED_CYCLE,
    _FORCED_PER_RECORDING,
    _PI,
    TRANS_BED,
    TRANS_NORMAL,
    TRANS_RISK,
)
from thermal_action.data.synth.render import _render_blobs, _tight_boxes
from thermal_action.data.synth.room import _make_room
from thermal_action.data.synth.sensor import (
    _PACKET_LOSS_WEIGHTS,
    DROPPED_BLOCK,
    DROPPED_VALUE,
    _quantize,
    bursty_timestamps,
)


@dataclass
class SynthPerson:
    """Dense ground truth of one person track.

    Attributes:
        object_id: track id (the ``object_id`` of the annotations).
        labels: ``(N,)`` class id in every frame.
        boxes_xyxy: ``(N, 4)`` tight boxes in every frame (pixels).
        centers: ``(N, 2)`` body reference point (x, y) in pixels.
        annotated_boxes_xyxy: ``(K, 4)`` the boxes written for the keyframes (with the
            annotator's margin, jitter and carried-forward boxes).
    """

    object_id: int
    labels: np.ndarray
    boxes_xyxy: np.ndarray
    centers: np.ndarray
    annotated_boxes_xyxy: np.ndarray


@dataclass
class SynthThing:
    """A static object or piece of furniture (``bbox`` is YOLO-normalized)."""

    object_id: int
    category: str
    subcategory: str
    box_xyxy: np.ndarray
    heat_residual: list[str]  # per keyframe, "yes" / "no"


@dataclass
class SynthRecording:
    """One simulated recording with its ground truth.

    Attributes:
        sensor_id, mac_address: identity of the file.
        frames: ``(N, H, W)`` float32 °C as written (quantized, with dropped packets).
        timestamps: ``(N,)`` int64 ms.
        keyframes: ``(K,)`` annotated frame indices, increasing.
        people: dense ground truth per person.
        things: objects and furniture.
        dropped_frames: ``(D,)`` frame indices with dropped packets.
        dropped_blocks: ``(D,)`` k, the number of 576-pixel blocks lost in each.
        lost_packets: per dropped frame, the indices of the lost packets (raster
            order); with ``pack_dropped_packets=False`` the frame's data stays in place
            and these are the packets the no-data tail overlaps.
        dropped_clean_frames: ``(D, H, W)`` the dropped frames as they were before the
            loss (the ground truth a repair should get back to).
        layout: the furniture of this recording as zones (source ``"annotations"``).
        furniture_labelled: whether its annotator boxed the furniture and objects (the
            annotations' ``context_objects``); when not, its layout comes from ``rooms.json``.
        layout_changes: how the room's furniture changed since its first recording.
    """

    sensor_id: str
    mac_address: str
    frames: np.ndarray
    timestamps: np.ndarray
    keyframes: np.ndarray
    people: list[SynthPerson]
    things: list[SynthThing]
    dropped_frames: np.ndarray
    dropped_blocks: np.ndarray
    room: int = 0
    split: str = "train"
    notes: dict = field(default_factory=dict)
    lost_packets: list[tuple[int, ...]] = field(default_factory=list)
    dropped_clean_frames: np.ndarray = field(default_factory=lambda: np.zeros((0, H, W), np.float32))
    layout: RoomLayout = field(default_factory=RoomLayout)
    furniture_labelled: bool = True
    layout_changes: list[str] = field(default_factory=list)


def _choose_keyframes(rng: np.random.Generator, labels: np.ndarray, spacing: tuple[int, int],
                      attend: float) -> np.ndarray:
    """Regular keyframes plus, often, one inside a transition that lies between two of them.

    ``labels`` is ``(P, N)``.
    """
    n = labels.shape[1]
    trans = np.isin(labels, (TRANS_NORMAL, TRANS_RISK, TRANS_BED)).any(axis=0)
    # Middle frame of every transition run (of any person).
    events = []
    t = 0
    while t < n:
        if trans[t]:
            e = t
            while e < n and trans[e]:
                e += 1
            events.append((t + e - 1) // 2)
            t = e
        else:
            t += 1
    events_arr = np.array(events, dtype=np.int64)
    keys = [int(rng.integers(0, spacing[1] + 1))]
    while True:
        last = keys[-1]
        nxt = last + int(rng.integers(spacing[0], spacing[1] + 1))
        inside = events_arr[(events_arr > last + 1) & (events_arr < nxt)]
        if len(inside) and rng.random() < attend:
            nxt = int(inside[0])
        if nxt >= n:
            break
        keys.append(nxt)
    return np.array([k for k in keys if k < n], dtype=np.int64)


def _room_of(index: int, config: SynthConfig) -> tuple[int, int]:
    return index // config.recordings_per_room, index % config.recordings_per_room


def simulate_recording(config: SynthConfig, index: int) -> SynthRecording:
    """Simulates recording ``index`` of a dataset (the same as :func:`generate_dataset` writes).

    Returns:
        The recording with frames, timestamps, keyframes and dense ground truth.
    """
    config.validate()
    n = config.frames_per_recording
    room_idx, take = _room_of(index, config)
    room = _make_room(config.seed, room_idx, config.noise_std, take)
    rng = np.random.default_rng([config.seed, 11, index])
    sensor_id = f"SYN{room_idx:02d}_R{take + 1}"

    num_people = int(rng.integers(config.min_people, config.max_people + 1))
    forced = [_FORCED_CYCLE[(index * _FORCED_PER_RECORDING + j) % len(_FORCED_CYCLE)]
              for j in range(_FORCED_PER_RECORDING)]
    per_person: list[list[str]] = [[] for _ in range(num_people)]
    for j, act in enumerate(forced):
        per_person[0 if j < 2 else min(1, num_people - 1)].append(act)
    reservations = _Reservations()
    plans: list[_PersonPlan] = []
    for p in range(num_people):
        plans.append(_plan_person(rng, room, n, per_person[p], reservations, plans))

    # Frames: static room + people + residual heat + drift + noise.
    frames = np.repeat(room.background[None], n, axis=0)  # (N, H, W)
    frames += rng.normal(0, 0.15, size=(H, W))[None]  # fixed-pattern noise
    drift = np.cumsum(rng.normal(0, 0.02, size=n))
    frames += (drift - drift.mean())[:, None, None]
    for plan in plans:
        frames += _render_blobs(plan.xs, plan.ys, plan.thetas, plan.shapes, plan.arms, np.full(n, plan.amp))
        for r in plan.residuals:
            steps = np.arange(n) - r.t0
            live = steps >= 0
            if not live.any():
                continue
            k = int(np.argmax(live))
            amps = np.where(live, r.amp * np.exp(-np.maximum(steps, 0) / r.tau), 0.0)[k:]
            shape = r.shape.copy()
            shape[_PI["a1"]] = shape[_PI["a2"]] = shape[_PI["a3"]] = 0.0  # the torso's imprint only
            m = n - k
            frames[k:] += _render_blobs(np.full(m, r.x), np.full(m, r.y), np.full(m, r.theta),
                                        np.repeat(shape[None], m, 0), np.zeros(m), amps)
    frames += rng.normal(0, room.noise_std, size=frames.shape)
    # Valid real readings run from ~4 to 45 °C (a kettle touching the top).
    frames = _quantize(np.clip(frames, 4.0, 45.0))

    labels = np.stack([p.labels for p in plans])  # (P, N)
    keyframes = _choose_keyframes(rng, labels, config.keyframe_spacing, config.transition_keyframe_prob)

    # Dropped packets, never on a keyframe.
    rate = rng.uniform(0.02, config.max_dropped_fraction)
    cand = np.setdiff1d(np.arange(n), keyframes)
    hit = cand[rng.random(len(cand)) < rate]
    hit = hit[: int(config.max_dropped_fraction * n)]
    blocks = rng.choice([1, 2, 3, 4], size=len(hit), p=[0.7, 0.12, 0.08, 0.10])
    clean = frames[hit].copy()
    flat = frames.reshape(n, -1)
    # Which packets: a stream of its own, so that the flag changes nothing else in the file.
    packet_rng = np.random.default_rng([config.seed, 17, index])
    lost_packets = []
    for f, k in zip(hit, blocks):
        k = int(k)
        if config.pack_dropped_packets:
            lost = tuple(sorted(int(i) for i in packet_rng.choice(4, size=k, replace=False, p=_PACKET_LOSS_WEIGHTS)))
            frames[f] = pack_frame(frames[f], lost)
        else:
            first = (H * W - DROPPED_BLOCK * k) // PACKET_PX
            lost = tuple(range(first, -(-H * W // PACKET_PX)))
            flat[f, H * W - DROPPED_BLOCK * k:] = DROPPED_VALUE
        lost_packets.append(lost)

    start = config.start_timestamp_ms + index * 3_600_000 + int(rng.integers(0, 600_000))
    timestamps = bursty_timestamps(rng, n, start)

    people = []
    for pid, plan in enumerate(plans):
        tight = _tight_boxes(plan.xs, plan.ys, plan.thetas, plan.shapes, plan.arms)
        ann = np.empty((len(keyframes), 4))
        for j, kf in enumerate(keyframes):
            prev_kf = keyframes[j - 1] if j else None
            if (prev_kf is not None and plan.labels[prev_kf] == plan.labels[kf]
                    and rng.random() < config.box_carry_prob):
                ann[j] = ann[j - 1]  # the annotator copied the previous box
                continue
            b = tight[kf] + np.array([-1, -1, 1, 1]) * rng.uniform(0, 1.0, 4) + rng.uniform(-0.3, 0.3, 4)
            b[[0, 2]] = np.clip(b[[0, 2]], 0, W)
            b[[1, 3]] = np.clip(b[[1, 3]], 0, H)
            ann[j] = b
        people.append(SynthPerson(pid, plan.labels, tight, np.stack([plan.xs, plan.ys], 1), ann))

    things = []
    all_res = [r for p in plans for r in p.residuals]
    for i, th in enumerate(room.things):
        box = np.array([th.x1, th.y1, th.x2, th.y2])
        heat = []
        for kf in keyframes:
            warm = any(res.t0 <= kf and res.amp * math.exp(-(kf - res.t0) / res.tau) > 0.5
                       and th.x1 <= res.x <= th.x2 and th.y1 <= res.y <= th.y2 for res in all_res)
            heat.append("yes" if warm else "no")
        things.append(SynthThing(num_people + i, th.category, th.subcategory, box, heat))

    # The first recording of a room always has its furniture boxed; a later one, with
    # probability unlabelled_furniture_share * recordings_per_room / (recordings_per_room - 1),
    # only its people (so that the share is right overall): its layout is rooms.json's.
    later = config.recordings_per_room - 1
    p_skip = min(1.0, config.unlabelled_furniture_share * config.recordings_per_room / later) if later else 0.0
    labelled = take == 0 or np.random.default_rng([config.seed, 19, index]).random() >= p_skip
    return SynthRecording(
        sensor_id=sensor_id, mac_address=room.mac_address, frames=frames, timestamps=timestamps,
        keyframes=keyframes, people=people, things=things, dropped_frames=hit.astype(np.int64),
        dropped_blocks=blocks.astype(np.int64), room=room_idx,
        split="val" if index >= config.num_recordings - config.val_recordings else "train",
        lost_packets=lost_packets, dropped_clean_frames=clean, layout=room.layout(),
        furniture_labelled=bool(labelled), layout_changes=list(room.changes),
    )
