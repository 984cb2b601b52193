"""Frame-mAP and classification metrics: hand-computed toy cases and brute-force cross-checks."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from thermal_action.evaluation.frame_ap import (
    GroundTruthFrame,
    average_precision,
    confusion_matrix,
    frame_ap_per_class,
    match_boxes,
    precision_recall_envelope,
)
from thermal_action.evaluation.metrics import choose_fall_threshold, compute_metrics
from thermal_action.structures import DEFAULT_CLASS_NAMES, FRAME_HEIGHT, FRAME_WIDTH, box_iou_xyxy

NAMES4 = list(DEFAULT_CLASS_NAMES[:4])  # index 3 is the fall class


def norm(x1: float, y1: float, x2: float, y2: float) -> list[float]:
    """Pixel corners in the 60x40 frame -> normalized [cx, cy, w, h]."""
    w, h = FRAME_WIDTH, FRAME_HEIGHT
    return [(x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h]


def onehot(k: int, num_classes: int = 4, p: float = 0.7) -> list[float]:
    s = [(1 - p) / (num_classes - 1)] * num_classes
    s[k] = p
    return s


def pred(image_id: str, box: list[float], scores: list[float], **extra) -> dict:
    return {"image_id": image_id, "bbox": box, "scores": scores, **extra}


def gt(image_id: str, boxes: list[list[float]], labels: list[int]) -> GroundTruthFrame:
    return GroundTruthFrame(image_id, np.asarray(boxes, dtype=float).reshape(-1, 4), np.asarray(labels, dtype=np.int64))


# A 10x10 px box at (10, 10); shifting it by dx pixels gives IoU (10-dx)*10 / (200-(10-dx)*10):
# dx = 3.2 -> 68/132 = 0.515 (match), dx = 3.5 -> 65/135 = 0.481 (no match).
BOX = norm(10, 10, 20, 20)
BOX_IOU_051 = norm(13.2, 10, 23.2, 20)
BOX_IOU_048 = norm(13.5, 10, 23.5, 20)


# ----------------------------------------------------------------------------- AP


def test_average_precision_hand_computed():
    # Ranking TP, FP, TP, FP, TP with 3 ground-truth boxes:
    #   precision 1, 1/2, 2/3, 2/4, 3/5 at recall 1/3, 1/3, 2/3, 2/3, 1.
    #   Envelope at the three recall steps: max(1, ...) = 1, max(2/3, 1/2, 3/5) = 2/3, 3/5.
    #   AP = (1 + 2/3 + 3/5) / 3 = 34/45 = 0.7556.
    scores = np.array([0.5, 0.9, 0.6, 0.8, 0.7])  # given out of order on purpose
    is_tp = np.array([True, True, False, False, True])
    assert average_precision(scores, is_tp, 3) == pytest.approx(34 / 45)
    # TP, FP, FP, TP, TP with 3 GT: precision 1, 1/2, 1/3, 2/4, 3/5. The envelope lifts the
    # second step to 3/5 (not 2/4): AP = (1 + 3/5 + 3/5) / 3 = 11/15 (raw precision: 0.7).
    assert average_precision([0.9, 0.8, 0.7, 0.6, 0.5], [1, 0, 0, 1, 1], 3) == pytest.approx(11 / 15)


def test_average_precision_missed_gt_and_edge_cases():
    # TP, FP with 4 ground-truth boxes (3 never found): AP = 1 * 1/4.
    assert average_precision([0.9, 0.1], [True, False], 4) == pytest.approx(0.25)
    # FP, TP: precision 1/2 at recall 1 -> AP = 0.5.
    assert average_precision([0.9, 0.1], [False, True], 1) == pytest.approx(0.5)
    assert average_precision([], [], 2) == 0.0
    assert average_precision([0.3, 0.2], [False, False], 2) == 0.0
    assert math.isnan(average_precision([0.3], [False], 0))
    with pytest.raises(ValueError, match="true positives"):
        average_precision([0.3, 0.2], [True, True], 1)


def test_envelope_corners_hand_computed():
    curve = precision_recall_envelope(np.array([0.9, 0.8, 0.7, 0.6, 0.5]), np.array([1, 0, 1, 0, 1], bool), 3)
    # Envelope values 1, 2/3, 3/5 are all different: one corner per recall step.
    np.testing.assert_allclose(curve.recall, [1 / 3, 2 / 3, 1.0])
    np.testing.assert_allclose(curve.precision, [1.0, 2 / 3, 3 / 5])
    # Area under the step curve is the AP.
    area = np.sum(np.diff(np.concatenate([[0.0], curve.recall])) * curve.precision)
    assert area == pytest.approx(curve.ap)


def _voc_ap_reference(scores: np.ndarray, is_tp: np.ndarray, num_gt: int) -> float:
    """The classic VOC2010 devkit loop, written out independently."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    tp = fp = 0
    rec, prec = [], []
    for i in order:
        if is_tp[i]:
            tp += 1
        else:
            fp += 1
        rec.append(tp / num_gt)
        prec.append(tp / (tp + fp))
    mrec = [0.0] + rec + [1.0]
    mpre = [0.0] + prec + [0.0]
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    return sum((mrec[i] - mrec[i - 1]) * mpre[i] for i in range(1, len(mrec)) if mrec[i] != mrec[i - 1])


