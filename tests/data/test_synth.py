"""The synthetic generator: exact on-disk format, determinism, and a believable test bed."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from thermal_action.data.annotations import load_annotations
from thermal_action.data.rooms import person_zone_features, read_rooms, resolve_layout
from thermal_action.data.synth.config import SynthConfig
from thermal_action.data.synth.postures import (
    BENDING,
    CROUCHING,
    KNEELING,
    LEANING,
    LYING_BED,
    LYING_RISK,
    STANDING,
    TRANS_BED,
    TRANS_NORMAL,
    TRANS_RISK,
    WALKING,
)
from thermal_action.data.synth.recording import simulate_recording
from thermal_action.data.synth.write import generate_dataset
from thermal_action.data.packets import pack_frame
from thermal_action.data.synth.room import _make_room
from thermal_action.structures import DEFAULT_CLASS_NAMES, ZONE_FEATURE_NAMES, boxes_cxcywh_norm_to_xyxy

SMALL = SynthConfig(num_recordings=3, frames_per_recording=90, val_recordings=1, seed=3)
DROPPED = np.float32(-273.2)

H5_ATTRS = {"sensor_id", "mac_address", "frame_height", "frame_width", "total_frames", "min_timestamp",
            "max_timestamp", "compression", "compression_level", "corrupted_count", "created_at"}
IMAGE_KEYS = {"id", "sensor_id", "mac_address", "timestamp", "width", "height", "frame_idx"}
ANN_KEYS = {"id", "image_id", "bbox", "category_id", "category_name", "object_id", "attribute_obscured"}
RAW_LINE_KEYS = ["data_id", "mac_address", "annotator_id", "annotation_time", "data_time", "annotations"]
RAW_BOX_KEYS = ["bbox", "category", "subcategory", "attribute_obscured", "attribute_heat_residual", "object_id"]
CONTEXT_KEYS = ["image_id", "bbox", "category", "subcategory", "object_id", "attribute_obscured",
                "attribute_heat_residual"]
SENSOR_INFO_KEYS = {"hdf5_path", "mac_address", "total_frames", "corrupted_frames", "annotation_count",
                    "min_timestamp", "max_timestamp"}


@pytest.fixture(scope="module")
def default_ds(tmp_path_factory) -> tuple[Path, dict]:
    """The default dataset (8 recordings x 400 frames), written once."""
    root = tmp_path_factory.mktemp("synth_default") / "ds"
    return root, generate_dataset(root, SynthConfig())


@pytest.fixture(scope="module")
def small_ds(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth_small") / "ds"
    generate_dataset(root, SMALL)
    return root


@pytest.fixture(scope="module")
def default_recordings() -> list:
    cfg = SynthConfig()
    return [simulate_recording(cfg, i) for i in range(cfg.num_recordings)]


def _load(root: Path, split: str) -> dict:
    return json.loads((root / "annotations" / f"{split}.json").read_text())


def _runs(labels: np.ndarray) -> list[tuple[int, int, int]]:
    """(label, start, length) of every run of equal labels."""
    change = np.flatnonzero(np.diff(labels)) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [len(labels)]])
    return [(int(labels[s]), int(s), int(e - s)) for s, e in zip(starts, ends)]


def test_h5_files_have_the_exact_format(small_ds):
    files = sorted((small_ds / "frames").glob("*.h5"))
    assert [f.stem for f in files] == ["SYN00_R1", "SYN00_R2", "SYN01_R1"]
    for path in files:
        with h5py.File(path, "r") as f:
            assert set(f.keys()) == {"frames", "timestamps", "frame_seqs"}
            fr, ts, seq = f["frames"], f["timestamps"], f["frame_seqs"]
            assert fr.shape == (90, 40, 60) and fr.dtype == np.float32
            assert fr.chunks == (64, 40, 60)
            assert fr.compression == "gzip" and fr.compression_opts == 4
            assert ts.shape == (90,) and ts.dtype == np.int64 and seq.dtype == np.int64
            assert ts.chunks is None and ts.compression is None  # contiguous, like the real files
            assert np.array_equal(seq[()], ts[()])
            assert set(f.attrs) == H5_ATTRS
            assert f.attrs["sensor_id"] == path.stem
            assert f.attrs["total_frames"] == 90 and f.attrs["frame_height"] == 40 and f.attrs["frame_width"] == 60
            assert f.attrs["min_timestamp"] == ts[0] and f.attrs["max_timestamp"] == ts[-1]
            assert f.attrs["compression"] == "gzip" and f.attrs["compression_level"] == 4
            for k in ("frame_height", "frame_width", "total_frames", "min_timestamp", "max_timestamp",
                      "compression_level", "corrupted_count"):
                assert isinstance(f.attrs[k], np.int64), k
            for k in ("sensor_id", "mac_address", "compression", "created_at"):
                assert isinstance(f.attrs[k], str), k
                assert h5py.check_string_dtype(f.attrs.get_id(k).dtype).length is None  # variable-length utf-8


def test_json_files_have_the_exact_format(small_ds):
    info = json.loads((small_ds / "frames" / "sensor_info.json").read_text())
    assert sorted(info) == ["SYN00_R1", "SYN00_R2", "SYN01_R1"]
    assert all(set(v) == SENSOR_INFO_KEYS for v in info.values())
    mapping = json.loads((small_ds / "annotations" / "class_mapping.json").read_text())
    assert mapping == {"classes": list(DEFAULT_CLASS_NAMES),
                       "class_to_id": {c: i for i, c in enumerate(DEFAULT_CLASS_NAMES)}}
    timestamps = {}
    for p in (small_ds / "frames").glob("*.h5"):
        with h5py.File(p, "r") as f:
            timestamps[p.stem] = f["timestamps"][()]
    for split in ("train", "val"):
        d = _load(small_ds, split)
        assert list(d) == ["images", "annotations", "categories", "info", "context_objects"]  # as convert writes
        assert d["categories"] == [{"id": i, "name": c} for i, c in enumerate(DEFAULT_CLASS_NAMES)]
        assert set(d["info"]) == {"description", "version", "year"}
        assert d["images"] and d["annotations"]
        for im in d["images"]:
            assert set(im) == IMAGE_KEYS
            assert im["id"] == f"{im['sensor_id']}_{im['timestamp']}"
            assert timestamps[im["sensor_id"]][im["frame_idx"]] == im["timestamp"]
            assert (im["width"], im["height"]) == (60, 40)
        ids = {im["id"] for im in d["images"]}
        for a in d["annotations"]:
            assert set(a) == ANN_KEYS and a["image_id"] in ids
            assert DEFAULT_CLASS_NAMES[a["category_id"]] == a["category_name"]
            cx, cy, w, h = a["bbox"]
            assert 0 < w <= 1 and 0 < h <= 1
            assert -1e-9 <= cx - w / 2 and cx + w / 2 <= 1 + 1e-9 and -1e-9 <= cy - h / 2 and cy + h / 2 <= 1 + 1e-9
        for c in d["context_objects"]:
            assert list(c) == CONTEXT_KEYS and c["image_id"] in ids
            assert c["category"] in ("furniture", "object") and c["attribute_heat_residual"] in ("yes", "no")
    raw = (small_ds / "raw_annotations" / "SYN00_R1_annotation.json").read_text()
    assert not raw.endswith("\n")
    lines = [json.loads(x) for x in raw.split("\n")]
    assert ", " not in raw.split("\n")[0] and ": " not in raw.split("\n")[0]  # compact, like the tool
    for line in lines:
        assert list(line) == RAW_LINE_KEYS
        cats = [b["category"] for b in line["annotations"]]
        assert "person" in cats and "furniture" in cats
        assert cats == sorted(cats, key=["person", "furniture", "object"].index)
        for b in line["annotations"]:
            assert list(b) == RAW_BOX_KEYS
            if b["category"] == "person":
                assert b["subcategory"] in DEFAULT_CLASS_NAMES and b["attribute_heat_residual"] is None
            else:
                assert b["attribute_heat_residual"] in ("yes", "no")


def test_structure_matches_the_real_sample(small_ds, shared_sample):
    with h5py.File(shared_sample / "frames" / "SL14_R1.h5", "r") as real, \
            h5py.File(small_ds / "frames" / "SYN00_R1.h5", "r") as ours:
        assert set(real.keys()) == set(ours.keys())
        for k in real:
            r, o = real[k], ours[k]
            assert (r.dtype, r.shape[1:], r.chunks, r.compression, r.compression_opts, r.shuffle) == \
                (o.dtype, o.shape[1:], o.chunks, o.compression, o.compression_opts, o.shuffle), k
        assert set(real.attrs) == set(ours.attrs)
        for k in real.attrs:
            assert type(real.attrs[k]) is type(ours.attrs[k]), k
            assert real.attrs.get_id(k).dtype == ours.attrs.get_id(k).dtype, k
    rt, ot = _load(shared_sample, "train"), _load(small_ds, "train")
    assert list(rt) == [k for k in ot if k != "context_objects"]  # the sample predates context_objects
    assert set(rt["images"][0]) == set(ot["images"][0])
    assert set(rt["annotations"][0]) == set(ot["annotations"][0])
    assert rt["categories"] == ot["categories"]
    assert set(rt["info"]) == set(ot["info"])
    rm = json.loads((shared_sample / "annotations" / "class_mapping.json").read_text())
    assert rm == json.loads((small_ds / "annotations" / "class_mapping.json").read_text())
    rinfo = json.loads((shared_sample / "frames" / "sensor_info.json").read_text())
    oinfo = json.loads((small_ds / "frames" / "sensor_info.json").read_text())
    assert set(next(iter(rinfo.values()))) == set(next(iter(oinfo.values())))
    rline = json.loads((shared_sample / "raw_annotations" / "SL14_R1_annotation.json").read_text().split("\n")[0])
    oline = json.loads((small_ds / "raw_annotations" / "SYN00_R1_annotation.json").read_text().split("\n")[0])
    assert list(rline) == list(oline)
    assert list(rline["annotations"][0]) == list(oline["annotations"][0])


def test_same_seed_gives_identical_files(tmp_path, small_ds):
    other = tmp_path / "again" / "ds"  # same directory name: sensor_info holds "<name>/frames/..."
    generate_dataset(other, SMALL)
    files = sorted(p.relative_to(small_ds) for p in small_ds.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(other) for p in other.rglob("*") if p.is_file())
    for rel in files:
        assert (small_ds / rel).read_bytes() == (other / rel).read_bytes(), rel
    # A different seed gives a different recording.
    a = simulate_recording(SMALL, 0)
    b = simulate_recording(SynthConfig(**{**SMALL.__dict__, "seed": SMALL.seed + 1}), 0)
    assert not np.array_equal(a.frames, b.frames)


def test_timestamps_are_bursty_and_strictly_increasing(default_recordings):
    steps = np.concatenate([np.diff(r.timestamps) for r in default_recordings])
    assert steps.min() > 0
    assert 0.15 < np.mean((steps >= 25) & (steps <= 50)) < 0.45  # catch-up bursts ~37 ms
    assert 0.35 < np.mean((steps >= 130) & (steps <= 200)) < 0.7  # steady ~165 ms
    assert 0.05 < np.mean(steps > 300) < 0.2  # gaps
    assert steps.max() <= 2600
    fps = 1000.0 / steps.mean()
    assert 5.5 < fps < 6.5
    for r in default_recordings:
        assert np.all(np.diff(r.timestamps) > 0)


def test_dropped_packets_look_real_and_spare_keyframes(default_ds):
    root, _ = default_ds
    keyframes: dict[str, set[int]] = {}
    for split in ("train", "val"):
        for im in _load(root, split)["images"]:
            keyframes.setdefault(im["sensor_id"], set()).add(im["frame_idx"])
    total_hit = 0
    for path in sorted((root / "frames").glob("*.h5")):
        with h5py.File(path, "r") as f:
            frames = f["frames"][()]
        flat = frames.reshape(len(frames), -1)
        bad = flat == DROPPED
        per_frame = bad.sum(1)
        hit = np.flatnonzero(per_frame)
        total_hit += len(hit)
        assert len(hit) <= 0.13 * len(frames)
        assert not set(hit.tolist()) & keyframes[path.stem], path.stem
        for i in hit:
            k = per_frame[i] // 576
            assert per_frame[i] == 576 * k and 1 <= k <= 4
            assert bad[i, -576 * k:].all()  # the tail in raster order
        valid = flat[~bad]
        assert valid.min() > 3.9 and valid.max() <= 45.0
    assert total_hit > 50  # the default dataset has plenty of them


def test_dropped_packets_are_random_packets_packed_at_the_start(default_recordings):
    """As real receivers write them: the packets that arrived first, then -273.2 °C."""
    lost_first = lost_last_only = 0
    for rec in default_recordings:
        assert len(rec.lost_packets) == len(rec.dropped_frames) == len(rec.dropped_clean_frames)
        for t, k, lost, clean in zip(rec.dropped_frames, rec.dropped_blocks, rec.lost_packets,
                                     rec.dropped_clean_frames):
            assert len(lost) == k and set(lost) <= {0, 1, 2, 3}  # the short packet 4 always arrives
            np.testing.assert_array_equal(rec.frames[t], pack_frame(clean, lost))
            assert not (clean == DROPPED).any() and clean.min() > 3.9
            lost_first += 0 in lost and k < 4
            lost_last_only += lost == (3,)
    # Not only the tail: in the real sample packet 0 was lost most often (15 of 31 single losses).
    assert lost_first > 1.5 * lost_last_only > 0


def test_pack_flag_off_keeps_data_in_place_and_changes_nothing_else():
    packed = simulate_recording(SMALL, 1)
    tail = simulate_recording(dataclasses.replace(SMALL, pack_dropped_packets=False), 1)
    assert packed.dropped_frames.tolist() == tail.dropped_frames.tolist() and len(tail.dropped_frames)
    np.testing.assert_array_equal(packed.timestamps, tail.timestamps)
    np.testing.assert_array_equal(packed.keyframes, tail.keyframes)
    fine = np.setdiff1d(np.arange(len(tail.frames)), tail.dropped_frames)
    np.testing.assert_array_equal(packed.frames[fine], tail.frames[fine])
    for t, k, clean in zip(tail.dropped_frames, tail.dropped_blocks, tail.dropped_clean_frames):
        flat, truth = tail.frames[t].ravel(), clean.ravel()
        np.testing.assert_array_equal(flat[: -576 * k], truth[: -576 * k])  # the data where it was
        assert (flat[-576 * k:] == DROPPED).all()


def _blob_centroid(frame: np.ndarray, box: np.ndarray, pad: int = 3) -> np.ndarray:
    x1, y1 = max(0, int(box[0]) - pad), max(0, int(box[1]) - pad)
    x2, y2 = min(60, int(np.ceil(box[2])) + pad), min(40, int(np.ceil(box[3])) + pad)
    win = frame[y1:y2, x1:x2]
    weight = np.clip(win - np.median(frame) - 2.0, 0, None)
    ys, xs = np.mgrid[y1:y2, x1:x2]
    return np.array([(weight * xs).sum(), (weight * ys).sum()]) / max(weight.sum(), 1e-6)


def test_walking_moves_standing_does_not(default_recordings):
    """Walking and standing differ only by motion, measured on the frames themselves."""
    step = 6
    moved = {WALKING: [], STANDING: []}
    sizes = {WALKING: [], STANDING: []}
    for rec in default_recordings:
        n = len(rec.frames)
        ok = (rec.frames > -200).all(axis=(1, 2))
        for p in rec.people:
            others = [q for q in rec.people if q is not p]
            for t in range(0, n - step, 3):
                lab = p.labels[t]
                if lab not in moved or not (p.labels[t: t + step + 1] == lab).all() or not (ok[t] and ok[t + step]):
                    continue
                region = np.concatenate([np.minimum(p.boxes_xyxy[t, :2], p.boxes_xyxy[t + step, :2]),
                                         np.maximum(p.boxes_xyxy[t, 2:], p.boxes_xyxy[t + step, 2:])])
                if any(np.hypot(*(q.centers[tt] - p.centers[tt])) < 16 for q in others for tt in (t, t + step)):
                    continue  # someone else is close: the centroid would mix two people
                c0 = _blob_centroid(rec.frames[t], region)
                c1 = _blob_centroid(rec.frames[t + step], region)
                moved[lab].append(np.hypot(*(c1 - c0)))
                b = p.boxes_xyxy[t]
                sizes[lab].append((b[2] - b[0]) * (b[3] - b[1]))
    assert len(moved[WALKING]) > 30 and len(moved[STANDING]) > 30
    walk, stand = np.median(moved[WALKING]), np.median(moved[STANDING])
    assert walk > 3.0, walk
    assert stand < 1.0, stand
    # Same blob: the tight boxes are the same size.
    assert abs(np.median(sizes[WALKING]) / np.median(sizes[STANDING]) - 1) < 0.1


def test_people_are_warm_blobs(default_ds):
    root, _ = default_ds
    d = _load(root, "train")
    by_id = {im["id"]: im for im in d["images"]}
    frames = {}
    excess = []
    for a in d["annotations"][::3]:
        im = by_id[a["image_id"]]
        if im["sensor_id"] not in frames:
            with h5py.File(root / "frames" / f"{im['sensor_id']}.h5", "r") as f:
                frames[im["sensor_id"]] = f["frames"][()]
        fr = frames[im["sensor_id"]][im["frame_idx"]]
        x1, y1, x2, y2 = boxes_cxcywh_norm_to_xyxy(np.array(a["bbox"]), 60, 40)[0]
        box = fr[int(y1): int(np.ceil(y2)), int(x1): int(np.ceil(x2))]
        excess.append(box[box < 36].max() - np.median(fr))  # the kettle is not a person
    med = np.median(excess)
    assert 5.0 < med < 8.5, med
    medians = [np.median(f[f > -200]) for f in frames.values()]
    assert 15.5 < min(medians) and max(medians) < 20.0


def test_lying_boxes_are_elongated_and_large(default_ds):
    root, _ = default_ds
    anns = _load(root, "train")["annotations"] + _load(root, "val")["annotations"]

    def stats(classes):
        wh = np.array([[a["bbox"][2] * 60, a["bbox"][3] * 40] for a in anns if a["category_id"] in classes])
        return np.median(wh.max(1) / wh.min(1)), np.median(wh.prod(1)), wh

    lying_el, lying_area, _ = stats({LYING_RISK, LYING_BED})
    stand_el, stand_area, wh = stats({STANDING, WALKING})
    assert lying_el > 1.6 and lying_el > 1.4 * stand_el, (lying_el, stand_el)
    assert lying_area > 1.3 * stand_area
    # Sizes like real boxes (7-19 px wide, 4-18 px high, median 11 x 8).
    all_wh = np.array([[a["bbox"][2] * 60, a["bbox"][3] * 40] for a in anns])
    assert 8 <= np.median(all_wh[:, 0]) <= 13 and 6 <= np.median(all_wh[:, 1]) <= 11
    assert np.percentile(all_wh, 2, axis=0).min() >= 4 and np.percentile(all_wh, 98, axis=0).max() <= 22


def test_falls_are_fast_transitions_other_transitions_slower(default_recordings):
    fall_runs, other_runs, rolled = [], [], []
    for rec in default_recordings:
        n = len(rec.frames)
        for p in rec.people:
            runs = _runs(p.labels)
            for j, (lab, start, length) in enumerate(runs):
                ends_early = start + length == n
                if lab == TRANS_RISK:
                    fall_runs.append(length)
                    if not ends_early:
                        assert runs[j + 1][0] == LYING_RISK  # a fall ends lying on the floor
                    b0, b1 = p.boxes_xyxy[max(0, start - 1)], p.boxes_xyxy[start + length - 1]
                    if start and p.labels[start - 1] == LYING_BED:
                        # Rolled off a bed or couch: the lying body moves off it sideways.
                        rolled.append(np.hypot(*(p.centers[start + length - 1] - p.centers[start - 1])))
                        continue
                    # The body flattens out fast: box area grows by half within the run.
                    area = lambda b: (b[2] - b[0]) * (b[3] - b[1])  # noqa: E731
                    assert area(b1) > 1.3 * area(b0)
                elif lab in (TRANS_BED,) and not ends_early and start > 0:
                    other_runs.append(length)
    assert fall_runs, "the default dataset has falls"
    assert all(3 <= r <= 6 for r in fall_runs), fall_runs
    assert all(d > 3.0 for d in rolled), rolled
    assert other_runs and min(other_runs) >= 8
    assert np.median(other_runs) > 2 * np.median(fall_runs)


def test_transition_ends_look_like_their_end_posture(default_recordings):
    """A transition's last frame looks almost like its end posture: only the past tells them apart."""
    close = 0
    for rec in default_recordings:
        for p in rec.people:
            for lab, start, length in _runs(p.labels):
                end = start + length
                if lab == TRANS_NORMAL and end < len(p.labels) and p.labels[end] == BENDING:
                    last, after = p.boxes_xyxy[end - 1], p.boxes_xyxy[min(end + 2, len(p.labels) - 1)]
                    close += np.abs(last - after).max() < 1.0
    assert close >= 1


