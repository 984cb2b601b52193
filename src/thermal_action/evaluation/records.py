"""Prediction records and ground truth in, checked, out as flat arrays over one keyframe
numbering (what :func:`thermal_action.evaluation.metrics.compute_metrics` computes on).

A bad record is a ``ValueError`` naming the record and the field.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from thermal_action.errors import DatasetError
from thermal_action.evaluation.frame_ap import GroundTruthFrame, as_xyxy
from thermal_action.structures import check_box_cxcywh_norm


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
class EvaluationArrays:
    """Predictions and ground truth as flat arrays over one keyframe numbering."""

    image_ids: list[str]  # keyframe index -> id
    pred_image: np.ndarray  # (P,)
    pred_boxes_xyxy: np.ndarray  # (P, 4)
    pred_scores: np.ndarray  # (P, K)
    pred_label_hint: np.ndarray  # (P,) the record's "label", -1 when absent
    gt_image: np.ndarray  # (G,)
    gt_boxes_xyxy: np.ndarray  # (G, 4)
    gt_labels: np.ndarray  # (G,)


def to_arrays(
    predictions: Sequence[Mapping[str, Any]],
    ground_truth: list[GroundTruthFrame],
    num_classes: int,
    restrict_to_predicted_images: bool,
) -> EvaluationArrays:
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
    return EvaluationArrays(
        image_ids=[gt.image_id for gt in ground_truth],
        pred_image=pred_image,
        pred_boxes_xyxy=as_xyxy(pred_boxes),
        pred_scores=pred_scores,
        pred_label_hint=hints,
        gt_image=gt_image,
        gt_boxes_xyxy=as_xyxy(gt_boxes),
        gt_labels=gt_labels.astype(np.int64),
    )