def test_average_precision_matches_voc_reference_on_random_data():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 40))
        scores = rng.random(n)  # distinct almost surely: no tie-order question
        is_tp = rng.random(n) < rng.random()
        num_gt = int(is_tp.sum() + rng.integers(0, 5))
        if num_gt == 0:
            continue
        expected = _voc_ap_reference(scores, is_tp, num_gt)
        assert average_precision(scores, is_tp, num_gt) == pytest.approx(expected, abs=1e-12)


# ----------------------------------------------------------------------------- frame matching


def _brute_force_frame_tp(pred_image, pred_boxes, pred_scores, gt_image, gt_boxes, gt_labels, k, thr):
    """Global score order, one detection at a time, IoU by hand (no shared helpers)."""

    def iou(a, b):
        iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = iw * ih
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
        return inter / union if union > 0 else 0.0

    matched = set()
    tp = np.zeros(len(pred_image), bool)
    for d in sorted(range(len(pred_image)), key=lambda i: (-pred_scores[i, k], i)):
        best, best_iou = None, -1.0
        for g in range(len(gt_image)):
            if gt_image[g] != pred_image[d] or gt_labels[g] != k or g in matched:
                continue
            v = iou(pred_boxes[d], gt_boxes[g])
            if v > best_iou:
                best, best_iou = g, v
        if best is not None and best_iou >= thr:
            matched.add(best)
            tp[d] = True
    return tp


def test_frame_ap_matches_brute_force_on_random_data():
    rng = np.random.default_rng(1)
    num_classes = 3
    for trial in range(30):
        num_images = 5
        g = int(rng.integers(0, 15))
        gt_image = rng.integers(0, num_images, g)
        xy = rng.uniform(0, 8, (g, 2))
        gt_boxes = np.concatenate([xy, xy + rng.uniform(4, 8, (g, 2))], axis=1)
        gt_labels = rng.integers(0, num_classes, g)
        p = int(rng.integers(0, 25))
        # Predictions jittered around ground-truth boxes (so many IoUs near the threshold)
        # plus a few random ones.
        src = rng.integers(0, max(g, 1), p)
        base = gt_boxes[src] if g else np.tile([0, 0, 5, 5.0], (p, 1))
        pred_boxes = base + rng.normal(0, 1.2, (p, 4))
        pred_boxes[:, 2:] = np.maximum(pred_boxes[:, 2:], pred_boxes[:, :2] + 0.5)
        pred_image = gt_image[src] if g else rng.integers(0, num_images, p)
        pred_image = np.where(rng.random(p) < 0.2, rng.integers(0, num_images, p), pred_image)
        pred_scores = rng.random((p, num_classes))
        res = frame_ap_per_class(pred_image, pred_boxes, pred_scores, gt_image, gt_boxes, gt_labels, num_classes, 0.5)
        for k in range(num_classes):
            ref_tp = _brute_force_frame_tp(pred_image, pred_boxes, pred_scores, gt_image, gt_boxes, gt_labels, k, 0.5)
            np.testing.assert_array_equal(res.is_tp[k], ref_tp, err_msg=f"trial {trial} class {k}")
            n = int(np.sum(gt_labels == k))
            if n:
                assert res.ap[k] == pytest.approx(_voc_ap_reference(pred_scores[:, k], ref_tp, n))
            else:
                assert math.isnan(res.ap[k])


