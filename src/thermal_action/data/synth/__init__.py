"""A synthetic thermal action dataset, written in exactly the on-disk format of real recordings.

``generate_dataset(out_dir, SynthConfig(...))`` writes ``frames/<sensor>.h5``,
``frames/sensor_info.json``, ``annotations/{train,val,class_mapping}.json`` and the
labelling tool's ``raw_annotations/<sensor>_annotation.json`` (see DATA_FORMAT.md).
Everything is drawn from ``numpy.random.default_rng`` streams keyed by the seed, so
the same config gives byte-identical files.

The generative model
====================

Rooms. Recordings come in rooms (``recordings_per_room``, default 2; a room is one
sensor with one MAC address, its recordings are ``SYNrr_R1``, ``SYNrr_R2``...).
A room has a background level of 16.3-18.7 °C, a linear gradient (up to ~1.5 °C
across the frame), a few smooth ±0.6 °C bumps, in most rooms the warm ring of the
lens border (+1.5-2.5 °C outside a ~29 px circle, as in real frames) and sometimes
a cool patch (window, floor; -1.5 to -3 °C). Furniture are static soft rectangles:
a bed (~20 x 11 px, +0.8-1.6 °C) or a couch, 1-2 chairs (+1-2 °C), maybe a table
(slightly cool). Objects are small and warm: a water kettle (peak 38-45 °C) and
sometimes a laptop (+3-5 °C).

People. One to three people per recording, each a sum of up to four anisotropic
Gaussians in body coordinates (torso, head, legs, arms) scaled by the person's
excess temperature (6-8 °C, so the hottest pixel in a box is ~5-8 °C above the
background) and body size (0.9-1.1). Vertical extents are squeezed by 0.78 (a pixel
row covers more floor than a column: real standing boxes are ~11 x 8 px). Every
posture is a parameter vector (``_POSTURES``); median tight box, long x short side,
measured on the default dataset (annotated boxes add a 0-2 px margin):

=================  =====================================  ===========
posture            shape (overhead)                       tight box
=================  =====================================  ===========
standing/walking   compact round blob, hot head centre    9 x 7.6
leaning            standing, stretched and shifted        9 x 6.9
                   towards the wall it faces
sitting            torso plus cooler legs in front        10.7 x 8
lying (floor/bed)  torso, head, legs in a line            15-17 x 6-7
kneeling           torso plus lower legs across, behind   10.5 x 8
bending            elongated torso, hot head at one end   12 x 7.6
crouching          small, compact, hotter                 8.3 x 6.5
lower-other        sitting on the floor, legs out;        15.7 x 6.8
                   varied per instance (±20 %)
other              arms out / stretching, arms            12 x 8
                   oscillate; varied per instance (±25 %)
=================  =====================================  ===========

Actions. Each person follows a script planned by a small state machine: from
standing they walk somewhere (0.55-1.1 px/frame along a straight path, shoulders
across the direction of travel, a ±0.25 px lateral gait sway), stand (sway ~0.1
px), go to a chair or couch and sit, go to the bed and lie down, lean on a wall,
go down to a lower position and come back, do "other", or fall. Postures change
by morphing the parameter vector (smoothstep easing), labelled with the
transition class:

- normal transitions (class 6; sit down/up, to and from lower positions, getting
  up after a fall): 6-12 frames (1-2 s at ~6 Hz; 12-18 to get up after a fall);
- to and from the bed (class 8): 8-18 frames, the body moves onto the bed and
  turns along it;
- a fall (class 7): 3-6 frames (0.5-1 s) with accelerating easing, the body
  centre moves 3-4 px along a room axis onto free floor (never onto a bed, couch
  or table, away from the others), then lying on the floor (class 3), until the
  end of the recording in 80 % of falls;
- leaning and other: 2-5 frame morphs labelled with the posture itself.

Walking and standing have the same blob; only motion tells them apart. The last
frames of a transition look like its end posture; only the recent past tells them
apart. People planned later keep their walking targets, wall spots and falls
clear of the people planned before them (10-12 px), and one piece of furniture
holds one person at a time. When someone gets up from a chair, bed or the floor,
a heat residual of their torso stays and fades (time constant 30-80 frames), and
the furniture box gets ``attribute_heat_residual: "yes"`` while it is visible
(>0.5 °C). A per-recording list of "forced" activities (cycling over fall, bed,
lean, kneel, bend, crouch, lower-other, other, sit; three per recording; a forced
fall happens 30-70 % into the recording and shortens the holds before it) makes
every class appear in the default dataset's training split; the rest is drawn at
random, so class frequencies are imbalanced (walking ~23 %, standing ~15 %, lying
~13 % each, transitions to a fall ~0.5 % of boxes).

Sensor. Temporal noise ~N(0, 0.25-0.35 °C) per pixel, fixed-pattern noise 0.15 °C,
a slow global drift, values clipped to the real 4-45 °C and quantized like the real
sensor (1/8 °C steps shown with one decimal). The frame index is the time axis
(steady ~6 Hz scene), but the recorded timestamps are bursty receive times: runs of 3-6 steps of ~165 ms, a gap
of ~560 ms (330-1400 ms; 2 % of cycles 1.5-2.6 s), then 2-4 frames ~37 ms apart
(and sometimes one 60-130 ms step); ``frame_seqs == timestamps``. Dropped packets:
in 2-13 % of the frames (never a keyframe) k of the four 576-pixel packets are lost
(k = 1 with p 0.7, 2: 0.12, 3: 0.08, 4: 0.10) and, as real receivers do, the packets
that arrived are packed at the start of the frame and the last 576*k pixels in raster
order hold -273.2 °C (see :mod:`thermal_action.data.packets`). Which packets are lost is
drawn with the frequencies of the real sample (packet 0: 0.42, 1: 0.16, 2: 0.16, 3: 0.26;
the short last packet always arrives). ``pack_dropped_packets=False`` writes the older
model instead: the data in place and only the tail lost.

Annotations. Keyframes are 6-12 frames apart, and with probability 0.85 a
transition between two regular keyframes gets its own keyframe (annotators look at
events). Person boxes are the union of the blob's components at 2.4 sigma plus an
annotator margin of 0-1 px per side and ±0.3 px jitter; with probability 0.15 an
unchanged person's box is carried forward from the previous keyframe, as
annotators do. ``object_id`` is the person's track id; objects and furniture get
the ids after the people. Whole recordings are held out for val (the last
``val_recordings``, i.e. the last room with the defaults).

``simulate_recording`` returns the same recording in memory with dense per-frame
ground truth (labels, tight boxes, body centres) for tests and evaluation code.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import h5py
import numpy as np

from thermal_action.data.packets import DROPPED_VALUE_C, PACKET_PX, pack_frame
from thermal_action.structures import DEFAULT_CLASS_NAMES, FRAME_HEIGHT, FRAME_WIDTH

log = logging.getLogger(__name__)

H, W = FRAME_HEIGHT, FRAME_WIDTH
DROPPED_VALUE = DROPPED_VALUE_C  # °C written where a packet was lost (0 K)
DROPPED_BLOCK = PACKET_PX  # pixels per lost packet; as many are no-data at the end of the frame
# Chance that each of the four full packets is among the lost ones, measured on the real
# sample's frames that lost 1-3 packets (43 lost packets: 18, 7, 7, 11).
_PACKET_LOSS_WEIGHTS = np.array([18, 7, 7, 11], dtype=np.float64) / 43.0

# Class ids (DEFAULT_CLASS_NAMES order).
SITTING, STANDING, WALKING, LYING_RISK, LYING_BED, LEANING = 0, 1, 2, 3, 4, 5
TRANS_NORMAL, TRANS_RISK, TRANS_BED = 6, 7, 8
LOWER_OTHER, KNEELING, BENDING, CROUCHING, OTHER = 9, 10, 11, 12, 13


@dataclass
class SynthConfig:
    """What to generate. Defaults give 8 recordings x 400 frames (~2 s to write)."""

    num_recordings: int = 8  # sensor files
    frames_per_recording: int = 400  # frames per file (~68 s at ~6 Hz)
    seed: int = 0  # everything is a function of the seed
    val_recordings: int = 2  # the last recordings, held out whole for val.json
    recordings_per_room: int = 2  # recordings sharing one room (background, furniture, sensor MAC)
    min_people: int = 1  # people per recording, lower bound
    max_people: int = 3  # people per recording, upper bound
    keyframe_spacing: tuple[int, int] = (6, 12)  # frames between regular keyframes (inclusive range)
    transition_keyframe_prob: float = 0.85  # chance that a transition between keyframes gets a keyframe
    max_dropped_fraction: float = 0.13  # upper bound of the per-file fraction of frames with dropped packets
    pack_dropped_packets: bool = True  # random packets lost, the rest packed at the frame start; False: tail lost
    box_carry_prob: float = 0.15  # chance an unchanged person's box is copied from the previous keyframe
    data_time_jitter_ms: int = 0  # max |offset| of raw data_time from its frame (ms; kept under half the step)
    noise_std: float = 0.3  # °C, mean temporal noise of the sensor
    start_timestamp_ms: int = 1_760_000_000_000  # first recording's first timestamp (ms since epoch)

    def validate(self) -> None:
        if self.num_recordings < 1:
            raise ValueError(f"num_recordings must be >= 1, got {self.num_recordings}")
        if self.frames_per_recording < 2:
            raise ValueError(f"frames_per_recording must be >= 2, got {self.frames_per_recording}")
        if not 0 <= self.val_recordings < self.num_recordings:
            raise ValueError(
                f"val_recordings must be in [0, num_recordings - 1] = [0, {self.num_recordings - 1}], "
                f"got {self.val_recordings}"
            )
        if not 1 <= self.min_people <= self.max_people:
            raise ValueError(f"need 1 <= min_people <= max_people, got {self.min_people}, {self.max_people}")
        lo, hi = self.keyframe_spacing
        if not 1 <= lo <= hi:
            raise ValueError(f"keyframe_spacing must be 1 <= lo <= hi, got {self.keyframe_spacing}")
        if self.recordings_per_room < 1:
            raise ValueError(f"recordings_per_room must be >= 1, got {self.recordings_per_room}")


# --------------------------------------------------------------------------------------
# Postures: one parameter vector each, morphs interpolate vectors.
# Body coordinates: u along the body axis (angle theta in the image), v across it.
# Amplitudes are fractions of the person's excess temperature.

_P_FIELDS = (
    "u0", "su0", "sv0", "a0",  # torso: offset along u, sigmas, amplitude
    "u1", "s1", "a1",  # head: offset along u, isotropic sigma, amplitude
    "u2", "su2", "sv2", "a2",  # legs
    "su3", "sv3", "a3",  # arms, centred on the body
)
_PI = {name: i for i, name in enumerate(_P_FIELDS)}
_SIZE_FIELDS = [_PI[k] for k in ("u0", "su0", "sv0", "u1", "s1", "u2", "su2", "sv2", "su3", "sv3")]


def _posture(**kw: float) -> np.ndarray:
    base = dict(u0=0.0, su0=2.1, sv0=1.75, a0=0.85, u1=0.0, s1=0.9, a1=0.25,
                u2=0.0, su2=1.0, sv2=1.0, a2=0.0, su3=0.7, sv3=1.0, a3=0.0)
    unknown = set(kw) - set(base)
    if unknown:
        raise KeyError(f"unknown posture fields {unknown}")
    base.update(kw)
    return np.array([base[k] for k in _P_FIELDS], dtype=np.float64)


_POSTURES: dict[str, np.ndarray] = {
    "standing": _posture(),
    "leaning": _posture(u0=0.7, su0=2.35, u1=1.7),
    "sitting": _posture(u0=-0.7, su0=1.8, sv0=1.75, u1=-1.0, a1=0.2, u2=3.1, su2=1.8, sv2=1.45, a2=0.45),
    "lying": _posture(u0=-1.6, su0=2.7, sv0=1.5, a0=0.75, u1=-4.8, s1=0.95, a1=0.3,
                      u2=3.6, su2=2.7, sv2=1.15, a2=0.45),
    "kneeling": _posture(sv0=1.8, u2=-2.9, su2=1.3, sv2=2.15, a2=0.45),
    "bending": _posture(u0=1.45, su0=2.75, u1=4.1, a1=0.3, u2=-1.0, su2=1.2, sv2=1.2, a2=0.35),
    "crouching": _posture(su0=1.65, sv0=1.65, a0=0.95, a1=0.2, u2=0.6, su2=1.65, sv2=1.8, a2=0.3),
    "lower_other": _posture(u0=-1.2, su0=1.8, sv0=1.8, u1=-1.45, u2=4.3, su2=2.65, sv2=1.45, a2=0.45),
    "other": _posture(su3=0.7, sv3=3.8, a3=0.35),
}
# Postures drawn with per-instance variation (the "catch-all" classes).
_VARIED = {"lower_other": 0.2, "other": 0.25}

_LOWER = {"kneel": ("kneeling", KNEELING), "bend": ("bending", BENDING),
          "crouch": ("crouching", CROUCHING), "lower_other": ("lower_other", LOWER_OTHER)}

_RANDOM_WEIGHTS = {
    "stand": 0.3, "walk": 0.24, "sit": 0.10, "bed": 0.05, "lean": 0.06, "kneel": 0.04, "bend": 0.05,
    "crouch": 0.04, "lower_other": 0.02, "other": 0.02, "fall": 0.03,
}
# Forced activities cycle over the recordings so that every class shows up.
_FORCED_CYCLE = ("fall", "bed", "lean", "kneel", "bend", "crouch", "lower_other", "other", "sit")
_FORCED_PER_RECORDING = 3

_BOX_SIGMAS = 2.4  # box = union of component extents at this many sigmas
# A pixel row covers more floor than a pixel column (real boxes of round, standing
# people are ~11 x 8 px): body extents are squeezed vertically by this factor.
_ASPECT_Y = 0.78
_MARGIN = 6.0  # px, people's walking targets stay this far from the frame border


# --------------------------------------------------------------------------------------
# Rooms


@dataclass
class _Rect:
    """A static rectangle in frame pixels (x1, y1, x2, y2), with what it is."""

    x1: float
    y1: float
    x2: float
    y2: float
    category: str  # "furniture" or "object"
    subcategory: str  # "bed", "couch", "chair", "table", "water kettle", "laptop"
    excess: float  # °C above the background (negative: cooler)

    @property
    def cx(self) -> float:
        return (self.x1 + self.x2) / 2

    @property
    def cy(self) -> float:
        return (self.y1 + self.y2) / 2

    @property
    def w(self) -> float:
        return self.x2 - self.x1

    @property
    def h(self) -> float:
        return self.y2 - self.y1

    def overlaps(self, o: "_Rect", gap: float) -> bool:
        return not (self.x2 + gap <= o.x1 or o.x2 + gap <= self.x1 or self.y2 + gap <= o.y1 or o.y2 + gap <= self.y1)


@dataclass
class _Room:
    background: np.ndarray  # (H, W) °C, static part including furniture and objects
    things: list[_Rect]  # furniture first, then objects (annotation order)
    mac_address: str
    noise_std: float  # °C


def _grid() -> tuple[np.ndarray, np.ndarray]:
    # Pixel centres: pixel i covers [i, i + 1).
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float64)
    return xs + 0.5, ys + 0.5


def _soft_rect(r: _Rect, softness: float = 0.6) -> np.ndarray:
    xs, ys = _grid()

    def sig(z: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-z / softness))

    return sig(xs - r.x1) * sig(r.x2 - xs) * sig(ys - r.y1) * sig(r.y2 - ys)


def _place(rng: np.random.Generator, w: float, h: float, placed: list[_Rect], against_wall: bool,
           category: str, sub: str, excess: float) -> _Rect | None:
    for _ in range(200):
        if against_wall:
            side = rng.integers(4)
            off = rng.uniform(1.0, 3.0)
            if side == 0:
                x1, y1 = off, rng.uniform(1, H - h - 1)
            elif side == 1:
                x1, y1 = W - w - off, rng.uniform(1, H - h - 1)
            elif side == 2:
                x1, y1 = rng.uniform(1, W - w - 1), off
            else:
                x1, y1 = rng.uniform(1, W - w - 1), H - h - off
        else:
            x1, y1 = rng.uniform(2, W - w - 2), rng.uniform(2, H - h - 2)
        r = _Rect(float(x1), float(y1), float(x1 + w), float(y1 + h), category, sub, float(excess))
        if not any(r.overlaps(o, 2.0) for o in placed):
            return r
    return None


def _make_room(seed: int, room: int, noise_std: float) -> _Room:
    rng = np.random.default_rng([seed, 7, room])
    xs, ys = _grid()
    level = rng.uniform(16.3, 18.7)
    ang = rng.uniform(0, 2 * np.pi)
    slope = rng.uniform(0.0, 1.5) / W
    bg = level + slope * ((xs - W / 2) * np.cos(ang) + (ys - H / 2) * np.sin(ang))
    for _ in range(rng.integers(3, 6)):
        bx, by, s = rng.uniform(0, W), rng.uniform(0, H), rng.uniform(4, 10)
        bg += rng.uniform(-0.6, 0.6) * np.exp(-((xs - bx) ** 2 + (ys - by) ** 2) / (2 * s * s))
    if rng.random() < 0.7:  # warm lens border outside a circle, as in real frames
        radius = rng.uniform(27, 31)
        d = np.hypot(xs - W / 2, ys - H / 2)
        bg += rng.uniform(1.5, 2.5) / (1 + np.exp(-(d - radius) / 1.0))
    placed: list[_Rect] = []
    if rng.random() < 0.5:  # a cool patch: window, tiled floor
        pw, ph = rng.uniform(10, 22), rng.uniform(6, 12)
        px, py = rng.uniform(0, W - pw), rng.uniform(0, H - ph)
        bg += rng.uniform(-3.0, -1.5) * _soft_rect(_Rect(px, py, px + pw, py + ph, "", "", 0), 1.5)
    furniture: list[_Rect] = []
    if rng.random() < 0.7:
        long_, short = rng.uniform(19, 22), rng.uniform(10, 12)
        sub, exc = "bed", rng.uniform(0.8, 1.6)
    else:
        long_, short = rng.uniform(17, 19), rng.uniform(8, 9)
        sub, exc = "couch", rng.uniform(0.8, 1.5)
    w, h = (long_, short) if rng.random() < 0.6 else (short, long_)
    r = _place(rng, w, h, placed, True, "furniture", sub, exc)
    if r is not None:
        furniture.append(r)
        placed.append(r)
    for _ in range(rng.integers(1, 3)):
        s = rng.uniform(6, 7.5)
        r = _place(rng, s, s, placed, False, "furniture", "chair", rng.uniform(1.0, 2.0))
        if r is not None:
            furniture.append(r)
            placed.append(r)
    table = None
    if rng.random() < 0.6:
        table = _place(rng, rng.uniform(10, 14), rng.uniform(6, 8), placed, False, "furniture", "table",
                       rng.uniform(-0.6, -0.2))
        if table is not None:
            furniture.append(table)
            placed.append(table)
    objects: list[_Rect] = []
    kettle_peak = rng.uniform(38.0, 45.0)
    ks = rng.uniform(3.0, 4.0)
    if table is not None and rng.random() < 0.6:
        kx, ky = table.x1 + rng.uniform(0.5, table.w - ks - 0.5), table.y1 + rng.uniform(0.5, table.h - ks - 0.5)
        kettle = _Rect(kx, ky, kx + ks, ky + ks, "object", "water kettle", kettle_peak)
    else:
        kettle = _place(rng, ks, ks, placed, True, "object", "water kettle", kettle_peak)
    if kettle is not None:
        objects.append(kettle)
        placed.append(kettle)
    if rng.random() < 0.5:
        lw, lh = rng.uniform(4, 5.5), rng.uniform(3, 4)
        lap = _place(rng, lw, lh, [p for p in placed if p.subcategory != "table"], False, "object", "laptop",
                     rng.uniform(3.0, 5.0))
        if lap is not None:
            objects.append(lap)
            placed.append(lap)
    for r in furniture:
        bg += r.excess * _soft_rect(r)
    for r in objects:
        if r.subcategory == "water kettle":
            # A hot metal body: a sharp peak reaching the kettle temperature.
            s = r.w / 4
            blob = np.exp(-((xs - r.cx) ** 2 + (ys - r.cy) ** 2) / (2 * s * s))
            bg += (r.excess - level) * blob
        else:
            bg += r.excess * _soft_rect(r, 0.4)
    mac = "02:00:" + ":".join(f"{int(b):02x}" for b in rng.integers(0, 256, 4))
    std = noise_std * rng.uniform(0.85, 1.15)
    return _Room(background=bg, things=furniture + objects, mac_address=mac, noise_std=float(std))


# --------------------------------------------------------------------------------------
# People: a timeline of poses built by appending segments.


def _smoothstep(n: int) -> np.ndarray:
    s = np.arange(1, n + 1) / n
    return s * s * (3 - 2 * s)


def _ease_in(n: int) -> np.ndarray:
    s = np.arange(1, n + 1) / n
    return s * s


def _angle_diff(a: float, b: float) -> float:
    return (b - a + np.pi) % (2 * np.pi) - np.pi


@dataclass
class _Residual:
    """Heat left where someone sat or lay; fades exponentially."""

    t0: int
    x: float
    y: float
    theta: float
    shape: np.ndarray
    amp: float  # °C at t0
    tau: float  # frames


class _Timeline:
    """Per-frame pose of one person, built segment by segment up to ``n`` frames."""

    def __init__(self, n: int, rng: np.random.Generator, x: float, y: float, theta: float, shape: np.ndarray):
        self.n = n
        self.rng = rng
        self.x, self.y, self.theta, self.shape = x, y, theta, shape.copy()
        self.xs: list[float] = []
        self.ys: list[float] = []
        self.thetas: list[float] = []
        self.shapes: list[np.ndarray] = []
        self.labels: list[int] = []
        self.arms: list[float] = []  # extra arm amplitude (oscillation in "other")

    @property
    def t(self) -> int:
        return len(self.labels)

    @property
    def full(self) -> bool:
        return self.t >= self.n

    def _push(self, x: float, y: float, theta: float, shape: np.ndarray, label: int, arms: float = 0.0) -> None:
        if self.full:
            return
        self.xs.append(x)
        self.ys.append(y)
        self.thetas.append(theta)
        self.shapes.append(shape)
        self.labels.append(label)
        self.arms.append(arms)

    def hold(self, frames: int, label: int, sway: float = 0.06, arm_wave: float = 0.0) -> None:
        """Stays in the current posture; AR(1) sway of about ``sway / 0.6`` px."""
        ox = oy = 0.0
        phase = self.rng.uniform(0, 2 * np.pi)
        for i in range(frames):
            ox = 0.8 * ox + self.rng.normal(0, sway)
            oy = 0.8 * oy + self.rng.normal(0, sway)
            wave = arm_wave * (0.5 + 0.5 * np.sin(phase + i * 2 * np.pi / 5))
            self._push(self.x + ox, self.y + oy, self.theta, self.shape, label, wave)

    def walk_to(self, tx: float, ty: float, speed: float, label: int = WALKING) -> None:
        dx, dy = tx - self.x, ty - self.y
        dist = math.hypot(dx, dy)
        if dist < 1e-6:
            return
        heading = math.atan2(dy, dx)
        frames = max(2, int(round(dist / speed)))
        # Shoulders across the direction of travel; turn quickly towards it.
        target_theta = heading + np.pi / 2
        start_theta = self.theta
        phase = self.rng.uniform(0, 2 * np.pi)
        for i in range(1, frames + 1):
            f = i / frames
            sway = 0.25 * np.sin(phase + i * np.pi / 2)  # lateral gait sway, ~4-frame period
            theta = start_theta + _angle_diff(start_theta, target_theta) * min(1.0, i / 3)
            x = self.x + dx * f - np.sin(heading) * sway
            y = self.y + dy * f + np.cos(heading) * sway
            self._push(x, y, theta, self.shape, label)
        self.x, self.y, self.theta = tx, ty, target_theta

    def morph(self, frames: int, shape: np.ndarray, label: int, dx: float = 0.0, dy: float = 0.0,
              theta: float | None = None, easing: str = "smooth") -> None:
        frames = max(1, frames)
        s = _ease_in(frames) if easing == "in" else _smoothstep(frames)
        t_theta = self.theta if theta is None else theta
        dtheta = _angle_diff(self.theta, t_theta)
        for f in s:
            self._push(self.x + dx * f, self.y + dy * f, self.theta + dtheta * f,
                       self.shape + (shape - self.shape) * f, label)
        self.x, self.y, self.theta, self.shape = self.x + dx, self.y + dy, self.theta + dtheta, shape.copy()

    def arrays(self) -> tuple[np.ndarray, ...]:
        n = self.n
        if self.t < n:  # never happens with the planner's final hold, but be safe
            self.hold(n - self.t, self.labels[-1] if self.labels else STANDING)
        return (np.array(self.xs[:n]), np.array(self.ys[:n]), np.array(self.thetas[:n]),
                np.stack(self.shapes[:n]), np.array(self.labels[:n], dtype=np.int64), np.array(self.arms[:n]))


class _Reservations:
    """Which person uses which piece of furniture when (one at a time)."""

    def __init__(self) -> None:
        self.busy: dict[int, list[tuple[int, int]]] = {}

    def free(self, idx: int, t0: int, t1: int) -> bool:
        return all(t1 <= a or b <= t0 for a, b in self.busy.get(idx, []))

    def take(self, idx: int, t0: int, t1: int) -> None:
        self.busy.setdefault(idx, []).append((t0, t1))


def _varied(rng: np.random.Generator, name: str) -> np.ndarray:
    p = _POSTURES[name].copy()
    spread = _VARIED.get(name, 0.0)
    if spread:
        p *= rng.uniform(1 - spread, 1 + spread, size=p.shape)
    return p


def _random_floor_point(rng: np.random.Generator, room: _Room, away_from: tuple[float, float] | None = None,
                        min_dist: float = 10.0, ok=None) -> tuple[float, float]:
    """Free floor (not on a bed, couch or table), optionally far from a point and ``ok(x, y)``."""
    beds = [r for r in room.things if r.subcategory in ("bed", "couch", "table")]
    for _ in range(100):
        x, y = rng.uniform(_MARGIN, W - _MARGIN), rng.uniform(_MARGIN, H - _MARGIN)
        if any(r.x1 - 2 < x < r.x2 + 2 and r.y1 - 2 < y < r.y2 + 2 for r in beds):
            continue
        if away_from is not None and math.hypot(x - away_from[0], y - away_from[1]) < min_dist:
            continue
        if ok is not None and not ok(x, y):
            continue
        return float(x), float(y)
    return float(rng.uniform(_MARGIN, W - _MARGIN)), float(rng.uniform(_MARGIN, H - _MARGIN))


def _bedside(rng: np.random.Generator, bed: _Rect) -> tuple[float, float, float, float]:
    """A standing point beside a bed (on its room side) and the direction onto it."""
    cands = []
    if bed.w >= bed.h:  # long side horizontal: step on from above or below
        for y, d in ((bed.y1 - 4.5, 1.0), (bed.y2 + 4.5, -1.0)):
            if _MARGIN - 2 <= y <= H - _MARGIN + 2:
                cands.append((bed.cx + rng.uniform(-3, 3), y, 0.0, d))
    else:
        for x, d in ((bed.x1 - 5.0, 1.0), (bed.x2 + 5.0, -1.0)):
            if _MARGIN - 2 <= x <= W - _MARGIN + 2:
                cands.append((x, bed.cy + rng.uniform(-3, 3), d, 0.0))
    if not cands:
        return bed.cx, bed.cy, 0.0, 0.0
    return cands[rng.integers(len(cands))]


def _wall_point(rng: np.random.Generator) -> tuple[float, float, float]:
    """A point ~4.5 px from a wall and the angle pointing at the wall."""
    side = rng.integers(4)
    d = rng.uniform(4.0, 5.0)
    if side == 0:
        return d, rng.uniform(_MARGIN, H - _MARGIN), np.pi
    if side == 1:
        return W - d, rng.uniform(_MARGIN, H - _MARGIN), 0.0
    if side == 2:
        return rng.uniform(_MARGIN, W - _MARGIN), d, -np.pi / 2
    return rng.uniform(_MARGIN, W - _MARGIN), H - d, np.pi / 2


@dataclass
class _PersonPlan:
    xs: np.ndarray  # (N,)
    ys: np.ndarray  # (N,)
    thetas: np.ndarray  # (N,)
    shapes: np.ndarray  # (N, P) posture vectors
    labels: np.ndarray  # (N,) class ids
    arms: np.ndarray  # (N,) extra arm amplitude
    amp: float  # °C excess of this person
    residuals: list[_Residual]


def _plan_person(rng: np.random.Generator, room: _Room, n: int, forced: list[str],
                 reservations: _Reservations, others: list[_PersonPlan]) -> _PersonPlan:
    """Plans one person's script; later people keep clear of the ``others`` already planned."""
    amp = float(rng.uniform(6.0, 8.0))
    size = float(rng.uniform(0.9, 1.1))  # body size relative to the posture table
    seats = [i for i, r in enumerate(room.things) if r.subcategory in ("chair", "couch")]
    beds = [i for i, r in enumerate(room.things) if r.subcategory in ("bed", "couch")]
    residuals: list[_Residual] = []

    def crowded(x: float, y: float, t0: int, t1: int, dist: float = 10.0) -> bool:
        """Whether someone already planned comes within ``dist`` px of (x, y) in frames [t0, t1)."""
        t0, t1 = max(0, min(t0, n - 1)), max(1, min(t1, n))
        return any(np.any(np.hypot(o.xs[t0:t1] - x, o.ys[t0:t1] - y) < dist) for o in others)

    start = _random_floor_point(rng, room, ok=lambda x, y: not crowded(x, y, 0, 30, 12.0))
    tl = _Timeline(n, rng, start[0], start[1], float(rng.uniform(0, 2 * np.pi)), _POSTURES["standing"])
    fell = False

    # A forced fall happens at a set time in the middle part of the recording (a fall
    # usually ends the script, and short recordings should have one too); long holds
    # before it are shortened so that they end in time.
    fall_at = int(rng.integers(int(0.3 * n), int(0.7 * n) + 1)) if "fall" in forced else None
    forced = [a for a in forced if a != "fall"]

    def capped(hold: int, other_frames: int) -> int:
        if fall_at is None:
            return hold
        return max(12, min(hold, fall_at - tl.t - other_frames))

    def leave_residual(frac: float) -> None:
        residuals.append(_Residual(tl.t, tl.x, tl.y, tl.theta, tl.shape.copy(), frac * amp,
                                   float(rng.uniform(30, 80))))

    def do_sit(seat: int | None, first: bool = False) -> bool:
        if seat is None:
            return False
        r = room.things[seat]
        hold = int(rng.integers(30, 121))
        down, up = int(rng.integers(6, 13)), int(rng.integers(6, 13))
        approach = (r.cx + rng.uniform(-2.5, 2.5), r.cy + rng.uniform(-2.5, 2.5)) if r.subcategory == "couch" else (
            r.cx - 2.0 * np.cos(tl.theta), r.cy - 2.0 * np.sin(tl.theta))
        speed = float(rng.uniform(0.55, 1.1))
        walk = 0 if first else int(math.hypot(approach[0] - tl.x, approach[1] - tl.y) / speed)
        hold = capped(hold, walk + down + up)
        t0, t1 = tl.t, tl.t + walk + down + hold + up
        if not reservations.free(seat, t0, t1):
            return False
        reservations.take(seat, t0, t1)
        theta = float(rng.uniform(0, 2 * np.pi))
        if first:
            tl.x, tl.y, tl.theta, tl.shape = r.cx, r.cy, theta, _POSTURES["sitting"].copy()
        else:
            tl.walk_to(approach[0], approach[1], speed)
            tl.morph(down, _POSTURES["sitting"], TRANS_NORMAL, dx=r.cx - tl.x, dy=r.cy - tl.y, theta=theta)
        tl.hold(hold, SITTING, sway=0.04)
        leave_residual(0.3)
        out = 4.0
        tl.morph(up, _POSTURES["standing"], TRANS_NORMAL, dx=out * np.cos(theta), dy=out * np.sin(theta))
        return True

    def do_bed(first: bool = False) -> bool:
        if not beds:
            return False
        bi = beds[0]
        r = room.things[bi]
        sx, sy, ddx, ddy = _bedside(rng, r)
        hold = int(rng.integers(60, 201))
        down, up = int(rng.integers(8, 19)), int(rng.integers(8, 19))
        speed = float(rng.uniform(0.55, 1.1))
        walk = 0 if first else int(math.hypot(sx - tl.x, sy - tl.y) / speed)
        hold = capped(hold, walk + down + up)
        t0, t1 = tl.t, tl.t + walk + down + hold + up
        if not reservations.free(bi, t0, t1):
            return False
        reservations.take(bi, t0, t1)
        theta = (0.0 if r.w >= r.h else np.pi / 2) + (np.pi if rng.random() < 0.5 else 0.0) + rng.normal(0, 0.08)
        bx = r.cx + rng.uniform(-1.0, 1.0)
        by = r.cy + rng.uniform(-1.0, 1.0)
        if first:
            tl.x, tl.y, tl.theta, tl.shape = bx, by, theta, _POSTURES["lying"].copy()
        else:
            tl.walk_to(sx, sy, speed)
            tl.morph(down, _POSTURES["lying"], TRANS_BED, dx=bx - tl.x, dy=by - tl.y, theta=theta)
        tl.hold(hold, LYING_BED, sway=0.03)
        leave_residual(0.35)
        tl.morph(up, _POSTURES["standing"], TRANS_BED, dx=sx - tl.x, dy=sy - tl.y)
        return True

    def do_fall() -> None:
        # Fall along a room axis, onto free floor (not onto a bed, couch or table), away
        # from the people planned before; walk to free floor first when there is none.
        blockers = [r for r in room.things if r.subcategory in ("bed", "couch", "table")]

        def fall_options() -> list[tuple[bool, bool, float, float, float]]:
            options = []
            for heading in rng.permutation(4) * np.pi / 2 + rng.normal(0, 0.2, size=4):
                shift = rng.uniform(3.0, 4.0)
                nx = float(np.clip(tl.x + shift * np.cos(heading), 9.0, W - 9.0))
                ny = float(np.clip(tl.y + shift * np.sin(heading), 5.0, H - 5.0))
                half_u, half_v = 9.0, 3.0
                ex = abs(half_u * np.cos(heading)) + abs(half_v * np.sin(heading))
                ey = (abs(half_u * np.sin(heading)) + abs(half_v * np.cos(heading))) * _ASPECT_Y
                body = _Rect(nx - ex, ny - ey, nx + ex, ny + ey, "", "", 0.0)
                blocked = any(body.overlaps(b, 0.0) for b in blockers)
                options.append((blocked, crowded(nx, ny, tl.t, tl.t + 60, 12.0), float(heading), nx, ny))
            return options

        options = fall_options()
        if all(o[0] for o in options):
            tx, ty = _random_floor_point(rng, room, ok=lambda x, y: not crowded(x, y, tl.t + 10, tl.t + 80))
            tl.walk_to(tx, ty, float(rng.uniform(0.55, 1.1)))
            options = fall_options()
        _, _, heading, nx, ny = min(options, key=lambda o: (o[0], o[1]))
        tl.morph(int(rng.integers(3, 7)), _POSTURES["lying"], TRANS_RISK, dx=nx - tl.x, dy=ny - tl.y,
                 theta=heading, easing="in")
        if rng.random() < 0.8:
            tl.hold(n, LYING_RISK, sway=0.03)  # stays down until the end of the recording
        else:
            tl.hold(int(rng.integers(60, 151)), LYING_RISK, sway=0.03)
            leave_residual(0.3)
            tl.morph(int(rng.integers(12, 19)), _POSTURES["standing"], TRANS_NORMAL)

    def do_lean() -> None:
        for _ in range(20):
            x, y, theta = _wall_point(rng)
            if not crowded(x, y, tl.t + 10, tl.t + 80):
                break
        tl.walk_to(x, y, float(rng.uniform(0.55, 1.1)))
        tl.morph(int(rng.integers(2, 5)), _POSTURES["leaning"], LEANING, theta=theta + rng.normal(0, 0.15))
        tl.hold(int(rng.integers(12, 51)), LEANING, sway=0.05)
        tl.morph(int(rng.integers(2, 4)), _POSTURES["standing"], STANDING)

    def do_lower(kind: str) -> None:
        name, label = _LOWER[kind]
        tl.morph(int(rng.integers(6, 13)), _varied(rng, name), TRANS_NORMAL, theta=float(rng.uniform(0, 2 * np.pi)))
        tl.hold(int(rng.integers(12, 41)), label, sway=0.05)
        tl.morph(int(rng.integers(6, 13)), _POSTURES["standing"], TRANS_NORMAL)

    def do_other() -> None:
        tl.morph(int(rng.integers(3, 6)), _varied(rng, "other"), OTHER)
        tl.hold(int(rng.integers(12, 31)), OTHER, sway=0.1, arm_wave=float(rng.uniform(0.1, 0.3)))
        tl.morph(int(rng.integers(3, 6)), _POSTURES["standing"], OTHER)

    def free_seat() -> int | None:
        order = rng.permutation(seats) if seats else []
        for s in order:
            if reservations.free(int(s), tl.t, tl.t + 150):
                return int(s)
        return int(order[0]) if len(order) else None

    # Some people are already sitting or in bed when the recording starts.
    u = rng.random()
    if u < 0.15:
        do_sit(free_seat(), first=True)
    elif u < 0.3:
        do_bed(first=True)

    acts, weights = list(_RANDOM_WEIGHTS), np.array(list(_RANDOM_WEIGHTS.values()))
    guard = 0
    while not tl.full and guard < 10 * n:
        guard += 1
        t_before = tl.t
        if fall_at is not None and tl.t >= fall_at:
            act, fall_at = "fall", None
        elif forced and tl.t > 4:
            act = forced.pop(0)
        elif tl.t == 0:
            act = "stand" if rng.random() < 0.5 else "walk"
        else:
            act = str(rng.choice(acts, p=weights / weights.sum()))
            if act == "fall" and fell:
                act = "walk"
        if act == "stand":
            tl.hold(int(rng.integers(6, 41)), STANDING)
        elif act == "walk":
            tx, ty = _random_floor_point(rng, room, (tl.x, tl.y),
                                         ok=lambda x, y: not crowded(x, y, tl.t + 10, tl.t + 80))
            tl.walk_to(tx, ty, float(rng.uniform(0.55, 1.1)))
        elif act == "sit":
            if not do_sit(free_seat()):
                tl.hold(int(rng.integers(6, 16)), STANDING)
        elif act == "bed":
            if not do_bed():
                tl.hold(int(rng.integers(6, 16)), STANDING)
        elif act == "lean":
            do_lean()
        elif act in _LOWER:
            do_lower(act)
        elif act == "other":
            do_other()
        elif act == "fall":
            fell = True
            do_fall()
        if tl.t == t_before:  # nothing happened (e.g. zero-length walk)
            tl.hold(1, STANDING)
    xs, ys, thetas, shapes, labels, arms = tl.arrays()
    shapes[:, _SIZE_FIELDS] *= size
    for r in residuals:
        r.shape = r.shape.copy()
        r.shape[_SIZE_FIELDS] *= size
    return _PersonPlan(xs, ys, thetas, shapes, labels, arms, amp, residuals)


