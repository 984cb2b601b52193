"""Optimiser and learning-rate schedule for fine-tuning on a few hundred clips.

The schedule is applied per optimiser step (not per epoch): with ~50 steps per epoch
a per-epoch schedule would move in coarse jumps and the warm-up would be one big step.

::

    lr factor
    1.0 |      ______
        |     /      ``--._          cosine (or step) decay after a linear warm-up
        |    /             ``-.
    f0  |___/                  `--.__ min_lr_factor
        0  warmup_steps         total_steps
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("cosine", "step", "constant")


@dataclass(frozen=True)
class LrSchedule:
    """A learning-rate factor as a function of the optimiser step.

    Attributes:
        total_steps: optimiser steps of the whole run.
        warmup_steps: linear warm-up length in steps (0 = none).
        kind: ``"cosine"``, ``"step"`` or ``"constant"`` (after the warm-up).
        warmup_start_factor: factor at step 0.
        min_factor: cosine floor.
        milestones: steps at which the ``"step"`` schedule multiplies by ``gamma``.
        gamma: ``"step"`` decay factor.
    """

    total_steps: int
    warmup_steps: int = 0
    kind: str = "cosine"
    warmup_start_factor: float = 0.01
    min_factor: float = 0.0
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULES:
            raise ValueError(f"optim.schedule must be one of {SCHEDULES}, got {self.kind!r}")
        if self.total_steps < 1:
            raise ValueError(f"a schedule needs at least one step, got total_steps={self.total_steps}")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {self.warmup_steps}")

    def __call__(self, step: int) -> float:
        """The lr factor (multiplies the peak lr) at optimiser step ``step`` (0-based)."""
        if step < self.warmup_steps:
            # Reaches 1 exactly at step == warmup_steps.
            frac = step / self.warmup_steps
            return self.warmup_start_factor + (1.0 - self.warmup_start_factor) * frac
        if self.kind == "constant":
            return 1.0
        if self.kind == "step":
            return self.gamma ** sum(1 for m in self.milestones if step >= m)
        decay_steps = max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / decay_steps)
        return self.min_factor + (1.0 - self.min_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass(frozen=True)
class ScheduleSettings:
    """The epoch-based schedule of a run (``optim.*``), turned into steps once the number of
    optimiser steps is known (:meth:`for_steps`).

    Attributes:
        epochs: epochs of the run.
        kind: ``"cosine"``, ``"step"`` or ``"constant"``.
        warmup_epochs: warm-up length in (fractional) epochs.
        warmup_start_factor, min_factor, gamma: see :class:`LrSchedule`.
        milestone_epochs: ``"step"`` decay epochs.
    """

    epochs: int = 10
    kind: str = "cosine"
    warmup_epochs: float = 1.0
    warmup_start_factor: float = 0.01
    min_factor: float = 0.0
    milestone_epochs: tuple[int, ...] = ()
    gamma: float = 0.1

    def for_steps(self, total_steps: int) -> LrSchedule:
        """The :class:`LrSchedule` of a run of ``total_steps`` optimiser steps."""
        return build_schedule(total_steps, self.epochs, self.kind, self.warmup_epochs, self.warmup_start_factor,
                              self.min_factor, self.milestone_epochs, self.gamma)


@dataclass(frozen=True)
class OptimizerSettings:
    """The optimiser of a run (``optim.*``); :meth:`build` makes it for a model.

    Attributes:
        name: ``"adamw"`` or ``"sgd"``.
        lr: peak learning rate.
        weight_decay: decoupled (AdamW) or L2 (SGD), never on norm weights and biases.
        momentum: SGD only.
    """

    name: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    momentum: float = 0.9

    def build(self, model: nn.Module) -> torch.optim.Optimizer:
        """:func:`build_optimizer` over ``model``'s trainable parameters."""
        return build_optimizer(model, self.name, self.lr, self.weight_decay, self.momentum)


def build_schedule(
    total_steps: int,
    epochs: int,
    kind: str,
    warmup_epochs: float,
    warmup_start_factor: float = 0.01,
    min_factor: float = 0.0,
    milestone_epochs: tuple[int, ...] = (),
    gamma: float = 0.1,
) -> LrSchedule:
    """Converts epoch-based settings into an :class:`LrSchedule` in steps.

    Args:
        total_steps: optimiser steps of the run (Lightning's ``estimated_stepping_batches``,
            which already accounts for devices, gradient accumulation and batch limits).
        epochs: epochs of the run (to convert epochs into steps).
        kind, warmup_start_factor, min_factor, gamma: see :class:`LrSchedule`.
        warmup_epochs: warm-up length in (fractional) epochs; capped at the run length.
        milestone_epochs: ``"step"`` decay epochs.
    """
    total_steps = max(1, int(total_steps))
    steps_per_epoch = total_steps / max(1, epochs)
    warmup = min(total_steps, int(round(warmup_epochs * steps_per_epoch)))
    milestones = tuple(int(round(e * steps_per_epoch)) for e in milestone_epochs)
    return LrSchedule(
        total_steps=total_steps,
        warmup_steps=warmup,
        kind=kind,
        warmup_start_factor=warmup_start_factor,
        min_factor=min_factor,
        milestones=milestones,
        gamma=gamma,
    )


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Splits trainable parameters into a decayed and a non-decayed group.

    Weight decay pulls weights towards zero; on norm scales it fights the normalisation
    and on biases it only shifts activations, so both are excluded (every parameter
    with fewer than 2 dimensions: BatchNorm/LayerNorm weights and all biases).
    """
    decay, no_decay = [], []
    for _, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
        if not p.requires_grad:
            continue
        (decay if p.ndim >= 2 else no_decay).append(p)
    groups = []
    if decay:
        groups.append({"params": decay, "weight_decay": weight_decay})
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    if not groups:
        raise ValueError("the model has no trainable parameters")
    return groups


def build_optimizer(
    model: nn.Module, name: str, lr: float, weight_decay: float, momentum: float = 0.9
) -> torch.optim.Optimizer:
    """AdamW or SGD (with momentum) over :func:`parameter_groups`."""
    if name not in OPTIMIZERS:
        raise ValueError(f"optim.optimizer must be one of {OPTIMIZERS}, got {name!r}")
    if lr <= 0:
        raise ValueError(f"optim.lr must be positive, got {lr}")
    groups = parameter_groups(model, weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    return torch.optim.SGD(groups, lr=lr, momentum=momentum)
