"""Training on Lightning: the training system, data module, losses, schedules.

Public entry points (imported lazily, so importing the package does not pull in Lightning)::

    train(cfg, out_dir, resume=False) -> TrainResult
    evaluate_checkpoint(checkpoint, data_root, ann_file, out_dir, detections=None, overrides=None) -> dict

Checkpoints are read by :mod:`thermal_action.models.checkpoint` (below training and
inference, so serving never imports the trainer).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "train": "thermal_action.training.train",
    "TrainResult": "thermal_action.training.train",
    "evaluate_checkpoint": "thermal_action.training.evaluate",
    "ActionLoss": "thermal_action.training.losses",
    "class_weights_from_counts": "thermal_action.training.losses",
    "logits_to_scores": "thermal_action.training.losses",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'thermal_action.training' has no attribute {name!r}")
