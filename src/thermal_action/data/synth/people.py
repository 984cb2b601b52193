"""People's scripts: the state machine that plans what each person does when and where.

Where things happen relative to the furniture matters more than where they happen in the
frame: lying on a bed or couch (class 4) and lying on the floor beside it (class 3) look
the same from above, so falls often land beside a bed or couch (or roll off one), and
people kneel, bend and crouch beside furniture as often as in the open.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from thermal_action.data.synth.config import H, W
from thermal_action.data.synth.postures import (
    _ASPECT_Y,
    _LOWER,
    _POSTURES,
    _RANDOM_WEIGHTS,
    _SIZE_FIELDS,
    _VARIED,
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
from thermal_action.data.synth.render import _tight_boxes
from thermal_action.data.synth.room import _Rect, _Room
from thermal_action.data.synth.timeline import _Residual, _Timeline

_MARGIN = 6.0  # px, people's walking targets stay this far from the frame border


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


def _beside(rng: np.random.Generator, r: _Rect, blockers: list[_Rect]) -> tuple[float, float, float] | None:
    """A standing point ~4-5 px off a random side of ``r``, on free floor in the frame, and
    the angle facing ``r``; None when no side has room."""
    d = rng.uniform(4.0, 5.0)
    cands = [(r.cx + rng.uniform(-0.3, 0.3) * r.w, r.y1 - d, np.pi / 2),
             (r.cx + rng.uniform(-0.3, 0.3) * r.w, r.y2 + d, -np.pi / 2),
             (r.x1 - d, r.cy + rng.uniform(-0.3, 0.3) * r.h, 0.0),
             (r.x2 + d, r.cy + rng.uniform(-0.3, 0.3) * r.h, np.pi)]
    ok = [(x, y, th) for x, y, th in cands
          if _MARGIN - 2 <= x <= W - _MARGIN + 2 and _MARGIN - 2 <= y <= H - _MARGIN + 2
          and not any(b.x1 - 1 < x < b.x2 + 1 and b.y1 - 1 < y < b.y2 + 1 for b in blockers)]
    if not ok:
        return None
    x, y, th = ok[int(rng.integers(len(ok)))]
    return float(x), float(y), float(th)


def _lying_extent(theta: float, size: float) -> np.ndarray:
    """``(x1, y1, x2, y2)`` of a lying body's tight box relative to its reference point."""
    p = _POSTURES["lying"].copy()
    p[_SIZE_FIELDS] *= size
    c = np.array([W / 2, H / 2])
    box = _tight_boxes(c[:1], c[1:], np.array([theta]), p[None], np.zeros(1))[0]
    return box - np.array([c[0], c[1], c[0], c[1]])


