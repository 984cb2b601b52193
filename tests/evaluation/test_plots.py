"""Evaluation plots: PNG files that open and have the expected size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from thermal_action.evaluation.metrics import PRCurve
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