def test_frame_map_hand_computed_duplicates_and_iou_threshold():
    # Class 0 only, one GT box on each of three keyframes. Ranked detections:
    #   0.9 a exact          TP
    #   0.8 a duplicate      FP (that person is already found)
    #   0.7 b exact          TP
    #   0.6 c IoU 0.481      FP (below 0.5)
    #   0.5 c IoU 0.515      TP
    # -> TP, FP, TP, FP, TP with 3 GT: AP = (1 + 2/3 + 3/5) / 3 = 34/45.
    ground = [gt("a", [BOX], [0]), gt("b", [BOX], [0]), gt("c", [BOX], [0])]
    preds = [
        pred("c", BOX_IOU_051, [0.5, 0.5, 0.0, 0.0]),
        pred("a", BOX, [0.9, 0.1, 0.0, 0.0]),
        pred("b", BOX, [0.7, 0.3, 0.0, 0.0]),
        pred("a", BOX, [0.8, 0.2, 0.0, 0.0]),
        pred("c", BOX_IOU_048, [0.6, 0.4, 0.0, 0.0]),
    ]
    m = compute_metrics(preds, ground, NAMES4)
    assert m["ap_per_class"][NAMES4[0]] == pytest.approx(34 / 45)
    assert m["frame_map"] == pytest.approx(34 / 45)  # the only class with ground truth
    assert m["map_classes"] == [NAMES4[0]]
    for name in NAMES4[1:]:
        assert m["ap_per_class"][name] is None
    # Pairing: a/b/c each pair one prediction (c: the 0.515 one); the duplicate and the
    # 0.481 box stay unpaired.
    assert m["matching"]["num_paired"] == 3
    assert m["matching"]["num_unpaired_predictions"] == 2
    assert m["matching"]["num_missed_gt"] == 0


def test_greedy_takes_highest_iou_unmatched_gt():
    # Two people of class 0 overlap (IoU 0.667). The 0.9 detection overlaps g1 0.905 and
    # g2 0.739 -> takes g1. The 0.8 detection is exactly g1 (taken), so it takes g2
    # (IoU 0.667 >= 0.5): both TP, AP 1. (The AVA/VOC devkit would compare only with g1
    # and count it FP.)
    g1, g2 = [0, 0, 10, 10], [2, 0, 12, 10]
    res = frame_ap_per_class(
        np.array([0, 0]), np.array([[0.5, 0, 10.5, 10], [0, 0, 10, 10]], float), np.array([[0.9], [0.8]]),
        np.array([0, 0]), np.array([g1, g2], float), np.array([0, 0]), num_classes=1,
    )
    assert res.is_tp[0].tolist() == [True, True]
    assert res.ap[0] == pytest.approx(1.0)


