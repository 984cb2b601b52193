"""Evaluation files: predictions.json, metrics.json, the terminal table (ground truth is read
by :func:`thermal_action.data.annotations.load_annotations`, the one reader).

``predictions.json`` (written by ``thermal-action evaluate``) is a JSON list with one
record per evaluated box::

    [{"image_id": "SL14_R1_1760482263581",
      "bbox": [0.357, 0.561, 0.214, 0.158],      # normalized cx, cy, w, h (as annotated)
      "scores": [0.01, 0.02, ..., 0.90, ...],    # one probability per class, category-id order
      "label": 3,                                # optional: ground-truth class when known
      "track_id": 0,                             # optional: person id (object_id)
      "box_score": 0.97},                        # optional: detector confidence
     ...]

Detections files (person boxes from another detector, to be classified instead of the
annotated boxes) are read by :mod:`thermal_action.evaluation.detections`, the one reader
``evaluate`` and ``predict`` share.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from thermal_action.errors import DatasetError
from thermal_action.jsonable import to_jsonable
from thermal_action.evaluation.records import check_prediction

log = logging.getLogger(__name__)


def _write_json(path: str | Path, data: Any) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    # allow_nan=False: a NaN that slipped past to_jsonable is a bug, not invalid JSON on disk.
    tmp.write_text(json.dumps(data, allow_nan=False, indent=None if isinstance(data, list) else 2))
    tmp.replace(path)
    return path


def _read_json_list(path: str | Path, what: str) -> list[Any]:
    path = Path(path)
    if not path.is_file():
        raise DatasetError(path, f"{what} file not found")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise DatasetError(path, f"not valid JSON: {e}") from e
    if not isinstance(data, list):
        raise DatasetError(path, f"a {what} file must be a JSON list of records, got {type(data).__name__}")
    return data


def _where(i: int, rec: Any) -> str:
    image_id = rec.get("image_id") if isinstance(rec, Mapping) else None
    return f"record {i}" + (f", image_id {image_id!r}" if image_id is not None else "")


# ----------------------------------------------------------------------------- predictions


def make_prediction_records(
    image_ids: Sequence[str],
    boxes_cxcywh_norm: np.ndarray,
    scores: np.ndarray,
    labels: np.ndarray | None = None,
    track_ids: np.ndarray | None = None,
    box_scores: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """Prediction records from per-box arrays (e.g. one validation batch).

    Args:
        image_ids: R keyframe ids, one per box.
        boxes_cxcywh_norm: ``(R, 4)`` normalized centre boxes.
        scores: ``(R, K)`` class probabilities (softmax or sigmoid already applied).
        labels: ``(R,)`` ground-truth class when known (-1 = unknown, written as null).
        track_ids: ``(R,)`` person ids (-1 = unknown, written as null).
        box_scores: ``(R,)`` detector confidences.

    Returns:
        R records in the ``predictions.json`` format.
    """
    boxes = np.asarray(_np(boxes_cxcywh_norm), dtype=np.float64).reshape(-1, 4)
    sc = np.asarray(_np(scores), dtype=np.float64)
    # Zero boxes is a normal case (a clip with nobody in it): reshape(0, -1) cannot infer K.
    sc = sc.reshape(boxes.shape[0], -1) if boxes.shape[0] else sc.reshape(0, sc.shape[-1] if sc.ndim else 0)
    if len(image_ids) != boxes.shape[0]:
        raise ValueError(f"{len(image_ids)} image ids for {boxes.shape[0]} boxes")
    lab = None if labels is None else np.asarray(_np(labels)).reshape(-1)
    trk = None if track_ids is None else np.asarray(_np(track_ids)).reshape(-1)
    bsc = None if box_scores is None else np.asarray(_np(box_scores), dtype=np.float64).reshape(-1)
    records = []
    for i, image_id in enumerate(image_ids):
        rec: dict[str, Any] = {"image_id": image_id, "bbox": boxes[i].tolist(), "scores": sc[i].tolist()}
        if lab is not None:
            rec["label"] = int(lab[i]) if lab[i] >= 0 else None
        if trk is not None:
            rec["track_id"] = int(trk[i]) if trk[i] >= 0 else None
        if bsc is not None:
            rec["box_score"] = float(bsc[i])
        records.append(rec)
    return records


def _np(x: Any) -> Any:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else x


def _check_all(records: Sequence[Any], path: Path, num_classes: int | None) -> None:
    if num_classes is None and records and isinstance(records[0], Mapping):
        first = records[0].get("scores")
        num_classes = len(first) if isinstance(first, (list, tuple, np.ndarray)) else None
    for i, rec in enumerate(records):
        try:
            check_prediction(rec, num_classes)
        except ValueError as e:
            raise DatasetError(path, str(e), record=_where(i, rec)) from None


def write_predictions(path: str | Path, records: Sequence[Mapping[str, Any]], num_classes: int | None = None) -> Path:
    """Checks and writes prediction records as ``predictions.json``.

    Args:
        path: the file to write (parents are created).
        records: see the module docstring; numpy values are converted.
        num_classes: expected length of every ``scores`` list (default: the first record's).

    Raises:
        DatasetError: naming the file and the first bad record.
    """
    path = Path(path)
    data = to_jsonable(list(records))
    _check_all(data, path, num_classes)
    return _write_json(path, data)


def read_predictions(path: str | Path, num_classes: int | None = None) -> list[dict[str, Any]]:
    """Reads and checks a ``predictions.json`` file.

    Args:
        path: the file.
        num_classes: expected length of every ``scores`` list (default: all records must
            have the length of the first one).

    Raises:
        DatasetError: naming the file and the record (wrong score length, bad bbox, ...).
    """
    path = Path(path)
    records = _read_json_list(path, "predictions")
    _check_all(records, path, num_classes)
    return records


# ----------------------------------------------------------------------------- ground truth


# ----------------------------------------------------------------------------- outputs


def _fmt(x: float | None, spec: str = ".3f") -> str:
    return "-" if x is None else format(x, spec)


def format_metrics_table(metrics: Mapping[str, Any]) -> str:
    """A plain-text summary of :func:`compute_metrics` output for the terminal."""
    m = metrics["matching"]
    fall = metrics["fall"]
    n_map = len(metrics["map_classes"])
    lines = [
        f"frame-mAP@{metrics['iou_threshold']:.2f}  {_fmt(metrics['frame_map'])}   "
        f"(mean over {n_map} of {len(metrics['class_names'])} classes with ground truth)",
        f"top-1 accuracy    {_fmt(metrics['top1_accuracy'])}   ({m['num_paired']} paired boxes; "
        f"{m['num_unpaired_predictions']} unpaired predictions, {m['num_missed_gt']} missed ground-truth boxes)",
        f"macro-F1          {_fmt(metrics['macro_f1'])}   ({len(metrics['macro_f1_classes'])} classes)",
        f"fall '{fall['class']}': AP {_fmt(metrics.get('fall_ap'))} on {fall['support']} fall boxes; at score >= "
        f"{fall['threshold']:.2f}: precision {_fmt(metrics['fall_precision'])} ({fall['tp'] + fall['fp']} alarms)  "
        f"recall {_fmt(metrics['fall_recall'])} ({fall['tp']} of {fall['support']} fall boxes)  "
        f"(tp {fall['tp']}, fp {fall['fp']}, fn {fall['fn']})",
        "",
    ]
    rows = metrics["per_class"]
    width = max([len("class")] + [len(r["name"]) for r in rows])
    lines.append(
        f"{'id':>2}  {'class':<{width}}  {'support':>7}  {'prior':>6}  {'AP':>5}  {'P':>5}  {'R':>5}  {'F1':>5}"
    )
    for r in rows:
        prior = "-" if r["prior"] is None else f"{100 * r['prior']:5.1f}%"
        lines.append(
            f"{r['index']:>2}  {r['name']:<{width}}  {r['support']:>7}  {prior:>6}  {_fmt(r['ap']):>5}  "
            f"{_fmt(r['precision']):>5}  {_fmt(r['recall']):>5}  {_fmt(r['f1']):>5}"
        )
    return "\n".join(lines)


@dataclass
class EvaluationFiles:
    """Where :func:`write_evaluation` put its outputs (plots are None when not drawn)."""

    metrics: Path
    predictions: Path
    confusion_matrix: Path | None
    pr_curves: Path | None
    fall_pr: Path | None = None


def write_evaluation(
    out_dir: str | Path,
    predictions: Sequence[Mapping[str, Any]],
    metrics: Mapping[str, Any],
    class_names: Sequence[str],
    plots: bool = True,
) -> EvaluationFiles:
    """Writes ``metrics.json``, ``predictions.json``, ``confusion_matrix.png``, ``pr_curves.png``
    and ``fall_pr.png`` (the fall class alone, its alarm's operating point marked).

    Args:
        out_dir: directory (created).
        predictions: the evaluated prediction records.
        metrics: :func:`compute_metrics` output.
        class_names: K names in category-id order.
        plots: draw the PNGs.
    """
    from thermal_action.evaluation.plots import plot_confusion_matrix, plot_fall_pr, plot_pr_curves

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pred_path = write_predictions(out_dir / "predictions.json", predictions, num_classes=len(class_names))
    metrics_path = _write_json(out_dir / "metrics.json", to_jsonable(dict(metrics)))
    cm_path = pr_path = fall_path = None
    if plots:
        cm = np.asarray(metrics["confusion_matrix"])
        cm_path = plot_confusion_matrix(cm, class_names, out_dir / "confusion_matrix.png")
        pr_path = plot_pr_curves(metrics["pr_curves"], class_names, out_dir / "pr_curves.png")
        fall_path = plot_fall_pr(metrics, out_dir / "fall_pr.png")
    return EvaluationFiles(metrics_path, pred_path, cm_path, pr_path, fall_path)


def read_metrics(path: str | Path) -> dict[str, Any]:
    """Reads a ``metrics.json`` written by :func:`write_evaluation`."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise DatasetError(path, f"cannot read metrics: {e}") from e
