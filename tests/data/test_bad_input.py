"""Every kind of bad input: a clear DatasetError naming file and record, or a counted, logged repair."""

from __future__ import annotations

import dataclasses
import json
import logging

import numpy as np
import pytest

from thermal_action.config import DataConfig
from thermal_action.data.annotations import load_annotations
from thermal_action.data.dataset import build_dataset
from thermal_action.errors import DatasetError
from thermal_action.data.hdf5 import read_recording


def _one_keyframe(tmp_path, fmt, bbox=None, category=1, frame_idx=1, timestamp=None, n_frames=4):
    """A dataset of one recording Q (n_frames) and one annotated keyframe; returns (ann path, frames dir)."""
    path = fmt.write_recording(tmp_path / "frames" / "Q.h5", fmt.person_frames(n_frames, {}))
    ts = np.asarray(read_recording(path).timestamps)
    im = {"id": "Q_1", "sensor_id": "Q", "timestamp": int(ts[min(frame_idx, n_frames - 1)]) if timestamp is None
          else timestamp, "width": 60, "height": 40, "frame_idx": frame_idx}
    ann = {"id": 5, "image_id": "Q_1", "bbox": bbox or fmt.box_px(10, 10, 20, 18), "category_id": category,
           "object_id": 0}
    return fmt.write_annotations(tmp_path / "annotations" / "train.json", [im], [ann]), tmp_path / "frames"


# --- HDF5 ------------------------------------------------------------------------------------


def test_missing_hdf5_file(tmp_path, fmt):
    with pytest.raises(DatasetError, match=r"nope\.h5: recording file not found"):
        read_recording(tmp_path / "nope.h5")
    ann, frames = _one_keyframe(tmp_path, fmt)
    (frames / "Q.h5").unlink()
    with pytest.raises(DatasetError, match=r"train\.json \[images of Q\].*Q\.h5: recording file not found"):
        load_annotations(ann, frames_dir=frames)


def test_unreadable_hdf5_file(tmp_path):
    bad = tmp_path / "junk.h5"
    bad.write_bytes(b"this is not an HDF5 file at all" * 10)
    with pytest.raises(DatasetError, match=r"junk\.h5: not a readable HDF5 file"):
        read_recording(bad)


def test_missing_frames_dataset(tmp_path, fmt):
    path = fmt.write_recording(tmp_path / "R.h5", fmt.person_frames(3, {}), with_frames=False)
    with pytest.raises(DatasetError, match=r"R\.h5 \[frames\]: no 'frames' dataset \(found: \['frame_seqs', 'timestamps'\]\)"):
        read_recording(path)


def test_frames_of_the_wrong_shape(tmp_path, fmt):
    import h5py

    path = fmt.write_recording(tmp_path / "S.h5", fmt.person_frames(3, {}))
    with h5py.File(path, "a") as f:
        del f["frames"]
        f["frames"] = np.zeros((3, 2400), np.float32)
    with pytest.raises(DatasetError, match=r"S\.h5 \[frames\]: 'frames' must be \(N, H, W\)"):
        read_recording(path)


def test_nan_and_infinite_temperatures_are_repaired_counted_and_logged(tmp_path, fmt, caplog):
    frames = fmt.person_frames(5, {})
    frames[2, 3, 4] = np.nan
    frames[2, 5, 6] = np.inf
    frames[4, 0, 0] = -np.inf
    path = fmt.write_recording(tmp_path / "N.h5", frames)
    with caplog.at_level(logging.DEBUG, logger="thermal_action.data.hdf5"):
        rec = read_recording(path)
    assert np.isfinite(rec.frames).all()
    assert rec.repair.nonfinite_pixels == 3 and rec.repair.invalid_pixels == 3 and rec.repair.repaired_frames == 2
    assert rec.frames[2, 3, 4] == frames[1, 3, 4] and rec.frames[4, 0, 0] == frames[3, 0, 0]
    assert "N.h5: repaired 2 of 5 frames (0 realigned packed packets; 3 invalid pixels, 3 NaN/inf" in caplog.text


def test_a_recording_that_cannot_be_repaired(tmp_path, fmt):
    frames = np.full((3, 40, 60), -273.2, np.float32)
    frames[1, 0, 0] = np.nan
    path = fmt.write_recording(tmp_path / "Dead.h5", frames)
    with pytest.raises(DatasetError, match=r"Dead\.h5 \[frames\]: no valid temperature in any frame"):
        read_recording(path)


# --- annotations -------------------------------------------------------------------------


