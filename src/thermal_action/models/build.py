"""The one place a :class:`~thermal_action.config.ModelConfig` becomes constructor arguments."""

from __future__ import annotations

import difflib
from dataclasses import replace

from thermal_action.config import ModelConfig
from thermal_action.models.ops.cpu_workarounds import cap_onednn_isa
from thermal_action.models.detector import ActionDetector
from thermal_action.models.ensemble import EnsembleDetector
from thermal_action.models.head import ActionHead
from thermal_action.models.interaction import INTERACTION_MODES, InteractionStructure
from thermal_action.models.tubes import TUBE_BACKBONES, PersonTubeDetector
from thermal_action.models.variants import VARIANTS
from thermal_action.structures import RoomInputs


def build_model(cfg: ModelConfig, num_classes: int) -> ActionDetector | EnsembleDetector:
    """Builds the detector described by ``cfg`` (and loads ``cfg.pretrained`` if set).

    Args:
        cfg: the ``model`` section of the config.
        num_classes: ``K``, the classifier width.

    Returns:
        An :class:`ActionDetector` in training mode, or an :class:`EnsembleDetector` of
        ``cfg.ensemble`` of them (each initialised from the global generator in turn).

    Raises:
        ValueError: unknown variant, interaction mode or room setting (naming the valid ones).
    """
    cap_onednn_isa()  # before the model's first convolution: oneDNN reads the cap only then
    known = [*VARIANTS, *TUBE_BACKBONES]
    if cfg.variant not in known:
        close = difflib.get_close_matches(cfg.variant, known, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ValueError(f"unknown model variant '{cfg.variant}'{hint} (known: {', '.join(known)})")
    if cfg.variant in TUBE_BACKBONES and cfg.tube_size <= 0:
        raise ValueError(f"model.variant={cfg.variant} works on person tubes only: set model.tube_size > 0")
    room = RoomInputs.from_setting(cfg.room)
    if cfg.ensemble < 1:
        raise ValueError(f"model.ensemble must be >= 1, got {cfg.ensemble}")
    if cfg.ensemble > 1:
        if cfg.pretrained:
            raise ValueError("model.ensemble > 1 with model.pretrained is not supported: train one model from "
                             "the pretrained weights, or an ensemble from scratch")
        single = replace(cfg, ensemble=1)
        return EnsembleDetector([build_model(single, num_classes) for _ in range(cfg.ensemble)])
    if cfg.tube_size < 0:
        raise ValueError(f"model.tube_size must be >= 0 (0 = whole frame), got {cfg.tube_size}")
    if cfg.interaction != "none" and cfg.interaction not in INTERACTION_MODES:
        raise ValueError(f"unknown interaction '{cfg.interaction}'; expected 'none' or one of {INTERACTION_MODES}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    overrides = {"alpha": cfg.alpha} if cfg.alpha else {}
    # The thermal frame and the zone masks; without a room, the builders' own default (1).
    channels = {"in_channels": 1 + room.zone_channels} if room.zone_channels else {}
    if cfg.variant in TUBE_BACKBONES:
        backbone = TUBE_BACKBONES[cfg.variant](**channels)
    else:
        backbone = VARIANTS[cfg.variant](**overrides, **channels)
    dim_person = sum(backbone.out_channels)
    interaction = None
    if cfg.interaction != "none":
        interaction = InteractionStructure(
            dim_person, mode=cfg.interaction, dim_inner=cfg.interaction_dim, dropout=cfg.interaction_dropout
        )
    head = ActionHead(
        backbone.out_channels,
        num_classes,
        spatial_scale=1.0 / backbone.output_stride,
        head_dim=cfg.head_dim,
        dropout=cfg.dropout,
        roi_output_size=cfg.roi_output_size,
        roi_sampling_ratio=cfg.roi_sampling_ratio,
        interaction=interaction,
        extra_dim=(PersonTubeDetector.box_extra_dim if cfg.tube_size > 0 else 0) + room.zone_features,
    )
    if cfg.tube_size > 0:
        model: ActionDetector = PersonTubeDetector(backbone, head, cfg.tube_size, cfg.tube_context,
                                                   cfg.tube_min_size, room=room)
    else:
        model = ActionDetector(backbone, head, memory_window=cfg.memory_window, room=room)
    if cfg.frozen_bn:
        model.set_frozen_bn(True)
    model.set_test_time_augmentation(cfg.test_time_augmentation)
    if cfg.pretrained:
        # Lazy: the importer is only needed (and only imported) when weights are asked for.
        from thermal_action.models.pretrained.loading import load_pretrained

        load_pretrained(model, cfg.pretrained)
    return model