def _components(shapes: np.ndarray, arms: np.ndarray) -> list[tuple[np.ndarray, ...]]:
    """``(u_offset, sigma_u, sigma_v, amplitude)`` per component, each ``(N,)``."""
    p = lambda k: shapes[:, _PI[k]]  # noqa: E731
    zero = np.zeros(len(shapes))
    return [
        (p("u0"), p("su0"), p("sv0"), p("a0")),
        (p("u1"), p("s1"), p("s1"), p("a1")),
        (p("u2"), p("su2"), p("sv2"), p("a2")),
        (zero, p("su3"), p("sv3"), p("a3") + arms),
    ]


_PATCH = 36  # px, side of the window a body is rendered in (covers a lying body with arms out)


def _render_blobs(xs: np.ndarray, ys: np.ndarray, thetas: np.ndarray, shapes: np.ndarray, arms: np.ndarray,
                  amps: np.ndarray) -> np.ndarray:
    """Excess temperature of one body over ``N`` frames -> ``(N, H, W)`` °C.

    Each frame is evaluated only in a ``_PATCH`` window around the body (float32), which
    keeps the default dataset at a second or two.
    """
    n = len(xs)
    half = _PATCH // 2
    ox = np.round(xs).astype(np.int64) - half  # (N,) window origin in frame pixels
    oy = np.round(ys).astype(np.int64) - half
    ar = np.arange(_PATCH, dtype=np.float32) + 0.5  # pixel centres
    gx = (ox[:, None] + ar[None]).astype(np.float32)[:, None, :]  # (N, 1, P)
    gy = (oy[:, None] + ar[None]).astype(np.float32)[:, :, None]  # (N, P, 1)
    patch = np.zeros((n, _PATCH, _PATCH), np.float32)
    c, s = np.cos(thetas).astype(np.float32), np.sin(thetas).astype(np.float32)
    c3, s3 = c[:, None, None], s[:, None, None]
    for u, su, sv, a in _components(shapes, arms):
        if not np.any(a > 1e-3):
            continue
        u = u.astype(np.float32)
        cx, cy = xs.astype(np.float32) + u * c, ys.astype(np.float32) + u * s * _ASPECT_Y
        dx = gx - cx[:, None, None]  # (N, 1, P), body units
        dy = (gy - cy[:, None, None]) / _ASPECT_Y  # (N, P, 1)
        du = dx * c3 + dy * s3  # (N, P, P)
        dv = dy * c3 - dx * s3
        isu = (1.0 / su.astype(np.float32) ** 2)[:, None, None]
        isv = (1.0 / sv.astype(np.float32) ** 2)[:, None, None]
        patch += (a * amps).astype(np.float32)[:, None, None] * np.exp(-0.5 * (du * du * isu + dv * dv * isv))
    pad = _PATCH
    canvas = np.zeros((n, H + 2 * pad, W + 2 * pad), np.float32)
    for t in range(n):
        y0, x0 = oy[t] + pad, ox[t] + pad
        if 0 <= y0 <= H + pad and 0 <= x0 <= W + pad:  # bodies far outside the frame are not drawn
            canvas[t, y0:y0 + _PATCH, x0:x0 + _PATCH] += patch[t]
    return canvas[:, pad:pad + H, pad:pad + W].astype(np.float64)


