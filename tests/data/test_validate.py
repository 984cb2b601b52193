"""`thermal-action validate`: summary numbers, collected problems, contact sheet, CLI output."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from thermal_action.cli import main
from thermal_action.data.validate import validate_dataset


def test_summary_of_a_clean_dataset(tiny_dataset, tmp_path):
    sheet = tmp_path / "out" / "sheet.png"
    report = validate_dataset(tiny_dataset.root, contact_sheet=sheet)
    assert report.problems == []
    d = report.to_dict()
    assert d["recordings"] == 2 and d["frames"] == 64
    assert d["keyframes"] == 5 and d["boxes"] == 5
    assert d["repaired_frames"] == 2 and d["invalid_pixels"] == 576 + 1152
    assert d["class_counts"]["train"]["standing"] == 1 and d["class_counts"]["val"]["lying down-lying with risk"] == 1
    assert sum(d["class_counts"]["train"].values()) == 3 and len(d["class_counts"]["val"]) == 14
    assert d["persons_per_keyframe"]["train"] == {"0": 1, "1": 1, "2": 1}
    assert d["padded_keyframes"] == 5  # 64-frame windows in 40- and 24-frame recordings
    fr = d["frame_rate"]
    assert 2.0 < fr["fps_mean"] < 8.0 and fr["step_ms_median"] == 165.0 and fr["step_ms_max"] == 510.0
    json.dumps(d)  # JSON-able
    # The same recording split across train and val is a warning, not a problem.
    assert not any("several splits" in w for w in d["warnings"])  # S1 is train only, S2 val only
    img = Image.open(sheet)
    assert img.size[0] > 60 * 6 and img.size[1] > 40 * 6  # 5 tiles of 6x upscaled frames
    rgb = np.asarray(img.convert("RGB")).astype(int)
    assert (np.abs(rgb - rgb[0, 0]).sum(-1) > 0).mean() > 0.5  # not a blank canvas
    text = report.format_text()
    for needle in ("recordings: 2", "frames: 64", "keyframes: 5", "boxes: 5", "repaired frames: 2", "problems: 0",
                   "lying down-lying with risk", "persons per keyframe"):
        assert needle in text, needle


def test_problems_are_collected_not_stopped_at(tiny_dataset, fmt):
    root = tiny_dataset.root
    (root / "frames" / "Broken.h5").write_bytes(b"junk" * 100)
    data = json.loads(tiny_dataset.train.read_text())
    data["images"][1]["frame_idx"] = 500  # out of range
    data["annotations"][0]["category_id"] = 77  # unknown category
    data["annotations"].append(dict(data["annotations"][2], id=2))  # duplicate annotation id
    tiny_dataset.train.write_text(json.dumps(data))
    (root / "annotations" / "test.json").write_text("{not json")
    report = validate_dataset(root)
    text = "\n".join(report.problems)
    assert len(report.problems) == 5, text
    for needle in ("Broken.h5: not a readable HDF5 file", "frame_idx 500 out of range", "unknown category id 77",
                   "duplicate annotation id 2", "test.json [line 1, column 2]: malformed JSON"):
        assert needle in text, needle
    # What could be read is still summarised.
    d = report.to_dict()
    assert d["recordings"] == 2 and d["keyframes"] == 4 and d["boxes"] == 4  # 5 minus the bad-category box
    assert f"problems: {len(report.problems)}" in report.format_text()


def test_recordings_shared_between_splits_are_a_warning(tiny_dataset):
    data = json.loads(tiny_dataset.val.read_text())
    s1 = json.loads(tiny_dataset.train.read_text())["images"][1]  # S1 frame 20, no boxes
    data["images"].append(dict(s1, id="S1_extra"))
    tiny_dataset.val.write_text(json.dumps(data))
    report = validate_dataset(tiny_dataset.root)
    assert report.problems == []
    assert any("several splits" in w and "S1" in w for w in report.warnings)


def test_attribute_mismatches_are_problems(tiny_dataset):
    import h5py

    with h5py.File(tiny_dataset.frames_dir / "S2.h5", "a") as f:
        f.attrs["total_frames"] = 99
        f.attrs["sensor_id"] = "S9"
    report = validate_dataset(tiny_dataset.root)
    text = "\n".join(report.problems)
    assert "total_frames attribute 99 but 24 frames" in text and "sensor_id attribute 'S9'" in text


def test_cli_json_and_strict(tiny_dataset, capsys, tmp_path, monkeypatch):
    assert main(["validate", str(tiny_dataset.root), "--json", "--no-contact-sheet"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("recordings", "keyframes", "boxes", "class_counts", "repaired_frames", "realigned_frames",
                "problems"):
        assert key in out
    assert out["keyframes"] == 5 and out["contact_sheet"] is None
    # The contact sheet goes to ./<dataset name>_contact_sheet.png by default.
    monkeypatch.chdir(tmp_path)
    assert main(["validate", str(tiny_dataset.root)]) == 0
    text = capsys.readouterr().out
    assert "keyframes: 5" in text and (tmp_path / f"{tiny_dataset.root.name}_contact_sheet.png").is_file()
    (tiny_dataset.root / "frames" / "S1.h5").unlink()
    assert main(["validate", str(tiny_dataset.root), "--strict", "--no-contact-sheet"]) == 1
    assert "S1.h5: recording file not found" in capsys.readouterr().out


def test_missing_directory_is_an_error(tmp_path):
    assert main(["validate", str(tmp_path / "nowhere")]) == 2


def test_real_sample(shared_sample, tmp_path):
    report = validate_dataset(shared_sample, contact_sheet=tmp_path / "sheet.png")
    d = report.to_dict()
    assert report.problems == []
    assert d["recordings"] == 1 and d["frames"] == 498
    assert d["keyframes"] == 46 and d["boxes"] == 92
    assert d["clipped_boxes"] == 1 and d["repaired_frames"] > 0
    assert set(d["class_counts"]) == {"train", "val"}
    assert 5.0 < d["frame_rate"]["fps_mean"] < 7.0
    assert any("several splits" in w for w in d["warnings"])  # the sample's split is per keyframe
    assert (tmp_path / "sheet.png").is_file()


def test_realigned_frames_are_counted_in_text_and_json(tiny_dataset, fmt):
    from thermal_action.data.packets import pack_frame

    frames = tiny_dataset.frames["S1"].copy()
    # Frame 5 as a real receiver writes it: packet 0 lost, the others packed at the start.
    frames[5] = pack_frame(frames[7], (0,))
    fmt.write_recording(tiny_dataset.frames_dir / "S1.h5", frames, timestamps=tiny_dataset.timestamps["S1"])
    report = validate_dataset(tiny_dataset.root)
    d = report.to_dict()
    assert report.problems == []
    assert d["repaired_frames"] == 2 and d["realigned_frames"] == 1  # frame 6 lost its tail, data in place
    s1 = next(r for r in d["recording_details"] if r["sensor_id"] == "S1")
    assert s1["realigned_frames"] == 1 and s1["repaired_frames"] == 2
    text = report.format_text()
    assert "repaired frames: 2 (" in text and "1 realigned" in text and "2 repaired (1 realigned)" in text


def _break_recording(path, kind, fmt):
    """Turns a good recording file into one of the unusable kinds."""
    import h5py

    if kind == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 3])
    elif kind == "random_bytes":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    else:
        with h5py.File(path, "a") as f:
            n = f["frames"].shape[0]
            if kind == "no_frames":
                del f["frames"]
            elif kind == "bad_shape":
                del f["frames"]
                f["frames"] = np.zeros((n, 2400), np.float32)
            elif kind == "all_dropped":
                f["frames"][...] = -273.2


@pytest.mark.parametrize("kind", ["no_frames", "bad_shape", "all_dropped", "truncated", "random_bytes"])
def test_keyframes_of_an_unusable_recording_are_counted_the_same_way(tiny_dataset, fmt, kind):
    _break_recording(tiny_dataset.frames_dir / "S1.h5", kind, fmt)  # S1 holds all 3 train keyframes, 3 boxes
    report = validate_dataset(tiny_dataset.root)
    d = report.to_dict()
    train = next(s for s in d["splits"] if s["name"] == "train")
    assert (train["keyframes"], train["boxes"]) == (0, 0)
    assert (train["unusable_keyframes"], train["unusable_boxes"]) == (3, 3)
    assert sum(train["class_counts"].values()) == 0
    assert (d["keyframes"], d["boxes"], d["unusable_keyframes"], d["unusable_boxes"]) == (2, 2, 3, 3)
    text = "\n".join(report.problems)
    # One problem for the file, one per split that uses it, and the split is left without a box.
    assert sum("S1.h5" in p and "train.json" not in p for p in report.problems) == 1, text
    assert sum("train.json [images of S1]: recording for sensor 'S1' unusable" in p for p in report.problems) == 1, text
    assert "train.json [annotations]: no labelled box in its 0 usable keyframes (3 more on unusable recordings)" in text
    assert len(report.problems) == 3, text
    assert "on unusable recordings (not counted above): 3 keyframes, 3 boxes" in report.format_text()


def test_an_annotation_file_without_boxes_is_a_problem(tiny_dataset, fmt):
    data = json.loads(tiny_dataset.val.read_text())
    tiny_dataset.val.write_text(json.dumps(dict(data, annotations=[])))
    report = validate_dataset(tiny_dataset.root)
    assert report.problems == [f"{tiny_dataset.val} [annotations]: no labelled box in its 2 usable keyframes: "
                               "nothing to train or evaluate on"]


def _furniture(image_id: str, bbox: list[float], sub: str = "bed") -> dict:
    return {"image_id": image_id, "bbox": bbox, "category": "furniture", "subcategory": sub}


def test_room_checks_furniture_outside_unknown_kinds_and_lying_people_without_a_layout(tiny_dataset):
    data = json.loads(tiny_dataset.train.read_text())
    first, second = data["images"][0]["id"], data["images"][1]["id"]
    data["context_objects"] = [
        _furniture(first, [0.8, 0.5, 0.3, 0.4]),  # bed, x 0.65-0.95: fine
        _furniture(first, [1.5, 0.5, 0.2, 0.2], "chair"),  # wholly right of the frame
        _furniture(second, [0.98, 0.5, 0.2, 0.2], "couch"),  # 0.88-1.08: pokes 4.8 px out
        _furniture(second, [0.2, 0.2, 0.1, 0.1], "wardrobe"),
        {"image_id": second, "bbox": [0.5, 0.5, 0.1, 0.1], "category": "object", "subcategory": "kettle"},
    ]
    tiny_dataset.train.write_text(json.dumps(data))
    report = validate_dataset(tiny_dataset.root, rooms=None)
    problems, warnings = "\n".join(report.problems), "\n".join(report.warnings)
    assert len(report.problems) == 1
    assert f"train.json [context_objects[1] (chair, image {first})]: furniture box [1.5, 0.5, 0.2, 0.2] lies " \
           "wholly outside the frame" in problems
    assert f"1 furniture box(es) poke out of the frame by more than 2 px (clipped to the frame): " \
           f"context_objects[2] (couch, image {second}) by 4.8 px" in warnings
    assert "furniture of unknown kind 'wardrobe' (1): zones of kind 'other'" in warnings
    # S1 (train) has a layout from its furniture; S2 (val) has a person lying and none.
    assert "val.json: 1 recording(s) have people lying (on a bed or on the floor) but no room layout" in warnings
    assert "S2 (1 boxes)" in warnings and "train.json: 1 recording(s) have people lying" not in warnings
    d = report.to_dict()
    # The third train keyframe has no context object: the annotator said nothing of the room there.
    assert d["layouts"] == {"train": {"annotations": 2, "none": 1}, "val": {"none": 2}}
    assert "room layouts of its keyframes: annotations: 2, none: 1" in report.format_text()


def test_a_rooms_file_gives_layouts_and_its_errors_and_unused_keys_are_reported(tiny_dataset, tmp_path):
    rooms = tmp_path / "rooms.json"
    rooms.write_text(json.dumps({"sensors": {
        "02:00:1A:62:51:67": [{"zones": [{"kind": "bed", "box": [0.5, 0.2, 0.9, 0.6]}]}],  # both recordings' MAC
        "S7": {"zones": []}}}))
    report = validate_dataset(tiny_dataset.root, rooms=rooms)
    assert report.problems == [] and report.rooms_file == str(rooms)
    assert report.to_dict()["layouts"] == {"train": {"rooms file": 3}, "val": {"rooms file": 2}}
    assert [w for w in report.warnings if "no room layout" in w] == []
    assert f"{rooms}: 1 key(s) name no recording of this dataset (a typo, or a sensor without recordings here): " \
           "S7" in report.warnings
    # The dataset's own rooms.json is used when none is given.
    (tiny_dataset.root / "rooms.json").write_text(rooms.read_text())
    assert validate_dataset(tiny_dataset.root).rooms_file == str(tiny_dataset.root / "rooms.json")
    # An unusable file is a problem naming the file, the sensor and the zone.
    rooms.write_text(json.dumps({"sensors": {"S1": {"zones": [{"kind": "bed", "box": [1.2, 0.1, 1.5, 0.4]}]}}}))
    report = validate_dataset(tiny_dataset.root, rooms=rooms)
    assert report.problems == [f"{rooms}: sensor 'S1', layout 0, zone 0: the zone lies wholly outside the frame "
                               "(coordinates are normalized to [0, 1]): [1.2, 0.1, 1.5, 0.4]"]


def test_cli_validate_rooms(tiny_dataset, tmp_path, capsys):
    rooms = tmp_path / "rooms.json"
    rooms.write_text(json.dumps({"sensors": {"S9": {"zones": [{"kind": "sofa", "box": [0, 0, 1, 1]}]}}}))
    assert main(["validate", str(tiny_dataset.root), "--no-contact-sheet", "--json", "--rooms", str(rooms),
                 "--strict"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["rooms_file"] == str(rooms)
    assert out["problems"] == [f"{rooms}: sensor 'S9', layout 0, zone 0: unknown zone kind 'sofa'; kinds: bed, "
                               "couch, chair, table, door, other"]
@pytest.mark.parametrize("value", [0.0, 21.5])
def test_a_dead_sensor_is_a_problem(tiny_dataset, fmt, capsys, value):
    n = len(tiny_dataset.timestamps["S2"])
    fmt.write_recording(tiny_dataset.frames_dir / "S2.h5", np.full((n, 40, 60), value, np.float32),
                        timestamps=tiny_dataset.timestamps["S2"])
    report = validate_dataset(tiny_dataset.root)
    assert [p for p in report.problems if "S2.h5 [frames]" in p] == [
        f"{tiny_dataset.frames_dir / 'S2.h5'} [frames]: every frame is {value:.1f} °C (all {n}): a dead or stuck "
        "sensor, nobody can be seen in it"]
    assert main(["validate", str(tiny_dataset.root), "--strict", "--no-contact-sheet"]) == 1
    assert "dead or stuck sensor" in capsys.readouterr().out


def test_frames_of_another_size_than_annotated_are_a_problem(tiny_dataset, fmt):
    n = len(tiny_dataset.timestamps["S2"])
    fmt.write_recording(tiny_dataset.frames_dir / "S2.h5", fmt.person_frames(n, {})[:, :30, :30],
                        timestamps=tiny_dataset.timestamps["S2"])
    report = validate_dataset(tiny_dataset.root)
    text = "\n".join(report.problems)
    assert "S2.h5 [image S2_" in text and "frames are 30x30 but the annotation says 40x60 (2 keyframes of val.json)" \
        in text, text
