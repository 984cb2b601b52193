"""Box conversions, the box validator and pathway packing."""

import json

import numpy as np
import pytest
import torch

from thermal_action.errors import DatasetError
from thermal_action.structures import (
    box_iou_xyxy,
    boxes_cxcywh_norm_to_xyxy,
    boxes_xyxy_to_cxcywh_norm,
    check_box_cxcywh_norm,
    check_boxes_cxcywh_norm,
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
    # alpha 1 (one-pathway models): both pathways are the clip itself, not a copy.
    slow_1, fast_1 = pack_pathways(clip, 1)
    assert slow_1 is clip and fast_1 is clip


@pytest.mark.parametrize("t, alpha", [(32, 4), (16, 3), (15, 4), (8, 8), (8, 1)])
def test_pack_pathways_of_an_array_takes_the_tensors_frames(t, alpha):
    # The ONNX backend packs numpy batches (B, C, T, H, W): the same frames, contiguous.
    batch = np.random.default_rng(t).normal(size=(2, 1, t, 4, 6)).astype(np.float32)
    slow, fast = pack_pathways(batch, alpha)
    want_slow, want_fast = pack_pathways(torch.from_numpy(batch), alpha)
    assert isinstance(slow, np.ndarray) and fast is batch and slow.flags.c_contiguous
    np.testing.assert_array_equal(slow, want_slow.numpy())
    np.testing.assert_array_equal(fast, want_fast.numpy())


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


@pytest.mark.parametrize(
    "box, message",
    [
        ([0.5, 0.5, 0.1], r"f\.json \[ann 3\]: 'bbox' must be 4 numbers \[cx, cy, w, h\] normalized"),
        ([0.5, 0.5, True, 0.1], "must be 4 numbers"),
        ("0.5 0.5 0.1 0.1", "must be 4 numbers"),
        ([0.5, float("nan"), 0.1, 0.1], r"f\.json \[ann 3\]: 'bbox' has a non-finite value"),
        ([0.5, 0.5, float("inf"), 0.1], "non-finite"),
        ([30, 20, 10, 8], "not normalized"),
        ([0.5, 0.5, -0.1, 0.205], r"box of negative width \(-6\.00 x 8\.20 px\)"),
        ([0.5, 0.5, -0.1, -0.1], r"box of negative width and height \(-6\.00 x -4\.00 px\)"),
        ([0.5, 0.5, 0.0, 0.1], r"box of zero size \(0\.00 x 4\.00 px\)"),
        ([0.5, 0.5, 0.005, 0.1], r"box of zero size \(0\.30 x 4\.00 px\)"),
        ([1.5, 0.5, 0.1, 0.1], r"box lies 33\.00 px outside the 60x40 frame \(at most 2 px is clipped\)"),
        ([1.0, 0.5, 0.015, 0.1], "box has zero size inside the frame"),  # 0.45 px of 0.9 inside
    ],
)
def test_box_validator_errors(box, message):
    with pytest.raises(DatasetError, match=message) as info:
        check_box_cxcywh_norm(box, width=60, height=40, source="f.json", record="ann 3")
    assert info.value.path == "f.json" and info.value.record == "ann 3"


def test_box_validator_clips_small_overhangs_and_keeps_the_rest():
    inside = [0.5, 0.5, 0.2, 0.2]
    out = boxes_xyxy_to_cxcywh_norm([[-1.5, 30, 8.5, 41]], 60, 40)[0]  # 1.5 px left, 1 px below
    got = check_boxes_cxcywh_norm(np.array([inside, out]), width=60, height=40, source="f")
    np.testing.assert_array_equal(got[0], inside)
    np.testing.assert_allclose(boxes_cxcywh_norm_to_xyxy(got[1:], 60, 40), [[0, 30, 8.5, 40]], atol=1e-9)
    # None: lying outside is allowed and nothing is clipped (detector and model boxes).
    np.testing.assert_array_equal(
        check_boxes_cxcywh_norm([inside, out], source="f", max_overhang_px=None), [inside, out])
    with pytest.raises(DatasetError, match=r"f \[r\]: box lies 1\.50 px outside"):
        check_boxes_cxcywh_norm([inside, out], source="f", record="r", max_overhang_px=1.0)
    # Float noise of normalized corners is not an overhang.
    edge = [0.1 + 1e-12, 0.5, 0.2, 0.2]
    np.testing.assert_array_equal(check_box_cxcywh_norm(edge, source="f", max_overhang_px=0.0), edge)


def test_box_validator_empty_and_one_box():
    for empty in ([], np.zeros((0, 4)), np.zeros((0, 4), np.float32)):
        assert check_boxes_cxcywh_norm(empty, source="f").shape == (0, 4)
    assert check_boxes_cxcywh_norm([0.5, 0.5, 0.1, 0.1], source="f").shape == (1, 4)
    assert check_box_cxcywh_norm(np.array([0.5, 0.5, 0.1, 0.1], np.float32), source="f").shape == (4,)
    with pytest.raises(DatasetError, match="must be 4 numbers"):  # one record, one box
        check_box_cxcywh_norm([[0.5, 0.5, 0.1, 0.1]], source="f")
    with pytest.raises(DatasetError, match="must be 4 numbers"):
        check_boxes_cxcywh_norm(np.zeros((2, 5)), source="f")


@pytest.mark.parametrize("bbox", [[0.5, 0.5, -0.1, 0.2], [0.5, 0.5, 0.0, 0.1], [0.5, float("nan"), 0.1, 0.1],
                                  [30, 20, 10, 8], [0.5, 0.5, 0.1]])
def test_same_bad_box_same_message_from_annotations_and_detections(tmp_path, bbox):
    from thermal_action.data.annotations import load_annotations
    from thermal_action.evaluation.detections import read_detections_file

    ann = tmp_path / "train.json"
    ann.write_text(json.dumps({
        "categories": [{"id": 0, "name": "standing"}],
        "images": [{"id": "Q_1", "sensor_id": "Q", "timestamp": 1, "frame_idx": 0, "width": 60, "height": 40}],
        "annotations": [{"id": 5, "image_id": "Q_1", "bbox": bbox, "category_id": 0, "object_id": 0}],
    }))
    dets = tmp_path / "dets.json"
    dets.write_text(json.dumps([{"image_id": "Q_1", "bbox": bbox, "score": 0.9}]))
    with pytest.raises(DatasetError) as from_annotations:
        load_annotations(ann)
    with pytest.raises(DatasetError) as from_detections:
        read_detections_file(dets)
    assert from_annotations.value.message == from_detections.value.message
    assert str(from_annotations.value).startswith(f"{ann} [annotation id 5 (image Q_1)]: ")
    assert str(from_detections.value).startswith(f"{dets} [record 0, image_id 'Q_1']: ")


def test_frame_boxes_is_the_one_per_frame_pixel_structure():
    import numpy as np
    import pytest

    from thermal_action.inference.boxes import FrameBoxes as BoxesFrameBoxes
    from thermal_action.people.results import Detections
    from thermal_action.structures import FrameBoxes

    assert Detections is FrameBoxes and BoxesFrameBoxes is FrameBoxes
    fb = FrameBoxes([[1, 2, 5, 6], [8, 8, 12, 14]], [0.9, 0.5])
    assert fb.track_ids.tolist() == [-1, -1] and fb.boxes_xyxy.dtype == np.float32 and len(fb) == 2
    assert len(FrameBoxes.empty()) == 0
    with pytest.raises(ValueError, match="2 boxes but 1 scores"):
        FrameBoxes([[1, 2, 5, 6], [8, 8, 12, 14]], [0.9])
