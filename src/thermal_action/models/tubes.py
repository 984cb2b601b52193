"""Person tubes: a SlowFast that looks at each person, not at the whole frame.

People in a 40x60 overhead frame are 7-19 pixels wide. A whole-frame model spends almost
all of its compute on empty floor, and upscaling the frame to give it more of each person
costs the square of the factor. A *person tube* is the same square window around one
person's keyframe box, cut from every frame of the clip and resampled to ``S x S`` pixels
(bilinear, RoIAlign with two samples per cell side, so small boxes are upsampled and large
ones smoothed):

::

    fast (B,1,T,H,W) ─ crop each RoI's window, all T frames ─► (R,1,T,S,S) ─┐
    slow (B,1,T/α,H,W) ─ the same window ───────────────────► (R,1,T/α,S,S) ─┴► SlowFast backbone
        ─► [(R,Cs,Ts,s,s), (R,Cf,Tf,s,s)] ─► RoIAlign of the person box inside its tube ─► head
    zone masks (B,Z,H,W) ─ the same window ─► (R,Z,S,S) ─ repeated over T, Z more tube channels
    zone features (R,F) ─────────────────────────────────────────────► head, beside the box size

The window is ``context`` times the box's longer side (at least ``min_size`` input pixels),
centred on the box, so the model sees the person at a fixed scale plus the floor, bed or
couch around them. Cropping loses the absolute size, which separates lying (long) from
standing (compact) from overhead, so the head also gets the box's log width and height
(``extra_dim = 2``, plus ``F`` person-to-zone features with ``model.room`` ``"features"``).
The zone masks of ``model.room`` ``"masks"`` are cut with the same RoIAlign call as the
frames, so a tube shows the bed exactly where its frames show it. Compute grows with the
number of people, not with the frame area: a
32x32 tube is 0.43x the pixels of a native 40x60 frame and 0.11x of the 2x frame.

:class:`CropCNN` is the simple baseline of this family: one pathway, four plain 3D
convolutions on small tubes (~70k parameters), used by the real-data benchmark.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from thermal_action.models.detector import TTA_TRANSFORMS, ActionDetector, check_rois, transform_clip, transform_rois
from thermal_action.models.feature_bank import ClipKey
from thermal_action.models.head import ActionHead
from thermal_action.models.ops.roi_align import roi_align
from thermal_action.models.room import add_zone_channels, check_room_inputs
from thermal_action.structures import RoomInputs

#: Reference box side (input pixels) of the head's log-size features.
SIZE_REFERENCE = 10.0


def tube_windows(rois: torch.Tensor, context: float, min_size: float) -> torch.Tensor:
    """``(R, 5)`` square windows ``(batch_index, x1, y1, x2, y2)`` centred on each RoI.

    The side is ``max(context * max(w, h), min_size)``; windows may extend past the frame
    (RoIAlign samples there read zero, the background level after normalisation).
    """
    boxes = rois.detach()
    cx = (boxes[:, 1] + boxes[:, 3]) / 2
    cy = (boxes[:, 2] + boxes[:, 4]) / 2
    side = torch.maximum((boxes[:, 3:5] - boxes[:, 1:3]).amax(dim=1) * context,
                         torch.full_like(cx, float(min_size)))
    half = side / 2
    return torch.stack([boxes[:, 0], cx - half, cy - half, cx + half, cy + half], dim=1)


def boxes_in_tubes(rois: torch.Tensor, windows: torch.Tensor, size: int) -> torch.Tensor:
    """Each RoI in the pixel coordinates of its own ``size x size`` tube (batch index = RoI index)."""
    boxes = rois.detach()
    scale = size / (windows[:, 3] - windows[:, 1])  # (R,)
    x1 = (boxes[:, 1] - windows[:, 1]) * scale
    y1 = (boxes[:, 2] - windows[:, 2]) * scale
    x2 = (boxes[:, 3] - windows[:, 1]) * scale
    y2 = (boxes[:, 4] - windows[:, 2]) * scale
    index = torch.arange(boxes.shape[0], device=boxes.device, dtype=boxes.dtype)
    return torch.stack([index, x1, y1, x2, y2], dim=1)


def crop_tubes(clip: torch.Tensor, windows: torch.Tensor, size: int) -> torch.Tensor:
    """``(B, 1, T, H, W)`` clips -> ``(R, 1, T, size, size)`` tubes of the windows."""
    if clip.shape[1] != 1:
        raise ValueError(f"person tubes need one-channel clips, got {clip.shape[1]} channels")
    frames = clip[:, 0]  # (B, T, H, W): frames as channels, one bilinear crop for all of them
    tubes = roi_align(frames.contiguous(), windows, size, spatial_scale=1.0, sampling_ratio=2, aligned=True)
    return tubes.unsqueeze(1)


def crop_zone_masks(zone_masks: torch.Tensor, windows: torch.Tensor, size: int) -> torch.Tensor:
    """``(B, Z, H, W)`` zone masks -> ``(R, Z, size, size)``: the windows cut as
    :func:`crop_tubes` cuts the frames (the same RoIAlign call, masks as channels)."""
    return roi_align(zone_masks.contiguous(), windows, size, spatial_scale=1.0, sampling_ratio=2, aligned=True)


def box_size_features(rois: torch.Tensor) -> torch.Tensor:
    """``(R, 2)`` log width and height of each RoI relative to :data:`SIZE_REFERENCE` pixels."""
    wh = (rois[:, 3:5] - rois[:, 1:3]).detach().clamp(min=1e-3)
    return torch.log(wh / SIZE_REFERENCE)


class PersonTubeDetector(ActionDetector):
    """Classifies each person from a tube cut around its box (see the module docstring).

    Args:
        backbone: a two-pathway backbone (``backbone(slow, fast) -> [features...]``) sized
            for ``tube_size`` inputs.
        head: an :class:`ActionHead` with ``extra_dim = 2`` (the box size features) plus the
            room's zone features.
        tube_size: ``S``, tube side in pixels after resampling.
        context: window side / the box's longer side.
        min_size: smallest window side, in input pixels.
        room: the room inputs (see :class:`ActionDetector`).
    """

    box_extra_dim = 2

    def __init__(self, backbone: nn.Module, head: ActionHead, tube_size: int = 32, context: float = 1.5,
                 min_size: float = 12.0, room: RoomInputs = RoomInputs()) -> None:
        if head.interaction is not None:
            raise ValueError("person tubes do not support the interaction structure (model.interaction=none)")
        if tube_size < 4 or context <= 0 or min_size <= 0:
            raise ValueError(f"bad tube settings: size {tube_size}, context {context}, min_size {min_size}")
        super().__init__(backbone, head, room=room)
        self.tube_size = int(tube_size)
        self.context = float(context)
        self.min_size = float(min_size)

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
        """``(R, K)`` logits of one pass; :meth:`ActionDetector.forward` checks the arguments."""
        if rois.shape[0] == 0:
            # Empty batch norm statistics are undefined: skip the backbone, keep a gradient path.
            hidden = fast.new_zeros(0, self.head.fc2.out_features) + 0 * self.head.fc2.bias.sum()
            return self.head.classifier(hidden)
        features, inner = self._tube_features(slow, fast, rois, zone_masks)
        out = self.head(features, inner, extra=self._extra(box_size_features(rois), zone_features))
        return out.logits

    @staticmethod
    def _extra(box_size: torch.Tensor, zone_features: torch.Tensor | None) -> torch.Tensor:
        """``(R, 2 [+ F])`` the head's per-box features: box size, then the room's."""
        if zone_features is None:
            return box_size
        return torch.cat([box_size, zone_features.to(box_size.dtype)], dim=1)

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
        """Test-time augmentation as one batch of ``n * R`` transformed tubes.

        A tube's window is a square centred on its box, so the tube cut from a flipped or
        transposed clip is the same flip or transposition of the tube cut from the clip
        (RoIAlign's samples and edge rules are mirror-symmetric; equal up to float
        rounding, tested). The tubes are cut once, transformed ``n`` ways and classified in
        one backbone pass: eval-mode BatchNorm treats every tube on its own, so this gives
        the logits of ``n`` separate passes, for one pass's per-operator overhead (the time
        it saves: docs/model.md, "CPU convolutions"). The zone-mask channels of a
        tube turn with its frames; the zone features are the same in every view.
        """
        r = rois.shape[0]
        if r == 0:
            return self._forward(slow, fast, rois, clip_keys, object_rois, zone_masks, zone_features)
        h, w = fast.shape[-2:]
        slow_tubes, fast_tubes, _ = self._crop(slow, fast, rois, zone_masks)
        slows, fasts, inners, extras = [], [], [], []
        for k, t in enumerate(TTA_TRANSFORMS[:n]):
            moved = transform_rois(rois, h, w, *t)
            inner = boxes_in_tubes(moved, tube_windows(moved, self.context, self.min_size), self.tube_size)
            inners.append(inner)
            extras.append(self._extra(box_size_features(moved), zone_features))
            fasts.append(transform_clip(fast_tubes, *t))
            if slow_tubes is not None:
                slows.append(transform_clip(slow_tubes, *t))
        fast_all = self._as_input(torch.cat(fasts), fast)  # (n*R, 1, T, S, S)
        slow_all = fast_all if slow_tubes is None else self._as_input(torch.cat(slows), fast)
        inner_all = torch.cat(inners)
        # Tube k*R + i is view k of box i. The index comes from a tensor op, not the Python
        # int R, so an exported (traced) graph keeps the number of boxes dynamic.
        index = torch.arange(inner_all.shape[0], device=inner_all.device, dtype=inner_all.dtype)
        inner_all = torch.cat([index[:, None], inner_all[:, 1:]], dim=1)
        out = self.head(self.backbone(slow_all, fast_all), inner_all, extra=torch.cat(extras))
        return out.logits.reshape(n, -1, out.logits.shape[-1]).mean(dim=0)

    @staticmethod
    def _as_input(tubes: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """``tubes`` in the memory format of the clip ``like`` (channels-last-3d or contiguous)."""
        if like.is_contiguous(memory_format=torch.channels_last_3d) and not like.is_contiguous():
            return tubes.contiguous(memory_format=torch.channels_last_3d)
        return tubes.contiguous()

    def _crop(
        self, slow: torch.Tensor, fast: torch.Tensor, rois: torch.Tensor, zone_masks: torch.Tensor | None = None
    ) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
        """``(slow tubes or None, fast tubes, windows)``, tubes ``(R, 1 [+ Z], T, S, S)`` with the
        zone masks' crop as extra channels when given; no slow tubes for a backbone that
        reads only ``fast`` (``reads_slow = False``, e.g. :class:`CropCNN`): half the cropping."""
        windows = tube_windows(rois, self.context, self.min_size)
        fast_tubes = crop_tubes(fast, windows, self.tube_size)
        slow_tubes = crop_tubes(slow, windows, self.tube_size) if getattr(self.backbone, "reads_slow", True) else None
        if zone_masks is not None:
            mask_tubes = crop_zone_masks(zone_masks.to(fast_tubes.dtype), windows, self.tube_size)  # (R, Z, S, S)
            fast_tubes = add_zone_channels(fast_tubes, mask_tubes)
            if slow_tubes is not None:
                slow_tubes = add_zone_channels(slow_tubes, mask_tubes)
        return slow_tubes, fast_tubes, windows

    def _tube_features(
        self, slow: torch.Tensor, fast: torch.Tensor, rois: torch.Tensor, zone_masks: torch.Tensor | None = None
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Backbone features of every RoI's tube and the RoI inside its tube (``(R, 5)``)."""
        slow_tubes, fast_tubes, windows = self._crop(slow, fast, rois, zone_masks)
        fast_tubes = self._as_input(fast_tubes, fast)
        slow_tubes = fast_tubes if slow_tubes is None else self._as_input(slow_tubes, fast)
        return self.backbone(slow_tubes, fast_tubes), boxes_in_tubes(rois, windows, self.tube_size)

    def embed(self, slow: torch.Tensor, fast: torch.Tensor, rois: torch.Tensor,
              zone_masks: torch.Tensor | None = None) -> torch.Tensor:
        """``(R, D)`` pooled person features: the box pooled inside its own tube."""
        check_rois(rois)
        check_room_inputs(RoomInputs(self.room.zone_channels), fast, rois, zone_masks, None)
        features, inner = self._tube_features(slow, fast, rois, zone_masks if self.reads_zone_masks else None)
        return self.head.pool(features, inner)


