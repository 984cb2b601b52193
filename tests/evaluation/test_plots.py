"""Evaluation plots: PNG files that open and have the expected size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from thermal_action.evaluation.frame_ap import PRCurve
from thermal_action.evaluation.plots import plot_confusion_matrix, plot_pr_curves
from thermal_action.structures import DEFAULT_CLASS_NAMES

NAMES = list(DEFAULT_CLASS_NAMES)


def test_confusion_matrix_png(tmp_path: Path):
    rng = np.random.default_rng(0)
    cm = rng.integers(0, 30, (14, 14))
    cm[2] = 0  # a class without ground truth: an empty grey row, no division by zero
    path = plot_confusion_matrix(cm, NAMES, tmp_path / "cm.png")
    with Image.open(path) as im:
        assert im.format == "PNG"
        w, h = im.size
        assert w > 800 and h > 700  # room for 14 long names
        # Not blank: the cells use many colours.
        assert len(im.convert("RGB").getcolors(maxcolors=1 << 16) or range(1 << 16)) > 20


def test_confusion_matrix_shape_mismatch(tmp_path: Path):
    with pytest.raises(ValueError, match="does not match"):
        plot_confusion_matrix(np.zeros((3, 3)), NAMES, tmp_path / "cm.png")


def test_pr_curves_png_from_dicts_and_objects(tmp_path: Path):
    curves = {
        NAMES[1]: {"recall": [0.5, 1.0], "precision": [1.0, 0.6], "ap": 0.8, "num_gt": 2},
        NAMES[3]: PRCurve(np.array([0.25]), np.array([1.0]), 0.25, 4),
        NAMES[5]: {"recall": [], "precision": [], "ap": 0.0, "num_gt": 3},  # nothing found
    }
    path = plot_pr_curves(curves, NAMES, tmp_path / "pr.png")
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > 800


def test_pr_curves_png_without_classes(tmp_path: Path):
    path = plot_pr_curves({}, NAMES, tmp_path / "pr.png")
    assert path.is_file() and path.stat().st_size > 1000


def _fall_metrics(with_point: bool) -> dict:
    from thermal_action.evaluation.metrics import compute_metrics

    box = [0.5, 0.5, 0.2, 0.3]
    fall = NAMES.index("lying down-lying with risk")
    ground = [{"image_id": f"k{i}", "boxes_cxcywh_norm": [box], "labels": [fall if i < 3 else 1]} for i in range(6)]
    scores = []
    for i in range(6):
        s = np.full(14, 0.02)
        s[fall] = [0.9, 0.6, 0.3, 0.5, 0.1, 0.05][i]
        scores.append((s / s.sum()).tolist())
    preds = [{"image_id": f"k{i}", "bbox": box, "scores": scores[i]} for i in range(6)]
    return compute_metrics(preds, ground, NAMES, fall_threshold=0.3 if with_point else 0.99)


def test_the_fall_figure_marks_the_operating_point_and_names_the_fall_boxes(tmp_path: Path):
    from thermal_action.evaluation.plots import OPERATING_POINT_COLOR, plot_fall_pr

    metrics = _fall_metrics(with_point=True)
    assert metrics["fall_boxes"] == 3 and metrics["fall_precision"] is not None
    path = plot_fall_pr(metrics, tmp_path / "fall_pr.png")
    red = np.array([int(OPERATING_POINT_COLOR[i:i + 2], 16) for i in (1, 3, 5)])
    with Image.open(path) as im:
        title = im.info["Title"]
        rgb = np.asarray(im.convert("RGB")).astype(int)
    assert "on 3 fall boxes" in title and "alarm at score >= " in title and "of 3)" in title
    assert (np.abs(rgb - red).sum(-1) < 30).sum() > 50  # the operating point is drawn
    # No alarm at all: no precision, so no point to mark.
    metrics = _fall_metrics(with_point=False)
    assert metrics["fall_precision"] is None
    with Image.open(plot_fall_pr(metrics, tmp_path / "none.png")) as im:
        rgb = np.asarray(im.convert("RGB")).astype(int)
    assert (np.abs(rgb - red).sum(-1) < 30).sum() == 0
