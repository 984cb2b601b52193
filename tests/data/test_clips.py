"""Clip windows (padding, stride, keyframe position) and the shared preprocessing path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from thermal_action.data.clips import ClipBuilder, clip_offsets, clip_window
from thermal_action.data.dataset import clip_from_recording
from thermal_action.data.hdf5 import read_recording
from thermal_action.structures import pack_pathways


def test_default_window_is_32_before_keyframe_31_after():
    raw = clip_offsets(64, 1)
    assert raw.tolist() == list(range(-32, 32))  # 32 before, the keyframe, 31 after
    fast = clip_offsets(64, 2)
    assert len(fast) == 32 and fast[0] == -32 and fast[-1] == 30 and fast[16] == 0


@pytest.mark.parametrize("num_frames,stride,alpha", [(64, 2, 4), (64, 4, 4), (32, 2, 8), (30, 3, 2), (8, 1, 2)])
def test_keyframe_is_fast_centre_and_a_slow_frame(num_frames, stride, alpha):
    offs = clip_offsets(num_frames, stride)
    t = num_frames // stride
    assert len(offs) == t and offs[t // 2] == 0 and np.all(np.diff(offs) == stride)
    slow, _ = pack_pathways(torch.from_numpy(offs).view(1, t, 1, 1).float(), alpha)
    assert 0 in slow.flatten().tolist()


def test_window_pads_with_edge_frames_and_counts_them():
    w = clip_window(3, 64, 2, 100)
    assert len(w.indices) == 32
    assert w.indices[:15].tolist() == [0] * 15 and w.indices[15] == 1 and w.indices[16] == 3
    assert w.num_padded == 15  # raw frames -29, -27, ..., -1 lie before frame 0
    end = clip_window(99, 64, 2, 100)
    assert end.indices[16] == 99 and (end.indices[17:] == 99).all() and end.num_padded == 15
    inner = clip_window(50, 64, 2, 100)
    assert inner.num_padded == 0 and inner.indices.tolist() == list(range(18, 81, 2))
    tiny = clip_window(0, 64, 2, 1)  # a one-frame recording: all repeats, never skipped
    assert (tiny.indices == 0).all() and tiny.num_padded == 31


def test_builder_fixed_and_background_normalisation():
    frames = np.full((10, 4, 6), 18.0, dtype=np.float32)
    frames[:, 1:3, 2:4] = 26.0  # a person 8 °C above the floor
    boxes = np.array([[2, 1, 4, 3]], dtype=np.float32)
    bg = ClipBuilder(8, 2, "background", background_scale=8.0).build(frames, 5, boxes)
    assert bg.clip.shape == (1, 4, 4, 6) and bg.clip.dtype == np.float32 and bg.clip.flags.c_contiguous
    assert np.allclose(bg.clip[0, :, 1:3, 2:4], 1.0) and np.abs(bg.clip[0, :, 0]).max() == 0
    fixed = ClipBuilder(8, 2, "fixed", fixed_range=(10.0, 30.0)).build(frames, 5, boxes)
    assert np.allclose(fixed.clip[0, :, 0, 0], 0.4) and np.allclose(fixed.clip[0, :, 1, 2], 0.8)
    # "background" survives a change of room: 5 °C warmer, same input.
    warm = ClipBuilder(8, 2, "background").build(frames + 5.0, 5, boxes)
    assert np.allclose(warm.clip, bg.clip)
    np.testing.assert_array_equal(bg.boxes_xyxy, boxes)
    assert frames[0, 0, 0] == 18.0  # the recording is not modified


@pytest.mark.parametrize("engine", ["torch", "numpy"])
def test_builder_resize_scales_frames_and_boxes(engine):
    frames = np.full((4, 40, 60), 18.0, dtype=np.float32)
    frames[:, 10:18, 20:30] = 25.0
    boxes = np.array([[20, 10, 30, 18]], dtype=np.float32)
    out = ClipBuilder(4, 1, "fixed", scale=2.0, resize_engine=engine).build(frames, 2, boxes)
    assert out.clip.shape == (1, 4, 80, 120) and out.clip.dtype == np.float32
    np.testing.assert_array_equal(out.boxes_xyxy, [[40.0, 20.0, 60.0, 36.0]])
    inside = out.clip[0, 0, 22:34, 42:58]
    assert np.allclose(inside, inside[0, 0])  # the blob is where the scaled box says
    half = ClipBuilder(4, 1, "fixed", scale=0.5, resize_engine=engine).build(frames, 2, boxes)
    assert half.clip.shape == (1, 4, 20, 30)
    np.testing.assert_array_equal(half.boxes_xyxy, [[10.0, 5.0, 15.0, 9.0]])


@pytest.mark.parametrize("scale", [2.0, 0.5, 1.5, 0.75, 6.4])
def test_numpy_resize_equals_torch_resize(scale):
    """The ONNX backend's numpy resize is PyTorch's bilinear ``F.interpolate`` to float32
    rounding, for upscales, downscales and non-integer ratios, on the edges too."""
    import torch.nn.functional as F

    from thermal_action.data.transforms import resize_clip

    rng = np.random.default_rng(0)
    clip = rng.normal(0.0, 1.0, (4, 40, 60)).astype(np.float32)
    boxes = np.array([[3.0, 5.5, 17.25, 30.0], [0.0, 0.0, 60.0, 40.0]], np.float32)
    got, got_boxes = resize_clip(clip, boxes, scale, "numpy")
    oh, ow = round(40 * scale), round(60 * scale)
    want = F.interpolate(torch.from_numpy(clip)[None], size=(oh, ow), mode="bilinear", align_corners=False)[0]
    assert got.shape == (4, oh, ow) and got.dtype == np.float32
    np.testing.assert_allclose(got, want.numpy(), rtol=0, atol=3e-5)
    torch_clip, torch_boxes = resize_clip(clip, boxes, scale, "torch")
    np.testing.assert_array_equal(torch_clip, want.numpy())
    np.testing.assert_array_equal(got_boxes, torch_boxes)
    # A linear ramp is resampled exactly (to rounding) wherever both taps lie inside the frame.
    ramp = np.broadcast_to(np.arange(60, dtype=np.float32), (1, 40, 60)).copy()
    out, _ = resize_clip(ramp, boxes[:0], scale, "numpy")
    x = (np.arange(ow) + 0.5) * 60 / ow - 0.5
    inner = (x >= 0) & (x <= 59)
    np.testing.assert_allclose(out[0, 0, inner], x[inner], atol=1e-4)


def test_the_numpy_engine_builds_the_torch_engines_clip():
    """Preprocessing for ONNX (numpy) and for PyTorch: the same clip, boxes, masks and features
    on a tiny clip with a room and an upscale."""
    frames = np.random.default_rng(1).normal(20.0, 2.0, (12, 40, 60)).astype(np.float32)
    boxes = np.array([[12.0, 8.0, 24.0, 20.0], [40.0, 20.5, 52.0, 33.0]])
    layout = _bed_and_chair()
    for scale in (1.0, 2.0, 1.5):
        a = ClipBuilder(8, 2, scale=scale, resize_engine="torch").build(frames, 6, boxes, layout=layout)
        b = ClipBuilder(8, 2, scale=scale, resize_engine="numpy").build(frames, 6, boxes, layout=layout)
        assert a.clip.shape == b.clip.shape and a.zone_masks.shape == b.zone_masks.shape
        np.testing.assert_allclose(b.clip, a.clip, rtol=0, atol=1e-5)
        np.testing.assert_allclose(b.zone_masks, a.zone_masks, rtol=0, atol=1e-6)
        np.testing.assert_array_equal(b.boxes_xyxy, a.boxes_xyxy)
        np.testing.assert_array_equal(b.zone_features, a.zone_features)
        if scale == 1.0:
            np.testing.assert_array_equal(b.clip, a.clip)
    with pytest.raises(ValueError, match="resize_engine must be one of"):
        ClipBuilder(8, 2, resize_engine="cv2")


def test_clip_from_recording_uses_the_dataset_path(shared_tiny_dataset):
    ds = shared_tiny_dataset
    rec = read_recording(ds.frames_dir / "S2.h5")
    builder = ClipBuilder(16, 2, "background")
    norm = np.array([[35.5 / 60, 14.5 / 40, 11 / 60, 9 / 40], [0.99, 0.5, 0.1, 0.2]])  # second pokes out
    s = clip_from_recording(rec, 8, norm, builder)
    assert s.clip.shape == (1, 8, 40, 60) and s.labels.tolist() == [-1, -1]
    assert s.image_id == f"S2_{int(rec.timestamps[8])}" and s.timestamp == int(rec.timestamps[8])
    torch.testing.assert_close(s.boxes_xyxy[0], torch.tensor([30.0, 10.0, 41.0, 19.0]))
    assert s.boxes_xyxy[1, 2] == 60.0  # clipped to the frame
    direct = builder.build(rec.frames, 8, s.boxes_xyxy.numpy())
    np.testing.assert_array_equal(direct.clip, s.clip.numpy())
    with pytest.raises(Exception, match=r"S2\.h5.*frame_idx 24 out of range"):
        clip_from_recording(rec, 24, norm, builder)


# --- the room: zone masks move like the frames, person-to-zone features do not move --------

def _bed_and_chair():
    from thermal_action.data.rooms import RoomLayout, Zone

    return RoomLayout((Zone.from_box("bed", (0.1, 0.15, 0.45, 0.6)),
                       Zone("chair", ((0.7, 0.5), (0.9, 0.55), (0.85, 0.9)))), "annotations")


@pytest.mark.parametrize("hflip, vflip, turns, scale", [
    (False, False, 0, 1.0), (True, False, 0, 1.0), (False, True, 2, 1.0), (True, True, 2, 2.0), (True, False, 0, 0.5),
])
def test_zone_masks_move_exactly_like_the_frames(hflip, vflip, turns, scale):
    # Frames that *are* the bed mask (fixed normalisation maps them back to [0, 1]) must come out
    # equal to the masks, whatever flips, turns and resize the clip went through.
    from thermal_action.data.rooms import zone_masks
    from thermal_action.data.transforms import AugmentParams

    layout = _bed_and_chair()
    bed = zone_masks(layout, 40, 60)[0]
    frames = np.repeat((10.0 + 20.0 * bed)[None], 12, axis=0).astype(np.float32)  # (N, H, W) °C
    builder = ClipBuilder(8, 2, "fixed", fixed_range=(10.0, 30.0), scale=scale)
    params = AugmentParams(hflip=hflip, vflip=vflip, quarter_turns=turns)
    boxes = np.array([[12.0, 8.0, 24.0, 20.0]])
    built = builder.build(frames, 6, boxes, params, layout=layout)
    assert built.zone_masks.shape == (3, *built.clip.shape[2:])
    for t in range(built.clip.shape[1]):
        np.testing.assert_allclose(built.clip[0, t], built.zone_masks[0], atol=1e-5, rtol=0)
    plain = builder.build(frames, 6, boxes, layout=layout)
    moved = plain.zone_masks
    if hflip:
        moved = moved[..., ::-1]
    if vflip:
        moved = moved[..., ::-1, :]
    moved = np.rot90(moved, turns, axes=(-2, -1))
    if scale == 1.0:  # flips commute with the resize only up to rounding
        np.testing.assert_array_equal(built.zone_masks, moved)


def test_square_frames_turn_masks_a_quarter():
    from thermal_action.data.rooms import zone_masks
    from thermal_action.data.transforms import AugmentParams

    layout = _bed_and_chair()
    bed = zone_masks(layout, 32, 32)[0]
    frames = np.repeat((10.0 + 20.0 * bed)[None], 10, axis=0).astype(np.float32)
    builder = ClipBuilder(4, 1, "fixed", fixed_range=(10.0, 30.0))
    for turns in (1, 3):
        built = builder.build(frames, 5, np.zeros((0, 4)), AugmentParams(quarter_turns=turns), layout=layout)
        np.testing.assert_allclose(built.clip[0, 0], built.zone_masks[0], atol=1e-5, rtol=0)
        np.testing.assert_array_equal(built.zone_masks, np.rot90(zone_masks(layout, 32, 32), turns, axes=(-2, -1)))


def test_zone_features_come_from_the_jittered_boxes_and_ignore_flips():
    from thermal_action.data.rooms import NO_LAYOUT, person_zone_features
    from thermal_action.data.transforms import AugmentParams, jitter_boxes

    layout = _bed_and_chair()
    frames = np.full((12, 40, 60), 18.0, np.float32)
    boxes = np.array([[8.0, 8.0, 22.0, 20.0], [45.0, 22.0, 52.0, 33.0]])
    noise = np.array([[1.5, -1.0, 0.5, 2.0], [-0.5, 0.3, 1.0, -0.2]])
    builder = ClipBuilder(8, 2)
    want = person_zone_features(jitter_boxes(boxes.copy(), noise, 40, 60), layout, 40, 60)
    for hflip, vflip, turns in ((False, False, 0), (True, False, 2), (True, True, 0)):
        built = builder.build(frames, 6, boxes, AugmentParams(hflip, vflip, turns, box_noise=noise), layout=layout)
        np.testing.assert_allclose(built.zone_features, want, rtol=1.3e-6, atol=1e-5)
    assert want[0, 0] == 1 and want[0, 1] > 0.5 and want[1, 3] > 0  # known room; box 0 on the bed, box 1 on the chair
    none = builder.build(frames, 6, boxes)
    assert np.abs(none.zone_masks).sum() == 0
    np.testing.assert_allclose(none.zone_features, person_zone_features(boxes, NO_LAYOUT, 40, 60), rtol=1.3e-6,
                               atol=1e-5)
    assert none.zone_features[:, 0].tolist() == [0.0, 0.0]  # has_layout = 0


def test_prediction_clip_carries_the_room(fmt, tmp_path):
    frames = np.full((20, 40, 60), 18.0, np.float32)
    rec = read_recording(fmt.write_recording(tmp_path / "frames" / "R.h5", frames))
    layout = _bed_and_chair()
    box = np.array([[0.25, 0.4, 0.2, 0.3]])  # normalized cx, cy, w, h: on the bed
    s = clip_from_recording(rec, 10, box, ClipBuilder(8, 2), layout=layout)
    assert s.room_source == "annotations" and s.zone_masks.shape == (3, 40, 60) and s.zone_masks[0].sum() > 0
    assert s.zone_features.shape == (1, 7) and s.zone_features[0, 0] == 1 and s.zone_features[0, 1] == 1
    bare = clip_from_recording(rec, 10, box, ClipBuilder(8, 2))
    assert bare.room_source == "none" and bare.zone_masks.abs().sum() == 0 and bare.zone_features[0, 0] == 0


def test_room_dropout_shows_a_clip_without_its_room():
    from thermal_action.data.transforms import AugmentParams, Augmenter

    layout = _bed_and_chair()
    frames = np.full((12, 40, 60), 18.0, np.float32)
    boxes = np.array([[8.0, 8.0, 22.0, 20.0]])
    dropped = ClipBuilder(8, 2).build(frames, 6, boxes, AugmentParams(drop_room=True), layout=layout)
    assert np.abs(dropped.zone_masks).sum() == 0 and dropped.zone_features[0, 0] == 0
    kept = ClipBuilder(8, 2).build(frames, 6, boxes, AugmentParams(), layout=layout)
    assert np.abs(kept.zone_masks).sum() > 0 and kept.zone_features[0, 0] == 1
    # Drawn last: without room dropout every other draw is as before; with it, about p of the clips.
    plain, drop = Augmenter(), Augmenter(room_dropout=0.3)
    draws = [(plain.sample(np.random.default_rng(i), 2, 40, 60), drop.sample(np.random.default_rng(i), 2, 40, 60))
             for i in range(400)]
    for a, b in draws:
        assert (a.hflip, a.vflip, a.quarter_turns, a.temp_offset, a.time_shift) == \
            (b.hflip, b.vflip, b.quarter_turns, b.temp_offset, b.time_shift) and not a.drop_room
    assert 0.22 < np.mean([b.drop_room for _, b in draws]) < 0.38
