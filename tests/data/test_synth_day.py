"""The fall-free day: a believable day of one resident, no fall, written in chunks, fast."""

from __future__ import annotations

import dataclasses
import json
import time
import tracemalloc

import h5py
import numpy as np
import pytest

from thermal_action.data.annotations import load_annotations
from thermal_action.data.hdf5 import read_recording
from thermal_action.data.rooms import read_rooms
from thermal_action.data.synth.postures import (
    BENDING,
    CROUCHING,
    KNEELING,
    LYING_BED,
    LYING_RISK,
    SITTING,
    TRANS_BED,
    TRANS_RISK,
)
from thermal_action.data.synth.day import FPS, OUT_OF_VIEW, DayConfig, generate_day, plan_day

#: A quarter of an hour around waking up: in bed, out of bed, the morning.
WAKING = DayConfig(hours=0.25, start_hour=6.6, wake_hour=6.7, chunk_frames=500, seed=1)


@pytest.fixture(scope="module")
def waking(tmp_path_factory):
    root = tmp_path_factory.mktemp("day") / "ds"
    return root, generate_day(root, WAKING)


def test_a_whole_day_sleeps_in_bed_sits_kneels_bends_and_never_falls():
    plan = plan_day(DayConfig(hours=24, seed=3))
    labels = plan.labels
    hours = {c: np.count_nonzero(labels == c) / FPS / 3600 for c in range(-1, 14)}
    assert len(labels) == 24 * 3600 * 6
    assert not np.isin(labels, (LYING_RISK, TRANS_RISK)).any()  # fall-free
    assert hours[LYING_BED] > 7  # a night in bed (and naps)
    assert hours[SITTING] > 1  # on the couch and the chairs
    assert hours[OUT_OF_VIEW] > 0.2  # out of the room now and then
    # The hard negatives: getting in and out of bed, going down to pick things up.
    starts = np.flatnonzero(np.diff(labels) != 0) + 1
    assert np.count_nonzero(labels[starts] == TRANS_BED) >= 4
    assert np.count_nonzero(np.isin(labels[starts], (KNEELING, BENDING, CROUCHING))) >= 10
    # Asleep at 3 am, lying on the bed.
    t = int((3 + 24 - 21) * 3600 * FPS)
    bed = next(r for r in plan.room.furniture if r.subcategory == "bed")
    x, y = plan.person.xs[t], plan.person.ys[t]
    assert labels[t] == LYING_BED and bed.x1 < x < bed.x2 and bed.y1 < y < bed.y2


def test_the_day_files_are_a_dataset_with_furniture_and_a_rooms_file(waking):
    root, summary = waking
    rec = read_recording(root / "frames" / "DAY00.h5")
    n = WAKING.frames
    assert rec.num_frames == n == summary["frames"] and rec.frames.dtype == np.float32
    fps = (n - 1) / ((rec.timestamps[-1] - rec.timestamps[0]) / 1000)
    assert 5.5 < fps < 6.5
    assert rec.repair.repaired_frames == summary["dropped_frames"] > 0  # dropped packets, as real streams have
    anns = load_annotations(root / "annotations" / "day.json", frames_dir=root / "frames")
    kfs = anns.keyframes
    assert len(kfs) == summary["keyframes"] and abs(len(kfs) - WAKING.hours * 3600 / WAKING.keyframe_seconds) <= 1
    assert all(k.layout.source == "annotations" and {"bed", "couch", "chair"} <= {z.kind for z in k.layout.zones}
               for k in kfs)
    labels = np.concatenate([k.labels for k in kfs])
    assert LYING_BED in labels and not np.isin(labels, (LYING_RISK, TRANS_RISK)).any()
    rooms = read_rooms(root / "rooms.json")
    from_file = rooms.layout_for("DAY00", summary["mac_address"], kfs[0].timestamp)
    assert [z.kind for z in from_file.zones] == [z.kind for z in kfs[0].layout.zones]
    np.testing.assert_allclose([z.bounds for z in from_file.zones], [z.bounds for z in kfs[0].layout.zones], atol=1e-5)
    assert json.loads((root / "frames" / "sensor_info.json").read_text())["DAY00"]["total_frames"] == n


def test_the_day_is_seeded_and_does_not_depend_on_the_chunk_size(tmp_path, waking):
    root, _ = waking
    other = tmp_path / "ds"
    generate_day(other, dataclasses.replace(WAKING, chunk_frames=777))
    with h5py.File(root / "frames" / "DAY00.h5") as a, h5py.File(other / "frames" / "DAY00.h5") as b:
        np.testing.assert_array_equal(a["frames"][()], b["frames"][()])
        np.testing.assert_array_equal(a["timestamps"][()], b["timestamps"][()])
    for rel in ("annotations/day.json", "rooms.json"):
        assert (root / rel).read_bytes() == (other / rel).read_bytes()


def test_the_day_is_written_in_chunks_far_faster_than_real_time(tmp_path):
    cfg = DayConfig(hours=0.25, seed=2, chunk_frames=256)
    frames_bytes = cfg.frames * 40 * 60 * 4  # 52 MB of float32 for the quarter hour
    tracemalloc.start()
    started = time.perf_counter()
    try:
        summary = generate_day(tmp_path / "ds", cfg)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    seconds = time.perf_counter() - started
    assert peak < 0.6 * frames_bytes, peak / 1e6  # never all frames at once
    assert seconds < 0.25 * 3600 / 20, seconds  # at least 20x real time, even traced on a busy machine
    assert summary["faster_than_real_time"] > 20


def test_bad_day_configs_are_refused():
    with pytest.raises(ValueError, match="hours"):
        DayConfig(hours=0).validate()
    with pytest.raises(ValueError, match="start_hour"):
        DayConfig(start_hour=24).validate()