def _tight_boxes(xs: np.ndarray, ys: np.ndarray, thetas: np.ndarray, shapes: np.ndarray,
                 arms: np.ndarray) -> np.ndarray:
    """Union of the components' ``_BOX_SIGMAS`` extents -> ``(N, 4)`` xyxy, clipped to the frame."""
    c, s = np.cos(thetas), np.sin(thetas)
    lo_x = np.full(len(xs), np.inf)
    lo_y, hi_x, hi_y = lo_x.copy(), -lo_x.copy(), -lo_x.copy()
    for u, su, sv, a in _components(shapes, arms):
        on = a > 0.1
        cx, cy = xs + u * c, ys + u * s * _ASPECT_Y
        ex = _BOX_SIGMAS * np.hypot(su * c, sv * s)
        ey = _BOX_SIGMAS * np.hypot(su * s, sv * c) * _ASPECT_Y
        lo_x = np.where(on, np.minimum(lo_x, cx - ex), lo_x)
        hi_x = np.where(on, np.maximum(hi_x, cx + ex), hi_x)
        lo_y = np.where(on, np.minimum(lo_y, cy - ey), lo_y)
        hi_y = np.where(on, np.maximum(hi_y, cy + ey), hi_y)
    boxes = np.stack([lo_x, lo_y, hi_x, hi_y], axis=1)
    boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, W)
    boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, H)
    return boxes


