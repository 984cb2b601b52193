"""Rooms: background level and gradient, lens ring, cool patches, furniture and warm objects.

A room is one sensor (one MAC address). Its background, lens ring and noise stay; its
furniture (:func:`_furnish`) may be rearranged between recordings (:func:`_rearrange`:
a bed or couch moved, a chair added or taken away...), and its objects are placed
again for each recording.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from thermal_action.data.rooms import RoomLayout, Zone, furniture_kind
from thermal_action.data.synth.config import H, W

#: Chance that a room's furniture changes between two of its recordings.
_REARRANGE_PROB = 0.6
#: What changes, with its weight (an impossible change is skipped for the next one).
_REARRANGE_WEIGHTS = {"move_bed": 0.3, "move_couch": 0.15, "add_chair": 0.15, "remove_chair": 0.12,
                      "move_chair": 0.1, "add_couch": 0.08, "remove_couch": 0.05, "add_bed": 0.03,
                      "remove_bed": 0.02}


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
    changes: list[str] = field(default_factory=list)  # how the furniture changed since the room's first recording

    @property
    def furniture(self) -> list[_Rect]:
        return [r for r in self.things if r.category == "furniture"]

    def layout(self, source: str = "annotations", valid_from_ms: int | None = None) -> RoomLayout:
        """The furniture as a :class:`RoomLayout` (normalized boxes, named by subcategory)."""
        return furniture_layout(self.furniture, source, valid_from_ms)


def furniture_layout(furniture: list[_Rect], source: str, valid_from_ms: int | None = None) -> RoomLayout:
    zones = tuple(Zone.from_box(furniture_kind(r.subcategory), _norm_xyxy(r), r.subcategory) for r in furniture)
    return RoomLayout(zones, source, valid_from_ms)


def _norm_xyxy(r: _Rect) -> tuple[float, float, float, float]:
    # The annotation's box (rounded to 1/100 px like the labelling tool), normalized and in the frame.
    x1, y1, x2, y2 = (round(v, 2) for v in (r.x1, r.y1, r.x2, r.y2))
    return (round(max(x1, 0.0) / W, 6), round(max(y1, 0.0) / H, 6), round(min(x2, W) / W, 6),
            round(min(y2, H) / H, 6))


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


def _bed(rng: np.random.Generator, placed: list[_Rect]) -> _Rect | None:
    """A single (~20 x 11 px) or, in a quarter of rooms, a double bed (~21 x 15 px), against
    a wall (long side or head end) or, in a third of rooms, standing free (a care bed)."""
    long_, short = rng.uniform(19, 22), rng.uniform(10, 12) if rng.random() < 0.75 else rng.uniform(13.5, 15.5)
    w, h = (long_, short) if rng.random() < 0.6 else (short, long_)
    return _place(rng, w, h, placed, rng.random() < 0.67, "furniture", "bed", rng.uniform(0.8, 1.6))


def _couch(rng: np.random.Generator, placed: list[_Rect]) -> _Rect | None:
    long_, short = rng.uniform(17, 19), rng.uniform(8, 9)
    w, h = (long_, short) if rng.random() < 0.6 else (short, long_)
    return _place(rng, w, h, placed, rng.random() < 0.85, "furniture", "couch", rng.uniform(0.8, 1.5))


def _chair(rng: np.random.Generator, placed: list[_Rect]) -> _Rect | None:
    s = rng.uniform(6, 7.5)
    return _place(rng, s, s, placed, False, "furniture", "chair", rng.uniform(1.0, 2.0))


def _furnish(rng: np.random.Generator) -> list[_Rect]:
    """A room's furniture: a bed (75 % of rooms) and/or a couch (always one of the two),
    0-3 chairs, maybe a table."""
    furniture: list[_Rect] = []
    has_bed = rng.random() < 0.75
    has_couch = rng.random() < (0.45 if has_bed else 1.0)
    for make, wanted in ((_bed, has_bed), (_couch, has_couch)):
        if wanted:
            r = make(rng, furniture)
            if r is not None:
                furniture.append(r)
    for _ in range(rng.integers(0, 4)):
        r = _chair(rng, furniture)
        if r is not None:
            furniture.append(r)
    if rng.random() < 0.6:
        table = _place(rng, rng.uniform(10, 14), rng.uniform(6, 8), furniture, False, "furniture", "table",
                       rng.uniform(-0.6, -0.2))
        if table is not None:
            furniture.append(table)
    return furniture


def _rearrange(rng: np.random.Generator, furniture: list[_Rect]) -> tuple[list[_Rect], str | None]:
    """One change of the furniture (tried in a random order of the kinds of change)."""
    kinds = list(_REARRANGE_WEIGHTS)
    weights = np.array([_REARRANGE_WEIGHTS[k] for k in kinds])
    order = rng.choice(len(kinds), size=len(kinds), replace=False, p=weights / weights.sum())
    lying = [r for r in furniture if r.subcategory in ("bed", "couch")]
    for k in order:
        change = kinds[int(k)]
        verb, sub = change.split("_")
        have = [i for i, r in enumerate(furniture) if r.subcategory == sub]
        if verb in ("move", "remove") and not have:
            continue
        if verb == "remove" and sub in ("bed", "couch") and len(lying) < 2:
            continue  # a room keeps somewhere to lie
        if verb == "add" and sub != "chair" and have:
            continue
        if verb == "remove":
            i = have[int(rng.integers(len(have)))]
            return furniture[:i] + furniture[i + 1:], change
        if verb == "add":
            r = {"bed": _bed, "couch": _couch, "chair": _chair}[sub](rng, furniture)
            if r is None:
                continue
            # Before the table, so that the furniture keeps its annotation order.
            return [f for f in furniture if f.subcategory != "table"] + [r] + [
                f for f in furniture if f.subcategory == "table"], change
        i = have[int(rng.integers(len(have)))]
        old = furniture[i]
        others = furniture[:i] + furniture[i + 1:]
        w, h = (old.h, old.w) if rng.random() < 0.4 else (old.w, old.h)
        r = _place(rng, w, h, others, sub != "chair" and rng.random() < 0.75, old.category, sub, old.excess)
        if r is None or (abs(r.cx - old.cx) + abs(r.cy - old.cy) < 4.0 and (w, h) == (old.w, old.h)):
            continue
        return furniture[:i] + [r] + furniture[i + 1:], change
    return furniture, None


def _make_room(seed: int, room: int, noise_std: float, take: int = 0) -> _Room:
    """Room ``room`` as its recording ``take`` (0, 1...) sees it: the same walls, sensor and
    noise in every take; the furniture of take ``k`` is that of take ``k - 1``, rearranged
    with probability :data:`_REARRANGE_PROB`; objects placed again each take."""
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
    if rng.random() < 0.5:  # a cool patch: window, tiled floor
        pw, ph = rng.uniform(10, 22), rng.uniform(6, 12)
        px, py = rng.uniform(0, W - pw), rng.uniform(0, H - ph)
        bg += rng.uniform(-3.0, -1.5) * _soft_rect(_Rect(px, py, px + pw, py + ph, "", "", 0), 1.5)
    mac = "02:00:" + ":".join(f"{int(b):02x}" for b in rng.integers(0, 256, 4))
    std = noise_std * rng.uniform(0.85, 1.15)
    furniture = _furnish(rng)
    changes: list[str] = []
    for k in range(1, take + 1):
        krng = np.random.default_rng([seed, 8, room, k])
        if krng.random() < _REARRANGE_PROB:
            furniture, change = _rearrange(krng, furniture)
            if change is not None:
                changes.append(f"take {k + 1}: {change.replace('_', ' ')}")

    orng = rng if take == 0 else np.random.default_rng([seed, 9, room, take])
    objects: list[_Rect] = []
    placed = list(furniture)
    table = next((r for r in furniture if r.subcategory == "table"), None)
    kettle_peak = orng.uniform(38.0, 45.0)
    ks = orng.uniform(3.0, 4.0)
    if table is not None and orng.random() < 0.6:
        kx = table.x1 + orng.uniform(0.5, table.w - ks - 0.5)
        ky = table.y1 + orng.uniform(0.5, table.h - ks - 0.5)
        kettle = _Rect(kx, ky, kx + ks, ky + ks, "object", "water kettle", kettle_peak)
    else:
        kettle = _place(orng, ks, ks, placed, True, "object", "water kettle", kettle_peak)
    if kettle is not None:
        objects.append(kettle)
        placed.append(kettle)
    if orng.random() < 0.5:
        lw, lh = orng.uniform(4, 5.5), orng.uniform(3, 4)
        lap = _place(orng, lw, lh, [p for p in placed if p.subcategory != "table"], False, "object", "laptop",
                     orng.uniform(3.0, 5.0))
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
    return _Room(background=bg, things=furniture + objects, mac_address=mac, noise_std=float(std), changes=changes)
