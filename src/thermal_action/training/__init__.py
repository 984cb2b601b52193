"""Training on Lightning: the training system, data module, losses, schedules, checkpoints.

Public entry points (imported lazily, so ``import thermal_action.training.checkpoint`` from
inference code does not pull in Lightning)::

    train(cfg, out_dir, resume=False) -> TrainResult
    evaluate_checkpoint(checkpoint, data_root, ann_file, out_dir, detections=None, overrides=None) -> dict
    load_detector(checkpoint_path, device="cpu") -> (model, cfg, class_names)
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "train": "thermal_action.training.train",
    "TrainResult": "thermal_action.training.train",
    "evaluate_checkpoint": "thermal_action.training.evaluate",
    "load_detector": "thermal_action.training.checkpoint",
    "read_checkpoint_info": "thermal_action.training.checkpoint",
    "ActionLoss": "thermal_action.training.losses",
    "class_weights_from_counts": "thermal_action.training.losses",
    "logits_to_scores": "thermal_action.training.losses",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'thermal_action.training' has no attribute {name!r}")
