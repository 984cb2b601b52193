"""Evaluation files: predictions.json, detections files, ground truth, metrics output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from thermal_action.errors import DatasetError
from thermal_action.evaluation.detections import read_detections
from thermal_action.evaluation.frame_ap import GroundTruthFrame
from thermal_action.evaluation.io import (
    format_metrics_table,
    make_prediction_records,
    read_metrics,
    read_predictions,
    write_evaluation,
    write_predictions,
)
from thermal_action.evaluation.metrics import compute_metrics
from thermal_action.structures import DEFAULT_CLASS_NAMES

NAMES = list(DEFAULT_CLASS_NAMES)
BOX = [0.25, 0.375, 1 / 6, 0.25]


def _records(n: int = 3, k: int = 14) -> list[dict]:
    rng = np.random.default_rng(0)
    scores = rng.dirichlet(np.ones(k), n)
    return make_prediction_records(
        [f"img{i}" for i in range(n)],
        np.tile(BOX, (n, 1)).astype(np.float32),
        scores.astype(np.float32),
        labels=np.array([3, -1, 1][:n]),
        track_ids=np.arange(n),
        box_scores=np.full(n, 0.9),
    )


def test_predictions_round_trip(tmp_path: Path):
    records = _records()
    path = write_predictions(tmp_path / "sub" / "predictions.json", records, num_classes=14)
    back = read_predictions(path, num_classes=14)
    assert len(back) == 3
    assert back[0]["image_id"] == "img0"
    assert back[0]["label"] == 3 and back[1]["label"] is None
    assert back[2]["track_id"] == 2
    np.testing.assert_allclose(back[0]["bbox"], BOX, rtol=1e-6)
    # float32 scores are written as the exact float64 of their value: nothing lost.
    np.testing.assert_array_equal(np.asarray([r["scores"] for r in back], np.float32), [r["scores"] for r in records])


def _write(tmp_path: Path, data, name: str = "p.json") -> Path:
    p = tmp_path / name
    p.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return p


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda r: r.update(scores=r["scores"][:13]), "scores has 13 values, expected 14"),
        (lambda r: r.update(bbox=[30, 20, 10, 8]), "not normalized"),
        (lambda r: r.update(bbox=[0.5, 0.5, 0.1]), "4 numbers"),
        (lambda r: r.update(bbox="0.5 0.5 0.1 0.1"), "must be 4 numbers"),
        (lambda r: r.pop("image_id"), "missing key 'image_id'"),
        (lambda r: r.update(label=99), "not a class index"),
        (lambda r: r.update(scores=[5.0] * 14), "probabilities"),
    ],
)
def test_read_predictions_errors_name_file_and_record(tmp_path: Path, mutate, message):
    records = _records()
    mutate(records[2])
    path = _write(tmp_path, records)
    with pytest.raises(DatasetError, match=message) as info:
        read_predictions(path, num_classes=14)
    assert str(path) in str(info.value)
    assert "record 2" in str(info.value)


def test_read_predictions_infers_score_length_from_first_record(tmp_path: Path):
    records = _records()
    records[1]["scores"] = records[1]["scores"][:5]
    with pytest.raises(DatasetError, match="record 1.*expected 14"):
        read_predictions(_write(tmp_path, records))


def test_read_predictions_bad_files(tmp_path: Path):
    with pytest.raises(DatasetError, match="not found"):
        read_predictions(tmp_path / "missing.json")
    with pytest.raises(DatasetError, match="not valid JSON"):
        read_predictions(_write(tmp_path, "[{"))
    with pytest.raises(DatasetError, match="JSON list"):
        read_predictions(_write(tmp_path, {"image_id": "a"}))
    # Python's json reads NaN; it must still be refused.
    with pytest.raises(DatasetError, match="non-finite"):
        read_predictions(_write(tmp_path, '[{"image_id": "a", "bbox": [0.5, 0.5, 0.1, 0.1], "scores": [NaN, 0.5]}]'))


def test_write_predictions_refuses_bad_records(tmp_path: Path):
    records = _records()
    records[0]["bbox"] = [0.5, 0.5, -0.1, 0.1]
    with pytest.raises(DatasetError, match="box of negative width"):
        write_predictions(tmp_path / "p.json", records)
    assert not (tmp_path / "p.json").exists()


def test_read_detections(tmp_path: Path, caplog):
    path = _write(
        tmp_path,
        [
            {"image_id": "a", "bbox": [0.5, 0.5, 0.2, 0.3], "score": 0.9, "category_id": 0},
            {"image_id": "a", "bbox": [0.2, 0.2, 0.1, 0.1], "score": 0.05},
            {"image_id": 7, "bbox": [0.3, 0.3, 0.1, 0.2]},  # COCO-style int id, no score
        ],
    )
    dets = read_detections(path)
    assert set(dets) == {"a", "7"}
    boxes, scores = dets["a"]  # unpacks like a tuple
    assert boxes.shape == (2, 4) and scores.tolist() == [0.9, 0.05]
    assert dets["7"].scores.tolist() == [1.0]
    with caplog.at_level("INFO"):
        dets = read_detections(path, min_score=0.1)
    assert dets["a"].boxes_cxcywh_norm.shape == (1, 4)
    assert "dropped 1 of 3" in caplog.text


@pytest.mark.parametrize(
    "record, message",
    [
        ({"bbox": [0.5, 0.5, 0.1, 0.1]}, "needs 'image_id'"),
        ({"image_id": "a", "bbox": [10, 10, 5, 5]}, "not normalized"),
        ({"image_id": "a", "bbox": [0.5, 0.5, 0.1]}, "4 numbers"),
        ({"image_id": "a", "bbox": [0.5, 0.5, 0.1, 0.1], "score": "high"}, "score must be"),
    ],
)
def test_read_detections_errors(tmp_path: Path, record, message):
    path = _write(tmp_path, [{"image_id": "ok", "bbox": [0.5, 0.5, 0.1, 0.1]}, record])
    with pytest.raises(DatasetError, match=message) as info:
        read_detections(path)
    assert "record 1" in str(info.value) and str(path) in str(info.value)


def test_write_evaluation_end_to_end(tmp_path: Path):
    ground = [GroundTruthFrame("a", np.array([BOX]), np.array([3])),
              GroundTruthFrame("b", np.array([BOX, [0.7, 0.5, 0.15, 0.2]]), np.array([1, 0])),
              GroundTruthFrame("empty", np.zeros((0, 4)), np.zeros(0, dtype=np.int64))]
    rng = np.random.default_rng(1)
    preds = make_prediction_records(
        ["a", "b", "b", "empty"],
        np.array([BOX, BOX, [0.7, 0.5, 0.15, 0.2], BOX]),
        rng.dirichlet(np.ones(14), 4),
    )
    metrics = compute_metrics(preds, ground, NAMES)
    files = write_evaluation(tmp_path / "eval", preds, metrics, NAMES)
    for p in (files.metrics, files.predictions, files.confusion_matrix, files.pr_curves, files.fall_pr):
        assert p.is_file() and p.stat().st_size > 0
    # metrics.json is strict JSON (no NaN tokens) and round-trips.
    def refuse(token):
        raise AssertionError(f"{token} in metrics.json")

    text = files.metrics.read_text()
    assert json.loads(text, parse_constant=refuse) == read_metrics(files.metrics)
    assert read_metrics(files.metrics)["frame_map"] == pytest.approx(metrics["frame_map"])
    assert len(read_predictions(files.predictions, num_classes=14)) == 4
    table = format_metrics_table(metrics)
    assert "frame-mAP@0.50" in table and "lying down-lying with risk" in table
    assert table.count("\n") >= 14 + 5  # header lines + one row per class


def test_format_metrics_table_values():
    names = NAMES[:4]
    ground = [{"image_id": "a", "boxes_cxcywh_norm": [BOX], "labels": [3]}]
    m = compute_metrics([{"image_id": "a", "bbox": BOX, "scores": [0.1, 0.1, 0.1, 0.7]}], ground, names)
    table = format_metrics_table(m)
    assert "frame-mAP@0.50  1.000" in table
    assert "AP 1.000 on 1 fall boxes" in table and "precision 1.000 (1 alarms)" in table
    assert "recall 1.000 (1 of 1 fall boxes)" in table and m["fall_boxes"] == 1
    row = next(line for line in table.splitlines() if line.startswith(" 3"))
    assert row.split()[-6:] == ["1", "100.0%", "1.000", "1.000", "1.000", "1.000"]
    row0 = next(line for line in table.splitlines() if line.startswith(" 0"))
    assert row0.split()[-4:] == ["-", "-", "-", "-"]  # no AP, P, R, F1 for an absent class


def test_make_prediction_records_with_zero_boxes():
    from thermal_action.evaluation.io import make_prediction_records

    assert make_prediction_records([], np.zeros((0, 4)), np.zeros((0, 14)), labels=np.zeros(0)) == []
    with pytest.raises(ValueError, match="1 image ids for 0 boxes"):
        make_prediction_records(["a"], np.zeros((0, 4)), np.zeros((0, 14)))
