"""``thermal-action demo``: the whole pipeline in a few minutes on a CPU.

1. writes a small synthetic dataset in the real format, whole recordings (in a room
   never seen in training) held out for the evaluation, and one training recording
   set aside as the inner validation set that picks the epoch and the fall threshold;
2. trains the CPU default (the shipped config ``cpu_default``) for a time budget: a few
   timed training steps first measure this machine's speed, which sets the number of
   epochs so the learning-rate schedule completes inside the budget;
3. evaluates the best checkpoint on the held-out recordings (``evaluate_checkpoint``)
   and compares it with the class prior (every box scored with the training class
   frequencies, which is what a model that learned nothing from the clips would do);
4. draws a strip of frames around a validation keyframe with the ground-truth and
   predicted labels.

Everything lands in one directory; :meth:`DemoResult.format_text` says where.
"""

from __future__ import annotations

import json
import logging
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

log = logging.getLogger(__name__)

#: The synthetic dataset of the demo: ~370 training clips from 8 recordings (4 rooms),
#: ~90 validation clips from 2 recordings of a fifth room.
DEMO_RECORDINGS = 10
DEMO_VAL_RECORDINGS = 2
DEMO_FRAMES = 400
#: Share of the time budget planned for training steps; the rest is validation,
#: checkpoints and start-up.
TRAIN_SHARE = 0.8


@dataclass
class DemoResult:
    """What the demo produced.

    Attributes:
        out_dir: everything below.
        dataset_dir: the synthetic dataset.
        run_dir: the training run directory (config, checkpoints, logs).
        eval_dir: metrics.json, predictions.json, plots of the held-out evaluation.
        picture: the annotated strip of a validation clip.
        metrics: headline numbers of the best checkpoint on the held-out recordings.
        prior_metrics: the same numbers for the class-prior baseline.
        train_clips_per_s: training throughput of the last epoch.
        epochs: epochs trained.
        train_seconds, total_seconds: wall time of training and of the whole demo.
    """

    out_dir: Path
    dataset_dir: Path
    run_dir: Path
    eval_dir: Path
    picture: Path
    metrics: dict[str, Any]
    prior_metrics: dict[str, Any]
    train_clips_per_s: float | None
    epochs: int
    train_seconds: float
    total_seconds: float
    fall_threshold: float | None = None

    def format_text(self) -> str:
        def f(v: Any) -> str:
            return "-" if v is None else f"{v:.3f}"

        rows = [("frame-mAP", "frame_map"), ("top-1", "top1_accuracy"), ("macro-F1", "macro_f1"),
                ("fall AP", "fall_ap"), ("fall precision @thr", "fall_precision"),
                ("fall recall @thr", "fall_recall"), ("fall top-1 recall", "fall_top1_recall"),
                ("bed-lying top-1 recall", "bed_lying_top1_recall")]
        lines = [
            f"thermal-action demo finished in {self.total_seconds / 60:.1f} min "
            f"({self.epochs} epochs, {self.train_seconds / 60:.1f} min training"
            + (f", {self.train_clips_per_s:.1f} clips/s" if self.train_clips_per_s else "") + ")",
            "",
            "held-out recordings       model   class prior",
        ]
        for name, key in rows:
            lines.append(f"  {name:<22}  {f(self.metrics.get(key)):>6}   {f(self.prior_metrics.get(key)):>6}")
        counts = [f"{self.metrics.get(k.replace('_recall', '_boxes'))} {label}" for k, label in
                  (("fall_top1_recall", "fall boxes"), ("bed_lying_top1_recall", "bed-lying boxes"))]
        lines.append(f"  (top-1 recalls of the two lying classes rest on {' and '.join(counts)}: "
                     "bed versus floor)")
        if self.fall_threshold is not None:
            lines.append(f"  (fall threshold {self.fall_threshold:.3f}, calibrated by train on the inner validation "
                         "recording: eval.fall_target_recall)")
        lines += [
            "",
            f"dataset:      {self.dataset_dir}",
            f"run:          {self.run_dir}  (config.yaml, checkpoints/, tensorboard/, val_summary.jsonl)",
            f"evaluation:   {self.eval_dir}  (metrics.json, predictions.json, confusion_matrix.png, pr_curves.png)",
            f"picture:      {self.picture}",
            f"summary:      {self.out_dir / 'demo_summary.json'}",
        ]
        return "\n".join(lines)


