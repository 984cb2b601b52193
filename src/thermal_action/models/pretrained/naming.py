"""Name mapping: each published layout's tensor names onto ours (pure functions of the names),
the layout detection, and the mapped checkpoint."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch

from thermal_action.errors import CheckpointError
from thermal_action.models.pretrained.formats import (
    FORMAT_ALPHACTION,
    FORMAT_MMACTION2,
    FORMAT_OURS,
    FORMAT_PYSLOWFAST,
    FORMAT_PYTORCHVIDEO,
)
from thermal_action.models.pretrained.reading import RawCheckpoint
from thermal_action.models.pretrained.report import SkippedKey


_BRANCH2 = {"1": "a", "2": "b", "3": "c"}
_PATHWAY = {"slow": 0, "fast": 1}
_PROJECTION_HEAD_REASON = (
    "{title} linear projection on the 2304-d pooled feature; our head is an fc1/fc2 MLP "
    "plus a classifier, so it has no counterpart (the classifier is trained anew)"
)


@dataclass
class MappedKey:
    """Where one file tensor goes: our name, or ``None`` with the reason it is skipped."""

    key: str | None
    reason: str = ""


def _bn_or_conv(kind: str, conv_name: str, bn_name: str) -> str:
    return conv_name if kind == "conv" else bn_name


def _branch2(stage: int, pathway: int | str, block: str, letter: str, is_bn: bool, leaf: str) -> str:
    """Our name of a bottleneck conv (``a``/``b``/``c``) or its BN."""
    return f"backbone.s{stage}.pathway{pathway}_res{block}.branch2.{letter}{'_bn' if is_bn else ''}.{leaf}"


def _branch1(stage: int, pathway: int | str, block: str, is_bn: bool, leaf: str) -> str:
    """Our name of a projection shortcut conv or its BN."""
    return f"backbone.s{stage}.pathway{pathway}_res{block}.branch1{'_bn' if is_bn else ''}.{leaf}"


def _map_alphaction(key: str) -> MappedKey:
    if m := re.fullmatch(r"backbone\.(slow|fast)\.conv1\.(\w+)", key):
        return MappedKey(f"backbone.s1.pathway{_PATHWAY[m[1]]}_stem.conv.{m[2]}")
    if m := re.fullmatch(r"backbone\.(slow|fast)\.bn1\.(\w+)", key):
        return MappedKey(f"backbone.s1.pathway{_PATHWAY[m[1]]}_stem.bn.{m[2]}")
    if m := re.fullmatch(r"backbone\.(slow|fast)\.res_nl(\d)\.res_(\d+)\.btnk\.conv([123])\.(conv|bn)\.(\w+)", key):
        return MappedKey(_branch2(int(m[2]) + 1, _PATHWAY[m[1]], m[3], _BRANCH2[m[4]], m[5] == "bn", m[6]))
    if m := re.fullmatch(r"backbone\.(slow|fast)\.res_nl(\d)\.res_(\d+)\.shortcut\.(conv|bn)\.(\w+)", key):
        return MappedKey(_branch1(int(m[2]) + 1, _PATHWAY[m[1]], m[3], m[4] == "bn", m[5]))
    if m := re.fullmatch(r"backbone\.fast\.Tconv(\d)\.(conv|bn)\.(\w+)", key):
        return MappedKey(f"backbone.s{m[1]}_fuse.{_bn_or_conv(m[2], 'conv_f2s', 'bn')}.{m[3]}")
    if m := re.fullmatch(r"roi_heads\.action\.feature_extractor\.(fc[12])\.(\w+)", key):
        return MappedKey(f"head.{m[1]}.{m[2]}")
    if m := re.fullmatch(r"roi_heads\.action\.feature_extractor\.ia_structure\.(.+)", key):
        return MappedKey(f"head.interaction.{m[1]}")
    if m := re.fullmatch(r"roi_heads\.action\.predictor\.cls_score\.(\w+)", key):
        return MappedKey(f"head.classifier.{m[1]}")
    if key.startswith("backbone."):
        # e.g. non-local blocks: kept under its own name so a strict load reports it as left over.
        return MappedKey(key)
    return MappedKey(None, "AlphAction tensor with no counterpart in our model")


def _map_pyslowfast(key: str) -> MappedKey:
    if re.match(r"s\d(_fuse)?\.", key):
        return MappedKey(f"backbone.{key}")
    if key.startswith("head.projection."):
        return MappedKey(None, _PROJECTION_HEAD_REASON.format(title="PySlowFast"))
    return MappedKey(None, "PySlowFast tensor with no counterpart in our model")


def _map_mmaction2(key: str) -> MappedKey:
    if m := re.fullmatch(r"backbone\.(slow|fast)_path\.conv1\.(conv|bn)\.(\w+)", key):
        return MappedKey(f"backbone.s1.pathway{_PATHWAY[m[1]]}_stem.{m[2]}.{m[3]}")
    if m := re.fullmatch(r"backbone\.(slow|fast)_path\.layer(\d)\.(\d+)\.conv([123])\.(conv|bn)\.(\w+)", key):
        return MappedKey(_branch2(int(m[2]) + 1, _PATHWAY[m[1]], m[3], _BRANCH2[m[4]], m[5] == "bn", m[6]))
    if m := re.fullmatch(r"backbone\.(slow|fast)_path\.layer(\d)\.(\d+)\.downsample\.(conv|bn)\.(\w+)", key):
        return MappedKey(_branch1(int(m[2]) + 1, _PATHWAY[m[1]], m[3], m[4] == "bn", m[5]))
    if m := re.fullmatch(r"backbone\.slow_path\.(conv1|layer\d)_lateral\.(conv|bn)\.(\w+)", key):
        fuse = 1 if m[1] == "conv1" else int(m[1][-1]) + 1
        return MappedKey(f"backbone.s{fuse}_fuse.{_bn_or_conv(m[2], 'conv_f2s', 'bn')}.{m[3]}")
    if re.match(r"(roi_head\.bbox_head|cls_head)\.fc_cls\.", key):
        return MappedKey(
            None,
            _PROJECTION_HEAD_REASON.format(title="MMAction2")
            + ("; row 0 is the background class" if key.startswith("roi_head.") else ""),
        )
    if key.startswith("data_preprocessor."):
        return MappedKey(None, "MMAction2 input normalisation constants (our data pipeline normalises)")
    if key.startswith("backbone."):
        return MappedKey(key, "")
    return MappedKey(None, "MMAction2 tensor with no counterpart in our model")


def _map_pytorchvideo(key: str) -> MappedKey:
    name = key[len("model.") :] if key.startswith("model.") else key
    if m := re.fullmatch(r"blocks\.0\.multipathway_blocks\.(\d)\.(conv|norm)\.(\w+)", name):
        return MappedKey(f"backbone.s1.pathway{m[1]}_stem.{'conv' if m[2] == 'conv' else 'bn'}.{m[3]}")
    res_block = r"blocks\.(\d)\.multipathway_blocks\.(\d)\.res_blocks\.(\d+)\."
    if m := re.fullmatch(res_block + r"branch2\.(conv|norm)_([abc])\.(\w+)", name):
        return MappedKey(_branch2(int(m[1]) + 1, m[2], m[3], m[5], m[4] == "norm", m[6]))
    if m := re.fullmatch(res_block + r"branch1_(conv|norm)\.(\w+)", name):
        return MappedKey(_branch1(int(m[1]) + 1, m[2], m[3], m[4] == "norm", m[5]))
    if m := re.fullmatch(r"blocks\.(\d)\.multipathway_fusion\.(conv_fast_to_slow|norm)\.(\w+)", name):
        return MappedKey(f"backbone.s{int(m[1]) + 1}_fuse.{'conv_f2s' if m[2] == 'conv_fast_to_slow' else 'bn'}.{m[3]}")
    if re.fullmatch(r"(detection_head\.proj|blocks\.\d+\.proj)\.\w+", name):
        return MappedKey(None, _PROJECTION_HEAD_REASON.format(title="PyTorchVideo"))
    if name.startswith("blocks."):
        return MappedKey(f"backbone.{name}", "")
    return MappedKey(None, "PyTorchVideo tensor with no counterpart in our model")


def _map_ours(key: str) -> MappedKey:
    # A Lightning checkpoint of our training system holds the detector under ``model.``;
    # anything else there (loss weights, EMA copies) is training state.
    name = key[len("model.") :] if key.startswith("model.") else key
    if name.startswith(("backbone.", "head.")):
        return MappedKey(name)
    return MappedKey(None, "training-system state, not part of the detector")


_MAPPERS: dict[str, Callable[[str], MappedKey]] = {
    FORMAT_ALPHACTION: _map_alphaction,
    FORMAT_PYSLOWFAST: _map_pyslowfast,
    FORMAT_MMACTION2: _map_mmaction2,
    FORMAT_PYTORCHVIDEO: _map_pytorchvideo,
    FORMAT_OURS: _map_ours,
}


def map_key(fmt: str, key: str) -> MappedKey:
    """Maps one tensor name of a ``fmt`` checkpoint onto our naming.

    Returns:
        ``MappedKey(our_name)``, or ``MappedKey(None, reason)`` for tensors that have no
        counterpart by design (projection heads, training state).
    """
    try:
        return _MAPPERS[fmt](key)
    except KeyError:
        raise ValueError(f"unknown checkpoint format '{fmt}'; known: {sorted(_MAPPERS)}") from None


def strip_wrapper_prefix(keys: Iterable[str]) -> str:
    """The ``module.`` prefix DataParallel/DDP put on every name, or ``""``."""
    keys = list(keys)
    if keys and all(k.startswith("module.") for k in keys):
        return "module."
    return ""


def detect_format(keys: Iterable[str], top_level_key: str | None = None) -> str:
    """Recognises the checkpoint layout from its tensor names.

    Args:
        keys: tensor names (without a ``module.`` prefix).
        top_level_key: the key that held them; only used in the error message.

    Raises:
        ValueError: no known layout matches.
    """
    keys = list(keys)

    def has(pattern: str) -> bool:
        rx = re.compile(pattern)
        return any(rx.match(k) for k in keys)

    if has(r"backbone\.(slow|fast)_path\."):
        return FORMAT_MMACTION2
    if has(r"backbone\.(slow|fast)\.") or has(r"roi_heads\.action\."):
        return FORMAT_ALPHACTION
    if has(r"(model\.)?blocks\.\d+\.multipathway_(blocks|fusion)\."):
        return FORMAT_PYTORCHVIDEO
    if (has(r"(model\.)?backbone\.s1\.pathway0_stem\.") or has(r"(model\.)?head\.classifier\.")
            or has(r"(model\.)?backbone\.body\.\d+\.")):  # the last: our person-crop CNN (thermal-action pretrain)
        return FORMAT_OURS
    if has(r"s1\.pathway0_stem\."):
        return FORMAT_PYSLOWFAST
    where = f" under '{top_level_key}'" if top_level_key else ""
    raise ValueError(
        f"unrecognised checkpoint layout{where}: none of the AlphAction, PySlowFast, MMAction2, "
        f"PyTorchVideo or thermal-action SlowFast names found; first keys: {keys[:5]}"
    )


@dataclass
class MappedCheckpoint:
    """A checkpoint's tensors renamed to ours."""

    format: str
    tensors: dict[str, torch.Tensor]  # our name -> tensor
    source_keys: dict[str, str]  # our name -> name in the file
    skipped: list[SkippedKey]


def map_checkpoint(raw: RawCheckpoint, fmt: str | None = None) -> MappedCheckpoint:
    """Renames every tensor of ``raw`` to our naming (format auto-detected unless given).

    Raises:
        CheckpointError: unknown layout, or two file tensors mapping onto one name.
    """
    prefix = strip_wrapper_prefix(raw.tensors)
    names = {k[len(prefix) :]: k for k in raw.tensors}
    if fmt is None:
        try:
            fmt = detect_format(names, raw.top_level_key)
        except ValueError as e:
            raise CheckpointError(raw.path, str(e)) from None
    tensors: dict[str, torch.Tensor] = {}
    source_keys: dict[str, str] = {}
    skipped: list[SkippedKey] = []
    for name, original in names.items():
        mapped = map_key(fmt, name)
        if mapped.key is None:
            skipped.append(SkippedKey(original, mapped.reason))
            continue
        if mapped.key in tensors:
            raise CheckpointError(
                raw.path, f"tensors '{source_keys[mapped.key]}' and '{original}' both map onto '{mapped.key}'"
            )
        tensors[mapped.key] = raw.tensors[original]
        source_keys[mapped.key] = original
    return MappedCheckpoint(fmt, tensors, source_keys, skipped)
