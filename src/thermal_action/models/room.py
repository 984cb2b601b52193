"""What a model sees of the room: zone masks as input channels, person-to-zone features in the head.

A person lying on a bed and one lying on the floor beside it look alike from above at
40x60; the furniture tells them apart. ``model.room`` chooses how a model reads it::

    zone masks (B, Z, H, W) ──repeat over T──► cat with the frames ─► (B, 1+Z, T, H, W) ─► backbone
        (person tubes: cropped with each tube first, (R, Z, S, S) ─► (R, 1+Z, T, S, S))
    zone features (R, F) ────────────────────► cat before the head's fc1 (beside a tube's box size)

``Z`` is :data:`~thermal_action.structures.NUM_ZONE_KINDS` (bed, couch, chair) and ``F``
:data:`~thermal_action.structures.NUM_ZONE_FEATURES` (has_layout, share of the box on each
kind, distance to the nearest of each); the data layer makes both (``data/rooms.py``).
``"none"`` builds exactly the model without a room: same layers, same initialisation.
The masks do not change over time, so a flip or rotation of a clip (augmentation, test-time
augmentation) moves them with the frames, and the features do not change under one.
"""

from __future__ import annotations

import torch

from thermal_action.structures import RoomInputs


def add_zone_channels(clip: torch.Tensor, zone_masks: torch.Tensor, channels_last: bool | None = None) -> torch.Tensor:
    """Frames and zone masks as one input: ``(B, C, T, H, W)`` and ``(B, Z, H, W)`` ->
    ``(B, C + Z, T, H, W)``, each mask repeated over the ``T`` frames.

    Args:
        channels_last: the output's memory format (channels-last-3d or contiguous); None: that
            of ``clip``. A one-channel clip is both at once, so it cannot say which it was meant
            to be: a model passes the format of its first convolution's weights.
    """
    b, _, t, h, w = clip.shape
    if zone_masks.dim() != 4 or zone_masks.shape[0] != b or zone_masks.shape[-2:] != (h, w):
        raise ValueError(f"zone masks must be (B, Z, H, W) = ({b}, Z, {h}, {w}) for a clip of shape "
                         f"{tuple(clip.shape)}, got {tuple(zone_masks.shape)}")
    masks = zone_masks.to(clip.dtype)[:, :, None].expand(-1, -1, t, -1, -1)  # (B, Z, T, H, W), a view
    out = torch.cat([clip, masks], dim=1)
    if channels_last is None:
        channels_last = clip.is_contiguous(memory_format=torch.channels_last_3d) and not clip.is_contiguous()
    return out.contiguous(memory_format=torch.channels_last_3d if channels_last else torch.contiguous_format)


def check_room_inputs(inputs: RoomInputs, fast: torch.Tensor, rois: torch.Tensor, zone_masks: torch.Tensor | None,
                      zone_features: torch.Tensor | None) -> None:
    """Raises ValueError when a model's room inputs are missing or of the wrong shape.

    Args:
        inputs: what the model reads.
        fast: ``(B, C, T, H, W)`` the clips.
        rois: ``(R, 5)`` the person boxes.
        zone_masks: ``(B, Z, H, W)`` or None.
        zone_features: ``(R, F)`` or None.
    """
    b, h, w = fast.shape[0], fast.shape[-2], fast.shape[-1]
    if inputs.zone_channels:
        want = (b, inputs.zone_channels, h, w)
        if zone_masks is None or tuple(zone_masks.shape) != want:
            got = None if zone_masks is None else tuple(zone_masks.shape)
            raise ValueError(f"this model reads the room (model.room={inputs.setting!r}): it needs zone_masks of "
                             f"shape {want} (empty masks when no layout is known), got {got}")
    if inputs.zone_features:
        want = (rois.shape[0], inputs.zone_features)
        if zone_features is None or tuple(zone_features.shape) != want:
            got = None if zone_features is None else tuple(zone_features.shape)
            raise ValueError(f"this model reads the room (model.room={inputs.setting!r}): it needs zone_features of "
                             f"shape {want} (has_layout = 0 when no layout is known), got {got}")


__all__ = ["add_zone_channels", "check_room_inputs"]
