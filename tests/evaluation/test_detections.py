"""The one detections-file reader: every form, evaluate's keyframe view, errors naming file and record."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from thermal_action.errors import DatasetError
from thermal_action.evaluation.detections import read_detections, read_detections_file

RECS = [
    {"image_id": "S1_1000", "bbox": [0.5, 0.5, 0.2, 0.3], "score": 0.9, "category_id": 4},
    {"image_id": "S1_1000", "bbox": [0.2, 0.2, 0.1, 0.1], "score": 0.05, "track_id": 2},
    {"image_id": "S2_1200", "bbox": [0.3, 0.3, 0.1, 0.2], "class": "person"},
    {"image_id": "S2_1200", "bbox": [0.6, 0.6, 0.1, 0.2], "class": "dog"},
]


@pytest.mark.parametrize("form", ["list", "wrapped", "lines"])
def test_every_json_form_gives_evaluate_the_same_keyframes(tmp_path: Path, form):
    path = tmp_path / "d.json"
    if form == "list":
        path.write_text(json.dumps(RECS))
    elif form == "wrapped":
        path.write_text(json.dumps({"detections": RECS}))
    else:
        path.write_text("\n".join(json.dumps(r) for r in RECS) + "\n\n")
    dets = read_detections(path)
    assert list(dets) == ["S1_1000", "S2_1200"]
    np.testing.assert_allclose(dets["S1_1000"].boxes_cxcywh_norm, [[0.5, 0.5, 0.2, 0.3], [0.2, 0.2, 0.1, 0.1]])
    assert dets["S1_1000"].scores.tolist() == [0.9, 0.05]
    assert dets["S2_1200"].scores.tolist() == [1.0]  # the dog is left out, the person has no score
    parsed = read_detections_file(path)
    assert parsed.skipped_non_person == 1 and parsed.sensor_ids() == {"S1", "S2"} and not parsed.has_unnamed()


def test_min_score_keeps_the_keyframe_with_no_box(tmp_path: Path, caplog):
    path = tmp_path / "d.json"
    path.write_text(json.dumps(RECS[:2] + [{"image_id": "S3_5", "bbox": [0.5, 0.5, 0.1, 0.1], "score": 0.01}]))
    with caplog.at_level("INFO"):
        dets = read_detections(path, min_score=0.1)
    assert dets["S1_1000"].scores.tolist() == [0.9]
    assert dets["S3_5"].boxes_cxcywh_norm.shape == (0, 4)  # listed, so scored as "nobody there"
    assert "dropped 2 of 3" in caplog.text


def test_evaluate_needs_keyframe_ids(tmp_path: Path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(RECS[0]) + "\n" + json.dumps({"frame_idx": 3, "bbox": [0.5, 0.5, 0.1, 0.1]}) + "\n")
    with pytest.raises(DatasetError, match="only 'frame_idx'") as e:
        read_detections(path)
    assert str(path) in str(e.value) and "line 2" in str(e.value)
    yolo = tmp_path / "yolo"
    yolo.mkdir()
    (yolo / "7.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    with pytest.raises(DatasetError, match="only 'frame_idx'") as e:
        read_detections(yolo)
    assert "7.txt line 1" in str(e.value)


@pytest.mark.parametrize(
    "record, message",
    [
        ({"bbox": [0.5, 0.5, 0.1, 0.1]}, "needs 'image_id'"),
        ({"image_id": "a"}, "needs 'bbox'"),
        ({"image_id": ["a"], "bbox": [0.5, 0.5, 0.1, 0.1]}, "image_id must be"),
        ({"image_id": "a", "bbox": [0.5, 0.5, 0.0, 0.1]}, "box of zero size"),
        ({"image_id": "a", "bbox": [0.5, 0.5, 0.1, 0.1], "track_id": -1}, "track_id must be"),
        ("not an object", "must be an object"),
    ],
)
def test_errors_name_the_file_and_the_record(tmp_path: Path, record, message):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(RECS[0]) + "\n" + json.dumps(record) + "\n")
    with pytest.raises(DatasetError, match=message) as e:
        read_detections_file(path)
    assert str(path) in str(e.value) and "line 2" in str(e.value)


def test_missing_and_non_list_files(tmp_path: Path):
    with pytest.raises(DatasetError, match="not found"):
        read_detections(tmp_path / "nope.json")
    path = tmp_path / "d.json"
    path.write_text("3")
    with pytest.raises(DatasetError, match="JSON list"):
        read_detections(path)