class CropCNN(nn.Module):
    """A plain one-pathway 3D CNN for small person tubes (the benchmark's simple baseline).

    Four 3x3x3 conv + BN + ReLU layers (widths ``widths``), spatial stride 2 in the second
    and temporal stride 2 in the second and third, so 16x16 tubes of 32 frames end as
    ``(R, C, 8, 8, 8)``. It takes the backbone call signature ``(slow, fast)`` and reads
    only ``fast``.
    """

    #: The backbone call passes ``slow`` but this network never reads it, so
    #: :class:`PersonTubeDetector` does not cut slow tubes for it.
    reads_slow = False

    def __init__(self, widths: Sequence[int] = (8, 16, 32, 48), in_channels: int = 1) -> None:
        super().__init__()
        self.in_channels = int(in_channels)
        layers: list[nn.Module] = []
        strides = [(1, 1, 1), (2, 2, 2), (2, 1, 1), (1, 1, 1)]
        c_in = in_channels
        for c_out, stride in zip(widths, strides):
            layers += [nn.Conv3d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm3d(c_out),
                       nn.ReLU()]
            c_in = c_out
        self.body = nn.Sequential(*layers)
        self.alpha = 1
        self.out_channels: tuple[int, ...] = (c_in,)
        self.output_stride = 2
        self.frozen_stages = 0
        self._frozen_bn = False

    def freeze(self, num_stages: int, frozen_bn: bool | None = None) -> None:
        """All-or-nothing freezing (one stage): ``num_stages > 0`` freezes every layer."""
        self.frozen_stages = min(int(num_stages), 1)
        if frozen_bn is not None:
            self._frozen_bn = frozen_bn
        for p in self.parameters():
            p.requires_grad_(self.frozen_stages == 0 and not self._frozen_bn)
        self.train(self.training)

    def train(self, mode: bool = True) -> CropCNN:
        super().train(mode)
        if self.frozen_stages or self._frozen_bn:
            for m in self.modules():
                if isinstance(m, nn.BatchNorm3d):
                    m.eval()
        return self

    def forward(self, slow: torch.Tensor, fast: torch.Tensor) -> list[torch.Tensor]:
        return [self.body(fast)]


#: Backbones made for person tubes only (``model.variant`` with ``model.tube_size > 0``).
TUBE_BACKBONES = {"crop_cnn": CropCNN}

__all__ = ["TUBE_BACKBONES", "CropCNN", "PersonTubeDetector", "box_size_features", "boxes_in_tubes", "crop_tubes",
           "crop_zone_masks", "tube_windows"]
