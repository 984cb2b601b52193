"""One person's per-frame pose, built segment by segment: hold, walk, morph between postures."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from thermal_action.data.synth.postures import STANDING, WALKING


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
    """Per-frame pose of one person, built segment by segment up to ``n`` frames.

    Frames are kept in blocks of arrays (a hold is one block, whatever its length), so an
    hours-long timeline costs its final arrays and little more.
    """

    def __init__(self, n: int, rng: np.random.Generator, x: float, y: float, theta: float, shape: np.ndarray):
        self.n = n
        self.rng = rng
        self.x, self.y, self.theta, self.shape = x, y, theta, shape.copy()
        self._blocks: list[tuple[np.ndarray, ...]] = []  # (xs, ys, thetas, shapes (k, P), labels, arms)
        self._pending: list[tuple] = []  # single frames not yet in a block
        self._t = 0
        self._last_label: int | None = None

    @property
    def t(self) -> int:
        return self._t

    @property
    def full(self) -> bool:
        return self.t >= self.n

    def _push(self, x: float, y: float, theta: float, shape: np.ndarray, label: int, arms: float = 0.0) -> None:
        if self.full:
            return
        self._pending.append((x, y, theta, shape, label, arms))
        self._t += 1
        self._last_label = label

    def _flush(self) -> None:
        if self._pending:
            xs, ys, thetas, shapes, labels, arms = zip(*self._pending)
            self._blocks.append((np.array(xs, np.float64), np.array(ys, np.float64), np.array(thetas, np.float64),
                                 np.stack(shapes), np.array(labels, np.int64), np.array(arms, np.float64)))
            self._pending = []

    def hold(self, frames: int, label: int, sway: float = 0.06, arm_wave: float = 0.0) -> None:
        """Stays in the current posture; AR(1) sway of about ``sway / 0.6`` px.

        Drawn at once (the same numbers as one draw per frame) into one block, so an
        hours-long hold is cheap.
        """
        phase = self.rng.uniform(0, 2 * np.pi)
        drawn = self.rng.normal(0, sway, size=(max(frames, 0), 2))  # all of them: the stream goes on the same
        frames = max(0, min(frames, self.n - self.t))
        if frames == 0:
            return
        offsets = np.empty((frames, 2))
        ox = oy = 0.0
        for i, (ex, ey) in enumerate(drawn[:frames].tolist()):
            ox = 0.8 * ox + ex
            oy = 0.8 * oy + ey
            offsets[i] = ox, oy
        wave = arm_wave * (0.5 + 0.5 * np.sin(phase + np.arange(frames) * 2 * np.pi / 5))
        self._flush()
        self._blocks.append((self.x + offsets[:, 0], self.y + offsets[:, 1], np.full(frames, float(self.theta)),
                             np.broadcast_to(self.shape.copy(), (frames, len(self.shape))),
                             np.full(frames, label, np.int64), wave))
        self._t += frames
        self._last_label = label

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
        """``(xs, ys, thetas, shapes (N, P), labels, arms)`` of the ``n`` frames."""
        if self.t < self.n:  # never happens with the planner's final hold, but be safe
            self.hold(self.n - self.t, STANDING if self._last_label is None else self._last_label)
        self._flush()
        return tuple(np.concatenate([b[k] for b in self._blocks])[: self.n] for k in range(6))
