"""Loading a pretrained file into a model: shape adaptations, the report, the strict backbone check."""

from __future__ import annotations

import re
import logging
from pathlib import Path

import torch
from torch import nn

from thermal_action.errors import CheckpointError
from thermal_action.structures import NUM_ZONE_FEATURES
from thermal_action.models.pretrained.fitting import backbone_depths_for, backbone_options_for, fitting_variants
from thermal_action.models.pretrained.formats import (
    BN_COUNTER,
    FORMAT_OURS,
    FORMAT_TITLES,
    INPUT_CONV_KEYS,
    STEM_CONV_KEYS,
)
from thermal_action.models.pretrained.naming import (
    MappedCheckpoint,
    map_checkpoint,
)
from thermal_action.models.pretrained.reading import RawCheckpoint, read_checkpoint
from thermal_action.models.pretrained.report import ConvertedKey, LoadReport, ShapeMismatch, SkippedKey

log = logging.getLogger(__name__)

#: At most this many per-box inputs a model's head may have beyond the file's (a tube's box
#: size and the room's zone features), filled with zero weights.
_MAX_NEW_HEAD_INPUTS = 2 + NUM_ZONE_FEATURES


def _adapt(key: str, tensor: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, str]:
    """Shape conversions with a meaning; returns the tensor and what was done ("" = nothing)."""
    if tensor.shape == target.shape:
        return tensor, ""
    if (key in INPUT_CONV_KEYS and tensor.dim() == 5 and target.dim() == 5 and tensor.shape[0] == target.shape[0]
            and tensor.shape[2:] == target.shape[2:]):
        done = []
        if key in STEM_CONV_KEYS and tensor.shape[1] == 3 and target.shape[1] != 3:
            from thermal_action.models.backbone import rgb_stem_to_thermal

            done.append(f"RGB stem {list(tensor.shape)} summed over its 3 input channels")
            tensor = rgb_stem_to_thermal(tensor)
        if tensor.shape[1] == 1 and target.shape[1] > 1:
            # The zone-mask channels of model.room: the pretrained model saw no room, so they
            # start at zero and the model computes what the file's did until training uses them.
            extra = target.shape[1] - 1
            tensor = torch.cat([tensor, tensor.new_zeros(tensor.shape[0], extra, *tensor.shape[2:])], dim=1)
            done.append(f"{extra} zone-mask input channels added at zero")
        return tensor, "; ".join(done)
    if (key == "head.fc1.weight" and tensor.dim() == 2 and target.dim() == 2 and tensor.shape[0] == target.shape[0]
            and 0 < target.shape[1] - tensor.shape[1] <= _MAX_NEW_HEAD_INPUTS):
        # The head's new per-box inputs (the room's zone features, after a tube's box size) come last.
        extra = target.shape[1] - tensor.shape[1]
        return (torch.cat([tensor, tensor.new_zeros(tensor.shape[0], extra)], dim=1),
                f"{extra} new head inputs (box size / room features) added at zero")
    if (
        re.search(r"\.temporal_position_[kv]$", key)
        and tensor.dim() == target.dim()
        and tensor.shape[1:] == target.shape[1:]
        and tensor.shape[0] > target.shape[0]
        and tensor.shape[0] % 2 == 1
        and target.shape[0] % 2 == 1
    ):
        # Rows are relative keyframe offsets -w..w; a shorter table keeps the middle ones.
        start = (tensor.shape[0] - target.shape[0]) // 2
        return tensor[start : start + target.shape[0]], (
            f"memory position table centre-cropped from {tensor.shape[0]} to {target.shape[0]} offsets"
        )
    return tensor, ""


def _unused_reason(key: str) -> str:
    if key.endswith(BN_COUNTER):
        return "BN step counter; the model's BN keeps none"
    if key.startswith("head.interaction."):
        return "interaction-structure tensor; the model has no (or another) interaction structure"
    if re.search(r"nonlocal|non_local", key):
        return "non-local block; our backbone has none"
    if key.startswith("backbone."):
        return "backbone tensor the model does not have (another depth or lateral variant?)"
    return "no counterpart in the model"


