"""Rooms: background level and gradient, lens ring, cool patches, furniture and warm objects."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from thermal_action.data.synth.config import H, W


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
