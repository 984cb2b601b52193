"""Reading frames/<sensor>.h5: round trip, dropped-packet repair, Kelvin, caching, no open handles."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest

from thermal_action.errors import DatasetError
from thermal_action.data.hdf5 import RecordingCache, read_recording, read_timestamps, repair_frames


def _open_files() -> set[str]:
    out = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            out.add(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            pass
    return out


def test_round_trip_exact(tmp_path, fmt):
    frames = fmt.person_frames(7, {3: [(1, 2, 5, 6)]})
    path = fmt.write_recording(tmp_path / "frames" / "A1.h5", frames)
    rec = read_recording(path)
    assert rec.sensor_id == "A1"
    assert rec.frames.dtype == np.float32 and rec.frames.shape == (7, 40, 60)
    np.testing.assert_array_equal(rec.frames, frames)
    assert rec.timestamps.dtype == np.int64 and np.all(np.diff(rec.timestamps) > 0)
    np.testing.assert_array_equal(rec.frame_seqs, rec.timestamps)
    assert rec.attrs["total_frames"] == 7 and rec.attrs["mac_address"] == "02:00:1a:62:51:67"
    assert rec.repair.invalid_pixels == 0 and rec.repair.repaired_frames == 0
    np.testing.assert_array_equal(read_timestamps(path), rec.timestamps)


def test_no_hdf5_handle_left_open(tmp_path, fmt):
    path = fmt.write_recording(tmp_path / "B.h5", fmt.person_frames(3, {}))
    read_recording(path)
    read_timestamps(path)
    assert str(path) not in _open_files()


def test_dropped_packets_take_the_nearest_valid_frame(tmp_path, fmt, caplog):
    frames = fmt.person_frames(6, {})
    frames += np.arange(6, dtype=np.float32)[:, None, None]  # frame t is 18 + t + noise
    frames[2].reshape(-1)[-576:] = -273.2  # one packet
    frames[3].reshape(-1)[-1152:] = -273.2  # two packets
    path = fmt.write_recording(tmp_path / "C.h5", frames)
    with caplog.at_level(logging.DEBUG, logger="thermal_action.data.hdf5"):
        rec = read_recording(path)
    r = rec.repair
    assert r.invalid_pixels == 576 + 1152 and r.repaired_frames == 2 and r.repaired_frame_indices == [2, 3]
    assert r.nonfinite_pixels == 0
    assert "; 1728 invalid pixels" in caplog.text and "C.h5" in caplog.text
    flat = rec.frames.reshape(6, -1)
    raw = frames.reshape(6, -1)
    # Frame 2's packet: nearest valid is frame 1 (distance 1) -- frame 3 is invalid there too.
    np.testing.assert_array_equal(flat[2, -576:], raw[1, -576:])
    # Frame 3: the last 576 pixels are invalid in 2 as well -> frame 4 (distance 1) beats 1 (distance 2);
    # the pixels before them are valid in frame 2 and tie with frame 4 -> the earlier frame wins.
    np.testing.assert_array_equal(flat[3, -576:], raw[4, -576:])
    np.testing.assert_array_equal(flat[3, -1152:-576], raw[2, -1152:-576])
    np.testing.assert_array_equal(flat[:, :-1152], raw[:, :-1152])  # valid pixels untouched
    assert rec.frames.min() > 10


def test_nan_inf_and_impossible_values_are_repaired():
    frames = np.full((3, 4, 4), 20.0, dtype=np.float32)
    frames[1, 0, 0] = np.nan
    frames[1, 0, 1] = np.inf
    frames[1, 0, 2] = -np.inf
    frames[1, 0, 3] = 900.0  # impossible for an indoor sensor
    fixed, stats = repair_frames(frames)
    assert np.isfinite(fixed).all() and (fixed == 20.0).all()
    assert stats.invalid_pixels == 4 and stats.nonfinite_pixels == 3 and stats.repaired_frames == 1
    assert np.isnan(frames[1, 0, 0])  # input not modified


def test_kelvin_is_detected_and_converted(tmp_path, fmt):
    celsius = fmt.person_frames(4, {1: [(3, 3, 9, 9)]})
    kelvin = celsius + 273.15
    kelvin[2].reshape(-1)[-576:] = 0.0  # a dropped packet in a Kelvin pipeline: 0 K
    rec = read_recording(fmt.write_recording(tmp_path / "K.h5", kelvin))
    assert rec.repair.converted_from_kelvin
    assert rec.repair.repaired_frames == 1 and rec.repair.invalid_pixels == 576
    np.testing.assert_allclose(rec.frames[[0, 1, 3]], celsius[[0, 1, 3]], atol=1e-3)
    np.testing.assert_allclose(rec.frames[2].reshape(-1)[-576:], celsius[1].reshape(-1)[-576:], atol=1e-3)


def test_celsius_with_many_dropped_packets_is_not_mistaken_for_kelvin():
    frames = np.full((10, 40, 60), 18.0, dtype=np.float32)
    frames[:4].reshape(4, -1)[:, -2304:] = -273.2  # the worst real case, 4 packets
    fixed, stats = repair_frames(frames)
    assert not stats.converted_from_kelvin and (fixed == 18.0).all()


def test_dead_pixel_takes_its_frame_median():
    frames = np.full((3, 4, 5), 19.0, dtype=np.float32)
    frames[:, 2, 2] = -273.2  # invalid in every frame
    frames[1] += 1.0
    frames[1, 2, 2] = -273.2
    fixed, stats = repair_frames(frames)
    assert stats.dead_pixels == 1 and stats.repaired_frames == 3
    assert fixed[0, 2, 2] == 19.0 and fixed[1, 2, 2] == 20.0


def test_cache_reads_once_and_can_be_disabled(tmp_path, fmt):
    path = fmt.write_recording(tmp_path / "D.h5", fmt.person_frames(3, {}))
    cache = RecordingCache(enabled=True)
    a, b = cache.get(path), cache.get(path)
    assert a is b and cache.reads == 1 and len(cache) == 1
    nocache = RecordingCache(enabled=False)
    c, d = nocache.get(path), nocache.get(path)
    assert c is not d and nocache.reads == 2 and len(nocache) == 0
    np.testing.assert_array_equal(c.frames, a.frames)


def test_non_increasing_timestamps_are_counted(tmp_path, fmt, caplog):
    ts = np.array([10, 20, 20, 15], dtype=np.int64)
    with caplog.at_level(logging.WARNING):
        rec = read_recording(fmt.write_recording(tmp_path / "E.h5", fmt.person_frames(4, {}), timestamps=ts))
    assert rec.non_increasing_timestamps == 2
    assert "do not strictly increase" in caplog.text


def test_wrong_timestamp_count_is_an_error(tmp_path, fmt):
    import h5py

    path = fmt.write_recording(tmp_path / "F.h5", fmt.person_frames(4, {}))
    with h5py.File(path, "a") as f:
        del f["timestamps"]
        f["timestamps"] = np.arange(3, dtype=np.int64)
    with pytest.raises(DatasetError, match=r"F\.h5.*3 timestamps for 4 frames"):
        read_recording(path)


def test_real_sample(shared_sample):
    rec = read_recording(shared_sample / "frames" / "SL14_R1.h5")
    assert rec.sensor_id == "SL14_R1" and rec.frames.shape == (498, 40, 60)
    assert rec.repair.repaired_frames > 0  # the real file has dropped packets
    assert rec.repair.invalid_pixels % 576 == 0  # whole packets
    assert not rec.repair.converted_from_kelvin
    assert 0 < rec.frames.min() and rec.frames.max() <= 46.0
    assert 16.0 < float(np.median(rec.frames)) < 20.0


def _reference_repair(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Pixel by pixel: the nearest valid frame, the earlier one on a tie."""
    out = x.copy()
    n = x.shape[0]
    for t, i, j in zip(*np.nonzero(~valid)):
        for d in range(1, n):
            src = [s for s in (t - d, t + d) if 0 <= s < n and valid[s, i, j]]
            if src:
                out[t, i, j] = x[src[0], i, j]
                break
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_repair_matches_a_pixel_by_pixel_reference_including_long_runs(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(18, 1, size=(30, 3, 4)).astype(np.float32)
    invalid = rng.random(x.shape) < 0.3
    invalid[0:12, 0, 0] = True  # a run longer than the local search
    invalid[:, 1, 1] = True
    invalid[17, 1, 1] = False  # valid in one frame only: every frame copies it
    x[invalid] = -273.2
    fixed, stats = repair_frames(x)
    expected = _reference_repair(x, ~invalid)
    np.testing.assert_array_equal(fixed, expected)
    assert (fixed[:, 1, 1] == x[17, 1, 1]).all()
    assert stats.invalid_pixels == int(invalid.sum()) and stats.dead_pixels == 0
