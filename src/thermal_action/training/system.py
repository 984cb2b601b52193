"""The Lightning training system: loss, optimiser, schedule, validation metrics.

The detector (an ``nn.Module`` returning logits) is separate from this system, which
only adds what training needs::

    Batch ──► ActionDetector ──► logits (R, K) ──► ActionLoss ──► loss
                                        └──► scores ──► prediction records ──► frame-mAP...
                                                             (validation epoch end)

Validation collects one prediction record per box over the whole epoch and computes
the evaluation metrics with :func:`thermal_action.evaluation.metrics.compute_metrics` at its
end (``val/mAP``, ``val/top1``, ``val/macro_f1``, ``val/fall_precision``,
``val/fall_recall``, ``val/fall_ap`` and the alarm's ``val/fall_threshold``); under DDP
the records of every rank are gathered first, so all ranks log the same numbers and pick
the same best checkpoint. Each validation epoch also
calibrates the fall threshold (``eval.fall_target_recall``) and turns it into the fall
:class:`~thermal_action.alert_rule.AlertRule` that every checkpoint carries (the user's
``eval.fall_threshold`` wins over the calibrated one).

Backbone freezing (``freeze_backbone_epochs``) drops the backbone's gradients after
the backward pass and keeps its BatchNorm statistics fixed, rather than toggling
``requires_grad``: DDP registers the parameters that need gradients once, when it
wraps the model, and a parameter unfrozen later would silently never be all-reduced.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import lightning as L
import torch
from torch import nn

from thermal_action.alert_rule import AlertOverrides, AlertRule, resolve_alert_rule
from thermal_action.structures import Batch
from thermal_action.models.checkpoint import CHECKPOINT_KEY, checkpoint_extras
from thermal_action.models.ensemble import EnsembleDetector
from thermal_action.training.losses import ActionLoss, logits_to_scores
from thermal_action.training.records import (
    batch_clip_keys,
    batch_prediction_records,
    fill_feature_bank,
    gather_feature_bank,
    merge_records_by_image,
)
from thermal_action.training.schedule import OptimizerSettings, ScheduleSettings

log = logging.getLogger(__name__)

#: The lowest fall threshold calibration may give (a rule's threshold must be > 0).
MIN_CALIBRATED_THRESHOLD = 1e-6

#: Metric keys of compute_metrics -> names logged under ``val/``.
VAL_METRICS = {
    "frame_map": "mAP",
    "top1_accuracy": "top1",
    "macro_f1": "macro_f1",
    "fall_precision": "fall_precision",
    "fall_recall": "fall_recall",
    "fall_ap": "fall_ap",
}


@dataclass(frozen=True)
class ValidationSettings:
    """How validation scores an epoch and calibrates the fall alarm (``eval.*``).

    Attributes:
        iou_threshold: frame-mAP matching threshold.
        fall_class: the class whose alarm is calibrated and reported.
        fall_threshold: the user's fall threshold; None calibrates one on every validation epoch.
        fall_target_recall: the recall the calibrated threshold aims for.
    """

    iou_threshold: float = 0.5
    fall_class: str = "lying down-lying with risk"
    fall_threshold: float | None = None
    fall_target_recall: float = 0.95


@dataclass(frozen=True)
class RunRecord:
    """What every checkpoint carries about the run besides the weights.

    Attributes:
        config: the resolved config as a plain dict.
        frame_size: ``(H, W)`` of the training recordings (prediction refuses frames of
            another size unless asked to take them); None: several sizes, or unknown.
        validation_overlaps_training: the recordings and keyframes the validation set
            shares with the training set (its numbers are optimistic); None: not checked.
    """

    config: dict[str, Any] = field(default_factory=dict)
    frame_size: tuple[int, int] | None = None
    validation_overlaps_training: dict[str, list[str]] | None = None


class ActionDetectionSystem(L.LightningModule):
    """Trains an ``ActionDetector`` on box-level action labels.

    Args:
        model: the detector; ``model(slow, fast, rois, clip_keys=..., zone_masks=...,
            zone_features=...) -> (R, K)`` logits.
        loss: the box classification loss.
        class_names: K names in category-id order.
        ground_truth: validation keyframes (``image_id``, ``boxes_cxcywh_norm``,
            ``labels``) for the metrics; ``None`` skips metrics (loss only).
        optimizer: the optimiser (:class:`OptimizerSettings`).
        schedule: the learning-rate schedule in epochs (:class:`ScheduleSettings`).
        validation: metrics and fall-alarm calibration (:class:`ValidationSettings`).
        freeze_backbone_epochs: epochs (from 0) during which the backbone is not updated.
        channels_last: run the 3D convolutions in channels-last-3d memory format.
        run: what every checkpoint records about the run (:class:`RunRecord`).
    """

    def __init__(
        self,
        model: nn.Module,
        loss: ActionLoss,
        class_names: Sequence[str],
        ground_truth: Sequence[Any] | None = None,
        *,
        optimizer: OptimizerSettings = OptimizerSettings(),
        schedule: ScheduleSettings = ScheduleSettings(),
        validation: ValidationSettings = ValidationSettings(),
        freeze_backbone_epochs: int = 0,
        channels_last: bool = False,
        run: RunRecord = RunRecord(),
    ):
        super().__init__()
        self.model = model
        self.loss = loss
        self.class_names = list(class_names)
        self.ground_truth = list(ground_truth) if ground_truth is not None else None
        self.optimizer_settings = optimizer
        self.schedule_settings = schedule
        self.validation = validation
        self.freeze_backbone_epochs = int(freeze_backbone_epochs)
        if self.freeze_backbone_epochs > 0 and not hasattr(model, "backbone"):
            raise ValueError("freeze_backbone_epochs > 0 needs a model with a .backbone")
        #: The fall operating threshold chosen on the latest validation epoch (stored in checkpoints).
        self.fall_calibration: dict[str, Any] | None = None
        #: The fall alert rule these weights come with (stored in checkpoints): the user's
        #: threshold, else the one calibrated on the latest validation epoch.
        self.alert_rule = self._alert_rule(None)
        self.channels_last = channels_last
        if channels_last:
            self.model.to(memory_format=torch.channels_last_3d)
        self.run = run
        self.score_activation = "sigmoid" if loss.kind == "sigmoid" else "softmax"
        # Per validation epoch: {image_id: records} on this rank.
        self._val_records: dict[str, list[dict]] = {}
        #: The full metrics dict of the last validation epoch (read by the summary callback).
        self.last_val_metrics: dict[str, Any] | None = None
        self._step_clock: float | None = None
        self._epoch_clips = 0
        self._epoch_start: float | None = None
        self._epoch_loss_sum: torch.Tensor | float = 0.0
        self._epoch_loss_count = 0
        #: Training clips per second of the last finished epoch (all devices).
        self.last_epoch_clips_per_s: float | None = None

    # ------------------------------------------------------------------ forward
    def forward(self, batch: Batch) -> torch.Tensor:
        """``(R, K)`` logits for the boxes of ``batch``."""
        return self._apply_model(self.model, batch)

    def training_logits(self, batch: Batch) -> torch.Tensor:
        """The logits training takes its loss on: ``(R, K)``, or ``(n, R, K)`` for an
        ensemble of ``n`` members, so that each member gets its own loss."""
        if isinstance(self.model, EnsembleDetector):
            return self._apply_model(self.model.member_logits, batch)
        return self(batch)

    def _apply_model(self, model: Callable[..., torch.Tensor], batch: Batch) -> torch.Tensor:
        slow, fast = batch.slow, batch.fast
        if self.channels_last:
            slow = slow.contiguous(memory_format=torch.channels_last_3d)
            fast = fast.contiguous(memory_format=torch.channels_last_3d)
        return model(slow, fast, batch.rois, clip_keys=batch_clip_keys(batch), zone_masks=batch.zone_masks,
                     zone_features=batch.zone_features)

    # ------------------------------------------------------------------ training
    def _backbone_frozen(self) -> bool:
        return self.current_epoch < self.freeze_backbone_epochs

    def on_train_epoch_start(self) -> None:
        self._epoch_clips = 0
        self._epoch_start = time.perf_counter()
        self._step_clock = None
        self._epoch_loss_sum, self._epoch_loss_count = 0.0, 0
        if self.freeze_backbone_epochs > 0:
            frozen = self._backbone_frozen()
            if self.current_epoch == 0 or self.current_epoch == self.freeze_backbone_epochs:
                log.info("epoch %d: backbone %s", self.current_epoch, "frozen" if frozen else "trained")

    def on_train_batch_start(self, batch: Batch, batch_idx: int) -> None:
        if self.freeze_backbone_epochs > 0 and self._backbone_frozen():
            # Pretrained BatchNorm statistics must not drift while the backbone is frozen.
            for m in self.model.backbone.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        logits = self.training_logits(batch)  # (R, K), or (n, R, K) for an ensemble
        loss = self.loss(logits, batch.labels)
        # sync_dist: the epoch mean over all ranks (one scalar all-reduce per step).
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=batch.num_clips,
                 sync_dist=True)
        # A tensor sum: converting each step with float() would stall a GPU every step.
        self._epoch_loss_sum = self._epoch_loss_sum + loss.detach()
        self._epoch_loss_count += 1
        return loss

    def epoch_train_loss(self) -> float | None:
        """Mean training loss of the current (or just finished) epoch on this rank."""
        return float(self._epoch_loss_sum) / self._epoch_loss_count if self._epoch_loss_count else None

    def epoch_clips_per_s(self) -> float | None:
        """Training clips per second of this epoch up to its last training batch (all
        devices, data loading included, validation excluded)."""
        if self._epoch_start is None or self._step_clock is None or not self._epoch_clips:
            return None
        return self._epoch_clips / max(self._step_clock - self._epoch_start, 1e-9)

    def on_after_backward(self) -> None:
        if self.freeze_backbone_epochs > 0 and self._backbone_frozen():
            # After DDP's all-reduce, so every rank drops the same gradients.
            for p in self.model.backbone.parameters():
                p.grad = None

    def on_train_batch_end(self, outputs: Any, batch: Batch, batch_idx: int) -> None:
        now = time.perf_counter()
        clips = batch.num_clips * self.trainer.world_size
        self._epoch_clips += clips
        if self._step_clock is not None:
            # Wall time between batch ends: includes data loading, as a user sees it.
            rate = clips / max(now - self._step_clock, 1e-9)
            self.log("clips_per_s", rate, prog_bar=True, on_step=True, on_epoch=False, batch_size=batch.num_clips)
        self._step_clock = now

    def on_train_epoch_end(self) -> None:
        # The keyframes this rank's training steps wrote, shared with the other ranks, so the
        # next epoch reads memory from the whole training set (no-op in one process).
        gather_feature_bank(getattr(self.model, "feature_bank", None))
        rate = self.epoch_clips_per_s()
        if rate is not None:
            self.last_epoch_clips_per_s = rate
            self.log("train/epoch_clips_per_s", rate, on_step=False, on_epoch=True, sync_dist=True)

    # ------------------------------------------------------------------ validation
    def on_validation_epoch_start(self) -> None:
        self._val_records = {}
        if getattr(self.model, "feature_bank", None) is not None and not self.trainer.sanity_checking:
            self._fill_feature_bank()

    def _fill_feature_bank(self) -> None:
        """A first pass over this rank's validation clips that only writes the memory, so
        every validation keyframe then reads neighbours from both sides (as at evaluation).

        Under DDP each rank fills its bank from its own part of the set, then the ranks
        exchange what they wrote (:func:`gather_feature_bank`): every keyframe reads its
        neighbours from the whole set, as in one process.
        """
        from torch.utils.data import DataLoader

        loader = self.trainer.val_dataloaders
        if isinstance(loader, (list, tuple)):
            loader = loader[0] if loader else None
        if loader is None:
            return
        # A separate single-process loader: re-iterating Lightning's own (persistent
        # workers) loader here would reset the iterator the validation loop holds.
        fill = DataLoader(loader.dataset, batch_size=loader.batch_size, sampler=loader.sampler,
                          collate_fn=loader.collate_fn, num_workers=0)
        limit = self.trainer.num_val_batches[0] if self.trainer.num_val_batches else math.inf
        batches = (b.to(self.device) for b in (fill if math.isinf(limit) else itertools.islice(fill, int(limit))))
        with self.trainer.precision_plugin.forward_context():
            fill_feature_bank(self.model, batches, self)
        gather_feature_bank(self.model.feature_bank)

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        logits = self(batch)  # (R, K)
        # Logged for every batch (weight 0 without labelled boxes): with sync_dist, a rank
        # that skipped the key would leave the others waiting in the epoch-end all-reduce.
        self.log("val/loss", self.loss(logits, batch.labels), on_step=False, on_epoch=True, sync_dist=True,
                 batch_size=int((batch.labels >= 0).sum()))
        scores = logits_to_scores(logits, self.loss.kind)
        records = batch_prediction_records(batch, scores)
        for image_id in batch.image_ids:
            self._val_records.setdefault(image_id, [])
        for rec in records:
            self._val_records[rec["image_id"]].append(rec)

    def _gathered_records(self) -> list[dict[str, Any]]:
        if self.trainer.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
            parts: list[Any] = [None] * self.trainer.world_size
            torch.distributed.all_gather_object(parts, self._val_records)
        else:
            parts = [self._val_records]
        return merge_records_by_image(parts)

    def _alert_rule(self, calibration: dict[str, Any] | None) -> AlertRule:
        """The rule of the user's threshold, else of the calibrated one, else the default rule's."""
        rule = AlertRule(fall_class=self.validation.fall_class)
        if calibration is not None and calibration.get("threshold") is not None:
            # A softmax score can underflow to 0 in float32; a rule's threshold must be > 0.
            rule = replace(rule, threshold=max(float(calibration["threshold"]), MIN_CALIBRATED_THRESHOLD))
        return resolve_alert_rule(rule, AlertOverrides(threshold=self.validation.fall_threshold))

    def on_validation_epoch_end(self) -> None:
        from thermal_action.evaluation.metrics import choose_fall_threshold, compute_metrics

        records = self._gathered_records()
        self._val_records = {}
        if self.ground_truth is None:
            return
        # Validation classifies the annotated boxes, so every keyframe that was run and
        # has boxes has predictions: scoring only predicted keyframes is exact for a full
        # pass and right for a partial one (sanity check, limit_val_batches).
        v = self.validation
        calibration = choose_fall_threshold(
            records, self.ground_truth, self.class_names, target_recall=v.fall_target_recall,
            restrict_to_predicted_images=True, iou_threshold=v.iou_threshold, fall_class=v.fall_class,
        )
        rule = self._alert_rule(calibration)
        if not self.trainer.sanity_checking:
            self.fall_calibration = calibration
            self.alert_rule = rule
        metrics = compute_metrics(
            records,
            self.ground_truth,
            self.class_names,
            restrict_to_predicted_images=True,
            fall_threshold=rule.threshold,
            iou_threshold=v.iou_threshold,
            fall_class=v.fall_class,
        )
        self.last_val_metrics = metrics
        for key, name in VAL_METRICS.items():
            value = metrics[key]
            # Undefined (no such boxes) is logged as NaN; the best-checkpoint callback
            # treats a non-finite value as worst.
            self.log(f"val/{name}", float("nan") if value is None else float(value), on_epoch=True, sync_dist=False)
        # The alarm's operating threshold of these weights (calibrated, or the user's).
        self.log("val/fall_threshold", float(rule.threshold), on_epoch=True, sync_dist=False)

    # ------------------------------------------------------------------ optimiser
    def configure_optimizers(self):
        opt = self.optimizer_settings.build(self.model)
        schedule = self.schedule_settings.for_steps(self.trainer.estimated_stepping_batches)
        log.info(
            "optimiser %s lr %.3g, %s schedule over %d steps (%d warm-up)",
            self.optimizer_settings.name, self.optimizer_settings.lr, schedule.kind, schedule.total_steps,
            schedule.warmup_steps,
        )
        # A plain function, not the schedule object: LambdaLR then keeps it out of the
        # checkpoint, so a resumed run follows the config it is resumed with (e.g. more epochs).
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: schedule(step))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step", "frequency": 1}}

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[CHECKPOINT_KEY] = checkpoint_extras(self.run.config, self.class_names, self.score_activation,
                                                       self.fall_calibration, alert_rule=self.alert_rule,
                                                       frame_size=self.run.frame_size,
                                                       validation_overlaps_training=self.run.validation_overlaps_training)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        extras = checkpoint.get(CHECKPOINT_KEY) or {}
        self.fall_calibration = extras.get("fall_calibration")
        self.alert_rule = self._alert_rule(self.fall_calibration)
