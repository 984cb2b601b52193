"""Frame-AP, box pairing and the confusion matrix on plain arrays (the definitions are in
:mod:`thermal_action.evaluation.metrics`, which reports them).

Boxes here are ``(N, 4)`` arrays; :func:`as_xyxy` turns the annotations' normalised centre
boxes into pixels of the native frame once, and every function after it works in those.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from thermal_action.structures import FRAME_HEIGHT, FRAME_WIDTH, box_iou_xyxy, boxes_cxcywh_norm_to_xyxy


@dataclass
class GroundTruthFrame:
    """The annotated person boxes of one keyframe.

    Attributes:
        image_id: the keyframe's id (``images[].id`` of the annotation file).
        boxes_cxcywh_norm: ``(N, 4)`` normalized centre boxes, as annotated.
        labels: ``(N,)`` int class index of each box (0..K-1).
    """

    image_id: str
    boxes_cxcywh_norm: np.ndarray
    labels: np.ndarray


@dataclass
class PRCurve:
    """The precision envelope of one class, as AP integrates it.

    Attributes:
        recall: ``(M,)`` increasing recall values where the envelope steps down.
        precision: ``(M,)`` interpolated precision on ``(recall[i-1], recall[i]]``.
        ap: the area under the step curve.
        num_gt: ground-truth boxes of the class.
    """

    recall: np.ndarray
    precision: np.ndarray
    ap: float
    num_gt: int


@dataclass
class FrameAPResult:
    """Per-class frame-AP.

    Attributes:
        ap: ``(K,)`` AP per class, NaN where the class has no ground-truth box.
        num_gt: ``(K,)`` ground-truth boxes per class.
        is_tp: ``(K, P)`` bool, whether prediction ``p`` is a true positive for class ``k``.
        curves: K entries, a :class:`PRCurve` or None for classes without ground truth.
    """

    ap: np.ndarray
    num_gt: np.ndarray
    is_tp: np.ndarray
    curves: list[PRCurve | None]

    @property
    def mean_ap(self) -> float:
        """Mean over classes with ground truth; NaN when there are none."""
        present = self.num_gt > 0
        return float(np.mean(self.ap[present])) if present.any() else math.nan


# ----------------------------------------------------------------------------- AP


def _ranked_tp(scores: np.ndarray, is_tp: np.ndarray) -> np.ndarray:
    # Stable sort: tied scores keep their input order, the same order the matching used.
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    return np.asarray(is_tp, dtype=bool)[order]


def precision_recall_envelope(scores: np.ndarray, is_tp: np.ndarray, num_gt: int) -> PRCurve:
    """All-point interpolated precision-recall curve and its area (VOC 2010+).

    Args:
        scores: ``(P,)`` confidence of each detection for the class.
        is_tp: ``(P,)`` bool, whether each detection is a true positive.
        num_gt: ground-truth boxes of the class (true positives can be at most this many).

    Returns:
        The envelope; ``ap`` is NaN when ``num_gt == 0`` and 0 when nothing was found.
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    is_tp = np.asarray(is_tp, dtype=bool).reshape(-1)
    if scores.shape != is_tp.shape:
        raise ValueError(f"scores {scores.shape} and is_tp {is_tp.shape} differ in length")
    num_tp_total = int(is_tp.sum())
    if num_tp_total > num_gt:
        raise ValueError(f"{num_tp_total} true positives but only {num_gt} ground-truth boxes")
    if num_gt == 0:
        return PRCurve(np.zeros(0), np.zeros(0), math.nan, 0)
    tp = _ranked_tp(scores, is_tp)
    if not tp.any():
        return PRCurve(np.zeros(0), np.zeros(0), 0.0, num_gt)
    ctp = np.cumsum(tp)
    precision = ctp / np.arange(1, tp.size + 1)
    # Envelope: the best precision at this recall or any higher one.
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    # Recall only grows at true positives; each adds a 1/num_gt wide step of envelope height.
    recall_at_tp = ctp[tp] / num_gt
    env_at_tp = envelope[tp]
    ap = float(np.sum(env_at_tp) / num_gt)
    # Keep the corners only: the last recall of each plateau of the (non-increasing) envelope.
    last = np.ones(env_at_tp.size, dtype=bool)
    last[:-1] = env_at_tp[1:] != env_at_tp[:-1]
    return PRCurve(recall_at_tp[last], env_at_tp[last], ap, num_gt)


def average_precision(scores: np.ndarray, is_tp: np.ndarray, num_gt: int) -> float:
    """PASCAL VOC all-point interpolated AP of one class.

    Args:
        scores: ``(P,)`` detection confidences (any real numbers; only their order counts;
            ties keep input order).
        is_tp: ``(P,)`` bool true-positive flags (after matching).
        num_gt: number of ground-truth boxes of the class.

    Returns:
        AP in [0, 1]; NaN when ``num_gt == 0``.
    """
    return precision_recall_envelope(scores, is_tp, num_gt).ap


