"""The Lightning data module: training and validation loaders over keyframe clips.

Distributed training needs nothing special here: Lightning puts a
``DistributedSampler`` on each loader (a custom sampler such as the class-balanced
:class:`EpochSampler` is wrapped in Lightning's
``DistributedSamplerWrapper``, which gives each rank its own part of the drawn indices;
the draw is seeded identically on every rank so the parts do not overlap).
"""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

log = logging.getLogger(__name__)


def epoch_seed(seed: int, *keys: int) -> int:
    """One 63-bit seed per (run seed, keys...), e.g. (seed, epoch) or (seed, rank, epoch, batch)."""
    entropy = [int(seed) & 0xFFFFFFFF, *(int(k) for k in keys)]
    return int(np.random.SeedSequence(entropy).generate_state(2, np.uint64)[0] >> 1)


class EpochSampler(Sampler[int]):
    """Shuffles (or draws with replacement by ``weights``) ``dataset`` from a seed of
    (seed, the dataset's epoch).

    Each epoch's order depends only on the run seed and the epoch (which
    :class:`SetDatasetEpoch` gives the dataset), not on how many epochs this process has
    run, so a run resumed from ``last.ckpt`` sees exactly the batches the uninterrupted
    run would have. Under DDP Lightning wraps it and splits each epoch's draw over ranks.
    """

    def __init__(self, dataset: Dataset, seed: int, weights: np.ndarray | None = None):
        self.dataset = dataset
        self.num_samples = len(dataset)  # type: ignore[arg-type]
        self.seed = int(seed)
        self.weights = None if weights is None else torch.as_tensor(weights, dtype=torch.float64)

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self):
        epoch = int(getattr(self.dataset, "epoch", 0))
        g = torch.Generator().manual_seed(epoch_seed(self.seed, epoch))
        if self.weights is None:
            order = torch.randperm(self.num_samples, generator=g)
        else:
            order = torch.multinomial(self.weights, self.num_samples, replacement=True, generator=g)
        return iter(order.tolist())