def test_frame_idx_out_of_range(tmp_path, fmt):
    ann, frames = _one_keyframe(tmp_path, fmt, frame_idx=9, timestamp=123)
    with pytest.raises(DatasetError, match=r"train\.json \[image Q_1\]: frame_idx 9 out of range: .*Q\.h5 has 4 frames"):
        load_annotations(ann, frames_dir=frames)
    cfg = DataConfig(root=str(tmp_path))
    with pytest.raises(DatasetError, match="frame_idx 9 out of range"):
        build_dataset(cfg, cfg.train_ann, train=False)
    # Without the frames check (annotations loaded on their own), the dataset still refuses the item.
    from thermal_action.data.clips import ClipBuilder
    from thermal_action.data.dataset import ThermalClipDataset

    ds = ThermalClipDataset(load_annotations(ann).keyframes, frames, ClipBuilder(8, 2))
    with pytest.raises(DatasetError, match=r"Q\.h5 \[image Q_1\]: frame_idx 9 out of range"):
        ds[0]


def test_timestamp_disagrees_with_frame_idx(tmp_path, fmt):
    ann, frames = _one_keyframe(tmp_path, fmt, frame_idx=1, timestamp=42)
    with pytest.raises(DatasetError, match=r"train\.json \[image Q_1\]: timestamp 42 disagrees with .*Q\.h5: "
                                           r"timestamps\[1\] = \d+"):
        load_annotations(ann, frames_dir=frames)


def test_box_poking_out_slightly_is_clipped_and_counted(tmp_path, fmt, caplog):
    ann, frames = _one_keyframe(tmp_path, fmt, bbox=fmt.box_px(-1.5, 30, 8.5, 41))
    with caplog.at_level(logging.INFO, logger="thermal_action.data.annotations"):
        anns = load_annotations(ann, frames_dir=frames)
    assert len(anns.clipped_boxes) == 1 and anns.clipped_boxes[0].overhang_px == pytest.approx(1.5)
    assert anns.clipped_boxes[0].annotation_id == 5
    np.testing.assert_allclose(anns.keyframes[0].boxes_xyxy[0], [0, 30, 8.5, 40], atol=1e-5)
    np.testing.assert_allclose(anns.keyframes[0].boxes_cxcywh_norm[0], fmt.box_px(0, 30, 8.5, 40), atol=1e-6)
    assert "annotation id 5 (image Q_1)]: box poked 1.50 px out of the frame; clipped" in caplog.text


def test_box_far_outside_the_frame(tmp_path, fmt):
    ann, frames = _one_keyframe(tmp_path, fmt, bbox=fmt.box_px(55, 10, 66, 18))
    with pytest.raises(DatasetError, match=r"train\.json \[annotation id 5 \(image Q_1\)\]: box lies 6\.00 px outside"):
        load_annotations(ann, frames_dir=frames)
    ann, frames = _one_keyframe(tmp_path, fmt, bbox=[1.5, 0.5, 0.1, 0.1])  # entirely outside
    with pytest.raises(DatasetError, match="outside the 60x40 frame"):
        load_annotations(ann)


def test_box_of_zero_size(tmp_path, fmt):
    ann, _ = _one_keyframe(tmp_path, fmt, bbox=[0.5, 0.5, 0.0, 0.1])
    with pytest.raises(DatasetError, match=r"train\.json \[annotation id 5 \(image Q_1\)\]: box of zero size"):
        load_annotations(ann)
    ann, _ = _one_keyframe(tmp_path, fmt, bbox=[0.5, 0.5, float("nan"), 0.1])
    with pytest.raises(DatasetError, match="non-finite"):
        load_annotations(ann)
    ann, _ = _one_keyframe(tmp_path, fmt, bbox=[0.5, 0.5, 0.1])
    with pytest.raises(DatasetError, match="must be 4 numbers"):
        load_annotations(ann)


def test_unknown_category_id(tmp_path, fmt):
    ann, _ = _one_keyframe(tmp_path, fmt, category=14)
    with pytest.raises(DatasetError, match=r"train\.json \[annotations\[0\] id 5\]: unknown category id 14 \(known: 0\.\.13\)"):
        load_annotations(ann)


def test_duplicate_image_ids(tmp_path, fmt):
    ts = np.array([1, 2])
    im = fmt.image("Q", 0, ts)
    path = fmt.write_annotations(tmp_path / "a.json", [im, dict(im, frame_idx=1)], [])
    with pytest.raises(DatasetError, match=rf"a\.json \[images\[1\] id {im['id']}\]: duplicate image id"):
        load_annotations(path)


def test_duplicate_annotation_ids(tmp_path, fmt):
    im = fmt.image("Q", 0, np.array([1]))
    anns = [fmt.annotation(3, im["id"], (1, 1, 5, 5)), fmt.annotation(3, im["id"], (9, 9, 15, 15))]
    path = fmt.write_annotations(tmp_path / "a.json", [im], anns)
    with pytest.raises(DatasetError, match=r"a\.json \[annotations\[1\] id 3\]: duplicate annotation id 3"):
        load_annotations(path)