# ----------------------------------------------------------------------------- grouping


@dataclass
class _ImageGroups:
    """Indices of predictions and ground-truth boxes per keyframe."""

    pred_idx: list[np.ndarray]
    gt_idx: list[np.ndarray]


def _group(pred_image: np.ndarray, gt_image: np.ndarray) -> _ImageGroups:
    pred_image = np.asarray(pred_image, dtype=np.int64).reshape(-1)
    gt_image = np.asarray(gt_image, dtype=np.int64).reshape(-1)
    num_images = int(max(pred_image.max(initial=-1), gt_image.max(initial=-1))) + 1

    def split(image: np.ndarray) -> list[np.ndarray]:
        order = np.argsort(image, kind="stable")
        bounds = np.searchsorted(image[order], np.arange(num_images + 1))
        return [order[bounds[i] : bounds[i + 1]] for i in range(num_images)]

    return _ImageGroups(split(pred_image), split(gt_image))


def as_xyxy(boxes: np.ndarray) -> np.ndarray:
    # IoU does not change under per-axis scaling, but computing it in the pixel frame keeps
    # one convention with the rest of the project.
    return boxes_cxcywh_norm_to_xyxy(np.asarray(boxes, dtype=np.float64).reshape(-1, 4), FRAME_WIDTH, FRAME_HEIGHT)


# ----------------------------------------------------------------------------- frame-AP