def test_absent_class_excluded_from_mean():
    # GT has classes 0 and 1 (perfectly found); class 2 only appears in predictions.
    ground = [gt("a", [BOX, norm(30, 5, 40, 15)], [0, 1])]
    preds = [
        pred("a", BOX, [0.6, 0.1, 0.3, 0.0]),
        pred("a", norm(30, 5, 40, 15), [0.1, 0.5, 0.4, 0.0]),
        pred("a", norm(45, 20, 55, 30), [0.1, 0.1, 0.8, 0.0]),  # a box on nobody
    ]
    m = compute_metrics(preds, ground, NAMES4)
    assert m["ap_per_class"][NAMES4[2]] is None
    assert m["ap_per_class"][NAMES4[0]] == pytest.approx(1.0)
    assert m["ap_per_class"][NAMES4[1]] == pytest.approx(1.0)
    assert m["frame_map"] == pytest.approx(1.0)


def test_perfect_predictions_give_map_one():
    rng = np.random.default_rng(2)
    names = list(DEFAULT_CLASS_NAMES)
    ground, preds = [], []
    for i in range(20):
        n = int(rng.integers(0, 4))
        boxes = [norm(x, y, x + 8, y + 6) for x, y in zip(rng.uniform(0, 50, n), rng.uniform(0, 30, n))]
        labels = rng.integers(0, 14, n).tolist()
        ground.append(gt(f"k{i}", boxes, labels))
        preds += [pred(f"k{i}", b, onehot(c, 14)) for b, c in zip(boxes, labels)]
    m = compute_metrics(preds, ground, names)
    assert m["frame_map"] == pytest.approx(1.0)
    assert m["top1_accuracy"] == pytest.approx(1.0)
    assert m["macro_f1"] == pytest.approx(1.0)
    present = {names[c] for f in ground for c in f.labels.tolist()}
    assert set(m["map_classes"]) == present
    assert all((m["ap_per_class"][n] is None) == (n not in present) for n in names)
    json.dumps(m, allow_nan=False)  # JSON-safe: no NaN anywhere


# ----------------------------------------------------------------------------- classification


def _five_box_case():
    # Five people on five keyframes, predictions exactly on their boxes.
    # true:      0  0  1  1  2
    # predicted: 0  1  1  1  0
    true = [0, 0, 1, 1, 2]
    predicted = [0, 1, 1, 1, 0]
    ground = [gt(f"k{i}", [BOX], [t]) for i, t in enumerate(true)]
    preds = [pred(f"k{i}", BOX, onehot(p)) for i, p in enumerate(predicted)]
    return ground, preds


def test_confusion_matrix_top1_and_macro_f1_by_hand():
    ground, preds = _five_box_case()
    m = compute_metrics(preds, ground, NAMES4)
    assert m["confusion_matrix"] == [[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]]
    assert m["top1_accuracy"] == pytest.approx(3 / 5)
    # F1 = 2TP / (2TP + FP + FN): class 0: 2/(2+1+1) = 0.5; class 1: 4/(4+1+0) = 0.8;
    # class 2: 0/(0+0+1) = 0; class 3 neither true nor predicted -> left out.
    # macro-F1 = (0.5 + 0.8 + 0) / 3.
    assert m["macro_f1"] == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    assert m["macro_f1_classes"] == NAMES4[:3]
    per = {r["name"]: r for r in m["per_class"]}
    assert per[NAMES4[0]]["precision"] == pytest.approx(0.5)
    assert per[NAMES4[0]]["recall"] == pytest.approx(0.5)
    assert per[NAMES4[1]]["precision"] == pytest.approx(2 / 3)
    assert per[NAMES4[2]]["precision"] is None  # never predicted
    assert per[NAMES4[3]]["f1"] is None
    assert [r["support"] for r in m["per_class"]] == [2, 2, 1, 0]
    assert [r["prior"] for r in m["per_class"]] == pytest.approx([0.4, 0.4, 0.2, 0.0])


def test_macro_f1_includes_predicted_only_classes():
    # true 0, 0; predicted 0, 1: class 0 F1 = 2/(2+0+1) = 2/3, class 1 (only predicted) = 0.
    ground = [gt("a", [BOX], [0]), gt("b", [BOX], [0])]
    preds = [pred("a", BOX, onehot(0)), pred("b", BOX, onehot(1))]
    m = compute_metrics(preds, ground, NAMES4)
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0.0) / 2)


