"""ThermalClipDataset, collation into SlowFast batches, builders, determinism, box overrides."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from thermal_action.config import DataConfig
from thermal_action.data.clips import ClipBuilder
from thermal_action.data.dataset import clip_from_recording
from thermal_action.data.dataset import (
    ClipCollator,
    ThermalClipDataset,
    build_clip_builder,
    build_collate,
    build_dataset,
    collate_clips,
)
from thermal_action.errors import DatasetError
from thermal_action.data.hdf5 import read_recording
from thermal_action.data.transforms import Augmenter
from thermal_action.structures import Batch


def _cfg(root, **kw) -> DataConfig:
    # 16-frame windows keep the tiny recordings meaningful and the tests fast.
    return dataclasses.replace(DataConfig(root=str(root), num_frames=16, frame_stride=2), **kw)


def _hot_fraction_inside(sample) -> float:
    """Mean normalised value inside the boxes minus outside, at the keyframe-ish centre."""
    frame = sample.clip[0, sample.clip.shape[1] // 2]
    mask = torch.zeros_like(frame, dtype=torch.bool)
    for x1, y1, x2, y2 in sample.boxes_xyxy.round().int().tolist():
        mask[y1:y2, x1:x2] = True
    return float(frame[mask].mean() - frame[~mask].mean())


def test_items_without_augmentation(shared_tiny_dataset):
    ds = build_dataset(_cfg(shared_tiny_dataset.root), "annotations/train.json", train=False)
    assert len(ds) == 3 and ds.augmenter is None and ds.class_names[3] == "lying down-lying with risk"
    s = ds[0]
    assert s.clip.shape == (1, 8, 40, 60) and s.clip.dtype == torch.float32
    assert s.image_id == f"S1_{int(shared_tiny_dataset.timestamps['S1'][0])}" and s.frame_idx == 0
    torch.testing.assert_close(s.boxes_xyxy, torch.tensor([[10.0, 10, 20, 18], [40, 20, 48, 34]]))
    assert s.labels.tolist() == [1, 3] and s.track_ids.tolist() == [0, 1] and s.annotation_ids.tolist() == [0, 1]
    assert s.box_scores is None
    # Background normalisation: persons (7 °C up, scale 8) ~0.875, floor ~0.
    assert 0.8 < _hot_fraction_inside(s) < 0.95
    assert ds[1].boxes_xyxy.shape == (0, 4) and ds[1].labels.shape == (0,)
    assert ds.padding_summary() == {"padded_clips": 2, "padded_frames": 4 + 3, "clips": 3}
    assert ds.clip_window(2).num_padded == 3


def test_augmented_boxes_still_cover_the_persons(shared_tiny_dataset):
    ds = build_dataset(_cfg(shared_tiny_dataset.root, temporal_jitter=0), "annotations/train.json", train=True,
                       seed=3)
    assert isinstance(ds.augmenter, Augmenter)
    seen = set()
    for epoch in range(6):
        ds.set_epoch(epoch)
        for i in (0, 2):
            s = ds[i]
            assert _hot_fraction_inside(s) > 0.5, (epoch, i)
            seen.add(tuple(s.boxes_xyxy[0].round().int().tolist()))
    assert len(seen) > 4  # flips/rotations/jitter really happen


def test_determinism_seed_epoch_index(shared_tiny_dataset):
    cfg = _cfg(shared_tiny_dataset.root)
    a = build_dataset(cfg, cfg.train_ann, train=True, seed=7)
    b = build_dataset(cfg, cfg.train_ann, train=True, seed=7)
    assert torch.equal(a[2].clip, b[2].clip) and torch.equal(a[2].boxes_xyxy, b[2].boxes_xyxy)
    first = a[2].clip.clone()
    a.set_epoch(1)
    assert a.epoch == 1 and not torch.equal(a[2].clip, first)
    a.set_epoch(0)
    assert torch.equal(a[2].clip, first)
    c = build_dataset(cfg, cfg.train_ann, train=True, seed=8)
    assert not torch.equal(c[2].clip, first)


def test_dataloader_workers_match_main_process(shared_tiny_dataset):
    cfg = _cfg(shared_tiny_dataset.root)
    ds = build_dataset(cfg, cfg.train_ann, train=True, seed=1)
    ds.set_epoch(2)
    collate = build_collate(cfg, alpha=2, train=True, seed=1)
    workers = list(DataLoader(ds, batch_size=2, collate_fn=collate, num_workers=2,
                              multiprocessing_context="fork"))
    assert len(ds.cache) == 0  # each worker read the recordings itself; the parent holds none
    main = list(DataLoader(ds, batch_size=2, collate_fn=collate, num_workers=0))
    assert len(main) == len(workers) == 2
    for x, y in zip(main, workers):
        assert torch.equal(x.fast, y.fast) and torch.equal(x.rois, y.rois)


def test_collate_with_several_persons_and_with_none(shared_tiny_dataset):
    ds = build_dataset(_cfg(shared_tiny_dataset.root), "annotations/train.json", train=False)
    samples = [ds[0], ds[1], ds[2]]  # 2, 0 and 1 persons
    batch = collate_clips(samples, alpha=4)
    assert isinstance(batch, Batch) and batch.num_clips == 3 and batch.num_rois == 3
    assert batch.fast.shape == (3, 1, 8, 40, 60) and batch.slow.shape == (3, 1, 2, 40, 60)
    assert torch.equal(batch.slow[:, :, 1], batch.fast[:, :, 4])  # the keyframe (fast T // 2) is a slow frame
    assert torch.equal(batch.slow[:, :, 0], batch.fast[:, :, 0])
    assert batch.rois[:, 0].tolist() == [0, 0, 2]
    torch.testing.assert_close(batch.rois[:2, 1:], samples[0].boxes_xyxy)
    assert batch.labels.tolist() == [1, 3, 2] and batch.track_ids.tolist() == [0, 1, 0]
    assert batch.boxes_cxcywh_norm.shape == (3, 4) and batch.box_scores is None
    assert batch.image_ids == [s.image_id for s in samples] and batch.frame_idxs.tolist() == [0, 20, 39]
    empty = collate_clips([ds[1]], alpha=2)
    assert empty.rois.shape == (0, 5) and empty.labels.shape == (0,) and empty.boxes_cxcywh_norm.shape == (0, 4)
    with pytest.raises(ValueError, match="different shapes"):
        big = dataclasses.replace(ds[0], clip=torch.zeros(1, 8, 80, 120))
        collate_clips([ds[0], big], alpha=2)


def test_batch_quarter_turn_keeps_boxes_on_persons(shared_tiny_dataset):
    ds = build_dataset(_cfg(shared_tiny_dataset.root), "annotations/train.json", train=False)
    samples = [ds[0], ds[2]]
    batch = collate_clips(samples, alpha=2, quarter_turn=True)
    assert batch.fast.shape == (2, 1, 8, 60, 40)
    for r in batch.rois:
        b, x1, y1, x2, y2 = r.round().int().tolist()
        inside = batch.fast[b, 0, 4, y1:y2, x1:x2]
        assert inside.mean() > 0.7
    turns = ClipCollator(alpha=2, quarter_turn_prob=0.5, seed=0)
    shapes = {turns([ds[i], ds[j]]).fast.shape[-2:] for i in range(3) for j in range(3)}
    assert shapes == {(40, 60), (60, 40)}
    assert turns(samples).fast.shape == turns(samples).fast.shape  # same batch, same decision
    assert build_collate(_cfg("x"), 2, train=False).quarter_turn_prob == 0.0
    assert build_collate(_cfg("x", rotate=False), 2, train=True).quarter_turn_prob == 0.0


def test_boxes_override_replaces_annotated_boxes(shared_tiny_dataset):
    cfg = _cfg(shared_tiny_dataset.root)
    gt = build_dataset(cfg, cfg.val_ann, train=False)
    first, second = gt.keyframes[0].image_id, gt.keyframes[1].image_id
    override = {first: (np.array([[0.5, 0.5, 0.2, 0.2], [0.05, 0.5, 0.2, 0.2]]), np.array([0.9, 0.3]))}
    ds = build_dataset(cfg, cfg.val_ann, train=False, boxes_override=override)
    s = ds[0]
    assert s.labels.tolist() == [-1, -1] and s.annotation_ids.tolist() == [-1, -1]
    torch.testing.assert_close(s.box_scores, torch.tensor([0.9, 0.3]))
    torch.testing.assert_close(s.boxes_xyxy, torch.tensor([[24.0, 16, 36, 24], [0.0, 16, 9, 24]]))
    torch.testing.assert_close(s.boxes_cxcywh_norm[1], torch.tensor([0.05, 0.5, 0.2, 0.2]))  # as given
    assert ds[1].boxes_xyxy.shape == (0, 4) and ds[1].box_scores.shape == (0,)
    batch = collate_clips([ds[0], ds[1], gt[1]], alpha=2)
    torch.testing.assert_close(batch.box_scores, torch.tensor([0.9, 0.3, 1.0]))
    five = build_dataset(cfg, cfg.val_ann, train=False, boxes_override={second: [[0.5, 0.5, 0.1, 0.1, 0.7]]})
    torch.testing.assert_close(five[1].box_scores, torch.tensor([0.7]))
    with pytest.raises(DatasetError, match=r"dets\.json \[nope\].*not keyframes"):
        build_dataset(cfg, cfg.val_ann, train=False, boxes_override={"nope": np.zeros((0, 4))},
                      override_source="dets.json")
    with pytest.raises(DatasetError, match="box of zero size"):
        build_dataset(cfg, cfg.val_ann, train=False, boxes_override={first: [[0.5, 0.5, 0.0, 0.1]]})


def test_prediction_clip_equals_evaluation_item(shared_tiny_dataset):
    cfg = _cfg(shared_tiny_dataset.root)
    ds = build_dataset(cfg, cfg.val_ann, train=False)
    rec = read_recording(shared_tiny_dataset.frames_dir / "S2.h5")
    kf = ds.keyframes[1]
    pred = clip_from_recording(rec, kf.frame_idx, kf.boxes_cxcywh_norm, build_clip_builder(cfg))
    item = ds[1]
    assert torch.equal(pred.clip, item.clip) and torch.allclose(pred.boxes_xyxy, item.boxes_xyxy)
    assert pred.image_id == item.image_id


def test_scale_and_fixed_normalisation_from_config(shared_tiny_dataset):
    cfg = _cfg(shared_tiny_dataset.root, scale=2.0, normalization="fixed")
    s = build_dataset(cfg, cfg.val_ann, train=False)[0]
    assert s.clip.shape == (1, 8, 80, 120)
    assert s.clip.min() >= 0 and s.clip.max() <= 1
    torch.testing.assert_close(s.boxes_xyxy, torch.tensor([[60.0, 20.0, 82.0, 38.0]]))  # 11 x 9 px -> 22 x 18
    aug = build_dataset(cfg, cfg.val_ann, train=True)[0]
    assert aug.clip.shape == (1, 8, 80, 120) and aug.clip.min() >= 0 and aug.clip.max() <= 1
    assert _hot_fraction_inside(aug) > 0.1  # fixed range: 7 °C over 40 °C is 0.175


def test_no_cache_reads_every_time(shared_tiny_dataset):
    cfg = _cfg(shared_tiny_dataset.root, cache=False)
    ds = build_dataset(cfg, cfg.val_ann, train=False)
    ds[0], ds[1]
    assert ds.cache.reads == 2 and len(ds.cache) == 0
    cached = build_dataset(_cfg(shared_tiny_dataset.root), cfg.val_ann, train=False)
    cached[0], cached[1], cached[0]
    assert cached.cache.reads == 1
    assert torch.equal(cached[0].clip, ds[0].clip)


def test_sampling_weights_favour_rare_classes(shared_tiny_dataset):
    ds = build_dataset(_cfg(shared_tiny_dataset.root), "annotations/train.json", train=False)
    w = ds.sampling_weights()  # keyframes: {1, 3}, {}, {2}; each class once
    assert w.shape == (3,) and np.allclose(w, 1.0)
    kf = ds.keyframes
    kf[2].labels[:] = 1  # now class 1 twice: keyframe 2 is common
    w = ds.sampling_weights()
    assert w[0] == 1.0 and w[2] == 0.5 and w[1] == 0.5


def test_dataset_constructor_takes_explicit_arguments(shared_tiny_dataset):
    from thermal_action.data.annotations import load_annotations

    anns = load_annotations(shared_tiny_dataset.val)
    ds = ThermalClipDataset(anns.keyframes, shared_tiny_dataset.frames_dir, ClipBuilder(8, 1, "fixed"))
    assert ds[0].clip.shape == (1, 8, 40, 60)
    ds.preload()
    assert len(ds.cache) == 1


def test_real_sample_dataset(shared_sample):
    cfg = DataConfig(root=str(shared_sample))
    train = build_dataset(cfg, cfg.train_ann, train=True)
    val = build_dataset(cfg, cfg.val_ann, train=False)
    assert len(train) + len(val) == 46
    batch = build_collate(cfg, alpha=4, train=False)([val[i] for i in range(4)])
    assert batch.fast.shape == (4, 1, 32, 40, 60) and batch.slow.shape == (4, 1, 8, 40, 60)
    assert torch.isfinite(batch.fast).all() and batch.fast.abs().max() < 5  # dropped packets repaired
    for s in (train[0], val[0]):
        assert _hot_fraction_inside(s) > 0.2  # the boxes hold the warm persons


# --- the room of each keyframe ------------------------------------------------------------

def _dataset_with_rooms(tiny_dataset, tmp_path):
    """train.json with the furniture of S1 frame 0 (a bed under the first person) and a rooms file
    with a couch for S1 (by sensor id) and a chair for S2 (by MAC address, from a time on)."""
    import json

    from thermal_action.data.rooms import RoomLayout, RoomMap, LayoutTimeline, Zone, write_rooms

    data = json.loads(tiny_dataset.train.read_text())
    first = data["images"][0]["id"]
    data["context_objects"] = [{"image_id": first, "bbox": [0.25, 0.35, 0.3, 0.4], "category": "furniture",
                                "subcategory": "bed"},
                               {"image_id": first, "bbox": [0.8, 0.8, 0.1, 0.1], "category": "object",
                                "subcategory": "laptop"}]
    tiny_dataset.train.write_text(json.dumps(data))
    t_mid = int(tiny_dataset.timestamps["S2"][12])
    rooms = RoomMap({
        "S1": LayoutTimeline([RoomLayout((Zone.from_box("couch", (0.5, 0.4, 0.9, 0.9)),))]),
        "02:00:1A:62:51:67": LayoutTimeline([RoomLayout((Zone.from_box("chair", (0.4, 0.2, 0.7, 0.5)),),
                                                        valid_from_ms=t_mid)]),
    })
    write_rooms(rooms, tmp_path / "rooms.json")
    return tmp_path / "rooms.json"


def test_a_keyframes_own_furniture_wins_then_the_rooms_file_then_none(tiny_dataset, tmp_path):
    rooms = _dataset_with_rooms(tiny_dataset, tmp_path)
    train = build_dataset(_cfg(tiny_dataset.root, rooms=str(rooms)), "annotations/train.json", train=False)
    assert [lay.source for lay in train.layouts] == ["annotations", "rooms file", "rooms file"]
    assert train.room_sources() == {"annotations": 1, "rooms file": 2}
    s = train[0]
    assert s.room_source == "annotations" and s.zone_masks.shape == (3, 40, 60)
    assert s.zone_masks[0].sum() > 0 and s.zone_masks[1:].sum() == 0  # the bed only (the laptop is no zone)
    assert s.zone_features.shape == (2, 7) and s.zone_features[0, 1] > 0.5  # the first person on the bed
    assert train[1].room_source == "rooms file" and train[1].zone_masks[1].sum() > 0  # the couch
    # S2 is found by its MAC address (either case); its chair holds from frame 12 on: the first
    # layout of a timeline also holds before its start (the room before any recorded change).
    val = build_dataset(_cfg(tiny_dataset.root, rooms=str(rooms)), "annotations/val.json", train=False)
    assert [lay.source for lay in val.layouts] == ["rooms file", "rooms file"]
    assert val[1].zone_masks[2].sum() > 0
    # Without the rooms file: the annotated furniture, else no room.
    bare = build_dataset(_cfg(tiny_dataset.root), "annotations/train.json", train=False)
    assert [lay.source for lay in bare.layouts] == ["annotations", "none", "none"]
    assert bare[2].zone_masks.sum() == 0 and bare[2].zone_features[:, 0].sum() == 0
    # A relative rooms path is relative to data.root, like the annotation files.
    (tiny_dataset.root / "rooms.json").write_text(rooms.read_text())
    rel = build_dataset(_cfg(tiny_dataset.root, rooms="rooms.json"), "annotations/train.json", train=False)
    assert rel.room_sources() == {"annotations": 1, "rooms file": 2}


def test_a_broken_rooms_file_is_an_error_naming_it(tiny_dataset, tmp_path):
    from thermal_action.errors import RoomsError

    bad = tmp_path / "rooms.json"
    bad.write_text('{"sensors": {"S1": {"zones": [{"kind": "sofa", "box": [0, 0, 1, 1]}]}}}')
    with pytest.raises(RoomsError, match="rooms.json.*S1.*unknown zone kind 'sofa'"):
        build_dataset(_cfg(tiny_dataset.root, rooms=str(bad)), "annotations/train.json", train=False)


def test_augmented_items_and_batch_turns_move_the_masks_with_the_frames(tiny_dataset, tmp_path):
    rooms = _dataset_with_rooms(tiny_dataset, tmp_path)
    ds = build_dataset(_cfg(tiny_dataset.root, rooms=str(rooms)), "annotations/train.json", train=True, seed=1)
    plain = build_dataset(_cfg(tiny_dataset.root, rooms=str(rooms)), "annotations/train.json", train=False)
    for epoch in range(4):
        ds.set_epoch(epoch)
        s, p = ds[0], plain[0]
        params = ds.augmenter.sample(ds._rng(0), 2, 40, 60)
        want = p.zone_masks
        if params.hflip:
            want = want.flip(-1)
        if params.vflip:
            want = want.flip(-2)
        want = torch.rot90(want, params.quarter_turns, dims=(-2, -1))
        torch.testing.assert_close(s.zone_masks, want, rtol=0, atol=0)
        # The features do not turn: they are those of the (jittered) boxes on the native frame.
        assert s.zone_features.shape == (2, 7) and s.zone_features[0, 1] > 0.5
    samples = [plain[0], plain[1], plain[2]]
    turned = collate_clips(samples, alpha=8, quarter_turn=True)
    flat = collate_clips(samples, alpha=8)
    assert turned.zone_masks.shape == (3, 3, 60, 40) and flat.zone_masks.shape == (3, 3, 40, 60)
    torch.testing.assert_close(turned.zone_masks, torch.rot90(flat.zone_masks, 1, dims=(-2, -1)), rtol=0, atol=0)
    torch.testing.assert_close(turned.zone_features, flat.zone_features, rtol=0, atol=0)
    assert turned.zone_features.shape == (3, 7) and turned.room_sources == ["annotations", "rooms file", "rooms file"]
    # The bed mask still lies under the first person's box after the turn.
    _, x1, y1, x2, y2 = turned.rois[0].round().int().tolist()
    assert turned.zone_masks[0, 0, y1:y2, x1:x2].mean() > 0.5


def test_room_dropout_items_say_they_had_no_room(tiny_dataset, tmp_path):
    rooms = _dataset_with_rooms(tiny_dataset, tmp_path)
    ds = build_dataset(_cfg(tiny_dataset.root, rooms=str(rooms), room_dropout=0.5), "annotations/train.json",
                       train=True, seed=2)
    seen = set()
    for epoch in range(12):
        ds.set_epoch(epoch)
        s = ds[0]
        seen.add(s.room_source)
        assert (s.room_source == "none") == (s.zone_masks.abs().sum() == 0) == bool(s.zone_features[:, 0].sum() == 0)
    assert seen == {"none", "annotations"}
    # Evaluation never drops the room.
    val = build_dataset(_cfg(tiny_dataset.root, rooms=str(rooms), room_dropout=0.5), "annotations/train.json",
                        train=False)
    assert val[0].room_source == "annotations"
