"""Loaders: batches of the right shape, class-balanced sampling, epoch-seeded augmentation,
an extra (synthetic) training set mixed into the batches."""

from __future__ import annotations

import json

from collections import Counter

import numpy as np
import pytest
import torch

from thermal_action.config import replace_values
from thermal_action.data.dataset import MixedClipDataset
from thermal_action.training.datamodule import (
    EpochSampler,
    MixedEpochSampler,
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


@pytest.fixture(scope="module")
def extra_root(tmp_path_factory):
    """A second tiny synthetic dataset (other rooms), to mix into the training batches."""
    from thermal_action.data.synth.config import SynthConfig
    from thermal_action.data.synth.write import generate_dataset

    root = tmp_path_factory.mktemp("extra")
    generate_dataset(root, SynthConfig(num_recordings=2, frames_per_recording=80, seed=5, val_recordings=0))
    return root


def test_an_extra_training_set_is_mixed_into_every_epoch(tiny_config, extra_root):
    plain, _ = build_datasets(tiny_config())
    cfg = tiny_config(f"data.extra_train_root={extra_root}", "data.extra_train_share=0.25", "data.batch_size=1")
    train_ds, val_ds = build_datasets(cfg)
    assert isinstance(train_ds, MixedClipDataset) and len(train_ds.primary) == len(plain)
    assert [k.image_id for k in val_ds.keyframes] == [k.image_id for k in build_datasets(tiny_config())[1].keyframes]
    n, m = len(train_ds.primary), train_ds.extra_per_epoch
    assert m == round(n / 3) and 0 < m < len(train_ds.extra)  # 25% of n + m
    loader = build_datamodule(cfg, 8, train_ds, val_ds).train_dataloader()
    sampler = loader.sampler
    assert isinstance(sampler, MixedEpochSampler) and len(sampler) == n + m
    order = list(sampler)
    assert sorted(i for i in order if i < n) == list(range(n))  # every primary clip once
    extra = [i for i in order if i >= n]
    assert len(extra) == m == len(set(extra)) and max(extra) < len(train_ds)
    assert order == list(sampler)  # the epoch decides the draw ...
    train_ds.set_epoch(1)
    assert order != list(sampler) and train_ds.extra.epoch == 1  # ... and it changes with it
    sample = train_ds[extra[0]]
    assert sample.image_id == train_ds.extra.keyframes[extra[0] - n].image_id
    assert sample.clip.shape == train_ds.primary[0].clip.shape
    # Class weights see the boxes an epoch shows: each extra box m / len(extra) times.
    counts = class_counts(train_ds)
    expected = sum(k.num_boxes for k in plain.keyframes) + m / len(train_ds.extra) * sum(
        k.num_boxes for k in train_ds.extra.keyframes)
    assert abs(sum(counts) - expected) <= len(counts) / 2


def test_the_share_sets_the_extra_clips_per_epoch(tiny_config, extra_root):
    train_ds, _ = build_datasets(tiny_config(f"data.extra_train_root={extra_root}", "data.extra_train_share=0.75"))
    n = len(train_ds.primary)
    assert train_ds.extra_per_epoch == 3 * n > len(train_ds.extra)
    sampler = MixedEpochSampler(train_ds, seed=0)
    counts = Counter(i for i in sampler if i >= n)
    # More draws than extra clips: each is drawn once per pass, so counts differ by at most one.
    assert sum(counts.values()) == 3 * n and max(counts.values()) - min(counts.values()) <= 1
    assert len(counts) == len(train_ds.extra)
    off, _ = build_datasets(tiny_config(f"data.extra_train_root={extra_root}", "data.extra_train_share=0"))
    assert not isinstance(off, MixedClipDataset)


def test_extra_training_set_errors(tiny_config, extra_root, tmp_path):
    with pytest.raises(FileNotFoundError, match="extra_train_root"):
        build_datasets(tiny_config(f"data.extra_train_root={tmp_path / 'nope'}"))
    with pytest.raises(ValueError, match="cannot be combined"):
        build_datasets(tiny_config(f"data.extra_train_root={extra_root}", "data.class_balanced_sampler=true"))


def test_synthetic_rooms_are_generated_once_and_mixed_in(tiny_config, tmp_path):
    from thermal_action.training.synthetic import STAMP

    cfg = tiny_config("data.synthetic_recordings=2", "data.synthetic_frames=60", "data.synthetic_seed=3",
                      "data.extra_train_share=0.5")
    folder = tmp_path / "run" / "synthetic"
    train_ds, val_ds = build_datasets(cfg, synthetic_dir=folder)
    plain, plain_val = build_datasets(tiny_config())
    assert isinstance(train_ds, MixedClipDataset) and len(train_ds.primary) == len(plain)
    assert [k.image_id for k in val_ds.keyframes] == [k.image_id for k in plain_val.keyframes]  # validation stays real
    assert sorted(p.name for p in (folder / "frames").glob("*.h5")) == ["SYN00_R1.h5", "SYN00_R2.h5"]
    assert {k.sensor_id for k in train_ds.extra.keyframes} == {"SYN00_R1", "SYN00_R2"}
    assert train_ds.extra_per_epoch == len(plain)  # share 0.5: as many synthetic clips as real ones
    assert train_ds.extra[0].clip.shape == train_ds.primary[0].clip.shape
    # A second run (or a resume, or another rank) reuses the folder; other settings regenerate it.
    stamp = (folder / STAMP).stat().st_mtime_ns
    build_datasets(cfg, synthetic_dir=folder)
    assert (folder / STAMP).stat().st_mtime_ns == stamp
    train3, _ = build_datasets(replace_values(cfg, {"data.synthetic_recordings": 3}), synthetic_dir=folder)
    assert len(list((folder / "frames").glob("*.h5"))) == 3 and len(train3.extra) > len(train_ds.extra)
    assert not list(folder.parent.glob(".synthetic.*"))  # no temporary folder left behind


def test_synthetic_rooms_errors(tiny_config, extra_root, tmp_path):
    cfg = tiny_config("data.synthetic_recordings=2", "data.synthetic_frames=60")
    with pytest.raises(ValueError, match="needs a folder"):
        build_datasets(cfg)
    with pytest.raises(ValueError, match="both name a set"):
        build_datasets(tiny_config("data.synthetic_recordings=2", f"data.extra_train_root={extra_root}"),
                       synthetic_dir=tmp_path / "s")
    with pytest.raises(ValueError, match="synthetic_recordings.*cannot be combined"):
        build_datasets(tiny_config("data.synthetic_recordings=2", "data.class_balanced_sampler=true"),
                       synthetic_dir=tmp_path / "s")
    off, _ = build_datasets(tiny_config("data.synthetic_recordings=2", "data.extra_train_share=0"),
                            synthetic_dir=tmp_path / "off")
    assert not isinstance(off, MixedClipDataset) and not (tmp_path / "off").exists()


def test_synthetic_rooms_must_match_the_recordings_frame_size(tiny_config, tmp_path):
    """A user's sensor of another size: a clear error before training, not a collate crash."""
    import h5py

    from thermal_action.data.synth.config import SynthConfig
    from thermal_action.data.synth.write import generate_dataset

    root = tmp_path / "small"
    generate_dataset(root, SynthConfig(num_recordings=2, frames_per_recording=80, seed=1, val_recordings=1))
    for f in (root / "frames").glob("*.h5"):  # the same recordings cropped to a 32x48 sensor
        with h5py.File(f, "r+") as h:
            data = h["frames"][:, :32, :48]
            del h["frames"]
            h["frames"] = data
            h.attrs["frame_height"], h.attrs["frame_width"] = 32, 48
    for split in ("train", "val"):
        path = root / "annotations" / f"{split}.json"
        ann = json.loads(path.read_text())
        for image in ann["images"]:
            image["height"], image["width"] = 32, 48
        path.write_text(json.dumps(ann))
    cfg = tiny_config(f"data.root={root}", "data.synthetic_recordings=1", "data.synthetic_frames=60",
                      "data.max_box_overhang=100")
    with pytest.raises(ValueError, match=r"synthetic rooms are 40x60 pixels.*32x48"):
        build_datasets(cfg, synthetic_dir=tmp_path / "s")


def _generate_in_child(args):
    from thermal_action.config import DataConfig
    from thermal_action.training.synthetic import ensure_synthetic_rooms

    folder, seed = args
    d = DataConfig(synthetic_recordings=2, synthetic_frames=40, synthetic_seed=seed)
    return str(ensure_synthetic_rooms(d, folder))


def test_two_processes_generating_the_same_rooms_end_with_one_folder(tmp_path):
    """What two DDP ranks starting at once do: both get the same, complete folder."""
    import multiprocessing as mp

    from thermal_action.training.synthetic import STAMP

    folder = tmp_path / "run" / "synthetic"
    with mp.get_context("spawn").Pool(2) as pool:
        got = pool.map(_generate_in_child, [(folder, 3), (folder, 3)])
    assert got == [str(folder)] * 2 and (folder / STAMP).is_file()
    assert sorted(p.name for p in (folder / "frames").glob("*.h5")) == ["SYN00_R1.h5", "SYN00_R2.h5"]
    assert not list(folder.parent.glob(".synthetic.*"))


def test_a_dataset_load_says_its_repairs_in_one_info_line(tiny_config, caplog):
    import logging

    from thermal_action.training.datamodule import log_repairs

    train_ds, _ = build_datasets(tiny_config())
    with caplog.at_level(logging.INFO):
        train_ds.check_recordings()  # reads every recording, as train and evaluate do
        total = log_repairs(train_ds, "training set annotations/train.json")
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert total["recordings"] == 2 and total["repaired_frames"] > 0 and total["filled_pixels"] > 0
    assert lines == [f"training set annotations/train.json: 2 recordings, {total['frames']} frames; "
                     f"{total['repaired_frames']} frames repaired ({total['realigned_frames']} realigned), "
                     f"{total['filled_pixels']} pixels filled from neighbouring frames (per file: -v)"]
    # Per file at debug level, for -v.
    train_ds, _ = build_datasets(tiny_config())
    with caplog.at_level(logging.DEBUG, logger="thermal_action.data.hdf5"):
        train_ds.check_recordings()
    assert sum("repaired " in r.getMessage() and r.levelno == logging.DEBUG for r in caplog.records) == 2
