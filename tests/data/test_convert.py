"""Raw labelling-tool JSONL -> train/val JSON: round trip with the generator, matching, splits, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from thermal_action.data.convert import convert_annotations, read_raw_annotations
from thermal_action.errors import DatasetError
from thermal_action.data.synth.config import SynthConfig
from thermal_action.data.synth.write import generate_dataset, write_h5

CFG = SynthConfig(num_recordings=3, frames_per_recording=120, val_recordings=1, seed=5)


@pytest.fixture(scope="module")
def synth_ds(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("convert") / "ds"
    generate_dataset(root, CFG)
    return root


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def _convert(root: Path, out: Path, **kw) -> dict:
    return convert_annotations(root / "raw_annotations", root / "frames", out, **kw)


def _tiny_recording(tmp_path: Path, lines: list[str], n: int = 30) -> tuple[Path, Path, np.ndarray]:
    """One sensor "S1" with n frames 100 ms apart and the given raw lines."""
    frames_dir, raw_dir = tmp_path / "frames", tmp_path / "raw"
    frames_dir.mkdir()
    raw_dir.mkdir()
    ts = 1_760_000_000_000 + 100 * np.arange(n, dtype=np.int64)
    write_h5(frames_dir / "S1.h5", "S1", "02:00:00:00:00:01", np.full((n, 40, 60), 18.0, np.float32), ts, 0)
    (raw_dir / "S1_annotation.json").write_text("\n".join(lines))
    return raw_dir, frames_dir, ts


def _line(t: int, subcategory: str = "standing", boxes: list | None = None, annotation_time: int = 0) -> str:
    boxes = boxes if boxes is not None else [
        {"bbox": [0.5, 0.5, 0.2, 0.25], "category": "person", "subcategory": subcategory,
         "attribute_obscured": "0%", "attribute_heat_residual": None, "object_id": 0},
        {"bbox": [0.1, 0.1, 0.1, 0.1], "category": "furniture", "subcategory": "chair",
         "attribute_obscured": "0%", "attribute_heat_residual": "no", "object_id": 1},
    ]
    return json.dumps({"data_id": "S1", "mac_address": "02:00:00:00:00:01", "annotator_id": "t",
                       "annotation_time": annotation_time, "data_time": int(t), "annotations": boxes},
                      separators=(",", ":"))


def test_round_trip_reproduces_the_generators_annotations(synth_ds, tmp_path):
    summary = _convert(synth_ds, tmp_path / "out", val_fraction=1 / 3)
    for split in ("train", "val"):
        ours = _load(tmp_path / "out" / f"{split}.json")
        ref = _load(synth_ds / "annotations" / f"{split}.json")
        assert ours["images"] == ref["images"]
        assert ours["annotations"] == ref["annotations"]  # same boxes, frame_idx, labels, ids
        assert ours["categories"] == ref["categories"]
        assert ours["context_objects"] == ref["context_objects"]  # the furniture, as the generator wrote it
    assert _load(tmp_path / "out" / "class_mapping.json") == _load(synth_ds / "annotations" / "class_mapping.json")
    assert summary["unmatched"]["count"] == 0
    assert summary["split"]["mode"] == "recording" and summary["split"]["val_recordings"] == ["SYN01_R1"]
    # Objects and furniture are kept, separately, with their image.
    train = _load(tmp_path / "out" / "train.json")
    ctx = train["context_objects"]
    assert ctx and {c["category"] for c in ctx} <= {"object", "furniture"}
    assert {c["image_id"] for c in ctx} <= {im["id"] for im in train["images"]}
    assert set(ctx[0]) >= {"image_id", "bbox", "category", "subcategory", "object_id"}
    raw_boxes = sum(len(json.loads(x)["annotations"])
                    for p in (synth_ds / "raw_annotations").glob("*.json") for x in p.read_text().split("\n"))
    assert summary["person_boxes"] + summary["context_boxes"] == raw_boxes


def test_nearest_timestamp_matching_reports_what_is_too_far(tmp_path):
    root = tmp_path / "ds"
    generate_dataset(root, SynthConfig(**{**CFG.__dict__, "data_time_jitter_ms": 30}))
    ok = _convert(root, tmp_path / "a", val_fraction=1 / 3)
    assert ok["unmatched"]["count"] == 0
    # With the exact data_time gone, matching still finds the generator's frames.
    assert _load(tmp_path / "a" / "train.json")["images"] == _load(root / "annotations" / "train.json")["images"]
    strict = _convert(root, tmp_path / "b", val_fraction=1 / 3, tolerance_ms=5)
    n_un = strict["unmatched"]["count"]
    assert n_un > 0
    assert strict["keyframes"] + n_un == strict["raw_keyframes"]  # nothing silently lost
    item = strict["unmatched"]["items"][0]
    assert abs(item["delta_ms"]) > 5 and item["line"] >= 1 and item["file"].endswith("_annotation.json")


def test_single_recording_splits_by_time_block(tmp_path):
    ts = 1_760_000_000_000 + 100 * np.arange(30)
    raw, frames, ts = _tiny_recording(tmp_path, [_line(t) for t in ts[::3]])
    s = convert_annotations(raw, frames, tmp_path / "out", val_fraction=0.2)
    assert s["split"]["mode"] == "time_block" and "one recording" in s["split"]["note"]
    train = _load(tmp_path / "out" / "train.json")["images"]
    val = _load(tmp_path / "out" / "val.json")["images"]
    assert len(val) == 2 and len(train) == 8
    assert max(i["frame_idx"] for i in train) < min(i["frame_idx"] for i in val)


def test_random_split_is_seeded(synth_ds, tmp_path):
    a = _convert(synth_ds, tmp_path / "a", split="random", seed=1, val_fraction=0.25)
    b = _convert(synth_ds, tmp_path / "b", split="random", seed=1, val_fraction=0.25)
    c = _convert(synth_ds, tmp_path / "c", split="random", seed=2, val_fraction=0.25)
    va = _load(tmp_path / "a" / "val.json")["images"]
    assert va == _load(tmp_path / "b" / "val.json")["images"]
    assert va != _load(tmp_path / "c" / "val.json")["images"]
    assert a["split"]["mode"] == "random" and "optimistic" in a["split"]["note"]
    assert a["split"]["images"]["val"] == round(0.25 * a["keyframes"]) == b["split"]["images"]["val"]
    assert len({i["sensor_id"] for i in va}) > 1  # keyframes of every recording, i.e. leaky
    assert c["keyframes"] == a["keyframes"]


def test_unknown_action_names_file_and_line(tmp_path):
    ts = 1_760_000_000_000 + 100 * np.arange(30)
    raw, frames, _ = _tiny_recording(tmp_path, [_line(ts[0]), _line(ts[5], "standing up"), _line(ts[9])])
    with pytest.raises(DatasetError, match=r"S1_annotation\.json \[line 2, box 0\].*unknown action.*'standing up'"):
        convert_annotations(raw, frames, tmp_path / "out")


def test_malformed_json_names_file_and_line(tmp_path):
    ts = 1_760_000_000_000 + 100 * np.arange(30)
    raw, frames, _ = _tiny_recording(tmp_path, [_line(ts[0]), _line(ts[3]), _line(ts[6])[:-5]])
    with pytest.raises(DatasetError, match=r"S1_annotation\.json \[line 3\]: malformed JSON"):
        convert_annotations(raw, frames, tmp_path / "out")
    # The reader on its own says the same.
    with pytest.raises(DatasetError, match=r"line 3"):
        read_raw_annotations(raw / "S1_annotation.json")


def test_missing_frames_file_and_bad_box_are_errors(tmp_path):
    ts = 1_760_000_000_000 + 100 * np.arange(30)
    raw, frames, _ = _tiny_recording(tmp_path, [_line(ts[0])])
    (raw / "S2_annotation.json").write_text(_line(ts[0]).replace('"S1"', '"S2"'))
    with pytest.raises(DatasetError, match=r"S2_annotation\.json.*no frames file"):
        convert_annotations(raw, frames, tmp_path / "out")
    (raw / "S2_annotation.json").unlink()
    far_out = [{"bbox": [1.1, 0.5, 0.2, 0.25], "category": "person", "subcategory": "standing", "object_id": 0}]
    (raw / "S1_annotation.json").write_text(_line(ts[0], boxes=far_out))
    with pytest.raises(DatasetError, match=r"line 1, box 0"):
        convert_annotations(raw, frames, tmp_path / "out")


def test_edges_duplicates_and_empty_keyframes_are_counted(tmp_path):
    ts = 1_760_000_000_000 + 100 * np.arange(30)
    lines = [
        _line(ts[1]),  # too close to the start for min_context_frames=3
        _line(ts[10], "walking", annotation_time=1),
        _line(ts[10] + 20, "sitting", annotation_time=2),  # same frame, annotated later: wins
        _line(ts[15], boxes=[]),  # no person: a negative keyframe, kept
        _line(ts[20]),
    ]
    raw, frames, _ = _tiny_recording(tmp_path, lines)
    s = convert_annotations(raw, frames, tmp_path / "out", val_fraction=0.0, min_context_frames=3)
    assert s["left_out_near_edges"]["count"] == 1 and s["left_out_near_edges"]["items"][0]["line"] == 1
    assert s["duplicate_keyframes"]["count"] == 1 and s["duplicate_keyframes"]["items"][0]["kept_line"] == 3
    assert s["keyframes_without_persons"] == 1
    train = _load(tmp_path / "out" / "train.json")
    assert [i["frame_idx"] for i in train["images"]] == [10, 15, 20]
    assert [a["category_name"] for a in train["annotations"]] == ["sitting", "standing"]
    assert _load(tmp_path / "out" / "val.json")["images"] == []


def test_real_sample_converts_to_its_own_annotations(tmp_path, shared_sample):
    s = convert_annotations(shared_sample / "raw_annotations", shared_sample / "frames", tmp_path / "out")
    assert s["unmatched"]["count"] == 0 and s["keyframes"] == 46
    assert s["split"]["mode"] == "time_block"

    def by_key(files):
        out = {}
        for f in files:
            d = _load(f)
            frame_of = {im["id"]: im["frame_idx"] for im in d["images"]}
            for a in d["annotations"]:
                out[(frame_of[a["image_id"]], a["object_id"])] = (a["image_id"], a["bbox"], a["category_id"])
        return out

    ours = by_key([tmp_path / "out" / "train.json", tmp_path / "out" / "val.json"])
    ref = by_key([shared_sample / "annotations" / "train.json", shared_sample / "annotations" / "val.json"])
    assert ours == ref
    assert s["context_boxes"] == 98  # 46 kettles, 46 chairs, 6 laptops


def test_a_hand_made_split_is_not_replaced_without_overwrite(synth_ds, tmp_path):
    out = tmp_path / "ann"
    out.mkdir()
    (out / "val.json").write_text('{"hand": "made"}')
    with pytest.raises(FileExistsError, match=r"convert-annotations would replace existing files: .*val\.json.*--force"):
        _convert(synth_ds, out)
    assert (out / "val.json").read_text() == '{"hand": "made"}'
    _convert(synth_ds, out, overwrite=True)
    assert "images" in _load(out / "val.json")