class MixedEpochSampler(Sampler[int]):
    """The epochs of a :class:`~thermal_action.data.dataset.MixedClipDataset`: every primary
    clip once and ``extra_per_epoch`` extra clips, shuffled together, from a seed of
    (seed, the dataset's epoch).

    The extra clips are drawn without replacement (a new permutation each time the extra
    set runs out), so over a few epochs every extra clip is used about equally often.
    """

    def __init__(self, dataset, seed: int):
        self.dataset = dataset
        self.num_primary = len(dataset.primary)
        self.num_extra = len(dataset.extra)
        self.extra_per_epoch = dataset.extra_per_epoch
        self.seed = int(seed)

    def __len__(self) -> int:
        return self.num_primary + self.extra_per_epoch

    def __iter__(self):
        epoch = int(getattr(self.dataset, "epoch", 0))
        g = torch.Generator().manual_seed(epoch_seed(self.seed, epoch))
        m = self.extra_per_epoch
        rounds = -(-m // self.num_extra) if m else 0
        extra = [torch.randperm(self.num_extra, generator=g) for _ in range(rounds)]
        extra_idx = torch.cat(extra)[:m] + self.num_primary if extra else torch.zeros(0, dtype=torch.int64)
        order = torch.cat([torch.arange(self.num_primary), extra_idx])
        return iter(order[torch.randperm(len(order), generator=g)].tolist())


class SetDatasetEpoch(L.Callback):
    """Tells the training dataset the epoch, which seeds its augmentation, and reseeds
    torch's global generator (dropout) from (seed, rank, epoch, batch) before every
    training batch.

    Lightning sets the epoch of a loader's sampler but not of its dataset; without
    this, every epoch would see the same augmentation of each clip. Reseeding per batch
    makes a run resumed from ``last.ckpt`` repeat the uninterrupted one exactly (with
    ``trainer.deterministic``), whatever else drew from the global generator in between.
    """

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        dm = trainer.datamodule
        dataset = getattr(dm, "train_dataset", None) if dm is not None else None
        if dataset is not None and hasattr(dataset, "set_epoch"):
            dataset.set_epoch(trainer.current_epoch)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        dm = trainer.datamodule
        seed = getattr(dm, "seed", 0) if dm is not None else 0
        torch.manual_seed(epoch_seed(seed, trainer.global_rank, trainer.current_epoch, batch_idx))


class ThermalDataModule(L.LightningDataModule):
    """Training and validation loaders of keyframe clips.

    Args:
        train_dataset: augmented training clips (``ThermalClipDataset``).
        val_dataset: validation clips, or None.
        train_collate, val_collate: ``collate_fn`` turning samples into a ``Batch``.
        batch_size: clips per batch (per device).
        num_workers: DataLoader worker processes (0 loads in the training process).
        class_balanced: sample training clips with :meth:`sampling_weights` of the
            dataset (with replacement) instead of shuffling.
        seed: seeds the shuffling / weighted draw.
    """

    def __init__(
        self,
        train_dataset: Dataset,
        val_dataset: Dataset | None,
        train_collate,
        val_collate,
        batch_size: int = 8,
        num_workers: int = 0,
        class_balanced: bool = False,
        seed: int = 0,
    ):
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"data.batch_size must be >= 1, got {batch_size}")
        if len(train_dataset) == 0:
            raise ValueError("the training set has no keyframes")
        self.train_dataset = train_dataset
        self.val_dataset = val_dataset
        self.train_collate = train_collate
        self.val_collate = val_collate
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.class_balanced = class_balanced
        self.seed = seed

    def _loader_kwargs(self) -> dict:
        kwargs: dict = dict(batch_size=self.batch_size, num_workers=self.num_workers, pin_memory=False)
        if self.num_workers > 0:
            # Workers keep their decoded-recording cache across epochs.
            kwargs.update(persistent_workers=True, prefetch_factor=2)
        return kwargs

    def train_dataloader(self) -> DataLoader:
        if hasattr(self.train_dataset, "extra_per_epoch"):  # a MixedClipDataset
            sampler = MixedEpochSampler(self.train_dataset, self.seed)
            return DataLoader(self.train_dataset, sampler=sampler, drop_last=len(sampler) > self.batch_size,
                              collate_fn=self.train_collate, **self._loader_kwargs())
        if self.class_balanced:
            weights = np.asarray(self.train_dataset.sampling_weights(), dtype=np.float64)
            sampler = EpochSampler(self.train_dataset, self.seed, weights)
            return DataLoader(self.train_dataset, sampler=sampler, drop_last=True,
                              collate_fn=self.train_collate, **self._loader_kwargs())
        # drop_last: a last batch of one clip gives BatchNorm a single sample per channel
        # (at 1x1 feature maps it fails); a few hundred clips lose < batch_size per epoch.
        drop_last = len(self.train_dataset) > self.batch_size
        return DataLoader(self.train_dataset, sampler=EpochSampler(self.train_dataset, self.seed),
                          drop_last=drop_last, collate_fn=self.train_collate, **self._loader_kwargs())

    def val_dataloader(self) -> DataLoader | list:
        if self.val_dataset is None:
            return []
        return DataLoader(self.val_dataset, shuffle=False, collate_fn=self.val_collate, **self._loader_kwargs())


