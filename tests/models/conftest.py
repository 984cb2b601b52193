"""Fixtures for the model tests: seeding, tiny inputs and a loop-by-definition RoIAlign.

Helpers are fixtures (not an importable module) because the suite runs with
``--import-mode=importlib``, where test directories are not on ``sys.path``.
"""

from __future__ import annotations

import math

import pytest
import torch

#: Full-size variants run on the smallest input that survives their stride-16 stem+stages.
FULL_SIZE_HW = (32, 32)
#: Compact variants run on a small thermal-like clip.
COMPACT_HW = (32, 48)


def is_full_size(name: str) -> bool:
    return "_r50" in name or "_r101" in name


def clip_pair(alpha: int, batch: int, slow_frames: int, height: int, width: int, seed: int = 0):
    """A seeded ``(slow, fast)`` pair with ``fast = alpha * slow`` frames."""
    gen = torch.Generator().manual_seed(seed)
    fast = torch.randn(batch, 1, alpha * slow_frames, height, width, generator=gen)
    slow = fast[:, :, alpha // 2 :: alpha].contiguous()
    return slow, fast


def _bilinear(fmap: torch.Tensor, y: float, x: float) -> torch.Tensor:
    h, w = fmap.shape[-2:]
    if y < -1.0 or y > h or x < -1.0 or x > w:
        return torch.zeros(fmap.shape[0], dtype=fmap.dtype)
    y, x = max(y, 0.0), max(x, 0.0)
    y_low, x_low = int(math.floor(y)), int(math.floor(x))
    if y_low >= h - 1:
        y_low = y_high = h - 1
        y = float(y_low)
    else:
        y_high = y_low + 1
    if x_low >= w - 1:
        x_low = x_high = w - 1
        x = float(x_low)
    else:
        x_high = x_low + 1
    ly, lx = y - y_low, x - x_low
    hy, hx = 1 - ly, 1 - lx
    return (
        hy * hx * fmap[:, y_low, x_low]
        + hy * lx * fmap[:, y_low, x_high]
        + ly * hx * fmap[:, y_high, x_low]
        + ly * lx * fmap[:, y_high, x_high]
    )


def roi_align_loop(features, rois, out_h, out_w, scale, sampling_ratio, aligned):
    """RoIAlign as its definition reads: loops over RoIs, bins and sample points, float64."""
    features = features.double()
    out = torch.zeros(rois.shape[0], features.shape[1], out_h, out_w, dtype=torch.float64)
    off = 0.5 if aligned else 0.0
    for r, (b, x1, y1, x2, y2) in enumerate(rois.double().tolist()):
        sx, sy = x1 * scale - off, y1 * scale - off
        rw, rh = x2 * scale - off - sx, y2 * scale - off - sy
        if not aligned:
            rw, rh = max(rw, 1.0), max(rh, 1.0)
        bh, bw = rh / out_h, rw / out_w
        gh = sampling_ratio if sampling_ratio > 0 else math.ceil(rh / out_h)
        gw = sampling_ratio if sampling_ratio > 0 else math.ceil(rw / out_w)
        count = max(gh * gw, 1)
        for p in range(out_h):
            for q in range(out_w):
                acc = torch.zeros(features.shape[1], dtype=torch.float64)
                for iy in range(gh):
                    y = sy + p * bh + (iy + 0.5) * bh / gh
                    for ix in range(gw):
                        x = sx + q * bw + (ix + 0.5) * bw / gw
                        acc += _bilinear(features[int(b)], y, x)
                out[r, :, p, q] = acc / count
    return out


@pytest.fixture(autouse=True)
def _seed_and_single_thread():
    """Seeds every test and runs it on one intra-op thread.

    The inputs are tiny, so threads buy nothing, and on a shared 2-core machine an
    OpenMP barrier waiting for a descheduled thread made an R101 step cost 5-10 s of
    CPU instead of 0.4 s.
    """
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(name="roi_align_loop")
def _roi_align_loop_fixture():
    return roi_align_loop


@pytest.fixture(name="variant_clip")
def _variant_clip_fixture():
    """``fn(name, alpha, batch=2) -> (slow, fast)``: the smallest sensible clip for a variant."""

    def make(name: str, alpha: int, batch: int = 2):
        h, w = FULL_SIZE_HW if is_full_size(name) else COMPACT_HW
        return clip_pair(alpha, batch, 1 if is_full_size(name) else 2, h, w)

    return make


@pytest.fixture(name="clip_pair")
def _clip_pair_fixture():
    return clip_pair
