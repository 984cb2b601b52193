"""EnsembleDetector: several detectors of one config, trained side by side, scored as one.

A few hundred labelled keyframes leave a single small model at the mercy of its random
initialisation: on the real recordings the same fold's fall AP moved between 0.78 and 0.99
with the seed alone. Averaging the logits of ``n`` members with different initialisations
(the classic deep ensemble) removes most of that. The model returns the
``(R, K)`` mean of the members' logits in training and eval mode alike; training takes
:meth:`EnsembleDetector.member_logits` (``(n, R, K)``) instead, so each member gets its
own loss (:class:`~thermal_action.training.losses.ActionLoss` averages the members'
losses) and they do not co-adapt. It is one ``nn.Module``:
one checkpoint, one ONNX graph, the same predictor and streaming code.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from thermal_action.models.detector import TTA_SIZES, ActionDetector
from thermal_action.models.feature_bank import ClipKey


class EnsembleDetector(nn.Module):
    """``n`` :class:`ActionDetector` members with the same inputs and classes.

    Args:
        members: the detectors (same ``alpha`` and ``num_classes``, no feature bank).
    """

    def __init__(self, members: Sequence[ActionDetector]) -> None:
        super().__init__()
        if len(members) < 2:
            raise ValueError(f"an ensemble needs at least 2 members, got {len(members)}")
        alphas = {m.alpha for m in members}
        classes = {m.num_classes for m in members}
        rooms = {m.room for m in members}
        if len(alphas) != 1 or len(classes) != 1 or len(rooms) != 1:
            raise ValueError(f"ensemble members disagree: alphas {alphas}, classes {classes}, room inputs {rooms}")
        if any(m.feature_bank is not None for m in members):
            raise ValueError("ensembles of interaction models (with a feature bank) are not supported")
        self.members = nn.ModuleList(members)
        self.feature_bank = None
        self.update_memory = False

    @property
    def alpha(self) -> int:
        return self.members[0].alpha

    @property
    def num_classes(self) -> int:
        return self.members[0].num_classes

    @property
    def backbone(self) -> nn.ModuleList:
        """The members' backbones (for freezing and BatchNorm handling)."""
        return nn.ModuleList([m.backbone for m in self.members])

    @property
    def room(self):
        """The members' room inputs (:class:`~thermal_action.structures.RoomInputs`, one config)."""
        return self.members[0].room

    @property
    def reads_zone_masks(self) -> bool:
        return self.members[0].reads_zone_masks

    @property
    def reads_zone_features(self) -> bool:
        return self.members[0].reads_zone_features

    @property
    def test_time_augmentation(self) -> int:
        return self.members[0].test_time_augmentation

    def set_test_time_augmentation(self, n: int) -> None:
        if n not in TTA_SIZES:
            raise ValueError(f"test-time augmentation must be one of {TTA_SIZES}, got {n}")
        for m in self.members:
            m.set_test_time_augmentation(n)

    def set_frozen_bn(self, frozen: bool) -> None:
        for m in self.members:
            m.set_frozen_bn(frozen)

    def freeze_backbone(self, num_stages: int = 5) -> None:
        for m in self.members:
            m.freeze_backbone(num_stages)

    def unfreeze_backbone(self) -> None:
        for m in self.members:
            m.unfreeze_backbone()

    def member_logits(
        self,
        slow: torch.Tensor,
        fast: torch.Tensor,
        rois: torch.Tensor,
        clip_keys: Sequence[ClipKey] | None = None,
        object_rois: torch.Tensor | None = None,
        zone_masks: torch.Tensor | None = None,
        zone_features: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``(n, R, K)``: each member's logits (arguments as :meth:`ActionDetector.forward`);
        training gives each member its own loss on these."""
        return torch.stack([m(slow, fast, rois, clip_keys, object_rois, zone_masks, zone_features)
                            for m in self.members])

    def forward(self, *inputs: Any, **named: Any) -> torch.Tensor:
        """``(R, K)``: the mean of :meth:`member_logits` (arguments as
        :meth:`ActionDetector.forward`), in training and eval mode alike."""
        return self.member_logits(*inputs, **named).mean(dim=0)