def load_pretrained(model: nn.Module, path: str | Path, *, strict_backbone: bool = True) -> LoadReport:
    """Loads a pretrained checkpoint into ``model`` (an ``ActionDetector``, or any module
    whose tensors are named ``backbone.*`` / ``head.*`` like ours).

    The layout is detected from the file (see the module docstring), every tensor is
    renamed to ours, RGB stems are summed to one channel, and the classifier is only
    loaded when its shape fits. The model is left untouched when the load fails.

    Args:
        model: the model to fill in place.
        path: ``.pth`` / ``.pt`` / ``.pyth`` / ``.ckpt`` / ``.safetensors`` file.
        strict_backbone: raise if any backbone tensor of the model is missing from the
            file or has another shape, or the file has backbone tensors the model lacks
            (BN step counters excepted). With ``False`` those are only reported.

    Returns:
        A :class:`LoadReport` of what was loaded, skipped, missing and mismatched.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: unreadable or unsafe file, unknown layout, or (with
            ``strict_backbone``) a backbone that does not fit; the message names the file
            and the variants the file would fit.
    """
    raw = read_checkpoint(path)
    return load_mapped(model, raw, map_checkpoint(raw), strict_backbone)


def load_mapped(model: nn.Module, raw: RawCheckpoint, mapped: MappedCheckpoint, strict_backbone: bool) -> LoadReport:
    report = LoadReport(source=raw.path, format=mapped.format, top_level_key=raw.top_level_key)
    report.skipped.extend(mapped.skipped)

    model_state = model.state_dict()
    model_keys = set(model_state)
    updates: dict[str, torch.Tensor] = {}
    in_file: set[str] = set()  # our names the file has a tensor for (loaded or not)
    leftover_backbone: list[str] = []
    for key, tensor in mapped.tensors.items():
        source_key = mapped.source_keys[key]
        if key not in model_keys:
            report.skipped.append(SkippedKey(source_key, _unused_reason(key)))
            if key.startswith("backbone.") and not key.endswith(BN_COUNTER):
                leftover_backbone.append(source_key)
            continue
        in_file.add(key)
        target = model_state[key]
        tensor, how = _adapt(key, tensor, target)
        if tensor.shape != target.shape:
            if key.startswith("head.classifier."):
                report.skipped.append(SkippedKey(
                    source_key,
                    f"classifier {list(tensor.shape)} (K={tensor.shape[0] if tensor.dim() else '?'}) does not fit "
                    f"the model's {list(target.shape)}; it keeps its fresh initialisation",
                ))
            else:
                report.shape_mismatched.append(ShapeMismatch(key, source_key, list(tensor.shape), list(target.shape)))
            continue
        if how:
            report.converted.append(ConvertedKey(key, how))
        updates[key] = tensor
        report.loaded.append(key)

    for key in model_state:
        if key not in in_file:
            (report.absent_bn_counters if key.endswith(BN_COUNTER) else report.missing).append(key)

    if strict_backbone:
        _check_backbone(raw.path, mapped, report, leftover_backbone)

    result = model.load_state_dict(updates, strict=False)
    if result.unexpected_keys:  # cannot happen: every update key came from model.state_dict()
        raise RuntimeError(f"unexpected keys while loading {raw.path}: {result.unexpected_keys[:5]}")
    log.info(
        "loaded %d tensors from %s (%s); %d skipped, %d missing, %d mismatched",
        len(report.loaded), raw.path, mapped.format, len(report.skipped), len(report.missing),
        len(report.shape_mismatched),
    )
    return report


def _check_backbone(path: str, mapped: MappedCheckpoint, report: LoadReport, leftover: list[str]) -> None:
    """Raises :class:`CheckpointError` when the file's backbone and the model's differ."""
    mismatched = [m for m in report.shape_mismatched if m.key.startswith("backbone.")]
    missing = report.missing_backbone
    if not (mismatched or missing or leftover):
        if not report.loaded_backbone:
            raise CheckpointError(path, "the file has no backbone weights for this model")
        return
    problems: list[str] = []
    if missing:
        problems.append(f"{len(missing)} backbone tensors of the model are not in the file, e.g. {missing[:3]}")
    if mismatched:
        problems.append(
            f"{len(mismatched)} backbone tensors have other shapes, e.g. "
            + "; ".join(f"{m.key} file {m.file_shape} vs model {m.model_shape}" for m in mismatched[:3])
        )
    if leftover:
        problems.append(f"{len(leftover)} backbone tensors of the file have no place in the model, e.g. {leftover[:3]}")
    if mapped.format == FORMAT_OURS:
        hint = " Build the model from the model_config saved with this checkpoint, or pass strict_backbone=False."
    else:
        fits = fitting_variants(mapped)
        hint = (
            f" The file's backbone has depths {backbone_depths_for(mapped)} and options "
            f"{backbone_options_for(mapped)}; "
            + (f"variants that fit it: {fits}." if fits else "no variant in VARIANTS fits it.")
            + " Pass strict_backbone=False to load only what fits."
        )
    raise CheckpointError(
        path, f"{FORMAT_TITLES[mapped.format]} backbone does not fit the model: " + "; ".join(problems) + "." + hint
    )
