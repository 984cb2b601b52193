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
from dataclasses import dataclass
from typing import Any

import numpy as np

from thermal_action.errors import DatasetError
from thermal_action.jsonable import finite_or_none
from thermal_action.structures import (
    FALL_CLASS_NAME,
    FALLBACK_FALL_THRESHOLD,
    FRAME_HEIGHT,
    FRAME_WIDTH,
    box_iou_xyxy,
    boxes_cxcywh_norm_to_xyxy,
    check_box_cxcywh_norm,
)

#: Precision-recall curves stored in metrics.json keep at most this many points per class.
MAX_CURVE_POINTS = 200


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


def _as_xyxy(boxes: np.ndarray) -> np.ndarray:
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


# ----------------------------------------------------------------------------- inputs


def as_ground_truth(items: Iterable[Any]) -> list[GroundTruthFrame]:
    """Reads keyframe ground truth from dicts or objects with the three attributes.

    Accepts anything with ``image_id``, ``boxes_cxcywh_norm`` and ``labels`` (as keys or
    attributes; arrays, lists or CPU tensors), e.g. :class:`GroundTruthFrame`, a dataset's
    keyframe record or a :class:`~thermal_action.structures.ClipSample`.

    Raises:
        ValueError: naming the keyframe whose boxes or labels are malformed, or a repeated id.
    """
    out: list[GroundTruthFrame] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        get = item.get if isinstance(item, Mapping) else lambda k, _item=item: getattr(_item, k, None)
        image_id, boxes, labels = get("image_id"), get("boxes_cxcywh_norm"), get("labels")
        if image_id is None or boxes is None or labels is None:
            raise ValueError(f"ground truth {i}: needs image_id, boxes_cxcywh_norm and labels")
        image_id = str(image_id)
        if image_id in seen:
            raise ValueError(f"ground truth {i}: image_id {image_id!r} appears twice")
        seen.add(image_id)
        b = np.asarray(boxes, dtype=np.float64)
        lab = np.asarray(labels)
        if b.size == 0:
            b = b.reshape(0, 4)
        if b.ndim != 2 or b.shape[1] != 4 or lab.reshape(-1).shape[0] != b.shape[0]:
            raise ValueError(
                f"ground truth {i} (image_id {image_id!r}): boxes {b.shape} and labels {lab.shape} "
                "must be (N, 4) and (N,)"
            )
        out.append(GroundTruthFrame(image_id, b, lab.reshape(-1).astype(np.int64)))
    return out


def check_prediction(record: Any, num_classes: int | None = None) -> None:
    """Checks one prediction record; raises ValueError saying what is wrong.

    A record is a mapping with ``image_id`` (str or int), ``bbox`` (4 numbers: normalized
    cx, cy, w, h, w and h > 0) and ``scores`` (one number in [0, 1] per class). Optional:
    ``label`` (int or null), ``track_id`` (int or null), ``box_score`` (number or null).
    """
    if not isinstance(record, Mapping):
        raise ValueError(f"a prediction must be an object, got {type(record).__name__}")
    for key in ("image_id", "bbox", "scores"):
        if key not in record:
            raise ValueError(f"missing key '{key}'")
    image_id = record["image_id"]
    if isinstance(image_id, bool) or not isinstance(image_id, (str, int)):
        raise ValueError(f"image_id must be a string or an integer, got {image_id!r}")
    try:  # a model's boxes are evaluated as given, also where they poke out of the frame
        check_box_cxcywh_norm(record["bbox"], source="prediction", max_overhang_px=None)
    except DatasetError as e:
        raise ValueError(e.message) from None
    scores = _numbers(record["scores"], "scores")
    if num_classes is not None and len(scores) != num_classes:
        raise ValueError(
            f"scores has {len(scores)} values, expected {num_classes} (one per class, in category-id order)"
        )
    if len(scores) == 0:
        raise ValueError("scores is empty")
    if min(scores) < -1e-6 or max(scores) > 1 + 1e-6:
        raise ValueError("scores must be probabilities in [0, 1] (softmax or sigmoid of the logits)")
    label = record.get("label")
    if label is not None:
        if isinstance(label, bool) or not isinstance(label, (int, np.integer)):
            raise ValueError(f"label must be an integer or null, got {label!r}")
        if num_classes is not None and not -1 <= label < num_classes:
            raise ValueError(f"label {label} is not a class index 0..{num_classes - 1} (or -1)")
    track_id = record.get("track_id")
    if track_id is not None and (isinstance(track_id, bool) or not isinstance(track_id, (int, np.integer))):
        raise ValueError(f"track_id must be an integer or null, got {track_id!r}")
    box_score = record.get("box_score")
    if box_score is not None:
        _numbers([box_score], "box_score")