def build_datasets(cfg, synthetic_dir: str | Path | None = None) -> tuple[Dataset, Dataset | None]:
    """Training and validation datasets of a :class:`~thermal_action.config.Config`.

    ``synthetic_dir``: where the synthetic rooms of ``data.synthetic_recordings > 0`` are
    generated (or found, :func:`~thermal_action.training.synthetic.ensure_synthetic_rooms`);
    ``train`` passes ``<run dir>/synthetic``. Required when that setting is on.

    Raises:
        DatasetError: a problem with the dataset files, naming the file and record.
        ValueError / FileNotFoundError: no usable ``data.root``.
    """
    from thermal_action.data.dataset import build_dataset

    d = cfg.data
    if not d.root:
        raise ValueError("data.root is not set: pass data.root=/path/to/dataset (the folder with frames/ and annotations/)")
    if not Path(d.root).is_dir():
        raise FileNotFoundError(f"data.root {d.root!r} is not a directory")
    train_ds = build_dataset(d, d.train_ann, train=True, seed=cfg.seed)
    val_ds = build_dataset(d, d.val_ann, train=False, seed=cfg.seed) if d.val_ann else None
    if val_ds is not None and list(val_ds.class_names) != list(train_ds.class_names):
        raise ValueError(f"{d.val_ann}: its classes differ from those of {d.train_ann}")
    for ds, ann, why in ((train_ds, d.train_ann, "nothing to train on"),
                         (val_ds, d.val_ann, "validation frame-mAP, which picks best.ckpt, is undefined")):
        if ds is not None:
            require_labelled_boxes(ds, annotation_path(d, ann), why)
    train_ds = add_unlabelled_keyframes(cfg, train_ds)
    if d.synthetic_recordings > 0 and d.extra_train_root:
        raise ValueError("data.synthetic_recordings and data.extra_train_root both name a set to mix into training: "
                         "set one of them (data.synthetic_recordings=0 to mix in your own extra set)")
    if d.synthetic_recordings > 0 and d.extra_train_share > 0:
        if synthetic_dir is None:
            raise ValueError("data.synthetic_recordings > 0 needs a folder to generate the synthetic rooms into "
                             "(train uses <run dir>/synthetic; build_datasets(cfg, synthetic_dir=...))")
        from thermal_action.training.synthetic import ensure_synthetic_rooms

        # The user's files are read first: a broken one is an error before anything is written.
        own_sizes = train_ds.check_recordings() | (val_ds.check_recordings() if val_ds is not None else set())
        root = ensure_synthetic_rooms(d, synthetic_dir)
        train_ds = _mix_extra(cfg, train_ds, str(root), "annotations/train.json", synthetic=True)
        synth_sizes = train_ds.extra.check_recordings()
        if own_sizes != synth_sizes:
            raise ValueError(f"data.synthetic_recordings: the synthetic rooms are {_sizes(synth_sizes)} pixels, the "
                             f"recordings of {d.train_ann} / {d.val_ann} {_sizes(own_sizes)}; clips of different "
                             "sizes cannot share a batch: set data.synthetic_recordings=0")
    elif d.extra_train_root and d.extra_train_share > 0:
        train_ds = _mix_extra(cfg, train_ds, d.extra_train_root, d.extra_train_ann)
    for name, ds in (("training", train_ds), ("validation", val_ds)):
        if ds is not None:
            log.info("%s keyframes by room layout source: %s", name, ds.room_sources())
    return train_ds, val_ds


def add_unlabelled_keyframes(cfg, train_ds):
    """``train_ds`` plus what its unlabelled frames give, where the config asks for it:
    labels carried along tracks (``data.carry_labels``,
    :func:`~thermal_action.data.carry.carry_labels_along_tracks`), then pseudo-labels of
    ``data.pseudo_label_checkpoint`` on the training recordings' other frames
    (:func:`~thermal_action.inference.pseudo_labels.pseudo_label_keyframes`; frames next to a
    labelled or carried keyframe are skipped). Both off: ``train_ds`` itself."""
    d = cfg.data
    extra = []
    if d.carry_labels > 0:
        from thermal_action.data.carry import carry_labels_along_tracks
        from thermal_action.data.hdf5 import read_timestamps

        carried = carry_labels_along_tracks(train_ds.keyframes, d.carry_labels, d.carry_max_gap,
                                            lambda sensor: read_timestamps(train_ds.recording_path(sensor)))
        log.info("labels carried along tracks: %d keyframes between labelled ones that agree (%d labelled people)",
                 len(carried), sum(int((k.labels >= 0).sum()) for k in carried))
        extra += carried
    if d.pseudo_label_checkpoint:
        from thermal_action.inference.pseudo_labels import pseudo_label_keyframes

        if not Path(d.pseudo_label_checkpoint).is_file():
            raise FileNotFoundError(f"data.pseudo_label_checkpoint {d.pseudo_label_checkpoint!r} is not a file")
        recordings = [train_ds.recording_path(s) for s in sorted({k.sensor_id for k in train_ds.keyframes})]
        extra += pseudo_label_keyframes(d.pseudo_label_checkpoint, recordings, train_ds.keyframes + extra,
                                        train_ds.class_names, d.pseudo_label_threshold, d.pseudo_label_step,
                                        rooms=train_ds.rooms)
    return train_ds.with_keyframes(extra) if extra else train_ds


def _sizes(sizes: set[tuple[int, int]]) -> str:
    return ", ".join(f"{h}x{w}" for h, w in sorted(sizes))