def test_confusion_matrix_function():
    cm = confusion_matrix([0, 0, 2, 1], [0, 2, 2, 0], 3)
    assert cm.tolist() == [[1, 0, 1], [1, 0, 0], [0, 0, 1]]


def _fall_scores(f: float, other: int) -> list[float]:
    """Four-class scores with fall score ``f`` and the rest on class ``other``."""
    s = [0.0] * 4
    s[3] = f
    s[other] += 1 - f
    return s


def _fall_case() -> tuple[list[dict], list[GroundTruthFrame]]:
    """Fall class index 3. Boxes (true label, fall score): (3, .9) (3, .6) (3, .3) (1, .7)
    (0, .1), plus one prediction on nobody with fall score .8."""
    true = [3, 3, 3, 1, 0]
    fall_scores = [0.9, 0.6, 0.3, 0.7, 0.1]
    ground = [gt(f"k{i}", [BOX], [t]) for i, t in enumerate(true)]
    preds = [pred(f"k{i}", BOX, _fall_scores(f, t if t != 3 else 0)) for i, (t, f) in enumerate(zip(true, fall_scores))]
    preds.append(pred("k0", norm(40, 20, 50, 30), _fall_scores(0.8, 1)))
    return preds, ground


def test_fall_precision_recall_by_hand():
    # Threshold .5: alarms on .9 TP, .6 TP, .7 FP (a standing person), .8 FP (nobody); the
    # .3 fall is a FN. Precision 2/4, recall 2/3.
    preds, ground = _fall_case()
    m = compute_metrics(preds, ground, NAMES4, fall_threshold=0.5)
    assert m["fall_precision"] == pytest.approx(2 / 4)
    assert m["fall_recall"] == pytest.approx(2 / 3)
    assert (m["fall"]["tp"], m["fall"]["fp"], m["fall"]["fn"], m["fall"]["tn"]) == (2, 2, 1, 1)
    # The threshold is inclusive: at exactly .6 the .6 box still alarms; at .65 it does not
    # (alarms .9 TP, .7 FP, .8 FP -> precision 1/3, recall 1/3).
    assert compute_metrics(preds, ground, NAMES4, fall_threshold=0.6)["fall_recall"] == pytest.approx(2 / 3)
    m65 = compute_metrics(preds, ground, NAMES4, fall_threshold=0.65)
    assert (m65["fall_precision"], m65["fall_recall"]) == pytest.approx((1 / 3, 1 / 3))
    # Nothing above the threshold: precision undefined (None), recall 0.
    m_hi = compute_metrics(preds, ground, NAMES4, fall_threshold=0.95)
    assert m_hi["fall_precision"] is None and m_hi["fall_recall"] == 0.0
    # Fall AP is threshold-free. Ranked by fall score: .9 TP (P 1, R 1/3), .8 FP, .7 FP,
    # .6 TP (P 2/4, R 2/3), .3 TP (P 3/5, R 1), .1 FP. Envelope: 1 up to R 1/3, then 3/5:
    # AP = 1/3 * 1 + 2/3 * 3/5 = 11/15, the same at every threshold.
    assert m["fall_ap"] == pytest.approx(11 / 15) and m_hi["fall_ap"] == pytest.approx(11 / 15)


