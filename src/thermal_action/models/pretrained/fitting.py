"""Which of our backbone variants reproduces a file's backbone (depths, laterals, stem pool)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from thermal_action.errors import CheckpointError
from thermal_action.models.pretrained.formats import BN_COUNTER, FORMAT_ALPHACTION, FORMAT_OURS, FORMAT_TITLES, STEM_CONV_KEYS
from thermal_action.models.pretrained.naming import (
    MappedCheckpoint,
)


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
            f"backbone.{k}": tuple(v.shape) for k, v in backbone.state_dict().items() if not k.endswith(BN_COUNTER)
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
        if k.startswith("backbone.") and not k.endswith(BN_COUNTER)
    }
    if set(theirs) != set(sig.shapes):
        return False
    for key, shape in theirs.items():
        ours = sig.shapes[key]
        if key in STEM_CONV_KEYS and len(shape) == 5 and shape[1] == 3 and ours[1] == 1:
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
    # signature builds a model, so the full scan only runs when those do not fit.
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
           "add a variant with these SlowFastBackbone options to thermal_action.models.variants.VARIANTS"),
    )


def only_fitting_variant(mapped: MappedCheckpoint, path: str | Path) -> str:
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
                                    "SlowFastBackbone options to thermal_action.models.variants.VARIANTS")
    raise CheckpointError(path, f"variants {fits} all reproduce this {detail} (alpha cannot be read from the "
                                "weights): pass --variant with the one the file was trained as")