# --------------------------------------------------------------------------------------
# Sensor: timestamps, noise, dropped packets


def bursty_timestamps(rng: np.random.Generator, n: int, start_ms: int) -> np.ndarray:
    """Receive times like the real sensor's: runs of ~165 ms, a gap, a catch-up burst.

    Returns:
        ``(n,)`` int64 strictly increasing ms since epoch.
    """
    steps: list[float] = []
    while len(steps) < n - 1:
        steps += list(rng.normal(165, 12, size=rng.integers(3, 7)))
        long_gap = rng.random() < 0.02
        steps.append(rng.uniform(1500, 2600) if long_gap else float(np.clip(rng.normal(560, 160), 330, 1400)))
        steps += list(rng.normal(37, 3, size=rng.integers(2, 5)))
        if rng.random() < 0.4:
            steps.append(rng.uniform(60, 130))
    d = np.maximum(np.round(np.array(steps[: n - 1])), 20).astype(np.int64)
    return start_ms + np.concatenate([[0], np.cumsum(d)]).astype(np.int64)


def _quantize(t: np.ndarray) -> np.ndarray:
    # The sensor reports 1/8 °C steps; the pipeline stores them with one decimal.
    return np.round(np.round(t * 8.0) / 8.0, 1).astype(np.float32)