def test_fall_threshold_for_a_target_recall_by_hand():
    # The same boxes: fall scores of the three falls .9 .6 .3; non-falls .7 (standing) and .1;
    # a prediction on nobody at .8.
    preds, ground = _fall_case()
    # Recall 1/3 needs one fall: the highest threshold is .9 (precision 1).
    c = choose_fall_threshold(preds, ground, NAMES4, target_recall=0.3)
    assert c["threshold"] == pytest.approx(0.9) and c["recall"] == pytest.approx(1 / 3) and c["precision"] == 1.0
    # Recall 0.6 needs two of three: threshold .6 (alarms .9 .8 .7 .6: precision 2/4).
    c = choose_fall_threshold(preds, ground, NAMES4, target_recall=0.6)
    assert c["threshold"] == pytest.approx(0.6) and c["recall"] == pytest.approx(2 / 3)
    assert c["precision"] == pytest.approx(0.5)
    # Every fall: threshold .3, and compute_metrics agrees at that threshold.
    c = choose_fall_threshold(preds, ground, NAMES4, target_recall=0.95)
    assert c["threshold"] == pytest.approx(0.3) and c["num_falls"] == 3 and c["num_boxes"] == 6
    m = compute_metrics(preds, ground, NAMES4, fall_threshold=c["threshold"])
    assert m["fall_recall"] == pytest.approx(c["recall"]) and m["fall_precision"] == pytest.approx(c["precision"])
    # No fall in the set: nothing to calibrate on.
    no_fall = [gt("k3", [BOX], [1])]
    assert choose_fall_threshold([pred("k3", BOX, _fall_scores(0.7, 1))], no_fall, NAMES4) is None
    with pytest.raises(ValueError, match="target recall"):
        choose_fall_threshold(preds, ground, NAMES4, target_recall=0.0)


def test_unknown_fall_class_is_an_error():
    with pytest.raises(ValueError, match="fall class"):
        compute_metrics([], [], NAMES4, fall_class="fallen")


# ----------------------------------------------------------------------------- pairing


def test_match_boxes_identical_boxes_use_label_hint():
    # Two annotations share one box (carried forward for two people); the label hints of
    # the predictions decide which is which.
    gboxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10]], float)
    pboxes = gboxes.copy()
    out = match_boxes([0, 0], pboxes, [0, 0], gboxes, 0.5, pred_labels=np.array([5, 2]), gt_labels=np.array([2, 5]))
    assert out.tolist() == [1, 0]
    # Without hints: input order.
    assert match_boxes([0, 0], pboxes, [0, 0], gboxes, 0.5).tolist() == [0, 1]


def test_match_boxes_one_to_one_by_iou_and_same_image_only():
    g = np.array([[0, 0, 10, 10], [20, 0, 30, 10]], float)
    p = np.array([[1, 0, 11, 10], [0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10]], float)
    # p1 is exact on g0, so p0 (IoU 0.82 with g0) is left unpaired; p2 pairs g1 only
    # because it is on the same image; p3 overlaps nothing.
    out = match_boxes([0, 0, 1, 0], p, [0, 1], g, 0.5)
    assert out.tolist() == [-1, 0, 1, -1]


# ----------------------------------------------------------------------------- inputs


def test_empty_inputs():
    m = compute_metrics([], [], NAMES4)
    assert m["frame_map"] is None and m["top1_accuracy"] is None and m["macro_f1"] is None
    assert m["fall_precision"] is None and m["fall_recall"] is None
    json.dumps(m, allow_nan=False)
    # Ground truth but no predictions: every present class has AP 0, boxes are missed.
    m = compute_metrics([], [gt("a", [BOX], [3]), gt("b", [], [])], NAMES4)
    assert m["frame_map"] == 0.0
    assert m["fall_recall"] == 0.0
    assert m["matching"]["num_missed_gt"] == 1
    assert m["matching"]["num_keyframes"] == 2


def test_predictions_on_keyframe_without_boxes_are_false_positives():
    ground = [gt("a", [BOX], [0]), gt("empty", [], [])]
    preds = [pred("empty", BOX, [0.9, 0.1, 0, 0]), pred("a", BOX, [0.8, 0.2, 0, 0])]
    # FP (0.9) then TP (0.8): AP = 1/2.
    assert compute_metrics(preds, ground, NAMES4)["frame_map"] == pytest.approx(0.5)


def test_restrict_to_predicted_images():
    ground = [gt("a", [BOX], [0]), gt("b", [BOX], [0])]
    preds = [pred("a", BOX, onehot(0))]
    assert compute_metrics(preds, ground, NAMES4)["frame_map"] == pytest.approx(0.5)  # b is missed
    m = compute_metrics(preds, ground, NAMES4, restrict_to_predicted_images=True)
    assert m["frame_map"] == pytest.approx(1.0)
    assert m["matching"]["num_keyframes"] == 1


