"""Box conversions and pathway packing."""

import numpy as np
import pytest
import torch

from thermal_action.structures import (
    box_iou_xyxy,
    boxes_cxcywh_norm_to_xyxy,
    boxes_xyxy_to_cxcywh_norm,
    pack_pathways,
)


def test_ten_pixel_box_stays_ten_pixels():
    # A box from x=3 to x=13 and y=5 to y=15 in a 60x40 frame.
    norm = np.array([[8 / 60, 10 / 40, 10 / 60, 10 / 40]])
    xyxy = boxes_cxcywh_norm_to_xyxy(norm, 60, 40)
    np.testing.assert_allclose(xyxy, [[3, 5, 13, 15]], atol=1e-9)
    np.testing.assert_allclose(boxes_xyxy_to_cxcywh_norm(xyxy, 60, 40), norm, atol=1e-12)


def test_iou():
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 10, 10]])
    np.testing.assert_allclose(box_iou_xyxy(a, b), [[50 / 150, 0.0, 1.0]])
    assert box_iou_xyxy(np.zeros((0, 4)), b).shape == (0, 3)


def test_pack_pathways_takes_centred_frames():
    clip = torch.arange(64.0).view(1, 64, 1, 1).expand(1, 64, 2, 3)[:, :32]
    slow, fast = pack_pathways(clip, 8)
    assert fast is clip
    assert slow.shape == (1, 4, 2, 3)
    assert slow[0, :, 0, 0].tolist() == [0.0, 8.0, 16.0, 24.0]
    # The keyframe (fast index T // 2) is a slow frame for any alpha and length.
    for t, alpha in [(32, 4), (16, 3), (15, 4), (64, 8)]:
        slow_t, _ = pack_pathways(torch.arange(64.0).view(1, 64, 1, 1)[:, :t], alpha)
        assert slow_t.shape[1] == t // alpha
        assert float(t // 2) in slow_t[0, :, 0, 0].tolist()
    with pytest.raises(ValueError):
        pack_pathways(clip[:, :4], 8)


def test_looks_like_kelvin_is_the_one_kelvin_test():
    import numpy as np

    from thermal_action.structures import looks_like_kelvin

    room_k = np.full((40, 60), 293.0, np.float32)
    room_k[:8] = 0.0  # dropped packets of a Kelvin sensor read 0 K
    assert looks_like_kelvin(room_k)
    room_c = np.full((40, 60), 20.0, np.float32)
    room_c[:8] = -273.2  # dropped packets of a °C sensor
    room_c[8, :5] = np.nan
    assert not looks_like_kelvin(room_c)
    assert not looks_like_kelvin(np.full((4, 4), np.nan))