# --------------------------------------------------------------------------------------
# A whole recording


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
    room = _make_room(config.seed, room_idx, config.noise_std)
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

    return SynthRecording(
        sensor_id=sensor_id, mac_address=room.mac_address, frames=frames, timestamps=timestamps,
        keyframes=keyframes, people=people, things=things, dropped_frames=hit.astype(np.int64),
        dropped_blocks=blocks.astype(np.int64), room=room_idx,
        split="val" if index >= config.num_recordings - config.val_recordings else "train",
        lost_packets=lost_packets, dropped_clean_frames=clean,
    )


# --------------------------------------------------------------------------------------
# Writing the dataset


def _norm_box(b: np.ndarray) -> list[float]:
    # Corners on a 1/100 px grid inside the frame, then YOLO normalized like the tool writes.
    x1, y1, x2, y2 = (round(float(v), 2) for v in b)
    return [(x1 + x2) / 2 / W, (y1 + y2) / 2 / H, (x2 - x1) / W, (y2 - y1) / H]


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat()


def write_h5(path: Path, sensor_id: str, mac_address: str, frames: np.ndarray, timestamps: np.ndarray,
             created_at_ms: int) -> None:
    """Writes one recording file exactly like the real pipeline (datasets, chunks, attributes)."""
    n = len(frames)
    with h5py.File(path, "w") as f:
        f.create_dataset("frames", data=frames.astype(np.float32), chunks=(min(64, n), H, W),
                         compression="gzip", compression_opts=4)
        f.create_dataset("timestamps", data=timestamps.astype(np.int64))
        f.create_dataset("frame_seqs", data=timestamps.astype(np.int64))
        f.attrs["sensor_id"] = sensor_id
        f.attrs["mac_address"] = mac_address
        f.attrs["frame_height"] = np.int64(H)
        f.attrs["frame_width"] = np.int64(W)
        f.attrs["total_frames"] = np.int64(n)
        f.attrs["min_timestamp"] = np.int64(timestamps.min())
        f.attrs["max_timestamp"] = np.int64(timestamps.max())
        f.attrs["compression"] = "gzip"
        f.attrs["compression_level"] = np.int64(4)
        # Real files count 0 here even with dropped packets (only undecodable frames count).
        f.attrs["corrupted_count"] = np.int64(0)
        f.attrs["created_at"] = _iso(created_at_ms)


