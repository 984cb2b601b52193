"""Box classification losses and class-imbalance weights.

The detector returns logits ``(R, K)``; the losses here turn them into one scalar.
Three kinds, chosen by ``optim.loss``:

- ``softmax``: cross-entropy, for data where every box has exactly one class (the
  thermal format). The default.
- ``sigmoid``: per-class binary cross-entropy, for multi-label data (AVA style). Labels
  may be class indices ``(R,)`` or multi-hot ``(R, K)``.
- ``focal``: the focal loss (Lin et al. 2017), which down-weights boxes the model
  already gets right; softmax form for class indices (equal to ``softmax`` at
  ``gamma=0``), sigmoid form for multi-hot labels.

Boxes with label ``-1`` (unknown) are ignored. A batch without any labelled box gives a
zero loss that is still connected to the graph, so ``backward()`` works and DDP ranks
stay in step.

Class imbalance (real data: one class is 54% of the boxes, several have 1-20) is
handled with per-class weights computed from the training box counts
(:func:`class_weights_from_counts`) and/or a class-balanced clip sampler (see
``training/datamodule.py``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

LOSS_KINDS = ("softmax", "sigmoid", "focal")
CLASS_WEIGHT_MODES = ("none", "inverse", "inverse_sqrt")


def class_weights_from_counts(
    counts: torch.Tensor | list[int], mode: str, max_weight: float = 10.0, source: str | None = None
) -> torch.Tensor | None:
    """Per-class loss weights from training box counts.

    The raw weight is ``1 / n_k`` (``inverse``) or ``1 / sqrt(n_k)`` (``inverse_sqrt``);
    weights are then scaled so that the average weight over the training boxes is 1
    (the loss keeps its unweighted scale, so the learning rate need not change), and
    clipped to ``max_weight`` so a class with a single example cannot dominate.
    Classes absent from the training set are counted as one box (then clipped): they
    never occur as targets, but they do enter label smoothing and sigmoid negatives.

    Args:
        counts: ``(K,)`` number of training boxes per class.
        mode: ``"none"``, ``"inverse"`` or ``"inverse_sqrt"``.
        max_weight: upper clip of a weight after normalisation.
        source: the training annotation file the counts come from (named in errors).

    Returns:
        ``(K,)`` float32 weights, or ``None`` for ``mode="none"``.
    """
    if mode not in CLASS_WEIGHT_MODES:
        raise ValueError(f"optim.class_weights must be one of {CLASS_WEIGHT_MODES}, got {mode!r}")
    if mode == "none":
        return None
    n = torch.as_tensor(counts, dtype=torch.float64)
    if n.ndim != 1 or (n < 0).any():
        raise ValueError(f"class counts must be a 1-D list of non-negative numbers, got {counts!r}")
    if n.sum() <= 0:
        where = f"{source}: " if source else ""
        raise ValueError(f"{where}cannot compute class weights: the training set has no labelled boxes")
    safe = n.clamp(min=1.0)
    raw = 1.0 / safe if mode == "inverse" else 1.0 / safe.sqrt()
    # Mean weight per training box = sum_k n_k w_k / sum_k n_k = 1.
    raw = raw * n.sum() / (n * raw).sum()
    return raw.clamp(max=max_weight).to(torch.float32)


def class_groups(class_names: list[str] | tuple[str, ...]) -> list[str]:
    """The taxonomy group of each class: the part of its name before the first ``-``
    (``"lower position-kneeling"`` -> ``"lower position"``), or the whole name."""
    return [str(n).split("-", 1)[0].strip() for n in class_names]


def group_target_matrix(class_names: list[str] | tuple[str, ...], group_smoothing: float,
                        label_smoothing: float = 0.0) -> torch.Tensor:
    """``(K, K)`` soft targets: row ``y`` is the target distribution of a box labelled ``y``.

    ``group_smoothing`` of the mass goes, evenly, to the other classes of ``y``'s taxonomy
    group (:func:`class_groups`; a class alone in its group keeps it), then
    ``label_smoothing`` is spread over all K classes as usual. A model trained this way
    scores a kneeling person as partly "crouching" and "bending" too, so a class with a
    handful of examples (or none in a training fold) still ranks its look-alikes first.
    """
    groups = class_groups(class_names)
    k = len(groups)
    q = torch.eye(k, dtype=torch.float64)
    for y in range(k):
        siblings = [j for j in range(k) if j != y and groups[j] == groups[y]]
        if siblings and group_smoothing > 0:
            q[y, y] = 1.0 - group_smoothing
            q[y, siblings] = group_smoothing / len(siblings)
    return (q * (1.0 - label_smoothing) + label_smoothing / k).float()


def _smoothed_targets(labels: torch.Tensor, num_classes: int, smoothing: float, dtype) -> torch.Tensor:
    onehot = F.one_hot(labels, num_classes).to(dtype)  # (R, K)
    return onehot * (1.0 - smoothing) + smoothing / num_classes


def softmax_focal_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    gamma: float,
    weight: torch.Tensor | None = None,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Multi-class focal loss, normalised like :func:`torch.nn.functional.cross_entropy`.

    Per box ``i``: ``sum_k q_ik * w_k * (1 - p_ik)^gamma * (-log p_ik)`` with ``q`` the
    (smoothed) one-hot target; the mean divides by ``sum_i w_{y_i}``. At ``gamma=0`` this
    is exactly ``F.cross_entropy(logits, labels, weight, label_smoothing=...)``.

    Args:
        logits: ``(R, K)``.
        labels: ``(R,)`` class indices, all valid.
        gamma: focusing exponent.
        weight: ``(K,)`` class weights or ``None``.
        label_smoothing: target mass spread uniformly over the classes.
    """
    k = logits.shape[1]
    log_p = F.log_softmax(logits.float(), dim=1)  # (R, K)
    q = _smoothed_targets(labels, k, label_smoothing, log_p.dtype)  # (R, K)
    w = weight.to(log_p) if weight is not None else torch.ones(k, dtype=log_p.dtype, device=log_p.device)
    modulator = (1.0 - log_p.exp()).clamp(min=0.0).pow(gamma) if gamma != 0 else 1.0
    per_box = -(q * w[None, :] * modulator * log_p).sum(dim=1)  # (R,)
    return per_box.sum() / w[labels].sum()