#: Bed versus floor: the two lying classes whose top-1 recall the demo reports.
LYING_CLASSES = {"bed_lying_top1_recall": "lying down-lying on the bed/couch",
                 "fall_top1_recall": "lying down-lying with risk"}


def _headline(metrics: dict[str, Any]) -> dict[str, Any]:
    keys = ("frame_map", "top1_accuracy", "macro_f1", "fall_ap", "fall_precision", "fall_recall")
    out = {k: metrics.get(k) for k in keys}
    per_class = {c["name"]: c for c in metrics.get("per_class", [])}
    for key, name in LYING_CLASSES.items():
        c = per_class.get(name)
        out[key] = None if c is None or not c.get("support") else c.get("recall")
        out[key.replace("_recall", "_boxes")] = None if c is None else c.get("support")
    return out


def class_prior_metrics(train_counts: list[int], keyframes, class_names: list[str], eval_cfg) -> dict[str, Any]:
    """Metrics of scoring every validation box with the training class frequencies."""
    from thermal_action.alert_rule import AlertOverrides, resolve_alert_rule
    from thermal_action.evaluation.io import make_prediction_records
    from thermal_action.evaluation.metrics import compute_metrics

    prior = np.asarray(train_counts, dtype=np.float64)
    prior = prior / prior.sum()
    image_ids, boxes = [], []
    for kf in keyframes:
        image_ids += [kf.image_id] * kf.num_boxes
        boxes.append(np.asarray(kf.boxes_cxcywh_norm, dtype=np.float64).reshape(-1, 4))
    boxes_arr = np.concatenate(boxes) if boxes else np.zeros((0, 4))
    records = make_prediction_records(image_ids, boxes_arr, np.tile(prior, (len(image_ids), 1)))
    return compute_metrics(records, keyframes, class_names, iou_threshold=eval_cfg.iou_threshold,
                           fall_class=eval_cfg.fall_class,
                           fall_threshold=resolve_alert_rule(None, AlertOverrides(threshold=eval_cfg.fall_threshold))
                           .threshold)


