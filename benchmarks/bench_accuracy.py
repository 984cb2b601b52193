"""Accuracy on held-out recordings: the CPU default, a keyframe-only model, the class prior.

Real keyframes a second apart share their labels, so only whole held-out recordings give an
honest number. This benchmark makes a synthetic dataset whose validation recordings are a
room of their own, trains each configuration from the same seed, and evaluates every one on
the held-out recordings with the same frame-mAP code as ``thermal-action evaluate``:

- ``default``: the shipped config ``cpu_default`` as it is;
- ``keyframe_only``: the same model given only the keyframe (T=1, alpha 1), so the value of
  temporal context is visible;
- ``class_prior``: every box scored with the training class frequencies (no model);
- ablations that each change one choice of the default (normalisation, input scale, clip
  length, variant) or drops the overhead-sensor augmentations, which is how the default
  was picked.

Each training run repeats with ``--seeds`` seeds; the table gives the mean (and the spread).
Prints JSON (``--json PATH`` also writes it) and a Markdown table.

Usage::

    python benchmarks/bench_accuracy.py                  # everything (~20 min on 2 cores)
    python benchmarks/bench_accuracy.py --runs default keyframe_only --epochs 4
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from thermal_action.alert_rule import AlertOverrides, resolve_alert_rule
from thermal_action.config import load_config
from thermal_action.data.annotations import load_annotations
from thermal_action.data.synth.config import SynthConfig
from thermal_action.data.synth.write import generate_dataset
from thermal_action.evaluation.io import make_prediction_records
from thermal_action.evaluation.metrics import compute_metrics

DEFAULT_CONFIG = "cpu_default"  # the shipped config, by name

#: Each run: overrides on top of the CPU default.
RUNS: dict[str, list[str]] = {
    "default": [],
    "keyframe_only": ["data.num_frames=1", "data.frame_stride=1", "model.alpha=1"],
    "fixed_normalization": ["data.normalization=fixed"],
    "scale_2x": ["data.scale=2.0"],
    "clip_32_frames": ["data.num_frames=32", "data.frame_stride=1"],
    "variant_small": ["model.variant=slowfast_small"],
    "no_flips_rotations": ["data.flip=false", "data.rotate=false"],
}
HEADLINE = ("frame_map", "top1_accuracy", "macro_f1", "fall_precision", "fall_recall")


def class_prior(root: Path, cfg) -> dict:
    """Scores every held-out box with the training class frequencies."""
    train = load_annotations(root / cfg.data.train_ann)
    val = load_annotations(root / cfg.data.val_ann)
    counts = np.zeros(len(train.class_names))
    for kf in train.keyframes:
        np.add.at(counts, np.asarray(kf.labels, dtype=np.int64), 1)
    prior = counts / counts.sum()
    image_ids = [kf.image_id for kf in val.keyframes for _ in range(len(kf.labels))]
    boxes = np.concatenate([np.asarray(kf.boxes_cxcywh_norm).reshape(-1, 4) for kf in val.keyframes])
    records = make_prediction_records(image_ids, boxes, np.tile(prior, (len(image_ids), 1)))
    # A prior is not trained, so nothing calibrated its threshold: the config's, else the default rule's
    # (eval.fall_threshold is null by default, which compute_metrics cannot take).
    threshold = resolve_alert_rule(None, AlertOverrides(threshold=cfg.eval.fall_threshold)).threshold
    return compute_metrics(records, val.keyframes, val.class_names, iou_threshold=cfg.eval.iou_threshold,
                           fall_class=cfg.eval.fall_class, fall_threshold=threshold)


def train_and_evaluate(root: Path, work: Path, name: str, overrides: list[str], seed: int, epochs: int | None) -> dict:
    from thermal_action.training.evaluate import evaluate_checkpoint
    from thermal_action.training.train import train

    extra = [f"data.root={root}", f"seed={seed}", "trainer.progress_bar=false"]
    if epochs:
        extra.append(f"optim.epochs={epochs}")
    cfg = load_config(DEFAULT_CONFIG, overrides + extra)
    run_dir = work / f"{name}_s{seed}"
    result = train(cfg, run_dir)
    ckpt = result.best_checkpoint or result.last_checkpoint
    metrics = evaluate_checkpoint(ckpt, root, cfg.data.val_ann, run_dir / "eval")
    return {
        **{k: metrics.get(k) for k in HEADLINE},
        "train_seconds": round(result.seconds, 1),
        "train_clips_per_s": result.train_clips_per_s,
        "epochs": result.epochs,
    }


def summarize(values: list[float | None]) -> dict:
    vals = [v for v in values if v is not None]
    if not vals:
        return {"mean": None, "min": None, "max": None}
    return {"mean": statistics.fmean(vals), "min": min(vals), "max": max(vals)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="*", default=list(RUNS), choices=list(RUNS))
    parser.add_argument("--seeds", type=int, nargs="*", default=[0])
    parser.add_argument("--epochs", type=int, default=None, help="override optim.epochs of the default")
    parser.add_argument("--recordings", type=int, default=10)
    parser.add_argument("--val-recordings", type=int, default=3)
    parser.add_argument("--frames", type=int, default=400)
    parser.add_argument("--data-seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the JSON here")
    parser.add_argument("--workdir", type=Path, help="keep datasets and runs here (default: a temp dir)")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench_accuracy_") as tmp:
        work = args.workdir or Path(tmp)
        root = work / "dataset"
        generate_dataset(root, SynthConfig(num_recordings=args.recordings, frames_per_recording=args.frames,
                                           seed=args.data_seed, val_recordings=args.val_recordings),
                         overwrite=True)  # --workdir is the benchmark's own scratch space
        base = load_config(DEFAULT_CONFIG, [f"data.root={root}"])
        results: dict[str, dict] = {"class_prior": {k: class_prior(root, base).get(k) for k in HEADLINE}}
        per_seed: dict[str, list[dict]] = {}
        for name in args.runs:
            for seed in args.seeds:
                t0 = time.perf_counter()
                r = train_and_evaluate(root, work, name, RUNS[name], seed, args.epochs)
                per_seed.setdefault(name, []).append(r)
                print(f"# {name} seed {seed}: mAP {r['frame_map']:.3f} ({time.perf_counter() - t0:.0f} s)",
                      file=sys.stderr, flush=True)
            runs = per_seed[name]
            results[name] = {k: summarize([r[k] for r in runs]) for k in (*HEADLINE, "train_seconds", "train_clips_per_s")}
            results[name]["overrides"] = RUNS[name]

    out = {
        "benchmark": "accuracy on held-out synthetic recordings",
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
        "dataset": {"recordings": args.recordings, "val_recordings": args.val_recordings, "frames": args.frames,
                    "seed": args.data_seed},
        "seeds": args.seeds,
        "epochs": args.epochs or base.optim.epochs,
        "results": results,
    }
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)

    def fmt(v):
        if isinstance(v, dict):
            if v["mean"] is None:
                return "-"
            spread = f" ({v['min']:.3f}-{v['max']:.3f})" if len(args.seeds) > 1 else ""
            return f"{v['mean']:.3f}{spread}"
        return "-" if v is None else f"{v:.3f}"

    print("\n| run | frame-mAP | top-1 | macro-F1 | fall P | fall R | train s | clips/s |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        secs = fmt(r.get("train_seconds")) if "train_seconds" in r else "-"
        cps = fmt(r.get("train_clips_per_s")) if "train_clips_per_s" in r else "-"
        print(f"| {name} | " + " | ".join(fmt(r[k]) for k in HEADLINE) + f" | {secs} | {cps} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
