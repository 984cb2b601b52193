"""Losses by hand: cross-entropy, focal at gamma 0, sigmoid BCE, class weights, zero boxes."""

import math

import pytest
import torch
import torch.nn.functional as F

from thermal_action.training.losses import (
    ActionLoss,
    class_weights_from_counts,
    logits_to_scores,
    softmax_focal_loss,
)


def _logits_labels(seed=0, r=6, k=4):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(r, k, generator=g), torch.randint(0, k, (r,), generator=g)


def test_softmax_matches_a_hand_computed_cross_entropy():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
    labels = torch.tensor([0, 1])
    by_hand = []
    for row, y in zip(logits.tolist(), labels.tolist()):
        z = sum(math.exp(v) for v in row)
        by_hand.append(-math.log(math.exp(row[y]) / z))
    loss = ActionLoss("softmax", 3)(logits, labels)
    assert loss.item() == pytest.approx(sum(by_hand) / 2, rel=1e-6)


def test_unknown_labels_are_ignored():
    logits, labels = _logits_labels()
    with_unknown = torch.cat([labels[:3], torch.tensor([-1]), labels[3:]])
    logits_unknown = torch.cat([logits[:3], torch.full((1, 4), 50.0), logits[3:]])
    a = ActionLoss("softmax", 4)(logits, labels)
    b = ActionLoss("softmax", 4)(logits_unknown, with_unknown)
    assert a.item() == pytest.approx(b.item(), rel=1e-6)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_focal_reduces_to_cross_entropy_at_gamma_zero(smoothing):
    logits, labels = _logits_labels(1)
    w = torch.tensor([0.5, 2.0, 1.0, 3.0])
    focal = softmax_focal_loss(logits, labels, gamma=0.0, weight=w, label_smoothing=smoothing)
    ce = torch.nn.functional.cross_entropy(logits, labels, weight=w, label_smoothing=smoothing)
    assert focal.item() == pytest.approx(ce.item(), rel=1e-5)
    via_module = ActionLoss("focal", 4, class_weights=w, focal_gamma=0.0, label_smoothing=smoothing)(logits, labels)
    assert via_module.item() == pytest.approx(ce.item(), rel=1e-5)


def test_focal_down_weights_easy_boxes():
    easy = torch.tensor([[6.0, 0.0, 0.0]])
    hard = torch.tensor([[0.2, 0.0, 0.0]])
    y = torch.tensor([0])
    ce_ratio = ActionLoss("softmax", 3)(hard, y) / ActionLoss("softmax", 3)(easy, y)
    focal_ratio = ActionLoss("focal", 3, focal_gamma=2.0)(hard, y) / ActionLoss("focal", 3, focal_gamma=2.0)(easy, y)
    assert focal_ratio > 10 * ce_ratio


def test_sigmoid_bce_by_hand_with_indices_and_multi_hot():
    logits = torch.tensor([[1.0, -2.0], [0.0, 3.0]])
    labels = torch.tensor([0, 1])

    def bce(x, t):
        p = 1 / (1 + math.exp(-x))
        return -(t * math.log(p) + (1 - t) * math.log(1 - p))

    by_hand = (bce(1, 1) + bce(-2, 0) + bce(0, 0) + bce(3, 1)) / 2  # sum over classes, mean over boxes
    loss = ActionLoss("sigmoid", 2)
    assert loss(logits, labels).item() == pytest.approx(by_hand, rel=1e-6)
    assert loss(logits, torch.tensor([[1.0, 0.0], [0.0, 1.0]])).item() == pytest.approx(by_hand, rel=1e-6)
    with pytest.raises(ValueError, match="one class per box"):
        ActionLoss("softmax", 2)(logits, torch.tensor([[1.0, 1.0], [0.0, 1.0]]))


@pytest.mark.parametrize("kind", ["softmax", "sigmoid", "focal"])
def test_zero_boxes_give_zero_loss_that_backprops(kind):
    w = torch.randn(3, 5, requires_grad=True)
    feats = torch.zeros(0, 3)
    logits = feats @ w  # (0, 5)
    loss = ActionLoss(kind, 5)(logits, torch.zeros(0, dtype=torch.long))
    assert loss.item() == 0.0
    loss.backward()
    assert w.grad is not None and torch.count_nonzero(w.grad) == 0
    # Only unknown labels: also zero.
    logits = torch.randn(2, 3) @ w
    loss = ActionLoss(kind, 5)(logits, torch.tensor([-1, -1]))
    assert loss.item() == 0.0
    loss.backward()