def _floor_beside(rng: np.random.Generator, r: _Rect, blockers: list[_Rect],
                  size: float) -> list[tuple[float, float, float]]:
    """Where a body fits lying on the floor along a long side of ``r`` (a bed or couch),
    0.3-1.5 px off it, inside the frame and on no furniture: ``(x, y, theta)`` candidates."""
    horizontal = r.w >= r.h
    out = []
    for side in (-1, 1):
        theta = (0.0 if horizontal else np.pi / 2) + (np.pi if rng.random() < 0.5 else 0.0) + rng.normal(0, 0.06)
        b = _lying_extent(theta, size)
        gap = rng.uniform(0.3, 1.5)
        if horizontal:
            x = r.cx + rng.uniform(-0.25, 0.25) * r.w - (b[0] + b[2]) / 2
            y = r.y1 - gap - b[3] if side < 0 else r.y2 + gap - b[1]
        else:
            y = r.cy + rng.uniform(-0.25, 0.25) * r.h - (b[1] + b[3]) / 2
            x = r.x1 - gap - b[2] if side < 0 else r.x2 + gap - b[0]
        body = _Rect(x + b[0], y + b[1], x + b[2], y + b[3], "", "", 0.0)
        if body.x1 < 0.5 or body.y1 < 0.5 or body.x2 > W - 0.5 or body.y2 > H - 0.5:
            continue
        if any(body.overlaps(o, 0.0) for o in blockers):
            continue
        out.append((float(x), float(y), float(theta)))
    return out


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
    edges = [i for i, r in enumerate(room.things) if r.subcategory == "bed"]  # sitting on the bed's edge
    blockers = [r for r in room.things if r.category == "furniture"]
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
        theta = float(rng.uniform(0, 2 * np.pi))
        sx, sy = r.cx, r.cy
        if r.subcategory == "bed":  # on the edge, facing out of the bed, legs over the side
            bx, by, ddx, ddy = _bedside(rng, r)
            theta = float(np.arctan2(-ddy, -ddx) + rng.normal(0, 0.2))
            inset = 2.0
            sx = r.x1 + inset if ddx > 0 else r.x2 - inset if ddx < 0 else bx
            sy = r.y1 + inset * _ASPECT_Y if ddy > 0 else r.y2 - inset * _ASPECT_Y if ddy < 0 else by
            approach = (bx, by)
        elif r.subcategory == "couch":
            approach = (r.cx + rng.uniform(-2.5, 2.5), r.cy + rng.uniform(-2.5, 2.5))
        else:
            approach = (r.cx - 2.0 * np.cos(tl.theta), r.cy - 2.0 * np.sin(tl.theta))
        speed = float(rng.uniform(0.55, 1.1))
        walk = 0 if first else int(math.hypot(approach[0] - tl.x, approach[1] - tl.y) / speed)
        hold = capped(hold, walk + down + up)
        t0, t1 = tl.t, tl.t + walk + down + hold + up
        if not reservations.free(seat, t0, t1):
            return False
        reservations.take(seat, t0, t1)
        if first:
            tl.x, tl.y, tl.theta, tl.shape = sx, sy, theta, _POSTURES["sitting"].copy()
        else:
            tl.walk_to(approach[0], approach[1], speed)
            tl.morph(down, _POSTURES["sitting"], TRANS_NORMAL, dx=sx - tl.x, dy=sy - tl.y, theta=theta)
        tl.hold(hold, SITTING, sway=0.04)
        leave_residual(0.3)
        out = 4.0
        tl.morph(up, _POSTURES["standing"], TRANS_NORMAL, dx=out * np.cos(theta), dy=out * np.sin(theta))
        return True

    def free_bed(t1: int) -> int | None:
        for bi in (rng.permutation(beds) if beds else []):
            if reservations.free(int(bi), tl.t, t1):
                return int(bi)
        return None

    def do_bed(first: bool = False, roll_to: tuple[float, float, float] | None = None,
               bi: int | None = None) -> bool:
        """Lies down on a bed or couch and gets up again, or (``roll_to``: a spot on the floor
        beside it) rolls off it: a fall."""
        bi = free_bed(tl.t + 60) if bi is None else bi
        if bi is None:
            return False
        r = room.things[bi]
        sx, sy, _, _ = _bedside(rng, r)
        hold = int(rng.integers(60, 201)) if roll_to is None else int(rng.integers(15, 61))
        down, up = int(rng.integers(8, 19)), int(rng.integers(8, 19))
        speed = float(rng.uniform(0.55, 1.1))
        theta = (0.0 if r.w >= r.h else np.pi / 2) + (np.pi if rng.random() < 0.5 else 0.0) + rng.normal(0, 0.08)
        if roll_to is not None:  # step on from the side it will roll off to, lie along the bed
            sx, sy, theta = roll_to
        walk = 0 if first else int(math.hypot(sx - tl.x, sy - tl.y) / speed)
        hold = capped(hold, walk + down + up) if roll_to is None else hold
        t0, t1 = tl.t, tl.t + walk + down + hold + up
        if not reservations.free(bi, t0, t1):
            return False
        reservations.take(bi, t0, t1)
        bx = r.cx + rng.uniform(-1.0, 1.0)
        by = r.cy + rng.uniform(-1.0, 1.0)
        if first:
            tl.x, tl.y, tl.theta, tl.shape = bx, by, theta, _POSTURES["lying"].copy()
        else:
            tl.walk_to(sx, sy, speed)
            tl.morph(down, _POSTURES["lying"], TRANS_BED, dx=bx - tl.x, dy=by - tl.y, theta=theta)
        tl.hold(hold, LYING_BED, sway=0.03)
        leave_residual(0.35)
        if roll_to is None:
            tl.morph(up, _POSTURES["standing"], TRANS_BED, dx=sx - tl.x, dy=sy - tl.y)
        else:
            tl.morph(int(rng.integers(3, 7)), _POSTURES["lying"], TRANS_RISK, dx=roll_to[0] - tl.x,
                     dy=roll_to[1] - tl.y, theta=roll_to[2], easing="in")
        return True

    def fall_spots() -> list[tuple[float, float, float]]:
        """Floor beside a bed or couch where a fallen body fits, clear of the others."""
        spots = [s for bi in beds for s in _floor_beside(rng, room.things[bi], blockers, size)]
        return [s for s in spots if not crowded(s[0], s[1], tl.t, tl.t + 80, 12.0)]

    def do_fall() -> None:
        # Three kinds of fall: rolling off a bed or couch, falling beside one (along it),
        # and falling in the open, along a room axis onto free floor (not onto a bed, couch
        # or table), away from the people planned before; walk to free floor first when
        # there is none.
        u = rng.random()
        spots = fall_spots() if u < 0.65 else []
        if spots:
            x, y, theta = spots[int(rng.integers(len(spots)))]
            bi = free_bed(tl.t + 200)
            if u < 0.2 and bi is not None:
                near = [s for s in _floor_beside(rng, room.things[bi], blockers, size)
                        if not crowded(s[0], s[1], tl.t, tl.t + 80, 12.0)]
                if near and do_bed(roll_to=near[int(rng.integers(len(near)))], bi=bi):
                    after_fall()
                    return
            shift = rng.uniform(3.0, 4.0)
            tl.walk_to(x - shift * np.cos(theta), y - shift * np.sin(theta), float(rng.uniform(0.55, 1.1)))
            tl.morph(int(rng.integers(3, 7)), _POSTURES["lying"], TRANS_RISK, dx=x - tl.x, dy=y - tl.y,
                     theta=theta, easing="in")
            after_fall()
            return
        floor_blockers = [r for r in room.things if r.subcategory in ("bed", "couch", "table")]

        def fall_options() -> list[tuple[bool, bool, float, float, float]]:
            options = []
            for heading in rng.permutation(4) * np.pi / 2 + rng.normal(0, 0.2, size=4):
                shift = rng.uniform(3.0, 4.0)
                half_u, half_v = 9.0, 3.0
                ex = abs(half_u * np.cos(heading)) + abs(half_v * np.sin(heading))
                ey = (abs(half_u * np.sin(heading)) + abs(half_v * np.cos(heading))) * _ASPECT_Y
                # The fallen body stays in view.
                nx = float(np.clip(tl.x + shift * np.cos(heading), max(ex, 9.0), W - max(ex, 9.0)))
                ny = float(np.clip(tl.y + shift * np.sin(heading), max(ey, 5.0), H - max(ey, 5.0)))
                body = _Rect(nx - ex, ny - ey, nx + ex, ny + ey, "", "", 0.0)
                blocked = any(body.overlaps(b, 0.0) for b in floor_blockers)
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
        after_fall()

    def after_fall() -> None:
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
        theta = float(rng.uniform(0, 2 * np.pi))
        if blockers and rng.random() < 0.5:  # beside a piece of furniture, facing it (picking something up)
            r = blockers[int(rng.integers(len(blockers)))]
            spot = _beside(rng, r, blockers)
            if spot is not None and not crowded(spot[0], spot[1], tl.t + 10, tl.t + 80):
                tl.walk_to(spot[0], spot[1], float(rng.uniform(0.55, 1.1)))
                theta = spot[2] + float(rng.normal(0, 0.2))
        tl.morph(int(rng.integers(6, 13)), _varied(rng, name), TRANS_NORMAL, theta=theta)
        tl.hold(int(rng.integers(12, 41)), label, sway=0.05)
        tl.morph(int(rng.integers(6, 13)), _POSTURES["standing"], TRANS_NORMAL)

    def do_other() -> None:
        tl.morph(int(rng.integers(3, 6)), _varied(rng, "other"), OTHER)
        tl.hold(int(rng.integers(12, 31)), OTHER, sway=0.1, arm_wave=float(rng.uniform(0.1, 0.3)))
        tl.morph(int(rng.integers(3, 6)), _POSTURES["standing"], OTHER)

    def free_seat() -> int | None:
        # A bed's edge is a seat now and then.
        order = list(rng.permutation(seats)) if seats else []
        if edges and (not order or rng.random() < 0.25):
            order.insert(0, edges[int(rng.integers(len(edges)))])
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
