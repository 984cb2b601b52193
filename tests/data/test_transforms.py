"""Normalisation and augmentations: boxes follow the frames, temperature jitter, determinism."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from thermal_action.data.transforms import (
    AugmentParams,
    Augmenter,
    Normalizer,
    apply_geometry,
    apply_temperature,
    background_level,
    jitter_boxes,
    rot90_boxes,
)


def _blob_clip(h: int, w: int, box: tuple[int, int, int, int], t: int = 3) -> np.ndarray:
    clip = np.zeros((t, h, w), dtype=np.float32)
    x1, y1, x2, y2 = box
    clip[:, y1:y2, x1:x2] = 1.0
    return clip


def _box_of_blob(frame: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(frame > 0.5)
    return [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


@pytest.mark.parametrize(
    "hflip,vflip,turns",
    [(h, v, k) for h, v, k in itertools.product([False, True], [False, True], [0, 2])],
)
def test_boxes_follow_flips_and_half_turns_of_a_rectangle(hflip, vflip, turns):
    box = (7, 3, 19, 11)  # asymmetric position in a 40 x 60 frame
    clip = _blob_clip(40, 60, box)
    out, boxes = apply_geometry(clip, np.array([box], dtype=np.float64), AugmentParams(hflip, vflip, turns))
    assert out.shape == (3, 40, 60)
    assert boxes[0].tolist() == _box_of_blob(out[0])


@pytest.mark.parametrize("turns", [1, 2, 3])
def test_boxes_follow_quarter_turns_of_a_square(turns):
    box = (2, 5, 9, 8)
    clip = _blob_clip(12, 12, box)
    out, boxes = apply_geometry(clip, np.array([box], dtype=np.float64), AugmentParams(True, False, turns))
    assert boxes[0].tolist() == _box_of_blob(out[0])


@pytest.mark.parametrize("k", [1, 2, 3])
def test_rot90_boxes_matches_numpy_and_torch_on_a_rectangle(k):
    box = (7, 3, 19, 11)
    clip = _blob_clip(40, 60, box)
    rotated = np.rot90(clip, k, axes=(1, 2))
    b = rot90_boxes(np.array([box], dtype=np.float64), k, 40, 60)
    assert b[0].tolist() == _box_of_blob(rotated[0])
    bt = rot90_boxes(torch.tensor([box], dtype=torch.float32), k, 40, 60)
    assert bt[0].tolist() == b[0].tolist()
    assert torch.equal(torch.rot90(torch.from_numpy(clip), k, dims=(-2, -1)), torch.from_numpy(rotated.copy()))


def test_quarter_turn_of_a_rectangle_is_refused_and_never_drawn():
    with pytest.raises(ValueError, match="rotate the batch"):
        apply_geometry(np.zeros((2, 40, 60), np.float32), np.zeros((0, 4)), AugmentParams(quarter_turns=1))
    aug = Augmenter(flip=False, rotate=True)
    rng = np.random.default_rng(0)
    assert {aug.sample(rng, 0, 40, 60).quarter_turns for _ in range(200)} == {0, 2}
    assert {aug.sample(rng, 0, 8, 8).quarter_turns for _ in range(200)} == {0, 1, 2, 3}


def test_background_level_is_the_median():
    x = np.arange(101, dtype=np.float32).reshape(1, 1, 101)
    assert background_level(x, stride=1) == 50.0
    rng = np.random.default_rng(0)
    x = rng.normal(18, 0.3, size=(32, 40, 60)).astype(np.float32)
    x[:, 10:18, 20:30] += 7.0  # a person does not move the estimate
    assert background_level(x) == pytest.approx(float(np.median(x)), abs=0.02)


def test_temperature_offset_cancels_in_background_mode_gain_scales_contrast():
    rng = np.random.default_rng(0)
    clip = rng.normal(18, 0.3, size=(4, 10, 10)).astype(np.float32)
    clip[:, 2:5, 2:5] += 6.0
    norm = Normalizer("background", background_scale=8.0)
    ref = norm(clip.copy(), background_level(clip))
    shifted = clip.copy()
    bg = apply_temperature(shifted, background_level(clip), AugmentParams(temp_offset=3.0))
    assert bg == pytest.approx(background_level(shifted), abs=1e-4)
    np.testing.assert_allclose(norm(shifted, bg), ref, atol=1e-5)
    gained = clip.copy()
    bg = apply_temperature(gained, background_level(clip), AugmentParams(temp_gain=0.5))
    np.testing.assert_allclose(norm(gained, bg), 1.5 * ref, atol=1e-5)
    fixed = Normalizer("fixed", fixed_range=(5.0, 45.0))
    out = fixed(np.array([[[0.0, 5.0, 25.0, 45.0, 60.0]]], dtype=np.float32))
    np.testing.assert_allclose(out[0, 0], [0.0, 0.0, 0.5, 1.0, 1.0])


def test_normalizer_rejects_bad_settings():
    with pytest.raises(ValueError, match="normalization"):
        Normalizer("zscore")
    with pytest.raises(ValueError, match="fixed_range"):
        Normalizer("fixed", fixed_range=(45.0, 5.0))


def test_box_jitter_stays_in_frame_and_never_collapses():
    boxes = np.array([[0.0, 0.0, 3.0, 2.0], [50.0, 30.0, 60.0, 40.0], [20, 10, 30, 20]])
    rng = np.random.default_rng(0)
    for _ in range(200):
        j = jitter_boxes(boxes, rng.normal(0, 2.0, size=boxes.shape), 40, 60)
        assert (j[:, 0] >= 0).all() and (j[:, 2] <= 60).all() and (j[:, 1] >= 0).all() and (j[:, 3] <= 40).all()
        assert ((j[:, 2] - j[:, 0]) >= 1.0).all() and ((j[:, 3] - j[:, 1]) >= 1.0).all()
    small = jitter_boxes(boxes, np.full(boxes.shape, 0.25), 40, 60)
    np.testing.assert_allclose(small[2], [20.25, 10.25, 30.25, 20.25])


def test_augmenter_is_deterministic_per_generator_seed():
    aug = Augmenter()
    a = aug.sample(np.random.default_rng([1, 2, 3]), 2, 40, 60)
    b = aug.sample(np.random.default_rng([1, 2, 3]), 2, 40, 60)
    c = aug.sample(np.random.default_rng([1, 3, 3]), 2, 40, 60)
    assert (a.hflip, a.vflip, a.quarter_turns, a.temp_offset, a.time_shift) == (
        b.hflip, b.vflip, b.quarter_turns, b.temp_offset, b.time_shift)
    np.testing.assert_array_equal(a.box_noise, b.box_noise)
    assert a.temp_offset != c.temp_offset
    assert abs(a.time_shift) <= 2
    off = Augmenter(flip=False, rotate=False, temp_offset=0, temp_gain=0, box_jitter=0, temporal_jitter=0)
    p = off.sample(np.random.default_rng(0), 3, 40, 60)
    assert p == AugmentParams()
