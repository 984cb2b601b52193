"""Clip windows (padding, stride, keyframe position) and the shared preprocessing path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from thermal_action.data.clips import ClipBuilder, clip_from_recording, clip_offsets, clip_window
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
    assert bg.clip.shape == (1, 4, 4, 6) and bg.clip.dtype == torch.float32
    assert torch.allclose(bg.clip[0, :, 1:3, 2:4], torch.ones(1)) and bg.clip[0, :, 0].abs().max() == 0
    fixed = ClipBuilder(8, 2, "fixed", fixed_range=(10.0, 30.0)).build(frames, 5, boxes)
    assert torch.allclose(fixed.clip[0, :, 0, 0], torch.tensor(0.4)) and torch.allclose(
        fixed.clip[0, :, 1, 2], torch.tensor(0.8))
    # "background" survives a change of room: 5 °C warmer, same input.
    warm = ClipBuilder(8, 2, "background").build(frames + 5.0, 5, boxes)
    assert torch.allclose(warm.clip, bg.clip)
    np.testing.assert_array_equal(bg.boxes_xyxy.numpy(), boxes)
    assert frames[0, 0, 0] == 18.0  # the recording is not modified


def test_builder_resize_scales_frames_and_boxes():
    frames = np.full((4, 40, 60), 18.0, dtype=np.float32)
    frames[:, 10:18, 20:30] = 25.0
    boxes = np.array([[20, 10, 30, 18]], dtype=np.float32)
    out = ClipBuilder(4, 1, "fixed", scale=2.0).build(frames, 2, boxes)
    assert out.clip.shape == (1, 4, 80, 120)
    torch.testing.assert_close(out.boxes_xyxy, torch.tensor([[40.0, 20.0, 60.0, 36.0]]))
    inside = out.clip[0, 0, 22:34, 42:58]
    assert torch.allclose(inside, inside[0, 0])  # the blob is where the scaled box says
    half = ClipBuilder(4, 1, "fixed", scale=0.5).build(frames, 2, boxes)
    assert half.clip.shape == (1, 4, 20, 30)
    torch.testing.assert_close(half.boxes_xyxy, torch.tensor([[10.0, 5.0, 15.0, 9.0]]))


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
    assert torch.equal(direct.clip, s.clip)
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
        torch.testing.assert_close(built.clip[0, t], built.zone_masks[0], atol=1e-5, rtol=0)
    plain = builder.build(frames, 6, boxes, layout=layout)
    moved = plain.zone_masks
    if hflip:
        moved = moved.flip(-1)
    if vflip:
        moved = moved.flip(-2)
    moved = torch.rot90(moved, turns, dims=(-2, -1))
    if scale == 1.0:  # flips commute with the resize only up to rounding
        torch.testing.assert_close(built.zone_masks, moved, rtol=0, atol=0)


def test_square_frames_turn_masks_a_quarter():
    from thermal_action.data.rooms import zone_masks
    from thermal_action.data.transforms import AugmentParams

    layout = _bed_and_chair()
    bed = zone_masks(layout, 32, 32)[0]
    frames = np.repeat((10.0 + 20.0 * bed)[None], 10, axis=0).astype(np.float32)
    builder = ClipBuilder(4, 1, "fixed", fixed_range=(10.0, 30.0))
    for turns in (1, 3):
        built = builder.build(frames, 5, np.zeros((0, 4)), AugmentParams(quarter_turns=turns), layout=layout)
        torch.testing.assert_close(built.clip[0, 0], built.zone_masks[0], atol=1e-5, rtol=0)
        torch.testing.assert_close(built.zone_masks, torch.rot90(torch.from_numpy(zone_masks(layout, 32, 32)), turns,
                                                                 dims=(-2, -1)), rtol=0, atol=0)


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
        torch.testing.assert_close(built.zone_features, torch.from_numpy(want))
    assert want[0, 0] == 1 and want[0, 1] > 0.5 and want[1, 3] > 0  # known room; box 0 on the bed, box 1 on the chair
    none = builder.build(frames, 6, boxes)
    assert none.zone_masks.abs().sum() == 0
    torch.testing.assert_close(none.zone_features, torch.from_numpy(person_zone_features(boxes, NO_LAYOUT, 40, 60)))
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
    assert dropped.zone_masks.abs().sum() == 0 and dropped.zone_features[0, 0] == 0
    kept = ClipBuilder(8, 2).build(frames, 6, boxes, AugmentParams(), layout=layout)
    assert kept.zone_masks.abs().sum() > 0 and kept.zone_features[0, 0] == 1
    # Drawn last: without room dropout every other draw is as before; with it, about p of the clips.
    plain, drop = Augmenter(), Augmenter(room_dropout=0.3)
    draws = [(plain.sample(np.random.default_rng(i), 2, 40, 60), drop.sample(np.random.default_rng(i), 2, 40, 60))
             for i in range(400)]
    for a, b in draws:
        assert (a.hflip, a.vflip, a.quarter_turns, a.temp_offset, a.time_shift) == \
            (b.hflip, b.vflip, b.quarter_turns, b.temp_offset, b.time_shift) and not a.drop_room
    assert 0.22 < np.mean([b.drop_room for _, b in draws]) < 0.38
