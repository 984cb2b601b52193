"""The person detector's vectorised operations equal the plain ones they replaced, exactly.

The reference (:mod:`helpers.people_reference`) is the code as it was: a Python step per
flooded pixel in ``segment_regions``, shifted copies for dilation and 3x3 means,
``np.percentile`` for the background. Random masks and heights (ties included, which decide
the flood's order) and the real recordings must give the same labels, the same boxes and
scores, and the same track ids.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import people_reference as ref

import thermal_action.people.frame as frame_mod
import thermal_action.people.person_detector as detector_mod
from thermal_action.data.hdf5 import read_recording
from thermal_action.data.synth.config import SynthConfig
from thermal_action.data.synth.recording import simulate_recording
from thermal_action.inference.boxes import track_frame
from thermal_action.people.image_ops import binary_dilate, box_mean, fill_pinholes, segment_regions
from thermal_action.people.person_detector import PersonDetector
from thermal_action.people.image_ops import sorted_percentile
from thermal_action.people.tracker import Tracker


def _random_case(rng: np.random.Generator, ties: bool) -> tuple[np.ndarray, np.ndarray, dict]:
    h, w = int(rng.integers(1, 14)), int(rng.integers(1, 14))
    mask = rng.random((h, w)) < rng.uniform(0.2, 1.0)
    heights = rng.integers(0, 4, (h, w)).astype(np.float64) if ties else rng.normal(0.0, 1.0, (h, w))
    kwargs = {"split_depth": float(rng.uniform(0, 1.5)), "min_split_area": int(rng.integers(1, 5)),
                  "peak_map": rng.normal(0.0, 1.0, (h, w)) if rng.random() < 0.5 else None,
                  "min_peak": float(rng.choice([-np.inf, 0.0, 0.5])), "trim_depth": float(rng.uniform(0, 0.5))}
    return mask, heights, kwargs


@pytest.mark.parametrize("ties", [False, True])
def test_segment_regions_equals_the_per_pixel_flood_on_random_scenes(ties):
    rng = np.random.default_rng(7 + ties)
    splits = 0
    for _ in range(600):
        mask, heights, kwargs = _random_case(rng, ties)
        expected = ref.segment_regions(mask, heights, **kwargs)
        np.testing.assert_array_equal(segment_regions(mask, heights, **kwargs), expected)
        splits += int(expected.max() > 1)
    assert splits > 100  # the cases exercise the merge decisions, not only single regions


def test_segment_regions_empty_and_full_masks():
    heights = np.arange(12, dtype=np.float64).reshape(3, 4)
    for mask in (np.zeros((3, 4), bool), np.ones((3, 4), bool)):
        np.testing.assert_array_equal(segment_regions(mask, heights, 1.0, 2),
                                      ref.segment_regions(mask, heights, 1.0, 2))


def test_small_image_operations_equal_the_shifted_copies():
    rng = np.random.default_rng(3)
    for _ in range(200):
        h, w = int(rng.integers(1, 12)), int(rng.integers(1, 12))
        mask = rng.random((h, w)) < 0.3
        for radius in (0, 1, 2, 3):
            np.testing.assert_array_equal(binary_dilate(mask, radius), ref.binary_dilate(mask, radius))
        np.testing.assert_array_equal(fill_pinholes(mask), ref.fill_pinholes(mask))
        values = rng.normal(0.0, 2.0, (h, w)).astype(np.float32)
        weights = (rng.random((h, w)) < 0.8).astype(np.float64)
        np.testing.assert_array_equal(box_mean(values, weights), ref.box_mean(values, weights))  # bit for bit


def test_sorted_percentile_is_np_percentile_to_the_last_bit():
    rng = np.random.default_rng(5)
    for n in range(1, 70):
        samples = rng.normal(18.0, 1.0, (n, 4, 6)).astype(np.float32)
        if n % 3 == 0:
            samples = np.round(samples)  # ties
        for q in (0.0, 20.0, 37.5, 50.0, 99.9, 100.0):
            got = sorted_percentile(np.sort(samples, axis=0), q).astype(np.float32)
            np.testing.assert_array_equal(got, ref.background_percentile(samples, q))


def _reference_detector(monkeypatch: pytest.MonkeyPatch) -> None:
    """Puts the plain operations back where the detector calls them."""
    for name in ("segment_regions", "binary_dilate", "box_mean", "fill_pinholes"):
        monkeypatch.setattr(frame_mod, name, getattr(ref, name))
    monkeypatch.setattr(detector_mod, "binary_dilate", ref.binary_dilate)

    def push_sample(self, sample):
        self._samples[self._next_slot] = sample
        self._next_slot = (self._next_slot + 1) % len(self._samples)
        self._num_filled = min(self._num_filled + 1, len(self._samples))
        self._background = ref.background_percentile(self._samples[: self._num_filled], self.params.percentile)

    monkeypatch.setattr(PersonDetector, "_push_sample", push_sample)


def _track(frames: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    det, tracker = PersonDetector(), Tracker()
    out = []
    for f in frames:
        d = det.update(f)
        t = track_frame(tracker, d)
        out.append((d.boxes_xyxy.copy(), d.scores.copy(), t.track_ids.copy()))
    return out


def _assert_same_tracks(fast: list, plain: list) -> int:
    assert len(fast) == len(plain)
    boxes = 0
    for (fb, fs, ft), (pb, ps, pt) in zip(fast, plain):
        np.testing.assert_array_equal(fb, pb)
        np.testing.assert_array_equal(fs, ps)
        np.testing.assert_array_equal(ft, pt)
        boxes += len(fb)
    return boxes


@pytest.mark.parametrize("seed", [0, 1])
def test_detector_and_tracker_equal_the_plain_path_on_synthetic_rooms(monkeypatch, seed):
    # People walking, sitting, falling, lying on beds, with furniture and dropped packets.
    frames = simulate_recording(SynthConfig(frames_per_recording=240, seed=seed, max_people=3), 0).frames
    fast = _track(frames)
    with monkeypatch.context() as m:
        _reference_detector(m)
        plain = _track(frames)
    assert _assert_same_tracks(fast, plain) > 0


def test_detector_and_tracker_equal_the_plain_path_on_the_real_recording(monkeypatch, shared_sample):
    frames = read_recording(shared_sample / "frames" / "SL14_R1.h5").frames
    fast = _track(frames)
    with monkeypatch.context() as m:
        _reference_detector(m)
        plain = _track(frames)
    assert _assert_same_tracks(fast, plain) > 300  # people in most of its ~500 frames
