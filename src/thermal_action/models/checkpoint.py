"""Training checkpoints: what they hold and how to get a detector back from one.

A checkpoint is a Lightning ``.ckpt`` (``torch.save`` of plain data) that loads with
``torch.load(..., weights_only=True)``: besides Lightning's own entries (weights under
``state_dict`` with the ``model.`` prefix, optimiser and scheduler state, loop
progress) it holds, under :data:`CHECKPOINT_KEY`::

    {"format_version": 1,
     "config": {...},          # the resolved Config as a plain dict (config_to_dict)
     "class_names": [...],     # K names in category-id order
     "score_activation": "softmax" | "sigmoid",
     "fall_calibration": {"threshold", "target_recall", "recall", "precision", ...} | None,
     "alert_rule": {"fall_class", "threshold", "min_seconds", ...} | None,  # AlertRule.to_dict()
     "frame_size": [H, W] | None,  # of the training recordings (None: older checkpoints)
     "validation_overlaps_training": {"recordings": [...], "keyframes": [...]} | None}
                               # what the validation set shared with training (None: not recorded)

so a checkpoint is self-describing: :func:`load_checkpoint` rebuilds the model with the
same variant, input size and head without the YAML file it was trained from, and returns
it with everything else the file holds (one read). The fall alert rule a checkpoint carries
(:class:`~thermal_action.alert_rule.AlertRule`, its threshold calibrated by ``train``) is
:attr:`CheckpointInfo.alert_rule`; a checkpoint from before the rule (no ``alert_rule``) gives
the default rule with its config's ``eval.fall_threshold``, else its calibrated threshold.
This module sits below training and inference: serving reads checkpoints without importing
the trainer.
"""

from __future__ import annotations

import copy
import io
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from thermal_action.alert_rule import AlertRule
from thermal_action.config import Config, config_from_dict
from thermal_action.errors import CheckpointError

CHECKPOINT_KEY = "thermal_action"
FORMAT_VERSION = 1
#: Prefix of the detector's weights inside the training system's state dict.
MODEL_PREFIX = "model."


@dataclass
class CheckpointInfo:
    """What :func:`read_checkpoint_info` finds in a checkpoint besides the weights.

    Attributes:
        path: the file.
        config: the resolved training config.
        class_names: K class names in category-id order.
        score_activation: ``"softmax"`` or ``"sigmoid"``: how logits become scores.
        epoch, global_step: training progress when it was saved.
        fall_calibration: the fall operating threshold chosen on the validation set of the
            epoch these weights are from, with the recall and precision it had there (None:
            no validation fall box, or a checkpoint from before calibration).
        alert_rule: the fall alert rule that came with the model (module docstring).
        frame_size: ``(H, W)`` of the frames the model was trained on (None: not recorded,
            a checkpoint from before frame sizes were stored, or mixed sizes).
        validation_overlaps_training: the recordings (sensor ids) and keyframes (image ids)
            the validation set shared with the training set: non-empty lists mean the
            validation numbers and the calibrated threshold are optimistic (None: not recorded).
    """

    path: Path
    config: Config
    class_names: list[str]
    score_activation: str
    epoch: int
    global_step: int
    fall_calibration: dict[str, Any] | None = None
    alert_rule: AlertRule = AlertRule()
    frame_size: tuple[int, int] | None = None
    validation_overlaps_training: dict[str, list[str]] | None = None