def test_ground_truth_accepts_dicts_and_objects():
    class Keyframe:
        image_id = "a"
        boxes_cxcywh_norm = np.array([BOX])
        labels = [1]

    m = compute_metrics(
        [pred("a", BOX, onehot(1)), pred("b", BOX, onehot(2))],
        [Keyframe(), {"image_id": "b", "boxes_cxcywh_norm": [BOX], "labels": [2]}],
        NAMES4,
    )
    assert m["top1_accuracy"] == 1.0


@pytest.mark.parametrize(
    "bad, message",
    [
        (pred("a", BOX, [0.5, 0.5]), "expected 4"),
        (pred("a", [30, 20, 10, 8], onehot(0)), "not normalized"),
        (pred("a", [0.5, 0.5, 0.0, 0.1], onehot(0)), "box of zero size"),
        (pred("a", BOX, [2.0, -1.0, 0, 0]), "probabilities"),
        (pred("a", BOX, [float("nan"), 0, 0, 0]), "non-finite"),
        ({"image_id": "a", "bbox": BOX}, "missing key 'scores'"),
    ],
)
def test_bad_prediction_names_the_record(bad, message):
    with pytest.raises(ValueError, match=message) as info:
        compute_metrics([pred("a", BOX, onehot(0)), bad], [gt("a", [BOX], [0])], NAMES4)
    assert "prediction 1 (image_id 'a')" in str(info.value)


def test_prediction_on_unknown_keyframe_is_an_error():
    with pytest.raises(ValueError, match="not in the ground truth"):
        compute_metrics([pred("zzz", BOX, onehot(0))], [gt("a", [BOX], [0])], NAMES4)


def test_bad_ground_truth_is_an_error():
    with pytest.raises(ValueError, match="appears twice"):
        compute_metrics([], [gt("a", [BOX], [0]), gt("a", [BOX], [0])], NAMES4)
    with pytest.raises(ValueError, match="not all in 0..3"):
        compute_metrics([], [gt("a", [BOX], [7])], NAMES4)


def test_iou_computed_in_pixel_frame_is_scale_free():
    # Sanity check of the convention the tests rely on: BOX vs BOX_IOU_051 in pixels.
    from thermal_action.structures import boxes_cxcywh_norm_to_xyxy

    a = boxes_cxcywh_norm_to_xyxy(np.array([BOX]), FRAME_WIDTH, FRAME_HEIGHT)
    b = boxes_cxcywh_norm_to_xyxy(np.array([BOX_IOU_051, BOX_IOU_048]), FRAME_WIDTH, FRAME_HEIGHT)
    np.testing.assert_allclose(box_iou_xyxy(a, b)[0], [68 / 132, 65 / 135])


def test_pr_curves_in_metrics_are_capped():
    # 600 GT boxes of one class found at alternating precision: many envelope corners.
    rng = np.random.default_rng(3)
    ground = [gt(f"k{i}", [BOX], [0]) for i in range(600)]
    preds = [pred(f"k{i}", BOX, onehot(0, p=float(s))) for i, s in enumerate(rng.uniform(0.3, 1.0, 600))]
    off = norm(40, 20, 50, 30)  # a box on nobody
    preds += [pred(f"k{i}", off, onehot(0, p=float(s))) for i, s in enumerate(rng.uniform(0.3, 1.0, 600))]
    m = compute_metrics(preds, ground, NAMES4)
    curve = m["pr_curves"][NAMES4[0]]
    assert 2 <= len(curve["recall"]) <= 200
    assert curve["recall"][-1] == pytest.approx(1.0)
    assert np.all(np.diff(curve["precision"]) <= 1e-9)  # the envelope never rises
    assert curve["ap"] == pytest.approx(m["frame_map"])
