"""Loading annotations/*.json: box conversion, class list, extras, frame checks, the real sample."""

from __future__ import annotations

import json

import numpy as np
import pytest

from thermal_action.data.annotations import load_annotations, load_class_names
from thermal_action.errors import DatasetError
from thermal_action.structures import DEFAULT_CLASS_NAMES


def test_tiny_dataset_loads(shared_tiny_dataset):
    ds = shared_tiny_dataset
    anns = load_annotations(ds.train, frames_dir=ds.frames_dir)
    assert [k.frame_idx for k in anns.keyframes] == [0, 20, 39]
    assert [k.num_boxes for k in anns.keyframes] == [2, 0, 1]  # a keyframe without persons is kept
    k0 = anns.keyframes[0]
    assert k0.sensor_id == "S1" and k0.timestamp == int(ds.timestamps["S1"][0])
    np.testing.assert_allclose(k0.boxes_xyxy, np.array(ds.boxes["S1"][0], dtype=np.float32), atol=1e-4)
    assert k0.labels.tolist() == [1, 3] and k0.track_ids.tolist() == [0, 1]
    assert k0.annotation_ids.tolist() == [0, 1]
    assert k0.boxes_xyxy.dtype == np.float32 and k0.labels.dtype == np.int64
    assert anns.keyframes[1].boxes_xyxy.shape == (0, 4)
    assert anns.class_names == list(DEFAULT_CLASS_NAMES)
    assert anns.num_boxes == 3 and anns.class_counts()["lying down-lying with risk"] == 1
    assert anns.clipped_boxes == [] and anns.problems == []


def test_ten_pixel_box_stays_ten_pixels(tmp_path, fmt):
    ts = np.array([100])
    im = fmt.image("Z", 0, ts)
    # 10 x 8 px box at an arbitrary (non-integer) position
    ann = {"id": 0, "image_id": im["id"], "bbox": [23.3 / 60, 17.1 / 40, 10 / 60, 8 / 40], "category_id": 2}
    anns = load_annotations(fmt.write_annotations(tmp_path / "a.json", [im], [ann]))
    b = anns.keyframes[0].boxes_xyxy[0]
    assert b[2] - b[0] == pytest.approx(10.0, abs=1e-4)
    assert b[3] - b[1] == pytest.approx(8.0, abs=1e-4)
    assert b[0] == pytest.approx(18.3, abs=1e-4) and b[1] == pytest.approx(13.1, abs=1e-4)
    np.testing.assert_allclose(anns.keyframes[0].boxes_cxcywh_norm[0], ann["bbox"], atol=1e-6)
    assert anns.keyframes[0].track_ids.tolist() == [-1]  # no object_id


def test_class_names_from_class_mapping_when_no_categories(tmp_path, fmt):
    names = ["a", "b", "c"]
    (tmp_path / "class_mapping.json").write_text(json.dumps({"classes": names,
                                                             "class_to_id": {n: i for i, n in enumerate(names)}}))
    im = fmt.image("Z", 0, np.array([5]))
    ann = {"id": 0, "image_id": im["id"], "bbox": [0.5, 0.5, 0.1, 0.1], "category_id": 2}
    anns = load_annotations(fmt.write_annotations(tmp_path / "a.json", [im], [ann], categories=None))
    assert anns.class_names == names and anns.keyframes[0].labels.tolist() == [2]
    assert load_class_names(tmp_path / "class_mapping.json") == names


def test_categories_win_and_must_be_contiguous(tmp_path, fmt):
    im = fmt.image("Z", 0, np.array([5]))
    cats = [{"id": 0, "name": "x"}, {"id": 2, "name": "y"}]
    with pytest.raises(DatasetError, match=r"a\.json \[categories\].*0\.\.1"):
        load_annotations(fmt.write_annotations(tmp_path / "a.json", [im], [], categories=cats))