def checkpoint_extras(config: dict[str, Any], class_names: list[str], score_activation: str,
                      fall_calibration: dict[str, Any] | None = None, alert_rule: AlertRule | None = None,
                      frame_size: tuple[int, int] | None = None,
                      validation_overlaps_training: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """The plain-data entry stored under :data:`CHECKPOINT_KEY` in every checkpoint."""
    return {
        "format_version": FORMAT_VERSION,
        "config": copy.deepcopy(config),
        "class_names": [str(n) for n in class_names],
        "score_activation": score_activation,
        "fall_calibration": copy.deepcopy(fall_calibration),
        "alert_rule": alert_rule.to_dict() if alert_rule is not None else None,
        "frame_size": [int(v) for v in frame_size] if frame_size is not None else None,
        "validation_overlaps_training": copy.deepcopy(validation_overlaps_training),
    }


def _alert_rule(path: Path, extras: dict[str, Any], config: Config) -> AlertRule:
    """The rule a checkpoint carries; for one from before rules, the default rule with the
    threshold it would have used (its config's, else its calibrated one)."""
    stored = extras.get("alert_rule")
    try:
        if stored is not None:
            return AlertRule.from_dict(stored)
        calibration = extras.get("fall_calibration") or {}
        threshold = config.eval.fall_threshold if config.eval.fall_threshold is not None \
            else calibration.get("threshold")
        given = {"fall_class": config.eval.fall_class}
        if threshold is not None:
            given["threshold"] = float(threshold)
        return AlertRule(**given)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: its fall alert rule is not valid: {e}") from e


def _load(path: str | Path, data: bytes | None = None) -> dict[str, Any]:
    path = Path(path)
    if data is None and not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        # weights_only: a checkpoint is data; never execute pickled code from it.
        ckpt = torch.load(path if data is None else io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - re-raised with the file name
        from thermal_action.models.pretrained.reading import explain_load_failure

        # The project's one-line refusal, as for pretrained weights: torch's own text
        # suggests retrying with weights_only=False, which would run the file's code.
        raise CheckpointError(path, explain_load_failure(path, e)) from e
    if not isinstance(ckpt, dict) or CHECKPOINT_KEY not in ckpt or "state_dict" not in ckpt:
        raise ValueError(
            f"{path}: not a thermal-action training checkpoint (no '{CHECKPOINT_KEY}' entry); "
            "pretrained weights from other codebases load with model.pretrained instead"
        )
    return ckpt


def _info(path: Path, ckpt: dict[str, Any]) -> CheckpointInfo:
    extras = ckpt[CHECKPOINT_KEY]
    version = extras.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(f"{path}: checkpoint format version {version!r}, this code reads {FORMAT_VERSION}")
    config = config_from_dict(extras["config"])
    return CheckpointInfo(
        path=path,
        config=config,
        class_names=list(extras["class_names"]),
        score_activation=str(extras.get("score_activation", "softmax")),
        epoch=int(ckpt.get("epoch", -1)),
        global_step=int(ckpt.get("global_step", -1)),
        fall_calibration=extras.get("fall_calibration"),
        alert_rule=_alert_rule(path, extras, config),
        frame_size=tuple(int(v) for v in extras["frame_size"]) if extras.get("frame_size") else None,
        validation_overlaps_training=extras.get("validation_overlaps_training"),
    )


def read_checkpoint_info(path: str | Path) -> CheckpointInfo:
    """Reads the config, class names and progress of a training checkpoint."""
    return _info(Path(path), _load(path))


def detector_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The detector's own weights from the training system's state dict (``model.`` stripped)."""
    out = {k[len(MODEL_PREFIX):]: v for k, v in state_dict.items() if k.startswith(MODEL_PREFIX)}
    if not out:
        raise ValueError(f"no '{MODEL_PREFIX}*' weights in the checkpoint's state_dict")
    return out


@dataclass
class LoadedCheckpoint:
    """A trained detector and everything its checkpoint says about it, from one read.

    Attributes:
        model: the ``ActionDetector`` (or ensemble), in eval mode, on the requested device.
        info: the :class:`CheckpointInfo` (config, class names, score activation, epoch,
            fall calibration, alert rule, frame size).
    """

    model: nn.Module
    info: CheckpointInfo

    @property
    def config(self) -> Config:
        return self.info.config

    @property
    def class_names(self) -> list[str]:
        return self.info.class_names

    @property
    def score_activation(self) -> str:
        return self.info.score_activation

    @property
    def alert_rule(self) -> AlertRule:
        return self.info.alert_rule


def load_checkpoint(checkpoint_path: str | Path, device: str | torch.device = "cpu",
                    data: bytes | None = None) -> LoadedCheckpoint:
    """Rebuilds the trained detector from a training checkpoint, reading the file once.

    Used by ``evaluate``, ``predict`` and ``export``. The model is built from the
    checkpoint's own config (``model.pretrained`` is not read again: the checkpoint
    already holds every weight) and put in eval mode.

    Args:
        checkpoint_path: a ``.ckpt`` written by ``thermal-action train``.
        device: where the model goes.
        data: the file's bytes, already read (the service reads its checkpoint once and
            hands the bytes to its workers); ``checkpoint_path`` then only names it.

    Returns:
        A :class:`LoadedCheckpoint`: ``.model`` and ``.info`` (``.config``,
        ``.class_names``, ``.score_activation``, ``.alert_rule`` as shortcuts).

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: an unreadable or unsafe file (the project's one-line refusal).
        ValueError: not a thermal-action checkpoint, or weights that do not fit the model
            its config describes; the message names the file.
    """
    from thermal_action.models.build import build_model

    path = Path(checkpoint_path)
    ckpt = _load(path, data)
    info = _info(path, ckpt)
    model = build_model(replace(info.config.model, pretrained=""), len(info.class_names))
    state = detector_state_dict(ckpt["state_dict"])
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ValueError(f"{path}: weights do not fit model.variant={info.config.model.variant!r}: {e}") from e
    model.to(device).eval()
    return LoadedCheckpoint(model, info)