def _mix_extra(cfg, train_ds, root: str, ann: str, synthetic: bool = False):
    """``train_ds`` with ``root``'s ``ann`` mixed in
    (:class:`~thermal_action.data.dataset.MixedClipDataset`): same preprocessing and
    augmentation, read from the extra dataset's own ``frames_dir``."""
    import dataclasses

    from thermal_action.data.dataset import MixedClipDataset, build_dataset

    d = cfg.data
    key = "data.synthetic_recordings" if synthetic else "data.extra_train_root"
    if d.class_balanced_sampler:
        raise ValueError(f"data.class_balanced_sampler and {key} cannot be combined: "
                         "the mixed sampler decides which clips an epoch sees")
    if not Path(root).is_dir():
        raise FileNotFoundError(f"data.extra_train_root {root!r} is not a directory")
    # The synthetic rooms carry their furniture in their annotations, except the quarter of their
    # recordings that the generator writes without furniture boxes (SynthConfig.
    # unlabelled_furniture_share): those are read without a room, which trains the model's
    # fallback; an extra set of your own reads the same layout file as the primary one (its
    # sensors are looked up by id).
    rooms = "" if synthetic or not d.rooms else str(annotation_path(d, d.rooms))
    extra_cfg = dataclasses.replace(d, root=root, frames_dir="frames" if synthetic else d.frames_dir, rooms=rooms)
    # Its own augmentation stream: item i of both sets would otherwise draw the same flips.
    extra = build_dataset(extra_cfg, ann, train=True, seed=cfg.seed + 1)
    require_labelled_boxes(extra, annotation_path(extra_cfg, ann), "nothing to mix in")
    if list(extra.class_names) != list(train_ds.class_names):
        hint = (" (the synthetic rooms use the 14 classes of the thermal format: set data.synthetic_recordings=0 "
                "for a set with other classes)") if synthetic else ""
        raise ValueError(f"{ann} of {root}: its classes differ from those of {d.train_ann}{hint}")
    mixed = MixedClipDataset(train_ds, extra, d.extra_train_share)
    log.info("mixing %d %s training keyframes from %s: %d per epoch beside the %d of %s (share %.2f)",
             len(extra), "synthetic" if synthetic else "extra", root, mixed.extra_per_epoch, len(train_ds),
             d.train_ann, d.extra_train_share)
    return mixed


def training_overlap(train_ds, other_ds) -> dict[str, list[str]]:
    """What ``other_ds`` (a validation or evaluation set) shares with the training set
    ``train_ds``: ``{"recordings": [sensor ids], "keyframes": [image ids]}``, both empty for an
    honest split. Recordings are compared by file and keyframes by (file, frame), so two
    datasets that reuse sensor names do not overlap.

    A shared keyframe was trained on; keyframes of a shared recording share its room, its
    people and their neighbours' labels. Either makes validation frame-mAP optimistic, and
    so the fall threshold calibrated on it.
    """
    parts = [train_ds.primary, train_ds.extra] if hasattr(train_ds, "primary") else [train_ds]
    paths: dict[tuple[int, str], str] = {}

    def path(ds, sensor: str) -> str:
        key = (id(ds), sensor)
        if key not in paths:
            paths[key] = str(Path(ds.recording_path(sensor)).resolve())
        return paths[key]

    train_recs = {path(ds, k.sensor_id) for ds in parts for k in ds.keyframes}
    train_kfs = {(path(ds, k.sensor_id), k.frame_idx) for ds in parts for k in ds.keyframes}
    recordings, keyframes = set(), []
    for kf in other_ds.keyframes:
        p = path(other_ds, kf.sensor_id)
        if p in train_recs:
            recordings.add(kf.sensor_id)
            if (p, kf.frame_idx) in train_kfs:
                keyframes.append(kf.image_id)
    return {"recordings": sorted(recordings), "keyframes": sorted(keyframes)}