def test_class_weights_inverse_and_sqrt():
    counts = [300, 100, 0, 2]
    w = class_weights_from_counts(counts, "inverse", max_weight=1000.0)
    n = torch.tensor(counts, dtype=torch.float32)
    # Mean weight per training box is one.
    assert (w * n).sum().item() / n.sum().item() == pytest.approx(1.0, rel=1e-5)
    assert w[1] / w[0] == pytest.approx(3.0, rel=1e-5)
    assert w[3] / w[0] == pytest.approx(150.0, rel=1e-5)
    assert w[2].item() == pytest.approx(w[0].item() * 300, rel=1e-5)  # absent class counted as one box
    ws = class_weights_from_counts(counts, "inverse_sqrt", max_weight=1000.0)
    assert ws[1] / ws[0] == pytest.approx(math.sqrt(3.0), rel=1e-5)
    clipped = class_weights_from_counts(counts, "inverse", max_weight=10.0)
    assert clipped.max().item() == pytest.approx(10.0)
    assert clipped[0].item() == pytest.approx(w[0].item())
    assert class_weights_from_counts(counts, "none") is None
    with pytest.raises(ValueError, match="class_weights"):
        class_weights_from_counts(counts, "log")
    with pytest.raises(ValueError, match="^cannot compute class weights: the training set has no labelled boxes"):
        class_weights_from_counts([0, 0], "inverse")
    with pytest.raises(ValueError, match=r"^data/annotations/train\.json: cannot compute class weights: .*no labelled"):
        class_weights_from_counts([0, 0], "inverse", source="data/annotations/train.json")


def test_weighted_cross_entropy_favours_the_rare_class():
    w = torch.tensor([0.2, 5.0])
    loss = ActionLoss("softmax", 2, class_weights=w)
    logits = torch.zeros(2, 2, requires_grad=True)
    loss(logits, torch.tensor([0, 1])).backward()
    # Gradient on the rare box is 25x the gradient on the common one.
    assert logits.grad[1].abs().sum() / logits.grad[0].abs().sum() == pytest.approx(25.0, rel=1e-5)


def test_scores_follow_the_loss():
    logits = torch.tensor([[1.0, 2.0, 0.0]])
    assert logits_to_scores(logits, "softmax").sum().item() == pytest.approx(1.0)
    assert logits_to_scores(logits, "sigmoid")[0, 1].item() == pytest.approx(1 / (1 + math.exp(-2)))
    with pytest.raises(ValueError):
        logits_to_scores(logits, "hinge")


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="optim.loss"):
        ActionLoss("hinge", 3)
    with pytest.raises(ValueError, match="out of range"):
        ActionLoss("softmax", 3)(torch.zeros(1, 3), torch.tensor([3]))
    with pytest.raises(ValueError, match=r"\(R, 3\)"):
        ActionLoss("softmax", 3)(torch.zeros(1, 4), torch.tensor([0]))


def test_group_smoothing_targets_and_loss_by_hand():
    from thermal_action.training.losses import ActionLoss, class_groups, group_target_matrix

    names = ["standing", "lower position-kneeling", "lower position-bending", "lower position-crouching"]
    assert class_groups(names) == ["standing", "lower position", "lower position", "lower position"]
    q = group_target_matrix(names, 0.3)
    torch.testing.assert_close(q[0], torch.tensor([1.0, 0, 0, 0]))  # alone in its group
    torch.testing.assert_close(q[1], torch.tensor([0.0, 0.7, 0.15, 0.15]))
    q2 = group_target_matrix(names, 0.3, label_smoothing=0.1)
    torch.testing.assert_close(q2[1], torch.tensor([0.025, 0.655, 0.16, 0.16]))
    assert torch.allclose(q2.sum(dim=1), torch.ones(4))
    # Loss: weighted soft-target cross-entropy, by hand.
    logits = torch.tensor([[2.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.5, 0.0]])
    labels = torch.tensor([0, 1])
    w = torch.tensor([1.0, 2.0, 1.0, 1.0])
    loss = ActionLoss("softmax", 4, w, target_matrix=q)(logits, labels)
    log_p = torch.log_softmax(logits, dim=1)
    ref = (1.0 * -log_p[0, 0] + 2.0 * -(0.7 * log_p[1, 1] + 0.15 * log_p[1, 2] + 0.15 * log_p[1, 3])) / 3.0
    torch.testing.assert_close(loss, ref)
    # With group smoothing 0 it is plain weighted cross-entropy.
    plain = ActionLoss("softmax", 4, w, target_matrix=group_target_matrix(names, 0.0))(logits, labels)
    torch.testing.assert_close(plain, F.cross_entropy(logits, labels, weight=w))
    with pytest.raises(ValueError, match="softmax"):
        ActionLoss("sigmoid", 4, target_matrix=q)
