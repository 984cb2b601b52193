"""Loaders: batches of the right shape, class-balanced sampling, epoch-seeded augmentation."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from thermal_action.training.datamodule import (
    EpochSampler,
    SetDatasetEpoch,
    build_datamodule,
    build_datasets,
    class_counts,
)


def test_loaders_give_slowfast_batches(tiny_config):
    cfg = tiny_config()
    train_ds, val_ds = build_datasets(cfg)
    dm = build_datamodule(cfg, 8, train_ds, val_ds)
    batch = next(iter(dm.train_dataloader()))
    assert batch.fast.shape[:3] == (4, 1, 8) and batch.slow.shape[2] == 1
    assert batch.rois.shape[1] == 5 and batch.labels.shape[0] == batch.rois.shape[0]
    val = list(dm.val_dataloader())
    assert sum(b.num_clips for b in val) == len(val_ds)
    counts = class_counts(train_ds)
    assert sum(counts) == sum(k.num_boxes for k in train_ds.keyframes) and len(counts) == 14


def test_alpha_must_divide_the_fast_frames(tiny_config):
    cfg = tiny_config("data.num_frames=12")  # 6 fast frames, alpha 4
    train_ds, val_ds = build_datasets(cfg)
    with pytest.raises(ValueError, match="multiple of the model's alpha"):
        build_datamodule(cfg, 4, train_ds, val_ds)


def test_missing_root_is_a_clear_error(tiny_config, tmp_path):
    with pytest.raises(ValueError, match="data.root is not set"):
        build_datasets(tiny_config("data.root="))
    with pytest.raises(FileNotFoundError, match="not a directory"):
        build_datasets(tiny_config(f"data.root={tmp_path / 'nope'}"))


def test_class_balanced_sampler_favours_rare_clips(tiny_config):
    cfg = tiny_config("data.class_balanced_sampler=true", "data.batch_size=1")
    train_ds, val_ds = build_datasets(cfg)
    dm = build_datamodule(cfg, 8, train_ds, val_ds)
    loader = dm.train_dataloader()
    assert isinstance(loader.sampler, EpochSampler) and loader.sampler.weights is not None
    counts = np.asarray(class_counts(train_ds), dtype=float)
    rare = int(np.argmin(np.where(counts > 0, counts, np.inf)))
    common = int(np.argmax(counts))
    # Clips with the rarest class are drawn far more often than their share.
    draws = []
    for _ in range(20):
        draws.extend(list(loader.sampler))
    share_rare = np.mean([rare in train_ds.keyframes[i].labels for i in draws])
    base_rare = np.mean([rare in k.labels for k in train_ds.keyframes])
    assert share_rare > 2 * base_rare
    labels = Counter(int(l) for i in draws for l in train_ds.keyframes[i].labels)
    assert labels[common] / sum(labels.values()) < counts[common] / counts.sum()


def test_augmentation_changes_with_the_epoch(tiny_config):
    cfg = tiny_config()
    train_ds, val_ds = build_datasets(cfg)
    dm = build_datamodule(cfg, 8, train_ds, val_ds)

    class _Trainer:  # what SetDatasetEpoch reads
        datamodule = dm
        current_epoch = 0

    cb = SetDatasetEpoch()
    cb.on_train_epoch_start(_Trainer, None)
    a = train_ds[0].clip
    assert torch.equal(a, train_ds[0].clip)  # same epoch, same augmentation
    _Trainer.current_epoch = 1
    cb.on_train_epoch_start(_Trainer, None)
    assert train_ds.epoch == 1 and not torch.equal(a, train_ds[0].clip)
