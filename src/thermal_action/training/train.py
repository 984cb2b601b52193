"""``train(cfg, out_dir)``: one training run on Lightning, and the run directory it writes.

Run directory::

    RUN_DIR/
      config.yaml              the resolved config (defaults + YAML + overrides)
      checkpoints/best.ckpt    best validation frame-mAP so far (trainer.select_checkpoint=last:
                               the latest validated epoch, so the final one at the end)
      checkpoints/last.ckpt    end of the latest validated epoch (--resume starts here)
      val_summary.jsonl        one JSON line per validation epoch
      run_info.jsonl           one JSON line per start (fresh or --resume): torch, threads, the
                               resolved trainer.precision and why (CPU name, flags, probe timings),
                               training keyframes by label origin (annotations, carried, pseudo)
      tensorboard/version_N/   TensorBoard event files (N grows with each resume)
      csv/version_N/metrics.csv  the same scalars as CSV (+ hparams.yaml)
      synthetic/               only with data.synthetic_recordings > 0: the generated rooms
                               mixed into training (training/synthetic.py)

Every checkpoint loads with ``torch.load(..., weights_only=True)`` and carries the
resolved config and class names (see :mod:`thermal_action.models.checkpoint`).

Multi-GPU / multi-node runs are Lightning DDP: ``trainer.devices`` and
``trainer.num_nodes`` say how many; started with plain ``thermal-action train``
Lightning launches one process per device, and under ``torchrun`` or SLURM (``srun``)
it reads the ranks from the environment instead.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.pytorch.callbacks import Checkpoint, ModelCheckpoint, TQDMProgressBar

from thermal_action.config import Config, config_to_dict, save_config
from thermal_action.errors import CheckpointDamagedError
from thermal_action.jsonable import to_jsonable
from thermal_action.models.ops.cpu_workarounds import reuse_freed_memory
from thermal_action.training.datamodule import (
    SetDatasetEpoch,
    annotation_path,
    build_datamodule,
    build_datasets,
    class_counts,
    describe_overlap,
    log_repairs,
    training_overlap,
)
from thermal_action.training.losses import ActionLoss, class_weights_from_counts, group_target_matrix
from thermal_action.training.precision import PrecisionChoice, resolve_precision
from thermal_action.training.schedule import OptimizerSettings, ScheduleSettings
from thermal_action.training.system import ActionDetectionSystem, RunRecord, ValidationSettings

log = logging.getLogger(__name__)

MONITOR = "val/mAP"
#: Environment variable that carries the run directory to the processes DDP launches.
RUN_DIR_ENV = "THERMAL_ACTION_RUN_DIR"
#: One JSON line per start of ``train`` (fresh or resumed): the machine and the resolved precision.
RUN_INFO = "run_info.jsonl"
#: Where ``data.synthetic_recordings`` generates its rooms, in the run directory.
SYNTHETIC_DIR = "synthetic"


def _distributed_launch() -> bool:
    """Whether torchrun or srun started this process as one of several."""
    return os.environ.get("WORLD_SIZE", "1") != "1" or int(os.environ.get("SLURM_NTASKS", "1") or 1) > 1


def choose_run_dir(out_dir: str | Path | None = None, name: str = "run", resume: bool = False) -> Path:
    """The run directory, the same in every process of a DDP run.

    ``out_dir`` if given, else the one a parent process chose (:data:`RUN_DIR_ENV`), else
    ``runs/<name>-<YYYYmmdd-HHMMSS>``. The choice is written to :data:`RUN_DIR_ENV`: DDP
    started by Lightning re-runs the command once per extra device, and those processes
    must write into the same directory. Under torchrun / srun (several processes started
    at once, each choosing alone) and with ``resume``, ``out_dir`` is required.

    Raises:
        ValueError: no ``out_dir`` where one is required.
    """
    out = out_dir or os.environ.get(RUN_DIR_ENV)
    if out is None:
        if resume:
            raise ValueError("resuming needs the run directory (--out RUN_DIR: the run to continue)")
        if _distributed_launch():
            raise ValueError("under torchrun / srun every process must be given the same run directory (--out)")
        out = Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    os.environ[RUN_DIR_ENV] = str(out)
    return Path(out)


@dataclass
class TrainResult:
    """Where a run's outputs are, and how it went.

    Attributes:
        run_dir: the run directory.
        config_path: ``config.yaml``.
        best_checkpoint: ``checkpoints/best.ckpt`` (None if no validation ran): the epoch
            of best validation frame-mAP, or the final one with ``trainer.select_checkpoint=last``.
        last_checkpoint: ``checkpoints/last.ckpt`` (None if no validation ran).
        best_metric: validation frame-mAP of ``best_checkpoint`` (None if never defined).
        monitor: the metric that picks the best checkpoint (``val/mAP``, or ``step`` with
            ``trainer.select_checkpoint=last``).
        val_summary: ``val_summary.jsonl``.
        epochs: epochs completed.
        global_step: optimiser steps taken.
        seconds: wall time of this call's ``fit``.
        train_clips_per_s: training throughput of the last epoch (clips/s, all devices).
        global_rank: this process's rank (0 without DDP); only rank 0 writes files.
        precision: the resolved ``trainer.precision`` Lightning trained in (``run_info.jsonl``
            says why).
    """

    run_dir: Path
    config_path: Path
    best_checkpoint: Path | None
    last_checkpoint: Path | None
    best_metric: float | None
    monitor: str
    val_summary: Path
    epochs: int
    global_step: int
    seconds: float
    train_clips_per_s: float | None
    global_rank: int = 0
    precision: str | None = None

    def summary(self) -> str:
        """What a user needs at the end of a run: where things are, the checkpoint's validation
        frame-mAP, and the fall alarm it calibrated (threshold, precision and recall on how many
        validation falls)."""
        best = "-" if self.best_metric is None else f"{self.best_metric:.4f}"
        chosen = "final epoch" if self.monitor == "step" else "best epoch"
        lines = [f"run directory:   {self.run_dir}",
                 f"best checkpoint: {self.best_checkpoint}  ({chosen}, validation frame-mAP {best})"]
        row = _chosen_val_row(self.val_summary, self.monitor == "step")
        if row is not None and row.get("fall_threshold") is not None:
            def fmt(v: Any) -> str:
                return "-" if v is None else f"{v:.3f}"
            falls = row.get("fall_boxes")
            lines.append(f"fall alarm:      threshold {row['fall_threshold']:.3f}: precision "
                         f"{fmt(row.get('fall_precision'))}, recall {fmt(row.get('fall_recall'))} on "
                         f"{'?' if falls is None else falls} validation fall boxes")
        shared = (row or {}).get("validation_overlaps_training") or {}
        if shared.get("recordings"):
            lines.append(f"warning:         validation shares {len(shared['recordings'])} recording(s) with training "
                         f"({', '.join(shared['recordings'][:5])}), {len(shared.get('keyframes') or [])} keyframe(s): "
                         "the frame-mAP and fall threshold above are optimistic")
        lines += [f"last checkpoint: {self.last_checkpoint}",
                  f"validation log:  {self.val_summary}",
                  f"TensorBoard:     tensorboard --logdir {self.run_dir / 'tensorboard'}"]
        return "\n".join(lines)


def _chosen_val_row(summary: Path, last: bool) -> dict[str, Any] | None:
    """The ``val_summary.jsonl`` row of the chosen checkpoint: the last, or the best frame-mAP."""
    try:
        rows = [json.loads(line) for line in summary.read_text().splitlines() if line.strip()]
    except OSError:
        return None
    if not rows:
        return None
    return rows[-1] if last else max(rows, key=lambda r: -1.0 if r.get("mAP") is None else r["mAP"])


def _final_val_map(summary: Path) -> float | None:
    """frame-mAP of the last line of ``val_summary.jsonl`` (None: no validation ran)."""
    try:
        lines = summary.read_text().splitlines()
    except OSError:
        return None
    return json.loads(lines[-1]).get("mAP") if lines else None


class ValidationSummary(L.Callback):
    """Appends one JSON line per validation epoch to ``val_summary.jsonl`` and logs it.

    Fields: ``epoch``, ``step``, ``train_loss`` (mean over the epoch), ``val_loss``,
    ``mAP``, ``top1``, ``macro_f1``, ``fall_precision``, ``fall_recall``, ``fall_ap``,
    ``fall_threshold``, ``fall_boxes`` (the validation fall boxes those rest on), ``lr``,
    ``clips_per_s`` (training throughput of the epoch), ``time`` (seconds since the start
    of this fit), ``validation_overlaps_training`` (recordings and keyframes validation
    shares with training: non-empty lists make every number optimistic). Undefined
    numbers are ``null``.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._start = time.perf_counter()

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        m = trainer.callback_metrics
        metrics = getattr(pl_module, "last_val_metrics", None) or {}
        lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else None
        row = {
            "epoch": trainer.current_epoch,
            "step": trainer.global_step,
            "train_loss": to_jsonable(pl_module.epoch_train_loss()),
            "val_loss": to_jsonable(m.get("val/loss")),
            "mAP": metrics.get("frame_map"),
            "top1": metrics.get("top1_accuracy"),
            "macro_f1": metrics.get("macro_f1"),
            "fall_precision": metrics.get("fall_precision"),
            "fall_recall": metrics.get("fall_recall"),
            "fall_ap": metrics.get("fall_ap"),
            "fall_threshold": (metrics.get("fall") or {}).get("threshold"),
            "fall_boxes": (metrics.get("fall") or {}).get("support"),
            "validation_overlaps_training": pl_module.run.validation_overlaps_training,
            "lr": lr,
            "clips_per_s": to_jsonable(pl_module.epoch_clips_per_s()),
            "time": round(time.perf_counter() - self._start, 2),
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")

        def fmt(v: Any) -> str:
            return "-" if v is None else f"{v:.3f}"

        log.info(
            "epoch %d: train loss %s, val loss %s, mAP %s, top1 %s, macro-F1 %s, fall alarm P/R %s/%s at threshold "
            "%s (%s fall boxes), %s clips/s",
            row["epoch"], fmt(row["train_loss"]), fmt(row["val_loss"]), fmt(row["mAP"]), fmt(row["top1"]),
            fmt(row["macro_f1"]), fmt(row["fall_precision"]), fmt(row["fall_recall"]), fmt(row["fall_threshold"]),
            "-" if row["fall_boxes"] is None else row["fall_boxes"],
            "-" if row["clips_per_s"] is None else f"{row['clips_per_s']:.1f}",
        )


def build_system(cfg: Config, class_names: list[str], class_counts: list[int], ground_truth: Sequence[Any] | None, *,
                 load_pretrained: bool = True, frame_size: tuple[int, int] | None = None,
                 validation_overlap: dict[str, list[str]] | None = None) -> ActionDetectionSystem:
    """The training system of ``cfg`` (the only place that reads ``cfg.model``/``cfg.optim``
    for training).

    Args:
        cfg: the resolved config.
        class_names: K names in category-id order (from the training annotations).
        class_counts: ``(K,)`` training boxes per class (for class weights).
        ground_truth: validation keyframes for the metrics, or None.
        load_pretrained: read ``model.pretrained`` (not when resuming: the checkpoint
            holds every weight).
        frame_size: ``(H, W)`` of the training recordings, recorded in the checkpoints.
        validation_overlap: what the validation set shares with the training set
            (:func:`~thermal_action.training.datamodule.training_overlap`), recorded in the
            checkpoints and in ``val_summary.jsonl``.
    """
    from thermal_action.models.build import build_model

    o = cfg.optim
    model_cfg = cfg.model if load_pretrained else replace(cfg.model, pretrained="")
    model = build_model(model_cfg, len(class_names))
    freeze_epochs = o.freeze_backbone_epochs
    if freeze_epochs > 0 and not cfg.model.pretrained:
        log.warning("optim.freeze_backbone_epochs=%d ignored: there are no pretrained weights (model.pretrained "
                    "is empty) and a frozen random backbone learns nothing", freeze_epochs)
        freeze_epochs = 0
    weights = class_weights_from_counts(class_counts, o.class_weights, o.class_weight_max,
                                        source=str(annotation_path(cfg.data, cfg.data.train_ann)))
    if weights is not None:
        log.info("class weights (%s): %s", o.class_weights,
                 ", ".join(f"{n}={w:.2f}" for n, w in zip(class_names, weights.tolist())))
    targets = group_target_matrix(class_names, o.group_smoothing, o.label_smoothing) if o.group_smoothing else None
    loss = ActionLoss(o.loss, len(class_names), weights, focal_gamma=o.focal_gamma,
                      label_smoothing=o.label_smoothing, target_matrix=targets)
    return ActionDetectionSystem(
        model,
        loss,
        class_names,
        ground_truth,
        optimizer=OptimizerSettings(name=o.optimizer, lr=o.lr, weight_decay=o.weight_decay, momentum=o.momentum),
        schedule=ScheduleSettings(epochs=o.epochs, kind=o.schedule, warmup_epochs=o.warmup_epochs,
                                  warmup_start_factor=o.warmup_start_factor, min_factor=o.min_lr_factor,
                                  milestone_epochs=tuple(o.step_milestones), gamma=o.step_gamma),
        validation=ValidationSettings(iou_threshold=cfg.eval.iou_threshold, fall_class=cfg.eval.fall_class,
                                      fall_threshold=cfg.eval.fall_threshold,
                                      fall_target_recall=cfg.eval.fall_target_recall),
        freeze_backbone_epochs=freeze_epochs,
        channels_last=cfg.trainer.channels_last,
        run=RunRecord(config=config_to_dict(cfg), frame_size=frame_size,
                      validation_overlaps_training=validation_overlap),
    )


def _check_run_dir(out_dir: Path, resume: bool) -> Path | None:
    """The checkpoint to resume from (None for a fresh run); refuses to mix runs."""
    last = out_dir / "checkpoints" / "last.ckpt"
    if resume:
        if not last.is_file():
            raise FileNotFoundError(f"--resume: no {last} to continue from (was the run validated at least once?)")
        _check_resumable(last)
        return last
    ckpts = sorted((out_dir / "checkpoints").glob("*.ckpt")) if (out_dir / "checkpoints").is_dir() else []
    if ckpts:
        raise FileExistsError(
            f"{out_dir} already holds checkpoints ({ckpts[0].name}...): pass --resume to continue that run, "
            "or choose another --out"
        )
    return None


def _check_resumable(last: Path) -> None:
    """Reads ``last.ckpt`` safely before anything else; a damaged one is an error that says
    whether ``best.ckpt`` is intact (and from which epoch) and how to resume from it."""
    from thermal_action.models.checkpoint import read_checkpoint_info

    try:
        read_checkpoint_info(last)
    except ValueError as damaged:
        best = last.with_name("best.ckpt")
        try:
            info = read_checkpoint_info(best)
        except (ValueError, FileNotFoundError) as e:
            fallback = f"best.ckpt cannot be used either ({e}); start a new run with another --out"
        else:
            fallback = (f"{best} is intact (saved at epoch {info.epoch}, step {info.global_step}); to resume from it: "
                        f"mv {last} {last}.damaged && cp {best} {last}, then run train --resume again")
        raise CheckpointDamagedError(f"--resume: {damaged}. {fallback}") from damaged


def _append_run_info(path: Path, precision: PrecisionChoice, resumed: bool,
                     train_keyframes: dict[str, int] | None = None) -> None:
    """One line of ``run_info.jsonl`` for this start of ``train``: what it ran on, in which
    precision, and the training keyframes by the origin of their labels (annotations,
    carried along tracks, pseudo-labels)."""
    row = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "resumed": resumed,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "precision": precision.to_dict(),
        "train_keyframes": train_keyframes or {},
    }
    with path.open("a") as f:
        f.write(json.dumps(row) + "\n")


