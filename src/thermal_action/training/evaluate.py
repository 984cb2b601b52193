"""``evaluate_checkpoint``: scores a trained checkpoint on an annotated set.

Two settings, as in AVA:

- **ground-truth boxes** (default): the annotated person boxes are classified; the
  numbers measure action recognition alone.
- **detected boxes** (``detections=FILE``): the boxes of a person detector (a
  detections file, see :mod:`thermal_action.evaluation.io`) are classified instead and
  matched to the annotations at ``eval.iou_threshold``; misses and false boxes now
  cost frame-mAP too.

With an interaction structure the feature bank is filled in a first pass over the
whole set (every keyframe's person features), then a second pass predicts, so each
keyframe sees the memory of its neighbours before and after it, as in AlphAction's
testing.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from thermal_action.config import config_from_dict, config_to_dict, replace_values
from thermal_action.errors import ConfigError
from thermal_action.progress import Progress
from thermal_action.structures import Batch
from thermal_action.training.losses import logits_to_scores
from thermal_action.training.records import batch_clip_keys, batch_prediction_records, fill_feature_bank

log = logging.getLogger(__name__)

#: Config sections an evaluation may override (the model is fixed by the checkpoint).
EVAL_OVERRIDABLE = ("data.", "eval.", "seed")


def _forward_fn(model: torch.nn.Module, device: torch.device, autocast_dtype: torch.dtype | None):
    def forward(batch: Batch) -> torch.Tensor:
        batch = batch.to(device)
        with torch.autocast(device.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None):
            return model(batch.slow, batch.fast, batch.rois, clip_keys=batch_clip_keys(batch),
                         zone_masks=batch.zone_masks, zone_features=batch.zone_features)

    return forward


@torch.no_grad()
def predict_records(
    model: torch.nn.Module,
    loader: Iterable[Batch],
    score_activation: str,
    device: str | torch.device = "cpu",
    autocast_dtype: torch.dtype | None = None,
    on_batch: Callable[[Batch], None] | None = None,
) -> list[dict[str, Any]]:
    """Prediction records (``predictions.json`` format) for every box the loader yields.

    With a feature bank, a first pass fills it (see the module docstring). ``on_batch`` is
    called after each batch of the predicting pass (progress).
    """
    device = torch.device(device)
    model.eval()
    forward = _forward_fn(model, device, autocast_dtype)
    if getattr(model, "feature_bank", None) is not None:
        n = fill_feature_bank(model, loader, forward)
        log.info("feature bank filled with %d keyframes", n)
    records: list[dict[str, Any]] = []
    for batch in loader:
        logits = forward(batch)  # (R, K)
        scores = logits_to_scores(logits, score_activation)
        records.extend(batch_prediction_records(batch, scores, batch.box_scores))
        if on_batch is not None:
            on_batch(batch)
    return records


def _apply_overrides(cfg, overrides: list[str] | None):
    for text in overrides or []:
        key = text.split("=", 1)[0].strip()
        if not key.startswith(EVAL_OVERRIDABLE):
            raise ConfigError(
                f"override '{text}': only data.*, eval.* and seed can change at evaluation "
                "(the model is fixed by the checkpoint)"
            )
    return config_from_dict(config_to_dict(cfg), overrides)


def _recording_progress(dataset, progress: Progress) -> Callable[[Batch], None]:
    """Advances ``progress`` by each batch's keyframes and names each recording whose
    keyframes are all scored (one INFO line per recording without a bar)."""
    per_recording = Counter(k.sensor_id for k in dataset.keyframes)
    left = dict(per_recording)

    def on_batch(batch: Batch) -> None:
        progress.update(len(batch.sensor_ids))
        for sensor in batch.sensor_ids:
            left[sensor] -= 1
            if left[sensor] == 0:
                progress.update(0, done=f"{sensor}: {per_recording[sensor]} keyframes scored", of=len(per_recording))

    return on_batch


def _check_frame_size(dataset, trained: tuple[int, int] | None) -> None:
    """Refuses recordings whose frames are not the size the model was trained on, naming the
    first such file (``predict`` refuses them the same way)."""
    from thermal_action.errors import DatasetError

    if trained is None:  # an older checkpoint: the size was not recorded
        return
    for sensor in sorted({k.sensor_id for k in dataset.keyframes}):
        path = dataset.recording_path(sensor)
        rec = dataset.cache.get(path)
        if (rec.height, rec.width) != tuple(trained):
            raise DatasetError(path, f"frames are {rec.height}x{rec.width} but the model was trained on "
                                     f"{trained[0]}x{trained[1]} frames; evaluate a model trained on this size",
                               record="frames")


def _training_overlap(train_cfg, dataset) -> dict[str, list[str]] | None:
    """:func:`~thermal_action.training.datamodule.training_overlap` of the evaluated set with
    the checkpoint's own training set (its config's ``data.root`` and ``data.train_ann``),
    warned about; None when that set cannot be read here (another machine, moved files)."""
    from thermal_action.data.dataset import build_dataset
    from thermal_action.training.datamodule import annotation_path, describe_overlap, training_overlap

    d = train_cfg.data
    if not d.root or not annotation_path(d, d.train_ann).is_file():
        return None
    try:
        train_ds = build_dataset(d, d.train_ann, train=False)
    except (OSError, ValueError) as e:  # DatasetError is a ValueError
        log.info("the checkpoint's training set cannot be read (%s): overlap with it not checked", e)
        return None
    overlap = training_overlap(train_ds, dataset)
    leak = describe_overlap(overlap, "the evaluated set")
    if leak:
        log.warning("%s", leak)
    return overlap


def evaluate_checkpoint(
    checkpoint: str | Path,
    data_root: str | Path,
    ann_file: str | Path,
    out_dir: str | Path,
    detections: str | Path | None = None,
    overrides: list[str] | None = None,
    device: str = "cpu",
) -> dict[str, Any]:
    """Evaluates a training checkpoint and writes ``metrics.json``, ``predictions.json``
    and (with ``eval.plots``) the confusion-matrix and precision-recall plots to ``out_dir``.

    Args:
        checkpoint: a ``.ckpt`` written by ``thermal-action train``.
        data_root: dataset directory (``frames/`` and ``annotations/``).
        ann_file: annotation file to score, relative to ``data_root`` unless absolute.
        out_dir: where the outputs go (created).
        detections: a detections file; its boxes replace the annotated ones (default
            ``eval.detections``; boxes scoring below ``eval.detection_min_score`` are dropped).
        overrides: ``key=value`` strings for ``data.*`` / ``eval.*`` (e.g.
            ``eval.iou_threshold=0.3``, ``data.batch_size=16``); the clip settings
            default to the checkpoint's.
        device: ``"cpu"`` or ``"cuda"``.

    Returns:
        The metrics dict (:func:`thermal_action.evaluation.metrics.compute_metrics`) plus
        ``"evaluated"``: checkpoint, annotation file, box source.

    Raises:
        DatasetError: a problem with the annotation file or its recordings; a file
            without a single labelled box is one (every metric would be undefined), and
            so are recordings of another frame size than the model was trained on.
    """
    from thermal_action.data.dataset import build_collate, build_dataset
    from thermal_action.evaluation.detections import read_detections
    from thermal_action.evaluation.io import write_evaluation
    from thermal_action.evaluation.metrics import compute_metrics
    from thermal_action.alert_rule import AlertOverrides, resolve_alert_rule
    from thermal_action.models.checkpoint import load_checkpoint
    from thermal_action.training.datamodule import annotation_path, log_repairs, require_labelled_boxes

    loaded = load_checkpoint(checkpoint, device=device)
    model, cfg, class_names, info = loaded.model, loaded.config, loaded.class_names, loaded.info
    cfg = replace_values(_apply_overrides(cfg, overrides), {"data.root": str(data_root)})
    rooms_given = any(o.split("=", 1)[0].strip() == "data.rooms" for o in overrides or [])
    if cfg.data.rooms and not rooms_given and not annotation_path(cfg.data, cfg.data.rooms).is_file():
        # The training run's rooms file, relative to its own data.root: not an error here, where
        # nobody named it; a rooms file given to this evaluation (data.rooms=...) must exist.
        log.warning("the checkpoint's data.rooms %r is not found under %s: evaluating without it (pass "
                    "--rooms / data.rooms=... to give one)", cfg.data.rooms, data_root)
        cfg = replace_values(cfg, {"data.rooms": ""})
    boxes_override = None
    if detections is None and cfg.eval.detections:
        detections = cfg.eval.detections
    if detections is not None:
        boxes_override = read_detections(detections, min_score=cfg.eval.detection_min_score)
        log.info("%s: %d keyframes with detections", detections, len(boxes_override))
    dataset = build_dataset(cfg.data, ann_file, train=False, boxes_override=boxes_override, seed=cfg.seed,
                            override_source=str(detections) if detections else "boxes_override")
    if list(dataset.class_names) != list(class_names):
        raise ValueError(f"{ann_file}: its classes {dataset.class_names} differ from the checkpoint's {class_names}")
    require_labelled_boxes(dataset, annotation_path(cfg.data, ann_file), "every metric would be undefined")
    _check_frame_size(dataset, info.frame_size)
    log_repairs(dataset, f"evaluated set {ann_file}")
    overlap = _training_overlap(loaded.config, dataset)
    loader = DataLoader(
        dataset,
        batch_size=cfg.data.batch_size,
        shuffle=False,
        num_workers=cfg.data.num_workers,
        collate_fn=build_collate(cfg.data, model.alpha, train=False),
    )
    dev = torch.device(device)
    autocast = torch.bfloat16 if dev.type == "cuda" and cfg.trainer.precision.startswith("bf16") else None
    with Progress(len(dataset), "evaluate", "keyframe", log) as progress:
        records = predict_records(model, loader, info.score_activation, dev, autocast,
                                  on_batch=_recording_progress(dataset, progress))
    rule = resolve_alert_rule(info.alert_rule, AlertOverrides(threshold=cfg.eval.fall_threshold))
    metrics = compute_metrics(
        records,
        dataset.keyframes,
        class_names,
        iou_threshold=cfg.eval.iou_threshold,
        fall_class=cfg.eval.fall_class,
        fall_threshold=rule.threshold,
        restrict_to_predicted_images=cfg.eval.restrict_to_predicted_images,
    )
    metrics["evaluated"] = {
        "checkpoint": str(checkpoint),
        "model_room": cfg.model.room,
        "rooms_file": cfg.data.rooms or None,
        "keyframes_by_room_source": dataset.room_sources(),
        "epoch": info.epoch,
        "global_step": info.global_step,
        "data_root": str(data_root),
        "ann_file": str(ann_file),
        "boxes": str(detections) if detections else "ground_truth",
        "num_keyframes": len(dataset),
        "fall_threshold_source": "config" if cfg.eval.fall_threshold is not None
        else ("calibrated" if info.fall_calibration else "fallback"),
        "fall_calibration": info.fall_calibration,
        "alert_rule": rule.to_dict(),
        # What the evaluated set shares with the checkpoint's training set (None: that set
        # cannot be read here); shared recordings make every number optimistic.
        "overlaps_training": overlap,
        "plots": bool(cfg.eval.plots),
    }
    write_evaluation(out_dir, records, metrics, class_names, plots=cfg.eval.plots)
    return metrics