def test_every_class_appears_in_the_default_dataset(default_ds):
    root, summary = default_ds
    train = {a["category_id"] for a in _load(root, "train")["annotations"]}
    val = {a["category_id"] for a in _load(root, "val")["annotations"]}
    assert train == set(range(14))
    assert len(train | val) == 14
    assert summary["missing_classes"]["train"] == []
    # Imbalanced, as real data is.
    counts = np.array(list(summary["class_counts"]["train"].values()))
    assert counts.max() > 8 * counts.min()


def test_split_is_by_whole_recording(default_ds):
    root, summary = default_ds
    train, val = _load(root, "train"), _load(root, "val")
    tr = {im["sensor_id"] for im in train["images"]}
    va = {im["sensor_id"] for im in val["images"]}
    assert not tr & va
    assert va == {"SYN03_R1", "SYN03_R2"}  # the last two recordings (a room of its own)
    assert len(tr) == 6
    ids = [a["id"] for a in train["annotations"] + val["annotations"]]
    assert len(ids) == len(set(ids))
    assert [r["split"] for r in summary["recordings"]] == ["train"] * 6 + ["val"] * 2


def test_leaning_happens_next_to_a_wall(default_recordings):
    dist = []
    for rec in default_recordings:
        for p in rec.people:
            for t in np.flatnonzero(p.labels == LEANING):
                x, y = p.centers[t]
                dist.append(min(x, 60 - x, y, 40 - y))
    assert dist and np.median(dist) < 6.0