def frame_ap_per_class(
    pred_image: np.ndarray,
    pred_boxes_xyxy: np.ndarray,
    pred_scores: np.ndarray,
    gt_image: np.ndarray,
    gt_boxes_xyxy: np.ndarray,
    gt_labels: np.ndarray,
    num_classes: int,
    iou_threshold: float = 0.5,
) -> FrameAPResult:
    """Frame-AP of every class (AVA protocol; see the module docstring).

    Args:
        pred_image: ``(P,)`` int keyframe index of each predicted box.
        pred_boxes_xyxy: ``(P, 4)`` predicted boxes (any consistent corner frame).
        pred_scores: ``(P, K)`` per-class scores.
        gt_image: ``(G,)`` int keyframe index of each ground-truth box (same numbering).
        gt_boxes_xyxy: ``(G, 4)`` ground-truth boxes, same frame as the predictions.
        gt_labels: ``(G,)`` int class index of each ground-truth box.
        num_classes: K.
        iou_threshold: minimum IoU of a match.

    Returns:
        AP per class, ground-truth counts, true-positive flags and envelopes.
    """
    pred_scores = np.asarray(pred_scores, dtype=np.float64).reshape(-1, num_classes)
    pred_boxes_xyxy = np.asarray(pred_boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    gt_boxes_xyxy = np.asarray(gt_boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    gt_labels = np.asarray(gt_labels, dtype=np.int64).reshape(-1)
    num_preds = pred_scores.shape[0]
    if gt_labels.size and (gt_labels.min() < 0 or gt_labels.max() >= num_classes):
        raise ValueError(f"ground-truth labels must be in 0..{num_classes - 1}, got {sorted(set(gt_labels.tolist()))}")
    groups = _group(pred_image, gt_image)
    is_tp = np.zeros((num_classes, num_preds), dtype=bool)

    # Detections only compete for the ground truth of their own keyframe, so greedy
    # matching in global score order equals greedy matching per keyframe in the same
    # order; per keyframe keeps the Python loops to a few boxes each.
    for p_idx, g_idx in zip(groups.pred_idx, groups.gt_idx):
        if p_idx.size == 0 or g_idx.size == 0:
            continue
        iou = box_iou_xyxy(pred_boxes_xyxy[p_idx], gt_boxes_xyxy[g_idx])  # (n_p, n_g)
        labels = gt_labels[g_idx]
        for k in np.unique(labels):
            iou_k = iou[:, labels == k]  # (n_p, n_g_k)
            matched = np.zeros(iou_k.shape[1], dtype=bool)
            for d in np.argsort(-pred_scores[p_idx, k], kind="stable"):
                cand = np.where(matched, -1.0, iou_k[d])
                j = int(np.argmax(cand))
                if cand[j] >= iou_threshold:
                    matched[j] = True
                    is_tp[k, p_idx[d]] = True
                    if matched.all():
                        break

    num_gt = np.bincount(gt_labels, minlength=num_classes)[:num_classes]
    ap = np.full(num_classes, math.nan)
    curves: list[PRCurve | None] = [None] * num_classes
    for k in range(num_classes):
        if num_gt[k] > 0:
            curves[k] = precision_recall_envelope(pred_scores[:, k], is_tp[k], int(num_gt[k]))
            ap[k] = curves[k].ap
    return FrameAPResult(ap=ap, num_gt=num_gt, is_tp=is_tp, curves=curves)


# ----------------------------------------------------------------------------- pairing


def match_boxes(
    pred_image: np.ndarray,
    pred_boxes_xyxy: np.ndarray,
    gt_image: np.ndarray,
    gt_boxes_xyxy: np.ndarray,
    iou_threshold: float = 0.5,
    pred_labels: np.ndarray | None = None,
    gt_labels: np.ndarray | None = None,
) -> np.ndarray:
    """Pairs predicted boxes one to one with ground-truth boxes of the same keyframe.

    Pairs are taken greedily by decreasing IoU (>= ``iou_threshold``). Ties -- identical
    boxes, e.g. a box carried forward for two people -- prefer a pair whose ``pred_labels``
    (the label a prediction record carries, if any) equals the ground-truth label, then
    input order.

    Args:
        pred_image: ``(P,)`` keyframe index of each prediction.
        pred_boxes_xyxy: ``(P, 4)``.
        gt_image: ``(G,)`` keyframe index of each ground-truth box.
        gt_boxes_xyxy: ``(G, 4)``.
        iou_threshold: minimum IoU of a pair.
        pred_labels: ``(P,)`` optional label hints (-1 = none).
        gt_labels: ``(G,)`` ground-truth labels, needed with ``pred_labels``.

    Returns:
        ``(P,)`` int64 index of the paired ground-truth box, -1 for none.
    """
    pred_boxes_xyxy = np.asarray(pred_boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    gt_boxes_xyxy = np.asarray(gt_boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    pred_to_gt = np.full(pred_boxes_xyxy.shape[0], -1, dtype=np.int64)
    groups = _group(pred_image, gt_image)
    for p_idx, g_idx in zip(groups.pred_idx, groups.gt_idx):
        if p_idx.size == 0 or g_idx.size == 0:
            continue
        iou = box_iou_xyxy(pred_boxes_xyxy[p_idx], gt_boxes_xyxy[g_idx])  # (n_p, n_g)
        pi, gi = np.nonzero(iou >= iou_threshold)
        if pi.size == 0:
            continue
        agree = np.zeros(pi.size)
        if pred_labels is not None and gt_labels is not None:
            agree = (np.asarray(pred_labels)[p_idx[pi]] == np.asarray(gt_labels)[g_idx[gi]]).astype(float)
        # lexsort: last key is primary -> IoU desc, label agreement desc, pred, gt order.
        order = np.lexsort((gi, pi, -agree, -iou[pi, gi]))
        used_p = np.zeros(p_idx.size, dtype=bool)
        used_g = np.zeros(g_idx.size, dtype=bool)
        for o in order:
            a, b = pi[o], gi[o]
            if not used_p[a] and not used_g[b]:
                used_p[a] = used_g[b] = True
                pred_to_gt[p_idx[a]] = g_idx[b]
    return pred_to_gt


# ----------------------------------------------------------------------------- classification


def confusion_matrix(true_labels: np.ndarray, pred_labels: np.ndarray, num_classes: int) -> np.ndarray:
    """``(K, K)`` int64 counts; rows are true classes, columns predicted classes."""
    t = np.asarray(true_labels, dtype=np.int64).reshape(-1)
    p = np.asarray(pred_labels, dtype=np.int64).reshape(-1)
    return np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


@dataclass
class ClassReport:
    """Per-class precision, recall and F1 from a confusion matrix (NaN where undefined)."""

    precision: np.ndarray  # (K,)
    recall: np.ndarray  # (K,)
    f1: np.ndarray  # (K,) 2TP / (2TP + FP + FN); NaN for classes neither true nor predicted
    macro_f1: float  # mean F1 over classes that are true or predicted at least once
    macro_f1_classes: np.ndarray  # (K,) bool, the classes in that mean


def class_report(cm: np.ndarray) -> ClassReport:
    """Per-class precision/recall/F1 and macro-F1 from a confusion matrix (rows = true)."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    true_count = cm.sum(axis=1)
    pred_count = cm.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(pred_count > 0, tp / pred_count, math.nan)
        recall = np.where(true_count > 0, tp / true_count, math.nan)
        denom = true_count + pred_count  # = 2TP + FP + FN
        f1 = np.where(denom > 0, 2 * tp / denom, math.nan)
    used = denom > 0
    macro = float(np.mean(f1[used])) if used.any() else math.nan
    return ClassReport(precision, recall, f1, macro, used)