def sigmoid_bce_loss(
    logits: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor | None = None, gamma: float = 0.0
) -> torch.Tensor:
    """Per-class binary cross-entropy (optionally focal), summed over classes, mean over boxes.

    Summing over the K classes keeps the scale comparable to the softmax loss (one
    positive per box) instead of shrinking it by ``1/K``.

    Args:
        logits: ``(R, K)``.
        targets: ``(R, K)`` in ``[0, 1]`` (multi-hot).
        weight: ``(K,)`` class weights or ``None``.
        gamma: focal exponent (0 = plain BCE).
    """
    x = logits.float()
    t = targets.to(x.dtype)
    bce = F.binary_cross_entropy_with_logits(x, t, reduction="none")  # (R, K)
    if gamma != 0:
        p = torch.sigmoid(x)
        p_t = p * t + (1 - p) * (1 - t)
        bce = bce * (1 - p_t).pow(gamma)
    if weight is not None:
        bce = bce * weight.to(bce)[None, :]
    return bce.sum(dim=1).mean()


class ActionLoss(nn.Module):
    """The training loss of the action head.

    Args:
        kind: ``"softmax"``, ``"sigmoid"`` or ``"focal"``.
        num_classes: K.
        class_weights: ``(K,)`` weights (see :func:`class_weights_from_counts`) or ``None``.
        focal_gamma: focal exponent (``focal`` only).
        label_smoothing: softmax and focal only.
        target_matrix: ``(K, K)`` soft targets per label (:func:`group_target_matrix`;
            softmax only); replaces ``label_smoothing``.
    """

    def __init__(
        self,
        kind: str,
        num_classes: int,
        class_weights: torch.Tensor | None = None,
        focal_gamma: float = 2.0,
        label_smoothing: float = 0.0,
        target_matrix: torch.Tensor | None = None,
    ):
        super().__init__()
        if kind not in LOSS_KINDS:
            raise ValueError(f"optim.loss must be one of {LOSS_KINDS}, got {kind!r}")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"optim.label_smoothing must be in [0, 1), got {label_smoothing}")
        if class_weights is not None and tuple(class_weights.shape) != (num_classes,):
            raise ValueError(f"class weights have shape {tuple(class_weights.shape)}, expected ({num_classes},)")
        self.kind = kind
        self.num_classes = num_classes
        self.focal_gamma = float(focal_gamma)
        self.label_smoothing = float(label_smoothing)
        # A buffer so it follows the module to the device and is saved with it.
        self.register_buffer(
            "class_weights",
            class_weights.float() if class_weights is not None else torch.ones(num_classes),
            persistent=False,
        )
        self.weighted = class_weights is not None
        if target_matrix is not None:
            if kind != "softmax":
                raise ValueError("group smoothing (a target matrix) needs optim.loss=softmax")
            if tuple(target_matrix.shape) != (num_classes, num_classes):
                raise ValueError(f"target matrix has shape {tuple(target_matrix.shape)}, expected ({num_classes},)*2")
            self.register_buffer("target_matrix", target_matrix.float(), persistent=False)
        else:
            self.target_matrix = None

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Loss of ``(R, K)`` logits against ``(R,)`` class indices (-1 ignored) or ``(R, K)`` multi-hot.

        ``(n, R, K)`` logits (an ensemble's members, in training) give the mean of the
        members' losses, so each member learns on its own.
        """
        if logits.ndim == 3:
            return torch.stack([self(member, labels) for member in logits.unbind(0)]).mean()
        if logits.ndim != 2 or logits.shape[1] != self.num_classes:
            raise ValueError(f"logits must be (R, {self.num_classes}), got {tuple(logits.shape)}")
        weight = self.class_weights if self.weighted else None
        multi_hot = labels.ndim == 2
        if multi_hot:
            if labels.shape != logits.shape:
                raise ValueError(f"multi-hot labels {tuple(labels.shape)} do not match logits {tuple(logits.shape)}")
            keep = labels.sum(dim=1) >= 0  # every row; multi-hot has no "unknown" marker
        else:
            if labels.shape[0] != logits.shape[0]:
                raise ValueError(f"{labels.shape[0]} labels for {logits.shape[0]} boxes")
            if labels.numel() and int(labels.max()) >= self.num_classes:
                raise ValueError(f"label {int(labels.max())} out of range for {self.num_classes} classes")
            keep = labels >= 0
        if not bool(keep.any()):
            # Zero boxes (or only unknown ones): a zero that still reaches every
            # parameter that produced the logits, so backward() and DDP's all-reduce work.
            return logits.sum() * 0.0
        logits, labels = logits[keep], labels[keep]
        if self.kind == "softmax":
            if multi_hot:
                raise ValueError("optim.loss=softmax needs one class per box; use 'sigmoid' for multi-label data")
            if self.target_matrix is not None:
                log_p = F.log_softmax(logits.float(), dim=1)  # (R, K)
                w = weight.to(log_p)[labels] if weight is not None else torch.ones_like(log_p[:, 0])
                per_box = -(self.target_matrix.to(log_p)[labels] * log_p).sum(dim=1)  # (R,)
                return (w * per_box).sum() / w.sum()
            return F.cross_entropy(logits.float(), labels, weight=weight, label_smoothing=self.label_smoothing)
        if self.kind == "focal" and not multi_hot:
            return softmax_focal_loss(logits, labels, self.focal_gamma, weight, self.label_smoothing)
        targets = labels.float() if multi_hot else F.one_hot(labels, self.num_classes).float()
        gamma = self.focal_gamma if self.kind == "focal" else 0.0
        return sigmoid_bce_loss(logits, targets, weight, gamma)


def logits_to_scores(logits: torch.Tensor, loss_kind: str) -> torch.Tensor:
    """Class scores matching the training loss: softmax for ``softmax``/``focal``, sigmoid for ``sigmoid``.

    A model trained with a softmax loss has logits that are only meaningful relative to
    each other, so a sigmoid of them would not be a probability (and vice versa).
    """
    if loss_kind in ("softmax", "focal"):
        return torch.softmax(logits.float(), dim=-1)
    if loss_kind == "sigmoid":
        return torch.sigmoid(logits.float())
    raise ValueError(f"unknown loss kind {loss_kind!r}; expected one of {LOSS_KINDS}")