def _write_json(path: Path, obj: object, indent: int | None) -> None:
    # No trailing newline, like the real files.
    path.write_text(json.dumps(obj, indent=indent), encoding="utf-8")


def class_mapping() -> dict:
    """The ``class_mapping.json`` content for the 14 classes."""
    return {"classes": list(DEFAULT_CLASS_NAMES), "class_to_id": {c: i for i, c in enumerate(DEFAULT_CLASS_NAMES)}}


def _raw_lines(rec: SynthRecording, rng: np.random.Generator, jitter_ms: int) -> list[str]:
    lines = []
    ann_time = int(rec.timestamps[-1]) + 20 * 86_400_000 + int(rng.integers(0, 86_400_000))
    for j, kf in enumerate(rec.keyframes):
        anns = []
        for p in rec.people:
            anns.append({"bbox": _norm_box(p.annotated_boxes_xyxy[j]), "category": "person",
                         "subcategory": DEFAULT_CLASS_NAMES[int(p.labels[kf])], "attribute_obscured": "0%",
                         "attribute_heat_residual": None, "object_id": p.object_id})
        for t in rec.things:
            anns.append({"bbox": _norm_box(t.box_xyxy), "category": t.category, "subcategory": t.subcategory,
                         "attribute_obscured": "0%", "attribute_heat_residual": t.heat_residual[j],
                         "object_id": t.object_id})
        jitter = 0
        if jitter_ms > 0:
            # Stay nearer to this frame than to its neighbours, so that the keyframe is still
            # the nearest frame (bursts put frames ~37 ms apart).
            ts = rec.timestamps
            gaps = [int(ts[kf] - ts[kf - 1])] if kf > 0 else []
            gaps += [int(ts[kf + 1] - ts[kf])] if kf + 1 < len(ts) else []
            bound = min([jitter_ms] + [(g - 1) // 2 for g in gaps])
            jitter = int(rng.integers(-bound, bound + 1))
        ann_time += int(rng.integers(2_000, 60_000))
        line = {"data_id": rec.sensor_id, "mac_address": rec.mac_address, "annotator_id": "synth",
                "annotation_time": ann_time, "data_time": int(rec.timestamps[kf]) + jitter, "annotations": anns}
        lines.append(json.dumps(line, separators=(",", ":")))
    return lines


def generate_dataset(out_dir: str | Path, config: SynthConfig | None = None) -> dict:
    """Writes a synthetic dataset in the real on-disk format.

    Args:
        out_dir: dataset directory (created); gets ``frames/``, ``annotations/`` and
            ``raw_annotations/``.
        config: what to generate; defaults to :class:`SynthConfig()`.

    Returns:
        A JSON-serialisable summary: recordings with their split and counts, boxes per
        class per split, and classes missing from a split.
    """
    config = config or SynthConfig()
    config.validate()
    out = Path(out_dir)
    (out / "frames").mkdir(parents=True, exist_ok=True)
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    (out / "raw_annotations").mkdir(parents=True, exist_ok=True)

    categories = [{"id": i, "name": c} for i, c in enumerate(DEFAULT_CLASS_NAMES)]
    splits: dict[str, dict] = {
        s: {"images": [], "annotations": [], "categories": categories,
            "info": {"description": f"Synthetic Thermal Sensor Human Action Detection Dataset ({d}), "
                                    f"seed {config.seed}", "version": "1.0", "year": 2025}}
        for s, d in (("train", "Training"), ("val", "Validation"))
    }
    sensor_info: dict[str, dict] = {}
    summary_recs = []
    ann_id = 0
    for index in range(config.num_recordings):
        rec = simulate_recording(config, index)
        rng = np.random.default_rng([config.seed, 13, index])
        created_ms = int(rec.timestamps[-1]) + 25 * 86_400_000 + int(rng.integers(0, 86_400_000))
        write_h5(out / "frames" / f"{rec.sensor_id}.h5", rec.sensor_id, rec.mac_address, rec.frames,
                 rec.timestamps, created_ms)
        raw = _raw_lines(rec, rng, config.data_time_jitter_ms)
        (out / "raw_annotations" / f"{rec.sensor_id}_annotation.json").write_text("\n".join(raw), encoding="utf-8")
        split = splits[rec.split]
        for j, kf in enumerate(rec.keyframes):
            ts = int(rec.timestamps[kf])
            image_id = f"{rec.sensor_id}_{ts}"
            split["images"].append({"id": image_id, "sensor_id": rec.sensor_id, "mac_address": rec.mac_address,
                                    "timestamp": ts, "width": W, "height": H, "frame_idx": int(kf)})
            for p in rec.people:
                label = int(p.labels[kf])
                split["annotations"].append({
                    "id": ann_id, "image_id": image_id, "bbox": _norm_box(p.annotated_boxes_xyxy[j]),
                    "category_id": label, "category_name": DEFAULT_CLASS_NAMES[label], "object_id": p.object_id,
                    "attribute_obscured": "0%"})
                ann_id += 1
        sensor_info[rec.sensor_id] = {
            "hdf5_path": f"{out.name}/frames/{rec.sensor_id}.h5", "mac_address": rec.mac_address,
            "total_frames": int(len(rec.frames)), "corrupted_frames": 0, "annotation_count": int(len(rec.keyframes)),
            "min_timestamp": int(rec.timestamps.min()), "max_timestamp": int(rec.timestamps.max())}
        summary_recs.append({"sensor_id": rec.sensor_id, "split": rec.split, "room": rec.room,
                             "frames": int(len(rec.frames)), "keyframes": int(len(rec.keyframes)),
                             "people": len(rec.people), "boxes": int(len(rec.keyframes) * len(rec.people)),
                             "dropped_frames": int(len(rec.dropped_frames))})

    _write_json(out / "frames" / "sensor_info.json", sensor_info, 2)
    for s in ("train", "val"):
        _write_json(out / "annotations" / f"{s}.json", splits[s], 1)
    _write_json(out / "annotations" / "class_mapping.json", class_mapping(), 2)

    class_counts = {}
    missing = {}
    for s in ("train", "val"):
        counts = {c: 0 for c in DEFAULT_CLASS_NAMES}
        for a in splits[s]["annotations"]:
            counts[a["category_name"]] += 1
        class_counts[s] = counts
        missing[s] = [c for c, k in counts.items() if k == 0]
    absent = [c for c in DEFAULT_CLASS_NAMES if class_counts["train"][c] + class_counts["val"][c] == 0]
    if absent:
        log.warning("classes without any box in this synthetic dataset: %s", absent)
    return {"out_dir": str(out), "seed": config.seed, "recordings": summary_recs,
            "images": {s: len(splits[s]["images"]) for s in splits},
            "boxes": {s: len(splits[s]["annotations"]) for s in splits},
            "class_counts": class_counts, "missing_classes": missing}