def describe_overlap(overlap: dict[str, list[str]], what: str) -> str | None:
    """One sentence naming what :func:`training_overlap` found (None when nothing is shared)."""
    recs, kfs = overlap["recordings"], overlap["keyframes"]
    if not recs:
        return None

    def names(items: list[str]) -> str:
        return ", ".join(items[:5]) + (f" and {len(items) - 5} more" if len(items) > 5 else "")

    shared = f"; {len(kfs)} of its keyframes are training keyframes ({names(kfs)})" if kfs else ""
    return (f"{what} shares {len(recs)} recording(s) with the training set ({names(recs)}){shared}: its "
            "frame-mAP and the fall threshold calibrated on it are optimistic; hold out whole recordings")


def log_repairs(dataset, name: str) -> dict[str, int]:
    """One INFO line for a loaded set: its recordings, frames repaired (of those realigned)
    and pixels filled, summed over the files (each file's own line is at debug level).
    Reads the recordings through the dataset's cache (already read by ``check_recordings``).

    Returns:
        ``{"recordings", "frames", "repaired_frames", "realigned_frames", "filled_pixels"}``.
    """
    parts = [dataset.primary, dataset.extra] if hasattr(dataset, "primary") else [dataset]
    recs = [ds.cache.get(ds.recording_path(s)) for ds in parts for s in sorted({k.sensor_id for k in ds.keyframes})]
    total = {"recordings": len(recs), "frames": sum(r.num_frames for r in recs),
             "repaired_frames": sum(r.repair.repaired_frames for r in recs),
             "realigned_frames": sum(r.repair.realigned_frames for r in recs),
             "filled_pixels": sum(r.repair.invalid_pixels for r in recs)}
    log.info("%s: %d recordings, %d frames; %d frames repaired (%d realigned), %d pixels filled from neighbouring "
             "frames%s", name, total["recordings"], total["frames"], total["repaired_frames"],
             total["realigned_frames"], total["filled_pixels"],
             " (per file: -v)" if total["repaired_frames"] else "")
    return total


def annotation_path(d, ann: str | Path) -> Path:
    """An annotation file of ``DataConfig`` ``d``: relative to ``d.root`` unless absolute."""
    p = Path(ann)
    return p if p.is_absolute() or not d.root else Path(d.root) / p


def require_labelled_boxes(dataset, path: str | Path, why: str) -> None:
    """A set without a single labelled box is an error naming its file (training on it
    learns nothing; scoring on it gives only undefined metrics)."""
    from thermal_action.errors import DatasetError

    if sum(class_counts(dataset)) == 0:
        raise DatasetError(path, f"no labelled box in its {len(dataset)} keyframes: {why}")


def class_counts(dataset) -> list[int]:
    """``(K,)`` labelled boxes per class in a ``ThermalClipDataset`` (in a
    ``MixedClipDataset``: the boxes an epoch shows on average, rounded)."""
    if hasattr(dataset, "expected_class_counts"):
        return np.rint(dataset.expected_class_counts()).astype(np.int64).tolist()
    counts = np.zeros(len(dataset.class_names), dtype=np.int64)
    for kf in dataset.keyframes:
        np.add.at(counts, kf.labels[kf.labels >= 0], 1)
    return counts.tolist()


def build_datamodule(cfg, alpha: int, train_dataset: Dataset, val_dataset: Dataset | None) -> ThermalDataModule:
    """The data module of a :class:`~thermal_action.config.Config` over the datasets of
    :func:`build_datasets` (the only place that reads ``cfg.data`` for the loaders).

    Args:
        cfg: the whole config (``data`` section and ``seed``).
        alpha: the model's SlowFast speed ratio (slow = every alpha-th fast frame).
        train_dataset, val_dataset: from :func:`build_datasets`.
    """
    from thermal_action.data.dataset import build_collate

    d = cfg.data
    fast_frames = d.num_frames // d.frame_stride
    if fast_frames < alpha or fast_frames % alpha:
        raise ValueError(
            f"data.num_frames / data.frame_stride = {fast_frames} fast frames must be a multiple of the "
            f"model's alpha = {alpha} (slow pathway = every alpha-th fast frame)"
        )
    return ThermalDataModule(
        train_dataset,
        val_dataset,
        train_collate=build_collate(d, alpha, train=True, seed=cfg.seed),
        val_collate=build_collate(d, alpha, train=False, seed=cfg.seed),
        batch_size=d.batch_size,
        num_workers=d.num_workers,
        class_balanced=d.class_balanced_sampler,
        seed=cfg.seed,
    )
