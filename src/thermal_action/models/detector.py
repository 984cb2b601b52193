"""ActionDetector: SlowFast backbone + RoI action head (+ feature bank for memory, + the room).

::

    slow (B, 1, Ts, H, W) ─┐  [+ zone masks (B, Z, H, W) as Z more channels: models/room.py]
    fast (B, 1, T,  H, W) ─┴► SlowFast backbone ─► [(B, Cs, Ts, h, w), (B, Cf, T, h, w)]
        ─► ActionHead: RoIAlign of rois (R, 5) ─► (R, D) [+ zone features (R, F)] ─► MLP ─► logits (R, K)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from thermal_action.models.backbone import SlowFastBackbone
from thermal_action.models.feature_bank import ClipKey, FeatureBank
from thermal_action.models.head import ActionHead
from thermal_action.models.room import add_zone_channels, check_room_inputs
from thermal_action.structures import RoomInputs


#: Test-time augmentation sizes: the first n of these flips/transpositions of an overhead
#: view (the dihedral group of the frame), each valid for a sensor with no "up".
TTA_TRANSFORMS: tuple[tuple[bool, bool, bool], ...] = (
    # (transpose, flip rows, flip columns)
    (False, False, False),
    (False, True, True),  # 180°
    (False, False, True),
    (False, True, False),
    (True, False, False),
    (True, True, True),
    (True, False, True),  # 90°
    (True, True, False),  # 270°
)
TTA_SIZES = (1, 2, 4, 8)


def transform_clip(x: torch.Tensor, transpose: bool, flip_rows: bool, flip_cols: bool) -> torch.Tensor:
    """A flipped and/or transposed ``(B, C, T, H, W)`` clip, or any ``(..., H, W)`` tensor such
    as ``(B, Z, H, W)`` zone masks (transpose first, then flips)."""
    if transpose:
        x = x.transpose(-1, -2)
    dims = [d for d, f in ((-2, flip_rows), (-1, flip_cols)) if f]
    return x.flip(dims) if dims else x


def transform_rois(rois: torch.Tensor, height: int, width: int, transpose: bool, flip_rows: bool,
                   flip_cols: bool) -> torch.Tensor:
    """The ``(R, 5)`` RoIs of the untransformed ``height x width`` clip in the transformed one."""
    b, x1, y1, x2, y2 = rois.unbind(dim=1)
    if transpose:
        x1, y1, x2, y2 = y1, x1, y2, x2
        height, width = width, height
    if flip_rows:
        y1, y2 = height - y2, height - y1
    if flip_cols:
        x1, x2 = width - x2, width - x1
    return torch.stack([b, x1, y1, x2, y2], dim=1)


def check_rois(rois: torch.Tensor) -> None:
    """Raises ValueError unless ``rois`` is ``(R, 5)`` (batch_index, x1, y1, x2, y2)."""
    if rois.dim() != 2 or rois.shape[1] != 5:
        raise ValueError(f"rois must be (R, 5) (batch_index, x1, y1, x2, y2), got {tuple(rois.shape)}")


class ActionDetector(nn.Module):
    """Classifies the actions of given person boxes in a SlowFast clip pair.

    Person boxes come from annotations (training) or a person detector (inference);
    this model only classifies them.

    Args:
        backbone: a :class:`SlowFastBackbone` (see ``VARIANTS``).
        head: an :class:`ActionHead` sized for the backbone.
        memory_window: keyframes on each side read from the feature bank (interaction
            structures only).
        room: the zone-mask channels (the backbone takes ``1 + zone_channels``) and
            person-to-zone features (the head's ``extra_dim``) it reads; none by default.

    Attributes:
        alpha: fast/slow frame-rate ratio the inputs must have.
        num_classes: ``K``.
        feature_bank: the memory store (None without interaction). Not in the state_dict.
        update_memory: write person features of each forward into the bank (on by
            default, in training and evaluation, so validation and streaming inference
            on new recordings build their own memory).
        test_time_augmentation: in eval mode, average the logits over this many of
            :data:`TTA_TRANSFORMS` (1 = off; 2, 4 or 8). Training is never augmented here.
    """

    #: Per-box features the head gets before the room's (the person tubes' box size).
    box_extra_dim = 0

    def __init__(self, backbone: SlowFastBackbone, head: ActionHead, memory_window: int = 3,
                 room: RoomInputs = RoomInputs()) -> None:
        super().__init__()
        if head.in_channels != backbone.out_channels:
            raise ValueError(f"head expects {head.in_channels} channels, backbone gives {backbone.out_channels}")
        channels = getattr(backbone, "in_channels", 1)
        if channels != 1 + room.zone_channels:
            raise ValueError(f"the backbone takes {channels} input channels; a thermal frame and "
                             f"{room.zone_channels} zone masks need {1 + room.zone_channels}")
        if head.extra_dim != self.box_extra_dim + room.zone_features:
            raise ValueError(f"the head takes {head.extra_dim} extra features per box; this model gives "
                             f"{self.box_extra_dim} (box) + {room.zone_features} (room)")
        self.backbone = backbone
        self.head = head
        self.room = room
        self.feature_bank: FeatureBank | None = FeatureBank(memory_window) if head.interaction is not None else None
        self.update_memory = True
        self.test_time_augmentation = 1

    def set_test_time_augmentation(self, n: int) -> None:
        """Averages eval-mode logits over ``n`` flips/transpositions (1 = off)."""
        if n not in TTA_SIZES:
            raise ValueError(f"test-time augmentation must be one of {TTA_SIZES}, got {n}")
        if n > 1 and self.feature_bank is not None:
            raise ValueError("test-time augmentation is not available with the interaction structure's memory")
        self.test_time_augmentation = int(n)

    @property
    def alpha(self) -> int:
        return self.backbone.alpha

    @property
    def reads_zone_masks(self) -> bool:
        return self.room.zone_channels > 0

    @property
    def reads_zone_features(self) -> bool:
        return self.room.zone_features > 0

    @property
    def num_classes(self) -> int:
        return self.head.num_classes

    def freeze_backbone(self, num_stages: int = 5) -> None:
        """Freezes backbone stages 1..``num_stages`` (no gradient, BatchNorm in eval)."""
        self.backbone.freeze(num_stages)

    def unfreeze_backbone(self) -> None:
        """Makes every backbone stage trainable again (a global ``frozen_bn`` stays)."""
        self.backbone.freeze(0)

    def set_frozen_bn(self, frozen: bool) -> None:
        """Freezes (or releases) every backbone BatchNorm: eval statistics, no affine training."""
        self.backbone.freeze(self.backbone.frozen_stages, frozen_bn=frozen)

    def forward(
        self,
        slow: torch.Tensor,
        fast: torch.Tensor,
        rois: torch.Tensor,
        clip_keys: Sequence[ClipKey] | None = None,
        object_rois: torch.Tensor | None = None,
        zone_masks: torch.Tensor | None = None,
        zone_features: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Action logits for every RoI.

        Args:
            slow: ``(B, 1, Ts, H, W)`` slow pathway frames.
            fast: ``(B, 1, alpha * Ts, H, W)`` fast pathway frames.
            rois: ``(R, 5)`` ``(batch_index, x1, y1, x2, y2)`` person boxes in input pixels
                (``R = 0`` allowed).
            clip_keys: ``B`` ``(sensor_id, frame_idx)`` keys of the clips' keyframes, for the
                memory; None disables memory reads and writes.
            object_rois: ``(S_o, 5)`` object boxes for the O blocks, or None (O blocks skipped).
            zone_masks: ``(B, Z, H, W)`` furniture masks in the pixels of ``fast``; required
                when the model reads them (:attr:`reads_zone_masks`), ignored otherwise.
            zone_features: ``(R, F)`` person-to-zone features; required when the model reads
                them (:attr:`reads_zone_features`), ignored otherwise.

        Returns:
            ``(R, K)`` logits.
        """
        check_rois(rois)
        if clip_keys is not None and len(clip_keys) != fast.shape[0]:
            raise ValueError(f"got {len(clip_keys)} clip_keys for {fast.shape[0]} clips")
        check_room_inputs(self.room, fast, rois, zone_masks, zone_features)
        masks = zone_masks if self.reads_zone_masks else None
        features = zone_features if self.reads_zone_features else None
        n = 1 if self.training else self.test_time_augmentation
        if n == 1:
            return self._forward(slow, fast, rois, clip_keys, object_rois, masks, features)
        return self._forward_augmented(slow, fast, rois, clip_keys, object_rois, masks, features, n)

    def _forward_augmented(
        self,
        slow: torch.Tensor,
        fast: torch.Tensor,
        rois: torch.Tensor,
        clip_keys: Sequence[ClipKey] | None,
        object_rois: torch.Tensor | None,
        zone_masks: torch.Tensor | None,
        zone_features: torch.Tensor | None,
        n: int,
    ) -> torch.Tensor:
        """``(R, K)`` logits averaged over the first ``n`` of :data:`TTA_TRANSFORMS`, one pass
        each; the zone masks turn with the frames, the zone features do not change."""
        h, w = fast.shape[-2:]
        total = None
        for t in TTA_TRANSFORMS[:n]:
            obj = None if object_rois is None else transform_rois(object_rois, h, w, *t)
            masks = None if zone_masks is None else transform_clip(zone_masks, *t)
            logits = self._forward(transform_clip(slow, *t), transform_clip(fast, *t), transform_rois(rois, h, w, *t),
                                   clip_keys, obj, masks, zone_features)
            total = logits if total is None else total + logits
        return total / n

    def embed(self, slow: torch.Tensor, fast: torch.Tensor, rois: torch.Tensor,
              zone_masks: torch.Tensor | None = None) -> torch.Tensor:
        """``(R, D)`` pooled person features of each RoI (backbone + RoI pooling, no classifier).

        What self-supervised pretraining (:mod:`thermal_action.training.pretrain`) trains; the
        arguments are those of :meth:`forward` (``zone_masks`` required when the model reads
        them). No memory, no interaction, no augmentation.
        """
        check_rois(rois)
        check_room_inputs(RoomInputs(self.room.zone_channels), fast, rois, zone_masks, None)
        slow, fast = self._with_zone_channels(slow, fast, zone_masks if self.reads_zone_masks else None)
        return self.head.pool(self.backbone(slow, fast), rois)

    def _with_zone_channels(self, slow: torch.Tensor, fast: torch.Tensor,
                            zone_masks: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(slow, fast)`` with the zone masks as extra channels (unchanged without masks), in
        the memory format of the backbone's first convolution (one-channel frames cannot say
        whether they were meant channels-last)."""
        if zone_masks is None:
            return slow, fast
        first = next(m.weight for m in self.backbone.modules() if isinstance(m, nn.Conv3d))
        cl = first.is_contiguous(memory_format=torch.channels_last_3d) and not first.is_contiguous()
        return (add_zone_channels(slow, zone_masks, channels_last=cl),
                add_zone_channels(fast, zone_masks, channels_last=cl))

    def _forward(
        self,
        slow: torch.Tensor,
        fast: torch.Tensor,
        rois: torch.Tensor,
        clip_keys: Sequence[ClipKey] | None,
        object_rois: torch.Tensor | None,
        zone_masks: torch.Tensor | None = None,
        zone_features: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """One forward pass without test-time augmentation (room inputs: None when not read)."""
        slow, fast = self._with_zone_channels(slow, fast, zone_masks)
        features = self.backbone(slow, fast)
        memory = None
        bank = self.feature_bank
        if bank is not None and clip_keys is not None:
            memory = bank.read(clip_keys, self.head.dim_person, rois.device, torch.float32)
        out = self.head(features, rois, memory=memory, object_rois=object_rois, extra=zone_features)
        if bank is not None and clip_keys is not None and self.update_memory:
            bank.write(clip_keys, out.person_features.float(), rois[:, 0].long())
        return out.logits