def test_category_name_must_match_category_id(tmp_path, fmt):
    im = fmt.image("Z", 0, np.array([5]))
    ann = fmt.annotation(7, im["id"], (1, 1, 5, 5), category=1)
    ann["category_name"] = "walking"
    with pytest.raises(DatasetError, match=r"annotations\[0\] id 7.*'walking' disagrees"):
        load_annotations(fmt.write_annotations(tmp_path / "a.json", [im], [ann]))


def test_extra_keys_are_kept(tmp_path, fmt):
    im = fmt.image("Z", 0, np.array([5]), room="kitchen")
    ann = fmt.annotation(0, im["id"], (1, 1, 5, 5))
    path = fmt.write_annotations(tmp_path / "a.json", [im], [ann],
                                 objects=[{"image_id": im["id"], "subcategory": "water kettle"}])
    anns = load_annotations(path)
    kf = anns.keyframes[0]
    assert kf.extras == {"mac_address": "02:00:1a:62:51:67", "room": "kitchen"}
    assert kf.box_extras == [{"category_name": "standing", "attribute_obscured": "0%"}]
    assert anns.extras["objects"][0]["subcategory"] == "water kettle"
    assert anns.extras["info"]["year"] == 2025


def test_collect_mode_gathers_every_problem_and_keeps_the_rest(tmp_path, fmt):
    ts = np.array([5, 6, 7])
    ims = [fmt.image("Z", 0, ts), fmt.image("Z", 1, ts), fmt.image("Z", 1, ts)]  # third: duplicate id
    anns = [
        fmt.annotation(0, ims[0]["id"], (1, 1, 5, 5)),
        dict(fmt.annotation(1, ims[0]["id"], (1, 1, 5, 5)), category_id=99, category_name=None),
        fmt.annotation(1, ims[1]["id"], (1, 1, 5, 5)),  # duplicate annotation id
        fmt.annotation(2, ims[1]["id"], (10, 10, 20, 20)),
        fmt.annotation(3, "nope", (1, 1, 5, 5)),
    ]
    problems: list[DatasetError] = []
    out = load_annotations(fmt.write_annotations(tmp_path / "a.json", ims, anns), problems=problems)
    text = "\n".join(str(p) for p in problems)
    assert len(problems) == 4, text
    assert "duplicate image id" in text and "unknown category id 99" in text
    assert "duplicate annotation id 1" in text and "unknown image_id nope" in text
    assert all("a.json" in str(p) for p in problems)
    assert out.problems == problems
    assert [k.annotation_ids.tolist() for k in out.keyframes] == [[0], [2]]


def test_real_sample_annotations(shared_sample):
    frames = shared_sample / "frames"
    train = load_annotations(shared_sample / "annotations" / "train.json", frames_dir=frames)
    val = load_annotations(shared_sample / "annotations" / "val.json", frames_dir=frames)
    assert len(train.keyframes) + len(val.keyframes) == 46
    assert train.num_boxes + val.num_boxes == 92
    assert train.class_names == list(DEFAULT_CLASS_NAMES)
    # One real box pokes 0.06 px above the top edge: clipped and counted, not rejected.
    clipped = train.clipped_boxes + val.clipped_boxes
    assert len(clipped) == 1 and 0 < clipped[0].overhang_px < 0.1
    kf = {k.image_id: k for k in train.keyframes}[clipped[0].image_id]
    i = kf.annotation_ids.tolist().index(clipped[0].annotation_id)
    assert kf.boxes_xyxy[i, 1] == 0.0
    for anns in (train, val):
        for k in anns.keyframes:
            assert (k.boxes_xyxy[:, :2] >= 0).all() and (k.boxes_xyxy[:, 2] <= 60).all()
            assert (k.boxes_xyxy[:, 3] <= 40).all()
            w = k.boxes_xyxy[:, 2] - k.boxes_xyxy[:, 0]
            assert ((w > 4) & (w < 20)).all()  # people are 7-19 px wide
