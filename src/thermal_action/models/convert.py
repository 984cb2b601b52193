"""``thermal-action convert-checkpoint``: a published checkpoint mapped onto our detector and
saved in our own format (kept apart from :mod:`~thermal_action.models.pretrained`, which
:func:`~thermal_action.models.build.build_model` uses, so the two import no circle)."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from thermal_action.models.pretrained.fitting import backbone_options_for, only_fitting_variant, resolve_variant
from thermal_action.models.pretrained.loading import load_mapped
from thermal_action.models.pretrained.formats import FORMAT_TITLES
from thermal_action.models.pretrained.naming import map_checkpoint
from thermal_action.models.pretrained.reading import read_checkpoint
from thermal_action.models.pretrained.report import LoadReport

log = logging.getLogger(__name__)


def convert_checkpoint(
    input_path: str | Path,
    output_path: str | Path,
    variant: str | None = None,
    num_classes: int = 14,
    interaction: str = "none",
) -> LoadReport:
    """Maps a published checkpoint onto our detector and saves it in our format.

    The model is built with :func:`thermal_action.models.build.build_model`. Without ``variant``
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
        resolved = only_fitting_variant(mapped, input_path)
    else:
        resolved = resolve_variant(mapped, variant, input_path)
    cfg = ModelConfig(variant=resolved, interaction=interaction)
    model = build_model(cfg, num_classes)
    report = load_mapped(model, raw, mapped, strict_backbone=True)
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
