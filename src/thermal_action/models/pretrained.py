"""Pretrained-weight import: published SlowFast checkpoints mapped onto our modules.

Five checkpoint layouts load, recognised from the top-level key and the tensor names
(never from the file name):

======================  ==============  =====================================================
format                  top-level key   tensor names
======================  ==============  =====================================================
``alphaction``          ``model``       ``backbone.slow.res_nl1.res_0.btnk.conv1.conv.weight``
``pyslowfast``          ``model_state`` ``s2.pathway0_res0.branch2.a.weight``
``mmaction2``           ``state_dict``  ``backbone.slow_path.layer1.0.conv1.conv.weight``
``pytorchvideo``        ``model_state``  ``model.blocks.1.multipathway_blocks.0.res_blocks.0...``
                        or none
``thermal_action``      ``state_dict``  ``backbone.s2...`` (ours) or ``model.backbone.s2...``
                                        (a Lightning ``.ckpt`` of our training system)
======================  ==============  =====================================================

A ``.safetensors`` file (flat tensor names) is recognised by its names alone. Every
name is first mapped onto our PySlowFast-style names (``backbone.s{1..5}...``,
``backbone.s{1..4}_fuse...``, ``head.fc1/fc2/classifier``, ``head.interaction...``);
the rules are those of the shared ``checkpoint_layouts/NAMING.md``.

What is converted on the way:

* The stem convolutions of RGB checkpoints, ``(C, 3, t, 7, 7)``, become ``(C, 1, t, 7, 7)``
  by summing over the input channels (:func:`rgb_stem_to_thermal`): a grey image
  replicated to three channels gives the same response as the summed kernel on one.
* The classifier is loaded only when its shape matches ours (same K and head width);
  otherwise it keeps the model's own initialisation. PySlowFast, MMAction2 and
  PyTorchVideo have a single linear projection on the 2304-d pooled feature (no
  fc1/fc2 MLP), so their heads never fit ours and are skipped; MMAction2's ``fc_cls``
  also has a background row 0. AlphAction's ``fc1``/``fc2`` MLP and its interaction
  structure load whenever the shapes match.
* FrozenBN checkpoints (AlphAction's published ones, Caffe2 conversions) have no
  ``num_batches_tracked``: reported, not an error.

Which of our variants matches which published layout
----------------------------------------------------
The backbone must have the file's depths, lateral kind and stem pooling, otherwise a
strict load fails with an error that names the file, the offending tensors and the
variants the file does fit:

=======================================  ======================================  ==================================
published layout                         variant (``thermal_action.models``)     backbone options it implies
=======================================  ======================================  ==================================
AlphAction R50 4x16                      ``slowfast_r50_4x16_alphaction``        alpha 8, beta 1/8, depths 3-4-6-3,
(``alphaction_r50_4x16_*``)                                                      ``lateral="conv_bias"``, kernel 5,
                                                                                 ``stem_pool_padding=False``
AlphAction R101 8x8                      ``slowfast_r101_8x8_alphaction``        alpha 4, beta 1/8, depths
(``alphaction_r101_8x8_*``)                                                      3-4-23-3, same lateral and pool
PySlowFast / PyTorchVideo R50 4x16,      ``slowfast_r50_4x16``, ``_r50_8x8``,    ``lateral="conv_bn_relu"``, the
8x8, R101 8x8                            ``_r101_8x8`` when the lateral kernel   file's kernel (PySlowFast: 5 for
                                         matches                                 4x16 and 32x2, 7 for 8x8), padded
                                                                                 pool
MMAction2 with ``lateral_norm=True``     as PySlowFast (same maths)              ``conv_bn_relu``, the file's kernel
MMAction2 default (no lateral norm)      none registered: loads into a           ``lateral="conv"`` (no bias, BN or
                                         ``SlowFastBackbone(lateral="conv")``    ReLU), the file's kernel
=======================================  ======================================  ==================================

The ``_denseserial`` AlphAction files also fill ``head.interaction`` when the model is
built with ``interaction="denseserial"``; the published files are FrozenBN, the
``r101_8x8_baseline_16cls_bn`` one has trainable BN (with ``num_batches_tracked``).
Alpha (the lateral's temporal stride) is invisible in the weights: a 4x16 file also
loads into an 8x8 variant of the same depth, and the variant's alpha is what counts.

:func:`convert_checkpoint` resolves the variant itself when the asked-for one cannot
reproduce the file (``slowfast_r50_4x16`` + an AlphAction file ->
``slowfast_r50_4x16_alphaction``) and notes it in the report.

Loading is safe: ``torch.load(..., weights_only=True)`` (or safetensors), so a file
holding pickled Python objects is refused with an error, never executed.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from thermal_action.errors import CheckpointError

log = logging.getLogger(__name__)

FORMAT_ALPHACTION = "alphaction"
FORMAT_PYSLOWFAST = "pyslowfast"
FORMAT_MMACTION2 = "mmaction2"
FORMAT_PYTORCHVIDEO = "pytorchvideo"
FORMAT_OURS = "thermal_action"

#: Human-readable names for reports and errors.
FORMAT_TITLES: dict[str, str] = {
    FORMAT_ALPHACTION: "AlphAction",
    FORMAT_PYSLOWFAST: "PySlowFast",
    FORMAT_MMACTION2: "MMAction2",
    FORMAT_PYTORCHVIDEO: "PyTorchVideo",
    FORMAT_OURS: "thermal-action",
}

#: Top-level keys that hold the weights, in the order they are tried.
_WEIGHT_CONTAINERS = ("state_dict", "model_state", "model")

_STEM_CONV_KEYS = ("backbone.s1.pathway0_stem.conv.weight", "backbone.s1.pathway1_stem.conv.weight")
_BN_COUNTER = "num_batches_tracked"


# --------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------


@dataclass
class SkippedKey:
    """A tensor of the file that was not used, and why."""

    key: str  # name in the file
    reason: str


@dataclass
class ShapeMismatch:
    """A tensor whose name maps onto one of ours but whose shape does not fit."""

    key: str  # our name
    source_key: str  # name in the file
    file_shape: list[int]
    model_shape: list[int]


@dataclass
class ConvertedKey:
    """A tensor that was transformed (not just copied) on the way in."""

    key: str  # our name
    how: str


@dataclass
class LoadReport:
    """What :func:`load_pretrained` did with each tensor.

    Attributes:
        source: the checkpoint path.
        format: one of the ``FORMAT_*`` names.
        top_level_key: the key of the file that held the weights (``None``: flat file).
        loaded: our tensor names that received a tensor from the file.
        skipped: tensors in the file that were not used, with the reason.
        missing: our tensor names the file has no counterpart for (they keep the
            model's initialisation); BN counters are listed apart in
            ``absent_bn_counters``.
        shape_mismatched: names that map but whose shapes differ (not loaded).
        converted: loaded tensors that were transformed (RGB stems, ...).
        absent_bn_counters: ``num_batches_tracked`` buffers the file lacks (FrozenBN
            checkpoints); harmless, they only matter for BN momentum=None.
        notes: anything else worth saying (e.g. the variant :func:`convert_checkpoint` chose).
    """

    source: str
    format: str
    top_level_key: str | None = None
    loaded: list[str] = field(default_factory=list)
    skipped: list[SkippedKey] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    shape_mismatched: list[ShapeMismatch] = field(default_factory=list)
    converted: list[ConvertedKey] = field(default_factory=list)
    absent_bn_counters: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def loaded_backbone(self) -> list[str]:
        return [k for k in self.loaded if k.startswith("backbone.")]

    @property
    def missing_backbone(self) -> list[str]:
        return [k for k in self.missing if k.startswith("backbone.")]

    def to_dict(self) -> dict[str, Any]:
        """Plain python data (lists, dicts, str, int): safe for ``weights_only`` files and JSON."""
        return asdict(self)

    def format_text(self, max_items: int = 12) -> str:
        """A human-readable summary, one section per list, long lists shortened."""
        title = FORMAT_TITLES.get(self.format, self.format)
        where = f"top-level key '{self.top_level_key}'" if self.top_level_key else "flat tensor file"
        lines = [f"Pretrained weights from {self.source} ({title} layout, {where})"]
        n_bb = len(self.loaded_backbone)
        lines.append(f"  loaded: {len(self.loaded)} tensors (backbone {n_bb}, head {len(self.loaded) - n_bb})")

        def section(name: str, items: list[str]) -> None:
            lines.append(f"  {name}: {len(items)}")
            for s in items[:max_items]:
                lines.append(f"    {s}")
            if len(items) > max_items:
                lines.append(f"    ... and {len(items) - max_items} more")

        section("converted", [f"{c.key}: {c.how}" for c in self.converted])
        section("skipped (in file, not used)", [f"{s.key}: {s.reason}" for s in self.skipped])
        section("missing (in model, not in file; keep their initialisation)", self.missing)
        section(
            "shape mismatched (not loaded)",
            [f"{m.key} <- {m.source_key}: file {m.file_shape} vs model {m.model_shape}" for m in self.shape_mismatched],
        )
        if self.absent_bn_counters:
            lines.append(
                f"  BN counters absent: {len(self.absent_bn_counters)} num_batches_tracked buffers "
                "(a FrozenBN checkpoint: harmless, they keep their value; consider model.frozen_bn=true)"
            )
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)


# --------------------------------------------------------------------------------------
# Reading a file
# --------------------------------------------------------------------------------------


@dataclass
class RawCheckpoint:
    """The flat tensor dictionary of a checkpoint file and where it came from."""

    path: str
    tensors: dict[str, torch.Tensor]
    top_level_key: str | None  # None: the file itself was the tensor dict
    extra_keys: list[str]  # other top-level keys (optimizer state, config, ...), never used


def _is_tensor_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(isinstance(v, torch.Tensor) for v in obj.values())


def read_checkpoint(path: str | Path) -> RawCheckpoint:
    """Reads a checkpoint safely and returns its weights as a flat ``name -> tensor`` dict.

    ``.safetensors`` files are read with ``safetensors.torch.load_file``; everything else
    with ``torch.load(path, map_location="cpu", weights_only=True)``, which refuses
    pickled Python objects.

    Raises:
        FileNotFoundError: the file does not exist.
        CheckpointError: the file is not a tensor checkpoint, holds objects that
            ``weights_only`` refuses, or has no recognisable weight dictionary.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            tensors = load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(path, f"not a readable safetensors file: {e}") from e
        if not tensors:
            raise CheckpointError(path, "the safetensors file holds no tensors")
        return RawCheckpoint(str(path), dict(tensors), None, [])

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises UnpicklingError, RuntimeError or others depending on the damage
        raise CheckpointError(path, explain_load_failure(path, e)) from e

    if _is_tensor_dict(obj):
        return RawCheckpoint(str(path), dict(obj), None, [])
    if not isinstance(obj, Mapping):
        raise CheckpointError(path, f"expected a dict of tensors or of sections, got {type(obj).__name__}")
    for key in _WEIGHT_CONTAINERS:
        value = obj.get(key)
        if isinstance(value, Mapping) and value:
            tensors = {k: v for k, v in value.items() if isinstance(v, torch.Tensor)}
            if len(tensors) != len(value):
                bad = [k for k, v in value.items() if not isinstance(v, torch.Tensor)][:3]
                raise CheckpointError(path, f"'{key}' holds non-tensor entries, e.g. {bad}")
            return RawCheckpoint(str(path), tensors, key, sorted(k for k in obj if k != key))
    raise CheckpointError(
        path,
        f"no weights found: expected a top-level {' / '.join(repr(k) for k in _WEIGHT_CONTAINERS)} "
        f"dict of tensors, found keys {sorted(map(str, obj))[:10]}",
    )


def explain_load_failure(path: Path, error: Exception) -> str:
    """The one-line message for a file ``torch.load(weights_only=True)`` refused (also used for
    training checkpoints: never torch's own text, which suggests the unsafe ``weights_only=False``)."""
    text = str(error)
    if "Unsupported global" in text or "GLOBAL" in text:
        try:
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        except Exception:  # the helper itself may fail on damaged files; the original message is enough
            unsafe = []
        what = f" ({', '.join(unsafe[:5])})" if unsafe else ""
        return (
            f"refused: the file holds pickled Python objects{what} that torch.load(weights_only=True) "
            "does not execute. If you trust the file, extract its weights once in a separate "
            "environment, e.g. torch.save(torch.load(IN, weights_only=False)['state_dict'], OUT), "
            "or save them with safetensors, and load that file instead."
        )
    hint = ""
    if path.suffix == ".pkl":
        hint = " Caffe2 .pkl files must first be converted to PyTorch with PySlowFast."
    detail = re.search(r"WeightsUnpickler error:\s*(.+)", text)
    first_line = detail[1] if detail else (text.strip().splitlines()[0] if text.strip() else "")
    return f"not a readable PyTorch checkpoint ({type(error).__name__}: {first_line.strip()}).{hint}"


# --------------------------------------------------------------------------------------
# Name mapping (pure functions of the names)
# --------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------
# Which backbone the file was trained with
# --------------------------------------------------------------------------------------


def backbone_options_for(mapped: MappedCheckpoint) -> dict[str, Any]:
    """The ``SlowFastBackbone`` keyword options that reproduce the file's laterals and pool.

    The lateral flavour and kernel follow from the tensors (a lateral bias means
    AlphAction's ``conv_bias``, a lateral BN means ``conv_bn_relu``, neither means the
    plain ``conv``); the stem pool padding cannot be seen in weights and follows from
    the format (AlphAction pads none). Our own checkpoints return ``{}``: the config
    saved with them says how they were built.
    """
    if mapped.format == FORMAT_OURS:
        return {}
    t = mapped.tensors
    options: dict[str, Any] = {}
    if "backbone.s1_fuse.conv_f2s.weight" in t:
        options["lateral"] = (
            "conv_bias" if "backbone.s1_fuse.conv_f2s.bias" in t
            else "conv_bn_relu" if "backbone.s1_fuse.bn.weight" in t
            else "conv"
        )
        options["fusion_kernel"] = int(t["backbone.s1_fuse.conv_f2s.weight"].shape[2])
    options["stem_pool_padding"] = mapped.format != FORMAT_ALPHACTION
    return options


def backbone_depths_for(mapped: MappedCheckpoint) -> tuple[int, ...]:
    """Residual blocks per stage res2..res5 found in the file (slow pathway)."""
    depths = []
    for stage in range(2, 6):
        rx = re.compile(rf"backbone\.s{stage}\.pathway0_res(\d+)\.")
        blocks = {int(m[1]) for k in mapped.tensors if (m := rx.match(k))}
        depths.append(max(blocks) + 1 if blocks else 0)
    return tuple(depths)


@dataclass
class _VariantSignature:
    shapes: dict[str, tuple[int, ...]]  # backbone tensor shapes (BN counters excluded)
    alpha: int
    depths: tuple[int, ...]
    stem_pool_padding: bool | None  # None: the stem has no pool, so padding does not matter


_SIGNATURES: dict[str, _VariantSignature] = {}


def _variant_signature(name: str) -> _VariantSignature:
    """Tensor shapes of a variant's backbone, built on the meta device (no memory, ~0.3 s)."""
    if name not in _SIGNATURES:
        from thermal_action.models.variants import VARIANTS

        with torch.device("meta"):
            backbone = VARIANTS[name]()
        shapes = {
            f"backbone.{k}": tuple(v.shape) for k, v in backbone.state_dict().items() if not k.endswith(_BN_COUNTER)
        }
        stem = backbone.s1.pathway0_stem
        padding = bool(getattr(stem, "pool_padding", 1)) if getattr(stem, "pool", True) else None
        _SIGNATURES[name] = _VariantSignature(shapes, int(backbone.alpha), tuple(backbone.depths), padding)
    return _SIGNATURES[name]


def variant_fits(mapped: MappedCheckpoint, variant: str) -> bool:
    """Whether the file's backbone loads into ``variant`` with no tensor missing, left over or
    of another shape, and the variant computes the same maths (lateral, stem pool)."""
    sig = _variant_signature(variant)
    theirs = {
        k: tuple(v.shape)
        for k, v in mapped.tensors.items()
        if k.startswith("backbone.") and not k.endswith(_BN_COUNTER)
    }
    if set(theirs) != set(sig.shapes):
        return False
    for key, shape in theirs.items():
        ours = sig.shapes[key]
        if key in _STEM_CONV_KEYS and len(shape) == 5 and shape[1] == 3 and ours[1] == 1:
            shape = (shape[0], 1, *shape[2:])
        if shape != ours:
            return False
    wanted = backbone_options_for(mapped).get("stem_pool_padding")
    return wanted is None or sig.stem_pool_padding is None or wanted == sig.stem_pool_padding


def fitting_variants(mapped: MappedCheckpoint) -> list[str]:
    """Names in ``VARIANTS`` whose backbone the file fits exactly (see :func:`variant_fits`)."""
    from thermal_action.models.variants import VARIANTS

    return [name for name in VARIANTS if variant_fits(mapped, name)]


def resolve_variant(mapped: MappedCheckpoint, variant: str, path: str | Path = "") -> str:
    """``variant`` if the file fits it, else the fitting flavour with the same depths and alpha.

    AlphAction files asked for as ``slowfast_r50_4x16`` resolve to
    ``slowfast_r50_4x16_alphaction``: same depths and alpha, AlphAction's laterals and pool.
    Alpha cannot be seen in the weights, so a candidate must keep the requested one; the
    depth is never changed behind the user's back either.

    Raises:
        ValueError: unknown variant name.
        CheckpointError: no such variant reproduces the file's backbone.
    """
    from thermal_action.models.variants import VARIANTS

    if variant not in VARIANTS:
        raise ValueError(f"unknown model variant '{variant}' (known: {', '.join(VARIANTS)})")
    if mapped.format == FORMAT_OURS or variant_fits(mapped, variant):
        return variant
    wanted = _variant_signature(variant)
    # The requested name's own flavours first (e.g. "<variant>_alphaction"): building a
    # signature costs ~0.3 s, so the full scan only runs when those do not fit.
    flavours = sorted((n for n in VARIANTS if n.startswith(variant) and n != variant), key=len)
    for name in flavours + [n for n in VARIANTS if n not in flavours and n != variant]:
        sig = _variant_signature(name)
        if sig.alpha == wanted.alpha and sig.depths == wanted.depths and variant_fits(mapped, name):
            return name
    others = fitting_variants(mapped)
    raise CheckpointError(
        path or "checkpoint",
        f"no model variant with alpha={wanted.alpha} and depths {wanted.depths} reproduces this "
        f"{FORMAT_TITLES[mapped.format]} backbone (depths {backbone_depths_for(mapped)}, options "
        f"{backbone_options_for(mapped)}); "
        + (f"variants that fit it: {others}" if others else
           "add a variant with these SlowFastBackbone options to thermal_action.models.VARIANTS"),
    )


def _only_fitting_variant(mapped: MappedCheckpoint, path: str | Path) -> str:
    """The single variant that reproduces the file (``convert_checkpoint`` without a variant)."""
    if mapped.format == FORMAT_OURS:
        raise CheckpointError(path, "already a thermal-action checkpoint: use it as model.pretrained directly, "
                                    "or pass the variant it was trained with")
    fits = fitting_variants(mapped)
    if len(fits) == 1:
        return fits[0]
    detail = (f"{FORMAT_TITLES[mapped.format]} backbone (depths {backbone_depths_for(mapped)}, options "
              f"{backbone_options_for(mapped)})")
    if not fits:
        raise CheckpointError(path, f"no model variant reproduces this {detail}; add a variant with these "
                                    "SlowFastBackbone options to thermal_action.models.VARIANTS")
    raise CheckpointError(path, f"variants {fits} all reproduce this {detail} (alpha cannot be read from the "
                                "weights): pass --variant with the one the file was trained as")


# --------------------------------------------------------------------------------------
# Loading into a model
# --------------------------------------------------------------------------------------


def _adapt(key: str, tensor: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, str]:
    """Shape conversions with a meaning; returns the tensor and what was done ("" = nothing)."""
    if tensor.shape == target.shape:
        return tensor, ""
    if key in _STEM_CONV_KEYS and tensor.dim() == 5 and tensor.shape[1] == 3 and target.shape[1] == 1:
        from thermal_action.models.backbone import rgb_stem_to_thermal

        return rgb_stem_to_thermal(tensor), f"RGB stem {list(tensor.shape)} summed over its 3 input channels"
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
    if key.endswith(_BN_COUNTER):
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
    return _load_mapped(model, raw, map_checkpoint(raw), strict_backbone)


def _load_mapped(model: nn.Module, raw: RawCheckpoint, mapped: MappedCheckpoint, strict_backbone: bool) -> LoadReport:
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
            if key.startswith("backbone.") and not key.endswith(_BN_COUNTER):
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
            (report.absent_bn_counters if key.endswith(_BN_COUNTER) else report.missing).append(key)

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


# --------------------------------------------------------------------------------------
# Conversion to our own checkpoint format
# --------------------------------------------------------------------------------------


def convert_checkpoint(
    input_path: str | Path,
    output_path: str | Path,
    variant: str | None = None,
    num_classes: int = 14,
    interaction: str = "none",
) -> LoadReport:
    """Maps a published checkpoint onto our detector and saves it in our format.

    The model is built with :func:`thermal_action.models.build_model`. Without ``variant``
    the one variant in ``VARIANTS`` that reproduces the file's backbone is used (several
    fitting, e.g. a PySlowFast R50 that 4x16 and 8x8 both load, is an error naming them:
    alpha cannot be read from the weights). If a given ``variant``
    cannot reproduce the file's backbone, the fitting variant of the same speed is
    used instead (e.g. ``slowfast_r50_4x16`` -> ``slowfast_r50_4x16_alphaction`` for an
    AlphAction file) and the report says so. The output holds only tensors and plain
    Python data, so it loads with ``weights_only=True``::

        {"state_dict": {name: tensor}, "model_config": {ModelConfig fields},
         "num_classes": K, "source": input path, "format": detected format,
         "report": LoadReport.to_dict()}

    Train from it with ``model.pretrained=OUT`` (same variant) or rebuild the model with
    ``build_model(ModelConfig(**ckpt["model_config"]), ckpt["num_classes"])``.

    Args:
        input_path: the published checkpoint.
        output_path: where to write ours (parent directories are created).
        variant: a name in ``VARIANTS``, or None to use the only one that fits.
        num_classes: ``K`` of our classifier.
        interaction: ``"none"`` or an interaction mode of the head.

    Returns:
        The :class:`LoadReport` (also stored in the output).

    Raises:
        CheckpointError: unreadable/unsafe input or a backbone no variant reproduces.
    """
    from thermal_action.config import ModelConfig, config_to_dict
    from thermal_action.models.build import build_model

    raw = read_checkpoint(input_path)
    mapped = map_checkpoint(raw)
    if variant is None:
        resolved = _only_fitting_variant(mapped, input_path)
    else:
        resolved = resolve_variant(mapped, variant, input_path)
    cfg = ModelConfig(variant=resolved, interaction=interaction)
    model = build_model(cfg, num_classes)
    report = _load_mapped(model, raw, mapped, strict_backbone=True)
    if variant is None:
        report.notes.append(f"variant '{resolved}': the only one that reproduces this "
                            f"{FORMAT_TITLES[mapped.format]} backbone")
    elif resolved != variant:
        report.notes.append(
            f"variant '{variant}' cannot reproduce this {FORMAT_TITLES[mapped.format]} backbone; "
            f"used '{resolved}' ({backbone_options_for(mapped)})"
        )
    output_path = Path(output_path)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "state_dict": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
            "model_config": config_to_dict(cfg),
            "num_classes": int(num_classes),
            "source": str(input_path),
            "format": mapped.format,
            "report": report.to_dict(),
        },
        output_path,
    )
    log.info("wrote %s (variant %s, K=%d)", output_path, resolved, num_classes)
    return report
