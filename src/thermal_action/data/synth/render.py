"""Rendering bodies: posture vectors to Gaussian heat blobs in the frame, and their tight boxes."""

from __future__ import annotations

import numpy as np

from thermal_action.data.synth.config import H, W
from thermal_action.data.synth.postures import _ASPECT_Y, _PI

_BOX_SIGMAS = 2.4  # box = union of component extents at this many sigmas


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
    out = np.zeros((n, H, W), np.float64)
    for t in range(n):  # add each window where it overlaps the frame
        x0, y0 = int(ox[t]), int(oy[t])
        fx0, fx1, fy0, fy1 = max(x0, 0), min(x0 + _PATCH, W), max(y0, 0), min(y0 + _PATCH, H)
        if fx0 < fx1 and fy0 < fy1:  # bodies far outside the frame are not drawn
            out[t, fy0:fy1, fx0:fx1] = patch[t, fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0]
    return out


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