class ProgressBar(TQDMProgressBar):
    """Lightning's tqdm bar (loss, clips/s) without the logger's version number."""

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        return items


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes every checkpoint to ``<name>.tmp`` beside it, then renames it into place, so an
    interrupted save never leaves a torn ``best.ckpt`` or ``last.ckpt`` (a rename within one
    directory is atomic; Lightning's own save may stage the file on another filesystem)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        tmp = f"{path}.tmp"
        super().save_checkpoint(checkpoint, tmp, storage_options)
        os.replace(tmp, path)


class LastCheckpoint(Checkpoint):
    """``last.ckpt`` at the end of *every* validated epoch (``--resume`` starts there).

    Lightning's ``ModelCheckpoint(save_last=True)`` writes ``last`` only in a step where a
    top-k checkpoint was saved, so after a best epoch that was not the final one its
    ``last.ckpt`` stayed the best epoch and ``--resume`` lost the epochs after it. This
    callback is a :class:`Checkpoint`, so Lightning runs it after the ``best.ckpt`` callback
    listed before it, and ``last.ckpt`` carries that callback's updated best score; it writes
    at the end of the training epoch, as ``ModelCheckpoint`` does, so a resumed run starts
    the next epoch.

    Args:
        path: the file (``checkpoints/last.ckpt``).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._validated = False

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._validated = True

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._validated and not trainer.fast_dev_run:
            trainer.save_checkpoint(self.path)
        self._validated = False


#: ``trainer.select_checkpoint`` values.
SELECT_CHOICES = ("best", "last")


def _check_select(select: str) -> None:
    if select not in SELECT_CHOICES:
        raise ValueError(f"trainer.select_checkpoint must be one of {SELECT_CHOICES}, got {select!r}")


def build_trainer(cfg: Config, out_dir: Path, callbacks: list[L.Callback],
                  precision: PrecisionChoice | None = None) -> L.Trainer:
    """The Lightning ``Trainer`` of ``cfg.trainer`` / ``cfg.optim`` writing into ``out_dir``.

    ``precision``: the resolved ``trainer.precision``; None resolves it here
    (:func:`~thermal_action.training.precision.resolve_precision`).
    """
    from lightning.pytorch.callbacks import LearningRateMonitor
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    t, o = cfg.trainer, cfg.optim
    if precision is None:
        precision = resolve_precision(t.precision, t.accelerator)
    _check_select(t.select_checkpoint)
    if t.reuse_freed_memory and precision.device == "cpu":
        reuse_freed_memory()
    checkpoint = ModelCheckpoint(
        dirpath=out_dir / "checkpoints",
        filename="best",
        # "last": best.ckpt follows the newest validated step (Lightning adds "step" to the
        # metrics it can monitor), so it ends as the final epoch.
        monitor=MONITOR if t.select_checkpoint == "best" else "step",
        mode="max",
        save_top_k=1,
        save_last=False,
        auto_insert_metric_name=False,
        enable_version_counter=False,
    )
    all_callbacks: list[L.Callback] = [
        checkpoint,
        LastCheckpoint(out_dir / "checkpoints" / "last.ckpt"),
        LearningRateMonitor(logging_interval="step"),
        SetDatasetEpoch(),
        ValidationSummary(out_dir / "val_summary.jsonl"),
        *callbacks,
    ]
    # A progress bar is for a person at a terminal: in a log file it is hundreds of redraws.
    show_bar = t.progress_bar and sys.stderr.isatty()
    if show_bar:
        all_callbacks.append(ProgressBar(refresh_rate=1))
    one_line_per_lightning_record()
    loggers = [
        TensorBoardLogger(save_dir=str(out_dir), name="tensorboard", default_hp_metric=False),
        CSVLogger(save_dir=str(out_dir), name="csv"),
    ]
    return L.Trainer(
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=t.num_nodes,
        strategy=t.strategy,
        precision=precision.precision,
        max_epochs=o.epochs,
        min_epochs=min(t.min_epochs, o.epochs),
        max_time={"seconds": t.max_time_minutes * 60} if t.max_time_minutes > 0 else None,
        gradient_clip_val=o.grad_clip if o.grad_clip > 0 else None,
        gradient_clip_algorithm="norm",
        accumulate_grad_batches=t.accumulate_grad_batches,
        log_every_n_steps=t.log_every_n_steps,
        limit_train_batches=t.limit_train_batches,
        limit_val_batches=t.limit_val_batches,
        check_val_every_n_epoch=t.check_val_every_n_epoch,
        num_sanity_val_steps=t.num_sanity_val_steps,
        deterministic=t.deterministic,
        enable_progress_bar=show_bar,
        enable_model_summary=False,
        callbacks=all_callbacks,
        plugins=[AtomicCheckpointIO()],
        logger=loggers,
        default_root_dir=str(out_dir),
    )


class _DropAdvertisements(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("\N{ELECTRIC LIGHT BULB} Tip:")


def one_line_per_lightning_record() -> None:
    """Lightning gives the ``lightning`` logger a handler of its own and lets its records
    propagate to the root logger as well, so under the CLI (which configures the root) every
    Lightning line came out twice. Where the root logger has handlers, Lightning's own go;
    its advertisements ("Tip: ... try installing ...") are dropped."""
    lightning_logger = logging.getLogger("lightning")
    if logging.getLogger().handlers:
        for handler in list(lightning_logger.handlers):
            lightning_logger.removeHandler(handler)
        lightning_logger.propagate = True
    # Logger filters see only records logged on that very logger: Lightning's messages come
    # from its rank-zero helpers' loggers.
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        target = logging.getLogger(name)
        if not any(isinstance(f, _DropAdvertisements) for f in target.filters):
            target.addFilter(_DropAdvertisements())


def train(cfg: Config, out_dir: str | Path | None = None, resume: bool = False,
          callbacks: list[L.Callback] | None = None) -> TrainResult:
    """Trains the detector of ``cfg`` on ``cfg.data`` and writes the run directory.

    Args:
        cfg: the resolved config; ``data.root`` must point at a dataset in the thermal
            format (annotation paths are relative to it).
        out_dir: the run directory (created); None: :func:`choose_run_dir` picks
            ``runs/<model.variant>-<time>`` (the same in every DDP process).
        resume: continue the interrupted run in ``out_dir`` from ``checkpoints/last.ckpt``
            (epoch, step, optimiser, schedule and best score continue).
        callbacks: extra Lightning callbacks.

    Returns:
        A :class:`TrainResult` with the paths and the best validation frame-mAP.

    Raises:
        FileExistsError: ``out_dir`` holds checkpoints of another run and ``resume`` is False.
        FileNotFoundError: ``resume`` without ``checkpoints/last.ckpt``, or a missing dataset.
        CheckpointDamagedError: ``resume`` with a ``last.ckpt`` that cannot be read.
        DatasetError: a problem with the dataset (naming the file and record), found
            before anything is written; a set without a labelled box is one.
    """
    _check_select(cfg.trainer.select_checkpoint)
    out_dir = choose_run_dir(out_dir, cfg.model.variant, resume)
    ckpt_path = _check_run_dir(out_dir, resume)
    # Before any model or data is built, so weights and augmentation repeat with the seed.
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    if cfg.trainer.deterministic:
        # cuBLAS needs this for deterministic matmuls on GPUs; harmless on CPU.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

    train_ds, val_ds = build_datasets(cfg, synthetic_dir=out_dir / SYNTHETIC_DIR)
    if val_ds is None:
        raise ValueError("data.val_ann is empty: training picks its best checkpoint by validation frame-mAP")
    # Every recording is read (and cached) before anything is written: a broken file is an
    # error naming it, not a crash in the first epoch after the run directory was made.
    sizes = train_ds.check_recordings()
    val_ds.check_recordings()
    log_repairs(train_ds, f"training set {cfg.data.train_ann}")
    log_repairs(val_ds, f"validation set {cfg.data.val_ann}")
    frame_size = next(iter(sizes)) if len(sizes) == 1 else None
    if frame_size is None:
        log.warning("training recordings have several frame sizes %s: the checkpoint records none, so "
                    "predict cannot check the size of new recordings", sorted(sizes))
    class_names = list(train_ds.class_names)
    counts = class_counts(train_ds)
    log.info("training set: %d keyframes, %d boxes (%s); validation set: %d keyframes",
             len(train_ds), sum(counts), ", ".join(f"{n}={c}" for n, c in zip(class_names, counts) if c),
             len(val_ds))
    overlap = training_overlap(train_ds, val_ds)
    leak = describe_overlap(overlap, f"the validation set {cfg.data.val_ann}")
    if leak:
        log.warning("%s", leak)
    system = build_system(cfg, class_names, counts, ground_truth=val_ds.keyframes,
                          load_pretrained=ckpt_path is None, frame_size=frame_size, validation_overlap=overlap)
    # The model's alpha decides how the slow pathway is sampled from the fast one.
    datamodule = build_datamodule(cfg, system.model.alpha, train_ds, val_ds)

    precision = resolve_precision(cfg.trainer.precision, cfg.trainer.accelerator)
    trainer = build_trainer(cfg, out_dir, list(callbacks or []), precision)
    config_path = out_dir / "config.yaml"
    if trainer.is_global_zero:
        out_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, config_path)
        _append_run_info(out_dir / RUN_INFO, precision, resumed=ckpt_path is not None,
                         train_keyframes=getattr(train_ds, "primary", train_ds).label_sources())
        for lg in trainer.loggers:
            lg.log_hyperparams(config_to_dict(cfg))
    log.info("run directory: %s%s", out_dir, f" (resuming from {ckpt_path})" if ckpt_path else "")

    start = time.perf_counter()
    trainer.fit(system, datamodule=datamodule, ckpt_path=str(ckpt_path) if ckpt_path else None)
    seconds = time.perf_counter() - start

    checkpoint_cb = trainer.checkpoint_callback
    best = Path(checkpoint_cb.best_model_path) if checkpoint_cb and checkpoint_cb.best_model_path else None
    last = out_dir / "checkpoints" / "last.ckpt"
    best_score = checkpoint_cb.best_model_score if checkpoint_cb else None
    best_metric = to_jsonable(best_score) if best_score is not None else None
    if cfg.trainer.select_checkpoint == "last":  # the score monitored was the step: report the epoch's mAP
        best_metric = _final_val_map(out_dir / "val_summary.jsonl") if trainer.is_global_zero else None
    return TrainResult(
        run_dir=out_dir,
        config_path=config_path,
        best_checkpoint=best,
        last_checkpoint=last if last.is_file() else None,
        best_metric=best_metric,
        monitor=MONITOR if cfg.trainer.select_checkpoint == "best" else "step",
        val_summary=out_dir / "val_summary.jsonl",
        epochs=trainer.current_epoch,
        global_step=trainer.global_step,
        seconds=seconds,
        train_clips_per_s=system.last_epoch_clips_per_s,
        global_rank=trainer.global_rank,
        precision=precision.precision,
    )