def test_annotation_of_an_unknown_image(tmp_path, fmt):
    im = fmt.image("Q", 0, np.array([1]))
    path = fmt.write_annotations(tmp_path / "a.json", [im], [fmt.annotation(0, "Q_999", (1, 1, 5, 5))])
    with pytest.raises(DatasetError, match=r"\[annotations\[0\] id 0\]: unknown image_id Q_999"):
        load_annotations(path)


def test_malformed_json(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"images": [\n  {"id": 1,}\n]}')
    with pytest.raises(DatasetError, match=r"broken\.json \[line 2, column \d+\]: malformed JSON"):
        load_annotations(path)
    path.write_text(json.dumps([1, 2]))
    with pytest.raises(DatasetError, match="expected an object with 'images' and 'annotations'"):
        load_annotations(path)
    with pytest.raises(DatasetError, match=r"missing\.json: annotation file not found"):
        load_annotations(tmp_path / "missing.json")


def test_missing_image_fields(tmp_path, fmt):
    path = fmt.write_annotations(tmp_path / "a.json", [{"id": "x", "sensor_id": "Q", "timestamp": 1}], [])
    with pytest.raises(DatasetError, match=r"a\.json \[images\[0\] id x\]: image lacks \['frame_idx'\]"):
        load_annotations(path)


def test_frames_of_another_size_than_annotated(tmp_path, fmt):
    ann, frames = _one_keyframe(tmp_path, fmt)
    fmt.write_recording(frames / "Q.h5", np.full((4, 30, 30), 18.0, np.float32),
                        timestamps=read_recording(frames / "Q.h5").timestamps)
    cfg = dataclasses.replace(DataConfig(root=str(tmp_path)), num_frames=4)
    ds = build_dataset(cfg, cfg.train_ann, train=False)
    with pytest.raises(DatasetError, match=r"Q\.h5 \[image Q_1\]: frames are 30x30 but the annotation says 40x60"):
        ds[0]


def test_box_of_negative_size_says_negative(tmp_path, fmt):
    ann, _ = _one_keyframe(tmp_path, fmt, bbox=[0.5, 0.5, -0.1, 0.205])
    with pytest.raises(DatasetError, match=r"train\.json \[annotation id 5 \(image Q_1\)\]: box of negative width "
                                           r"\(-6\.00 x 8\.20 px\)"):
        load_annotations(ann)
    ann, _ = _one_keyframe(tmp_path, fmt, bbox=[0.5, 0.5, -0.1, -0.1])
    with pytest.raises(DatasetError, match=r"box of negative width and height \(-6\.00 x -4\.00 px\)"):
        load_annotations(ann)


def test_integer_frames_are_converted_with_a_warning(tmp_path, fmt, caplog):
    import h5py

    from thermal_action.data.validate import validate_dataset

    ann, frames_dir = _one_keyframe(tmp_path, fmt, n_frames=6)
    whole = np.round(read_recording(frames_dir / "Q.h5").frames)
    fmt.write_recording(frames_dir / "F.h5", whole)  # the same values as float32
    with h5py.File(frames_dir / "Q.h5", "a") as f:
        del f["frames"]
        f["frames"] = whole.astype(np.int16)
    with caplog.at_level(logging.WARNING, logger="thermal_action.data.hdf5"):
        rec = read_recording(frames_dir / "Q.h5")
    assert "Q.h5: 'frames' are int16, not float32: converted to float32" in caplog.text
    assert rec.frames.dtype == np.float32 and rec.repair.converted_from_dtype == "int16"
    as_float = read_recording(frames_dir / "F.h5")
    assert as_float.repair.converted_from_dtype is None
    np.testing.assert_array_equal(rec.frames, as_float.frames)
    report = validate_dataset(tmp_path, contact_sheet=None)
    assert any("1 recordings have integer frames, converted to float32 as whole degrees: Q (int16)" in w
               for w in report.warnings), report.warnings


def test_find_recordings_names_the_path_that_is_not_there(tmp_path):
    from thermal_action.data.hdf5 import find_recordings

    (tmp_path / "d").mkdir()
    for name in ("b.h5", "a.h5", "notes.txt"):
        (tmp_path / "d" / name).write_bytes(b"")
    (tmp_path / "one.h5").write_bytes(b"")
    assert find_recordings([tmp_path / "one.h5", tmp_path / "d"]) == [
        tmp_path / "one.h5", tmp_path / "d" / "a.h5", tmp_path / "d" / "b.h5"]
    (tmp_path / "empty").mkdir()
    for paths, pattern in (([tmp_path / "nope.h5"], r"nope\.h5: recording file not found"),
                           ([tmp_path / "d", tmp_path / "empty"], r"empty: no \.h5 recordings in this folder"),
                           ([], "no .h5 recordings given")):
        with pytest.raises(DatasetError, match=pattern) as info:
            find_recordings(paths)
        assert isinstance(info.value, FileNotFoundError)