def measure_seconds_per_clip(cfg, system, datamodule, warmup: int = 3, steps: int = 5) -> float:
    """Times training steps of ``system`` on real batches; the model is restored afterwards.

    Recordings are read before timing and the first ``warmup`` steps are not counted:
    they pay for one-off work (oneDNN kernel selection for each new input shape), which
    made an untimed estimate 10x too slow. Returns the median over steps of seconds per
    clip: on a shared machine one slow step moved a mean of four by 15% (3.75 clips/s
    measured, 4.4 in the training that followed), and with it the number of epochs.
    """
    from thermal_action.training.schedule import build_optimizer

    datamodule.train_dataset.preload()
    state = {k: v.clone() for k, v in system.model.state_dict().items()}
    system.model.train()
    opt = build_optimizer(system.model, cfg.optim.optimizer, cfg.optim.lr, cfg.optim.weight_decay)
    per_clip: list[float] = []
    for i, batch in enumerate(datamodule.train_dataloader()):
        if i >= warmup + steps:
            break
        start = time.perf_counter()
        loss = system.loss(system.training_logits(batch), batch.labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if batch.num_clips:
            per_clip.append((time.perf_counter() - start) / batch.num_clips)
    system.model.load_state_dict(state)
    if system.model.feature_bank is not None:
        system.model.feature_bank.clear()
    if not per_clip:
        raise RuntimeError("the demo's training set gave no batch to time; make the dataset larger")
    # Too few batches to skip the warm-up: its slower steps then count (fewer epochs, never more).
    timed = per_clip[warmup:] or per_clip
    return statistics.median(timed)


def draw_validation_strip(dataset_dir: Path, predictions: list[dict], keyframes, class_names: list[str],
                          path: Path, num_tiles: int = 5, step: int = 6) -> Path:
    """A strip of frames around one validation keyframe with GT and predicted labels.

    The keyframe chosen is the one with the most boxes (a fall when there is one);
    its boxes are drawn on every tile, the labels on the keyframe's tile.
    """
    from thermal_action.data.hdf5 import read_recording
    from thermal_action.visualize import SheetItem, contact_sheet, short_name

    by_image: dict[str, list[dict]] = {}
    for rec in predictions:
        by_image.setdefault(str(rec["image_id"]), []).append(rec)
    fall = class_names.index("lying down-lying with risk") if "lying down-lying with risk" in class_names else -1

    def rank(kf) -> tuple:
        return (bool((kf.labels == fall).any()), kf.num_boxes, -kf.frame_idx)

    kf = max((k for k in keyframes if k.num_boxes), key=rank)
    rec = read_recording(dataset_dir / "frames" / f"{kf.sensor_id}.h5")
    preds = by_image.get(kf.image_id, [])
    texts, highlight = [], []
    for i in range(kf.num_boxes):
        gt = class_names[int(kf.labels[i])]
        # predictions.json keeps the annotated boxes in order; match by box to be safe.
        match = min(preds, key=lambda r: float(np.abs(np.asarray(r["bbox"]) - kf.boxes_cxcywh_norm[i]).sum()),
                    default=None)
        if match is None:
            texts.append(f"GT {short_name(gt)}")
            highlight.append(gt == class_names[fall] if fall >= 0 else False)
            continue
        k = int(np.argmax(match["scores"]))
        verdict = "ok" if k == int(kf.labels[i]) else "wrong"
        texts.append(f"GT {short_name(gt)} | pred {short_name(class_names[k])} {match['scores'][k]:.2f} {verdict}")
        highlight.append(fall >= 0 and (k == fall or int(kf.labels[i]) == fall))
    half = num_tiles // 2
    items = []
    for j in range(-half, half + 1):
        t = int(np.clip(kf.frame_idx + j * step, 0, rec.num_frames - 1))
        key = j == 0
        items.append(SheetItem(
            frame=rec.frames[t],
            boxes_xyxy=kf.boxes_xyxy,
            texts=texts if key else None,
            title=f"{kf.sensor_id} frame {t}" + ("  KEYFRAME: ground truth | prediction" if key else f" ({j * step:+d})"),
            track_ids=[int(x) for x in kf.track_ids],
            highlight=highlight if key else None,
        ))
    contact_sheet(items, cols=num_tiles, path=path, scale=8, font_size=12)
    return path


def run_demo(out_dir: str | Path = "thermal_demo", minutes: float = 6.0, seed: int = 0,
             overrides: list[str] | None = None, num_recordings: int = DEMO_RECORDINGS,
             val_recordings: int = DEMO_VAL_RECORDINGS, frames_per_recording: int = DEMO_FRAMES) -> DemoResult:
    """Synthetic data -> training for ``minutes`` -> evaluation on held-out recordings -> picture.

    Args:
        out_dir: output directory (a previous demo there is replaced).
        minutes: training time budget.
        seed: seeds the dataset and the training.
        overrides: extra ``key=value`` config overrides on top of the CPU default.
        num_recordings, val_recordings, frames_per_recording: size of the synthetic
            dataset (the last ``val_recordings`` are held out).

    Returns:
        A :class:`DemoResult` (also written to ``out_dir/demo_summary.json``).
    """
    import shutil

    from thermal_action import configs
    from thermal_action.config import load_config, replace_values
    from thermal_action.data.annotations import load_annotations, read_json, recordings_in, write_recording_split
    from thermal_action.data.synth.config import SynthConfig
    from thermal_action.data.synth.write import generate_dataset
    from thermal_action.evaluation.io import read_predictions
    from thermal_action.training.datamodule import build_datamodule, build_datasets, class_counts
    from thermal_action.training.evaluate import evaluate_checkpoint
    from thermal_action.training.train import build_system, train

    t0 = time.perf_counter()
    out = Path(out_dir)
    dataset_dir, run_dir, eval_dir = out / "dataset", out / "run", out / "eval"
    for d in (dataset_dir, run_dir, eval_dir):
        if d.exists():
            shutil.rmtree(d)
    log.info("writing the synthetic dataset to %s", dataset_dir)
    generate_dataset(dataset_dir, SynthConfig(num_recordings=num_recordings, frames_per_recording=frames_per_recording,
                                              seed=seed, val_recordings=val_recordings))

    # Three splits by whole recordings, as with real data: the held-out room (val.json) is
    # only scored at the end; one training recording is the inner validation set that picks
    # the best epoch and calibrates the fall threshold, so the reported numbers saw no choice.
    ann_dir = dataset_dir / "annotations"
    kept, inner = write_recording_split(ann_dir / "train.json", recordings_in(read_json(ann_dir / "train.json"))[-1:],
                                        ann_dir / "train_inner.json", ann_dir / "val_inner.json")
    log.info("training on %s; inner validation %s; held out for the evaluation: val.json", kept, inner)
    cfg = load_config(configs.DEFAULT,
                      [f"data.root={dataset_dir}", f"seed={seed}", "data.train_ann=annotations/train_inner.json",
                       "data.val_ann=annotations/val_inner.json",
                       # A quarter of the synthetic recordings have no furniture boxes, as real
                       # ones may not: their layout is in the dataset's rooms.json, as a user's
                       # would be (without it one held-out recording in two had no room, and its
                       # people lying on the bed were read as fallen).
                       "data.rooms=rooms.json",
                       # The demo's own rooms are synthetic: no second synthetic set to mix in.
                       "data.synthetic_recordings=0", *(overrides or [])])
    test_ann = "annotations/val.json"
    train_ds, val_ds = build_datasets(cfg)
    test_keyframes = load_annotations(dataset_dir / test_ann, class_names=list(train_ds.class_names)).keyframes
    counts = class_counts(train_ds)
    # Calibrate: how many epochs fit in the budget on this machine.
    probe = build_system(cfg, list(train_ds.class_names), counts, ground_truth=None)
    dm = build_datamodule(cfg, probe.model.alpha, train_ds, val_ds)
    torch.manual_seed(seed)
    sec_per_clip = measure_seconds_per_clip(cfg, probe, dm)
    epoch_s = sec_per_clip * len(train_ds)
    epochs = max(2, min(cfg.optim.epochs, int(minutes * 60 * TRAIN_SHARE / max(epoch_s, 1e-6))))
    log.info("measured %.2f clips/s: %d epochs of %d clips fit in %.1f min", 1 / sec_per_clip, epochs,
             len(train_ds), minutes)
    cfg = replace_values(cfg, {
        "optim.epochs": epochs,
        # A safety net: a machine slower than measured still stops near the budget.
        "trainer.max_time_minutes": minutes * 1.15,
        # ... but never below the documented two epochs (a busy machine once cut the demo to one).
        "trainer.min_epochs": 2,
    })
    del probe, dm

    t_train = time.perf_counter()
    result = train(cfg, run_dir)
    train_seconds = time.perf_counter() - t_train
    ckpt = result.best_checkpoint or result.last_checkpoint
    metrics = evaluate_checkpoint(ckpt, dataset_dir, test_ann, eval_dir)
    prior = class_prior_metrics(counts, test_keyframes, list(train_ds.class_names), cfg.eval)
    picture = draw_validation_strip(dataset_dir, read_predictions(eval_dir / "predictions.json"), test_keyframes,
                                    list(train_ds.class_names), out / "validation_clip.png")
    demo = DemoResult(
        out_dir=out,
        dataset_dir=dataset_dir,
        run_dir=run_dir,
        eval_dir=eval_dir,
        picture=picture,
        metrics=_headline(metrics),
        prior_metrics=_headline(prior),
        train_clips_per_s=result.train_clips_per_s,
        epochs=result.epochs,
        train_seconds=train_seconds,
        total_seconds=time.perf_counter() - t0,
        fall_threshold=metrics["fall"]["threshold"],
    )
    summary = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(demo).items()}
    summary["measured_train_clips_per_s_before_training"] = 1 / sec_per_clip
    summary["planned_epochs"] = epochs
    summary["best_val_mAP_during_training"] = result.best_metric
    summary["fall_threshold"] = metrics["fall"]["threshold"]
    summary["fall_calibration"] = metrics["evaluated"].get("fall_calibration")
    # The inner validation recording's numbers of the last epoch (what picked the checkpoint).
    lines = result.val_summary.read_text().splitlines() if result.val_summary.is_file() else []
    summary["last_epoch_validation"] = json.loads(lines[-1]) if lines else None
    (out / "demo_summary.json").write_text(json.dumps(summary, indent=2))
    return demo