def _numbers(value: Any, name: str) -> list[float]:
    if isinstance(value, np.ndarray):
        value = value.reshape(-1).tolist()
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{name} must be a list of numbers, got {type(value).__name__}")
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise ValueError(f"{name} must hold numbers, got {v!r}")
        if not math.isfinite(float(v)):
            raise ValueError(f"{name} holds a non-finite value {v!r}")
        out.append(float(v))
    return out


@dataclass
class _Arrays:
    """Predictions and ground truth as flat arrays over one keyframe numbering."""

    image_ids: list[str]  # keyframe index -> id
    pred_image: np.ndarray  # (P,)
    pred_boxes_xyxy: np.ndarray  # (P, 4)
    pred_scores: np.ndarray  # (P, K)
    pred_label_hint: np.ndarray  # (P,) the record's "label", -1 when absent
    gt_image: np.ndarray  # (G,)
    gt_boxes_xyxy: np.ndarray  # (G, 4)
    gt_labels: np.ndarray  # (G,)


def _to_arrays(
    predictions: Sequence[Mapping[str, Any]],
    ground_truth: list[GroundTruthFrame],
    num_classes: int,
    restrict_to_predicted_images: bool,
) -> _Arrays:
    index = {gt.image_id: i for i, gt in enumerate(ground_truth)}
    for i, rec in enumerate(predictions):
        try:
            check_prediction(rec, num_classes)
        except ValueError as e:
            raise ValueError(f"prediction {i} (image_id {rec.get('image_id')!r}): {e}") from None
    unknown = sorted({str(r["image_id"]) for r in predictions} - index.keys())
    if unknown:
        raise ValueError(
            f"{len(unknown)} predicted keyframe(s) are not in the ground truth, e.g. {unknown[:3]}; "
            "are the predictions and annotations from the same split?"
        )
    if restrict_to_predicted_images:
        keep = {str(r["image_id"]) for r in predictions}
        ground_truth = [gt for gt in ground_truth if gt.image_id in keep]
        index = {gt.image_id: i for i, gt in enumerate(ground_truth)}
    num_p = len(predictions)
    pred_image = np.fromiter((index[str(r["image_id"])] for r in predictions), dtype=np.int64, count=num_p)
    pred_boxes = np.array([r["bbox"] for r in predictions], dtype=np.float64).reshape(num_p, 4)
    pred_scores = np.array([r["scores"] for r in predictions], dtype=np.float64).reshape(num_p, num_classes)
    hints = np.fromiter(
        (-1 if r.get("label") is None else int(r["label"]) for r in predictions), dtype=np.int64, count=num_p
    )
    sizes = [gt.labels.shape[0] for gt in ground_truth]
    gt_image = np.repeat(np.arange(len(ground_truth), dtype=np.int64), sizes)
    gt_boxes = np.concatenate([gt.boxes_cxcywh_norm for gt in ground_truth]) if ground_truth else np.zeros((0, 4))
    gt_labels = np.concatenate([gt.labels for gt in ground_truth]) if ground_truth else np.zeros(0, np.int64)
    for gt in ground_truth:
        if gt.labels.size and (gt.labels.min() < 0 or gt.labels.max() >= num_classes):
            raise ValueError(
                f"ground truth {gt.image_id!r}: labels {gt.labels.tolist()} are not all in 0..{num_classes - 1}"
            )
    return _Arrays(
        image_ids=[gt.image_id for gt in ground_truth],
        pred_image=pred_image,
        pred_boxes_xyxy=_as_xyxy(pred_boxes),
        pred_scores=pred_scores,
        pred_label_hint=hints,
        gt_image=gt_image,
        gt_boxes_xyxy=_as_xyxy(gt_boxes),
        gt_labels=gt_labels.astype(np.int64),
    )


# ----------------------------------------------------------------------------- all metrics


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
    arr = _to_arrays(predictions, gt_frames, num_classes, restrict_to_predicted_images)

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
    arr = _to_arrays(predictions, gt_frames, len(class_names), restrict_to_predicted_images)
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