def test_bad_config_is_refused(tmp_path):
    with pytest.raises(ValueError, match="val_recordings"):
        generate_dataset(tmp_path / "x", SynthConfig(num_recordings=2, val_recordings=2))
    with pytest.raises(ValueError, match="people"):
        SynthConfig(min_people=3, max_people=1).validate()


def _on_and_near_lying_furniture(rec, person) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per keyframe: label, share of the annotated box on a bed or couch, and the distance of
    its centre to the nearest bed or couch (frame diagonals)."""
    f = person_zone_features(person.annotated_boxes_xyxy, rec.layout, 40, 60)
    col = {n: i for i, n in enumerate(ZONE_FEATURE_NAMES)}
    on = np.maximum(f[:, col["on_bed"]], f[:, col["on_couch"]])
    near = np.minimum(f[:, col["near_bed"]], f[:, col["near_couch"]])
    return person.labels[rec.keyframes], on, near


def test_lying_on_furniture_is_on_it_and_falls_are_off_it_often_beside_it(default_recordings):
    """Lying on a bed or couch and lying on the floor beside one look alike: the layout tells them apart."""
    on_bed, on_floor, near_floor = [], [], []
    for rec in default_recordings:
        for p in rec.people:
            labels, on, near = _on_and_near_lying_furniture(rec, p)
            on_bed += on[labels == LYING_BED].tolist()
            on_floor += on[labels == LYING_RISK].tolist()
            near_floor += near[labels == LYING_RISK].tolist()
    assert len(on_bed) > 50 and len(on_floor) > 50
    assert np.mean(np.array(on_bed) > 0.5) > 0.95  # the box is mostly on a bed or couch
    assert np.mean(np.array(on_floor) > 0.5) < 0.05  # a fallen person lies on the floor...
    # ... in many falls right beside a bed or couch (box centre within ~7 px of it).
    assert np.mean(np.array(near_floor) < 0.1) > 0.3


def test_people_kneel_bend_and_crouch_beside_furniture(default_recordings):
    near_low = []
    for rec in default_recordings:
        for p in rec.people:
            f = person_zone_features(p.annotated_boxes_xyxy, rec.layout, 40, 60)
            nearest = f[:, [ZONE_FEATURE_NAMES.index(f"near_{k}") for k in ("bed", "couch", "chair")]].min(1)
            low = np.isin(p.labels[rec.keyframes], (KNEELING, BENDING, CROUCHING))
            near_low += nearest[low].tolist()
    assert len(near_low) > 20
    assert np.mean(np.array(near_low) < 0.12) > 0.3  # within ~9 px of a piece of furniture


def test_layouts_vary_across_rooms_and_change_between_a_rooms_recordings():
    rooms = [[_make_room(0, room, 0.3, take) for take in range(2)] for room in range(24)]
    kinds = [tuple(sorted(r.subcategory for r in first.furniture)) for first, _ in rooms]
    assert len(set(kinds)) >= 6  # beds, couches, chairs and tables in many combinations
    beds = [(r.cx, r.cy) for first, _ in rooms for r in first.furniture if r.subcategory == "bed"]
    assert np.std(beds, axis=0).min() > 6  # beds all over the frame, not in one place
    changed = [first.layout().zones != second.layout().zones for first, second in rooms]
    assert 0.3 < np.mean(changed) < 0.9
    for first, second in rooms:
        assert first.mac_address == second.mac_address  # the same sensor
        assert bool(second.changes) == (first.layout().zones != second.layout().zones)


def test_rooms_json_gives_every_recording_its_furniture_at_its_time(default_ds):
    root, summary = default_ds
    rooms = read_rooms(root / "rooms.json")
    cfg = SynthConfig()
    recs = {r["sensor_id"]: r for r in summary["recordings"]}
    assert any(not r["furniture_labelled"] for r in recs.values())  # some recordings need the file
    assert any(n > 1 for n in summary["layouts"].values())  # some room's furniture moved between recordings
    truth = {rec.sensor_id: rec.layout for rec in (simulate_recording(cfg, i) for i in range(cfg.num_recordings))}
    for split in ("train", "val"):
        for kf in load_annotations(root / "annotations" / f"{split}.json").keyframes:
            mac = kf.extras["mac_address"]
            from_file = rooms.layout_for(kf.sensor_id, mac, kf.timestamp)
            assert from_file.source == "rooms file"
            resolved = resolve_layout(kf.layout, rooms, kf.sensor_id, mac, kf.timestamp)
            if recs[kf.sensor_id]["furniture_labelled"]:
                assert kf.layout.source == "annotations" and resolved is kf.layout
            else:
                assert not kf.layout.known and resolved is from_file
            for got in (kf.layout, from_file) if kf.layout.known else (from_file,):
                want = truth[kf.sensor_id]
                assert [z.kind for z in got.zones] == [z.kind for z in want.zones]
                np.testing.assert_allclose([z.bounds for z in got.zones], [z.bounds for z in want.zones], atol=1e-4)
def test_an_existing_dataset_is_not_replaced_without_force(tmp_path, capsys):
    from thermal_action.cli import main

    root = tmp_path / "ds"
    tiny = ["--recordings", "2", "--frames", "20", "--val-recordings", "1"]
    assert main(["synth", str(root), *tiny]) == 0
    capsys.readouterr()
    (root / "annotations" / "train.json").write_text('{"hand": "made"}')
    assert main(["synth", str(root), *tiny, "--seed", "4"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--force" in err
    for name in ("sensor_info.json", "train.json", "val.json"):
        assert name in err
    assert (root / "annotations" / "train.json").read_text() == '{"hand": "made"}'
    assert main(["synth", str(root), *tiny, "--seed", "4", "--force"]) == 0
    assert "images" in json.loads((root / "annotations" / "train.json").read_text())


def test_an_absurd_size_is_refused_before_any_memory_is_taken(tmp_path):
    with pytest.raises(ValueError, match=r"8 recordings x 100000000 frames .* GB of frames, over the 10 GB limit"):
        generate_dataset(tmp_path / "x", SynthConfig(frames_per_recording=100_000_000))
    assert not (tmp_path / "x").exists()
