"""Frame-mAP and classification metrics on plain arrays and JSON prediction records.

Everything here works on numpy arrays or the records of ``predictions.json`` (see
:mod:`thermal_action.evaluation.io`), never on models or datasets, so training (validation
epochs), ``thermal-action evaluate`` and the benchmarks all share one implementation.

Definitions (K classes, one action label per ground-truth box):

- **frame-AP** of a class (AVA protocol, IoU 0.5): every predicted box on every keyframe is
  ranked by its score for that class. Going down the ranking, a box is a true positive if
  it overlaps (IoU >= threshold) a not-yet-matched ground-truth box of that class on the
  same keyframe -- it takes the unmatched one with the highest IoU -- otherwise a false
  positive (so a duplicate of an already found person is a false positive). Matching is
  greedy in score order within each keyframe. AP is the PASCAL VOC 2010+ all-point
  interpolated average precision: the area under the precision envelope
  (``p_interp(r) = max_{r' >= r} p(r')``) as a step function of recall.
- **frame-mAP**: the mean AP over the classes that have at least one ground-truth box;
  classes absent from the ground truth have AP ``None`` and are left out of the mean.
- **top-1 accuracy, confusion matrix, macro-F1**: each predicted box is paired with at most
  one ground-truth box of the same keyframe (greedy by IoU, IoU >= threshold, one to one);
  for the pairs, the predicted class is the argmax of the scores. Predictions on the
  annotated boxes pair with IoU 1. Unpaired predictions and missed ground-truth boxes are
  counted but not part of these three numbers (they cost frame-mAP instead).
- **macro-F1**: the mean over the classes that occur among the true or the predicted labels
  of the pairs of ``F1_c = 2 TP_c / (2 TP_c + FP_c + FN_c)`` (0 for a class that is only
  predicted or only true); the same as scikit-learn's ``f1_score(average="macro")``.
- **fall precision / recall** (alarm level): a box raises an alarm when its fall-class
  score is >= the threshold. A true positive is an alarm on a box paired with a fall
  ground-truth box; every other alarm (a wrong class or a box that pairs with no person)
  is a false positive; a fall ground-truth box without an alarmed pair is a false negative.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from thermal_action.evaluation.frame_ap import (
    PRCurve,
    class_report,
    confusion_matrix,
    frame_ap_per_class,
    match_boxes,
)
from thermal_action.evaluation.records import as_ground_truth, to_arrays
from thermal_action.jsonable import finite_or_none
from thermal_action.structures import FALL_CLASS_NAME, FALLBACK_FALL_THRESHOLD

#: Precision-recall curves stored in metrics.json keep at most this many points per class.
MAX_CURVE_POINTS = 200


def _curve_json(curve: PRCurve | None) -> dict[str, Any] | None:
    if curve is None:
        return None
    recall, precision = curve.recall, curve.precision
    if recall.size > MAX_CURVE_POINTS:
        # Sample the envelope on a recall grid: p_interp(r) is the envelope value of the
        # first corner at or beyond r, so the stored curve stays an upper-left step curve.
        grid = np.linspace(0, recall[-1], MAX_CURVE_POINTS)
        precision = precision[np.searchsorted(recall, grid, side="left")]
        recall = grid
    return {
        "ap": finite_or_none(curve.ap),
        "num_gt": curve.num_gt,
        "recall": [round(float(r), 6) for r in recall],
        "precision": [round(float(p), 6) for p in precision],
    }


def compute_metrics(
    predictions: Sequence[Mapping[str, Any]],
    ground_truth: Iterable[Any],
    class_names: Sequence[str],
    iou_threshold: float = 0.5,
    fall_class: str = FALL_CLASS_NAME,
    fall_threshold: float = 0.5,
    restrict_to_predicted_images: bool = False,
) -> dict[str, Any]:
    """All evaluation numbers for a set of prediction records, JSON-ready.

    Args:
        predictions: records as in ``predictions.json`` (``image_id``, ``bbox`` normalized
            ``[cx, cy, w, h]``, ``scores`` with one probability per class).
        ground_truth: one entry per evaluated keyframe (see :func:`as_ground_truth`);
            keyframes without boxes count too (every prediction on them is a false positive).
        class_names: K names in category-id order.
        iou_threshold: matching IoU for frame-AP and for pairing boxes.
        fall_class: name of the class whose alarm precision/recall is reported.
        fall_threshold: a box raises an alarm when its fall-class score is >= this.
        restrict_to_predicted_images: evaluate only the keyframes that have at least one
            prediction (a validation run over part of the set); otherwise a keyframe with no
            prediction has all its boxes missed.

    Returns:
        A dict of plain floats/ints/lists (None where undefined, never NaN): ``frame_map``,
        ``ap_per_class``, ``top1_accuracy``, ``macro_f1``, ``fall_precision``, ``fall_recall``,
        ``fall`` (tp, fp, fn; tn = paired non-fall boxes without an alarm), ``confusion_matrix``
        (rows = true), ``per_class`` (support = ground-truth boxes, prior, AP, and precision,
        recall, F1 of the paired boxes), ``matching`` (paired / unpaired counts),
        ``pr_curves`` (envelope corners, at most ``MAX_CURVE_POINTS``) and the settings.

    Raises:
        ValueError: a malformed record (naming it), a predicted keyframe missing from the
            ground truth, or an unknown ``fall_class``.
    """
    class_names = list(class_names)
    num_classes = len(class_names)
    if fall_class not in class_names:
        raise ValueError(f"fall class {fall_class!r} is not one of the class names {class_names}")
    fall_idx = class_names.index(fall_class)
    gt_frames = as_ground_truth(ground_truth)
    arr = to_arrays(predictions, gt_frames, num_classes, restrict_to_predicted_images)

    ap_res = frame_ap_per_class(
        arr.pred_image, arr.pred_boxes_xyxy, arr.pred_scores,
        arr.gt_image, arr.gt_boxes_xyxy, arr.gt_labels, num_classes, iou_threshold,
    )
    pred_to_gt = match_boxes(
        arr.pred_image, arr.pred_boxes_xyxy, arr.gt_image, arr.gt_boxes_xyxy,
        iou_threshold, arr.pred_label_hint, arr.gt_labels,
    )
    paired = pred_to_gt >= 0
    true_lab = arr.gt_labels[pred_to_gt[paired]]
    pred_lab = np.argmax(arr.pred_scores[paired], axis=1) if paired.any() else np.zeros(0, np.int64)
    cm = confusion_matrix(true_lab, pred_lab, num_classes)
    report = class_report(cm)
    top1 = float(np.trace(cm) / cm.sum()) if cm.sum() > 0 else math.nan

    # Fall alarms over every predicted box, paired or not (a false alarm is a false alarm).
    alarm = arr.pred_scores[:, fall_idx] >= fall_threshold  # (P,)
    fall_pair = np.zeros_like(alarm)
    fall_pair[paired] = true_lab == fall_idx
    tp = int(np.sum(alarm & fall_pair))
    fp = int(np.sum(alarm & ~fall_pair))
    num_fall_gt = int(ap_res.num_gt[fall_idx])
    fn = num_fall_gt - tp
    tn = int(np.sum(~alarm & paired & ~fall_pair))
    fall_precision = tp / (tp + fp) if tp + fp else math.nan
    fall_recall = tp / num_fall_gt if num_fall_gt else math.nan

    support = ap_res.num_gt
    total = int(support.sum())
    num_predicted = np.bincount(pred_lab, minlength=num_classes)[:num_classes]
    per_class = [
        {
            "index": k,
            "name": class_names[k],
            "support": int(support[k]),
            "prior": finite_or_none(support[k] / total) if total else None,
            "ap": finite_or_none(ap_res.ap[k]),
            "precision": finite_or_none(report.precision[k]),
            "recall": finite_or_none(report.recall[k]),
            "f1": finite_or_none(report.f1[k]),
            "num_predicted": int(num_predicted[k]),
        }
        for k in range(num_classes)
    ]
    return {
        "frame_map": finite_or_none(ap_res.mean_ap),
        "top1_accuracy": finite_or_none(top1),
        "macro_f1": finite_or_none(report.macro_f1),
        "fall_precision": finite_or_none(fall_precision),
        "fall_recall": finite_or_none(fall_recall),
        # Threshold-free: how well falls are ranked, whatever operating threshold is chosen.
        "fall_ap": finite_or_none(ap_res.ap[fall_idx]),
        # What the three fall numbers rest on: the ground-truth fall boxes (AP and recall count
        # them; precision counts alarms, fall["tp"] + fall["fp"]).
        "fall_boxes": num_fall_gt,
        "ap_per_class": {class_names[k]: finite_or_none(ap_res.ap[k]) for k in range(num_classes)},
        "map_classes": [class_names[k] for k in range(num_classes) if support[k] > 0],
        "macro_f1_classes": [class_names[k] for k in range(num_classes) if report.macro_f1_classes[k]],
        "fall": {
            "class": fall_class,
            "index": fall_idx,
            "threshold": float(fall_threshold),
            "tp": tp,
            "fp": fp,
            "fn": fn,
            "tn": tn,
            "support": num_fall_gt,
            "ap": finite_or_none(ap_res.ap[fall_idx]),
        },
        "confusion_matrix": cm.tolist(),
        "per_class": per_class,
        "matching": {
            "num_keyframes": len(arr.image_ids),
            "num_gt_boxes": int(arr.gt_labels.size),
            "num_predictions": int(arr.pred_scores.shape[0]),
            "num_paired": int(paired.sum()),
            "num_unpaired_predictions": int((~paired).sum()),
            "num_missed_gt": int(arr.gt_labels.size - paired.sum()),
        },
        "iou_threshold": float(iou_threshold),
        "class_names": class_names,
        "pr_curves": {class_names[k]: _curve_json(c) for k, c in enumerate(ap_res.curves) if c is not None},
    }


# ----------------------------------------------------------------------------- operating threshold
#: Recall on the validation set that the calibrated fall threshold aims at (``eval.fall_target_recall``).
DEFAULT_FALL_TARGET_RECALL = 0.95


def choose_fall_threshold(
    predictions: Sequence[Mapping[str, Any]],
    ground_truth: Iterable[Any],
    class_names: Sequence[str],
    fall_class: str = FALL_CLASS_NAME,
    target_recall: float = DEFAULT_FALL_TARGET_RECALL,
    iou_threshold: float = 0.5,
    restrict_to_predicted_images: bool = False,
) -> dict[str, Any] | None:
    """The fall operating threshold that reaches ``target_recall`` on this (validation) set.

    Of the thresholds that raise an alarm for at least ``ceil(target_recall * falls)`` of the
    ground-truth fall boxes, the highest is taken (so precision is the best that recall
    allows); ties in score keep every tied box above it. Alarms count over every predicted
    box, as :func:`compute_metrics` does.

    Returns:
        ``{"threshold", "target_recall", "recall", "precision", "num_falls", "num_boxes"}``
        measured on this set, or None when it holds no fall box (nothing to calibrate on).
    """
    if not 0.0 < target_recall <= 1.0:
        raise ValueError(f"target recall must be in (0, 1], got {target_recall}")
    class_names = list(class_names)
    if fall_class not in class_names:
        raise ValueError(f"fall class {fall_class!r} is not one of the class names {class_names}")
    fall_idx = class_names.index(fall_class)
    gt_frames = as_ground_truth(ground_truth)
    arr = to_arrays(predictions, gt_frames, len(class_names), restrict_to_predicted_images)
    num_falls = int(np.sum(arr.gt_labels == fall_idx))
    if num_falls == 0 or arr.pred_scores.shape[0] == 0:
        return None
    pred_to_gt = match_boxes(
        arr.pred_image, arr.pred_boxes_xyxy, arr.gt_image, arr.gt_boxes_xyxy,
        iou_threshold, arr.pred_label_hint, arr.gt_labels,
    )
    is_fall = np.zeros(arr.pred_scores.shape[0], dtype=bool)
    paired = pred_to_gt >= 0
    is_fall[paired] = arr.gt_labels[pred_to_gt[paired]] == fall_idx
    scores = arr.pred_scores[:, fall_idx]
    fall_scores = np.sort(scores[is_fall])[::-1]
    need = max(1, math.ceil(target_recall * num_falls - 1e-9))
    if fall_scores.size < need:
        # Some falls have no paired prediction: the best reachable is every predicted fall.
        need = fall_scores.size
    threshold = float(fall_scores[need - 1]) if need else FALLBACK_FALL_THRESHOLD
    alarm = scores >= threshold
    tp = int(np.sum(alarm & is_fall))
    fp = int(np.sum(alarm & ~is_fall))
    return {
        "threshold": threshold,
        "target_recall": float(target_recall),
        "recall": tp / num_falls,
        "precision": tp / (tp + fp) if tp + fp else None,
        "num_falls": num_falls,
        "num_boxes": int(arr.pred_scores.shape[0]),
    }
