"""RoI action head: per-pathway pooling of person boxes, optional interaction, MLP, classifier.

::

    slow feat (B, Cs, Ts, h, w) -> mean over T -> RoIAlign -> max over cells -> (R, Cs) -+
                                                                                          +-> cat (R, D)
    fast feat (B, Cf, Tf, h, w) -> mean over T -> RoIAlign -> max over cells -> (R, Cf) -+
        (R, D) [+ interaction(R, D)] -> fc1 -> ReLU -> fc2 -> ReLU -> Dropout -> classifier -> (R, K)

Spatial max-pooling follows AlphAction. Dropout is not in place: an in-place dropout
on the second ReLU's output (which ReLU's backward needs) is what crashed the earlier
implementation. The head returns logits; losses and sigmoid/softmax live
with training and evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from thermal_action.models.feature_bank import MemoryBatch
from thermal_action.models.interaction import InteractionStructure
from thermal_action.models.ops.roi_align import roi_align


@dataclass
class HeadOutput:
    """What the head computed for one batch.

    Attributes:
        logits: ``(R, K)`` class logits.
        person_features: ``(R, D)`` pooled person features before interaction (what the
            feature bank stores).
    """

    logits: torch.Tensor
    person_features: torch.Tensor


class ActionHead(nn.Module):
    """Classifies each person box from the SlowFast feature maps.

    Args:
        in_channels: ``(Cs, Cf)`` channels of the slow and fast feature maps.
        num_classes: ``K``.
        spatial_scale: feature cells per input pixel (1 / backbone output stride).
        head_dim: width of the two-layer MLP.
        dropout: dropout probability before the classifier.
        roi_output_size: RoIAlign cells per side.
        roi_sampling_ratio: RoIAlign samples per cell side (0: adaptive).
        interaction: optional :class:`InteractionStructure` (its output is added to the
            pooled person feature, as AlphAction's ``add`` fusion).
        extra_dim: width of per-box features concatenated to the pooled feature before
            ``fc1`` (the person-tube models' box size; 0 for whole-frame models).
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        num_classes: int,
        spatial_scale: float,
        head_dim: int = 1024,
        dropout: float = 0.2,
        roi_output_size: int = 7,
        roi_sampling_ratio: int = 2,
        interaction: InteractionStructure | None = None,
        extra_dim: int = 0,
    ) -> None:
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.in_channels = tuple(in_channels)
        self.dim_person = sum(self.in_channels)
        self.num_classes = num_classes
        self.spatial_scale = spatial_scale
        self.roi_output_size = roi_output_size
        self.roi_sampling_ratio = roi_sampling_ratio
        if interaction is not None and interaction.dim_person != self.dim_person:
            raise ValueError(
                f"interaction structure expects {interaction.dim_person}-d person features, "
                f"the backbone gives {self.dim_person}"
            )
        self.interaction = interaction
        self.extra_dim = int(extra_dim)
        self.fc1 = nn.Linear(self.dim_person + self.extra_dim, head_dim)
        self.fc2 = nn.Linear(head_dim, head_dim)
        self.dropout = nn.Dropout(dropout)  # never inplace=True, see the module docstring
        self.classifier = nn.Linear(head_dim, num_classes)
        for fc in (self.fc1, self.fc2):
            nn.init.kaiming_uniform_(fc.weight, a=1)
            nn.init.zeros_(fc.bias)
        nn.init.normal_(self.classifier.weight, std=0.01)
        nn.init.zeros_(self.classifier.bias)

    def pool(self, features: Sequence[torch.Tensor], rois: torch.Tensor) -> torch.Tensor:
        """Pooled box features.

        Args:
            features: ``[(B, Cs, Ts, h, w), (B, Cf, Tf, h, w)]``.
            rois: ``(R, 5)`` ``(batch_index, x1, y1, x2, y2)`` in input pixels.

        Returns:
            ``(R, Cs + Cf)``.
        """
        pooled = []
        for fmap in features:
            fmap = fmap.mean(dim=2)  # (B, C, h, w): temporal average
            cells = roi_align(
                fmap, rois, self.roi_output_size, self.spatial_scale, self.roi_sampling_ratio, aligned=True
            )  # (R, C, S, S)
            pooled.append(cells.amax(dim=(2, 3)))  # (R, C)
        return torch.cat(pooled, dim=1)

    def classify(self, person: torch.Tensor) -> torch.Tensor:
        """``(R, D)`` person features -> ``(R, K)`` logits."""
        x = F.relu(self.fc1(person))
        x = F.relu(self.fc2(x))
        return self.classifier(self.dropout(x))

    def forward(
        self,
        features: Sequence[torch.Tensor],
        rois: torch.Tensor,
        memory: MemoryBatch | None = None,
        object_rois: torch.Tensor | None = None,
        extra: torch.Tensor | None = None,
    ) -> HeadOutput:
        """Pools, interacts (if configured) and classifies.

        Args:
            features: the backbone's ``[slow, fast]`` feature maps.
            rois: ``(R, 5)`` person RoIs.
            memory: neighbouring keyframes' person features for the M blocks.
            object_rois: ``(S_o, 5)`` object RoIs for the O blocks, or None to skip them.
            extra: ``(R, extra_dim)`` per-box features for ``fc1`` (required iff ``extra_dim > 0``).

        Returns:
            :class:`HeadOutput` with ``(R, K)`` logits and ``(R, D)`` person features.
        """
        person = self.pool(features, rois)  # (R, D)
        x = person
        if self.interaction is not None:
            objects = object_clip = None
            if object_rois is not None:
                objects = self.pool(features, object_rois)
                object_clip = object_rois[:, 0].long()
            x = person + self.interaction(person, rois[:, 0].long(), memory, objects, object_clip)
        if self.extra_dim:
            if extra is None or extra.shape != (x.shape[0], self.extra_dim):
                got = None if extra is None else tuple(extra.shape)
                raise ValueError(f"the head expects ({x.shape[0]}, {self.extra_dim}) extra features, got {got}")
            x = torch.cat([x, extra.to(x.dtype)], dim=1)
        return HeadOutput(logits=self.classify(x), person_features=person)
