"""Accuracy on real recordings: leave-one-recording-out over ``shared/thermal_real``.

Six real recordings (two rooms, 279 keyframes, 392 boxes). Each fold tests on one recording
and trains on the other five, of which one (the *inner validation* recording, always from a
session that keeps another recording in training) calibrates the fall operating threshold
(and picks the best epoch, where ``trainer.select_checkpoint=best``; the default keeps the final
one), exactly as ``thermal-action train`` does with its ``data.val_ann``. Nothing that is
chosen looks at the test recording. The six test sets' predictions are pooled into one
frame-mAP, fall AP, top-1 and macro-F1; fall precision and recall count each fold's alarms at
that fold's own stored threshold.

Runs (``--runs``), each a config plus overrides on the same folds:

- ``class_prior``: every box scored with the fold's training class frequencies (no model);
- ``default``: the shipped config ``cpu_default`` as it is;
- ``keyframe_only``: the default given only the keyframe (T=1, alpha 1);
- ``crop_cnn``: a small person-crop 3D CNN baseline (16x16 crops around each box, ~70k
  parameters), the simple baseline to beat;
- ablations of the choices in ``RUNS`` below.

Prints JSON (``--json PATH`` also writes it) and a Markdown table with the mean and the
spread over seeds, and the CPU seconds of one fold's training.

Usage::

    python benchmarks/bench_real.py                            # default + baselines, 3 seeds
    python benchmarks/bench_real.py --quick                    # one fold, one seed: a few minutes
    python benchmarks/bench_real.py --runs default whole_frame_2x --seeds 0 1 2 --jobs 2
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from thermal_action.data.annotations import recordings_in, subset_by_recording

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_description  # noqa: E402  (benchmarks/ is not a package)

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "thermal_real"
#: Shipped configs, by name (thermal_action/configs).
DEFAULT_CONFIG = "cpu_default"
FAST_CONFIG = "cpu_fast"

#: name -> (config: a shipped name or a file, overrides). None as config: the class prior (no model).
RUNS: dict[str, tuple[str | Path | None, list[str]]] = {
    "class_prior": (None, []),
    "default": (DEFAULT_CONFIG, []),
    # The default without the room: no person-to-zone geometry.
    "no_room": (DEFAULT_CONFIG, ["model.room=none"]),
    "keyframe_only": (DEFAULT_CONFIG, ["data.num_frames=1", "data.frame_stride=1"]),
    # The simple baseline: the plain person-crop CNN, without the default's TTA, group smoothing
    # and synthetic rooms.
    "crop_cnn": (DEFAULT_CONFIG, ["model.test_time_augmentation=1", "optim.group_smoothing=0.0",
                                  "data.synthetic_recordings=0"]),
    # Ablations of the default, one change each.
    "no_tta": (DEFAULT_CONFIG, ["model.test_time_augmentation=1"]),
    "no_group_smoothing": (DEFAULT_CONFIG, ["optim.group_smoothing=0.0"]),
    "target_recall_98": (DEFAULT_CONFIG, ["eval.fall_target_recall=0.98"]),
    "ensemble_4": (DEFAULT_CONFIG, ["model.ensemble=4"]),
    "tube_24": (DEFAULT_CONFIG, ["model.tube_size=24", "model.tube_context=2.0"]),
    "epochs_16": (DEFAULT_CONFIG, ["optim.epochs=16"]),
    "class_weights_inverse": (DEFAULT_CONFIG, ["optim.class_weights=inverse"]),
    # What the model sees of the room (the default: the person-to-zone features in the head).
    "room_masks": (DEFAULT_CONFIG, ["model.room=masks"]),
    "room_features": (DEFAULT_CONFIG, ["model.room=features"]),
    "room_masks_features": (DEFAULT_CONFIG, ["model.room=masks+features"]),
    "room_dropout_30": (DEFAULT_CONFIG, ["model.room=masks+features", "data.room_dropout=0.3"]),
    # The temporal window (the default: 64 frames at stride 2, ~10.8 s, 32 tube frames).
    "window_16": (DEFAULT_CONFIG, ["data.num_frames=16"]),
    "window_32": (DEFAULT_CONFIG, ["data.num_frames=32"]),
    "window_32_stride_1": (DEFAULT_CONFIG, ["data.num_frames=32", "data.frame_stride=1"]),
    "window_128_stride_4": (DEFAULT_CONFIG, ["data.num_frames=128", "data.frame_stride=4"]),
    # Whole-frame and SlowFast alternatives (10-20x the compute).
    "whole_frame_1x": (FAST_CONFIG, []),
    "whole_frame_2x": (FAST_CONFIG, ["data.scale=2.0"]),
    "slowfast_tube32": (FAST_CONFIG, ["model.tube_size=32"]),
}
#: Runs that first pretrain the model self-supervised (``thermal_action.training.pretrain``) on the fold's
#: training and inner-validation recordings (their frames, never their labels; never the test
#: recording), then train it from those weights: name -> (config, train overrides, pretrain overrides).
#: They start from the default before its synthetic mix, ensemble and final-epoch choice (what
#: docs/pretrained.md's pretraining table compares with).
SINGLE = ["model.ensemble=1", "data.synthetic_recordings=0", "trainer.select_checkpoint=best"]
PRETRAIN_RUNS: dict[str, tuple[str | Path, list[str], list[str]]] = {
    "ssl_pretrain": (DEFAULT_CONFIG, SINGLE, []),
    "ssl_pretrain_long": (DEFAULT_CONFIG, SINGLE, ["pretrain.epochs=12", "pretrain.temporal_jitter=12"]),
}
#: Runs that mix synthetic rooms into each fold's training batches: ``train`` generates
#: ``data.synthetic_recordings`` rooms (``thermal-action synth``: background ~18 °C, people ~7 °C
#: above it, boxes ~10x8 px, like the real ones' 18.0 °C, 6.8 °C and 10x10 px) into the run
#: directory, and ``data.extra_train_share`` of every batch is synthetic (each real training clip is
#: still seen once per epoch); the inner validation and the test recording stay real.
SYNTH = ["data.synthetic_recordings=24", "data.synthetic_frames=400", "data.synthetic_seed=7"]
MIX_RUNS: dict[str, tuple[str | Path, list[str]]] = {
    "no_synthetic": (DEFAULT_CONFIG, ["data.synthetic_recordings=0"]),
    "synth_mix_25": (DEFAULT_CONFIG, [*SYNTH, "data.extra_train_share=0.25"]),
    "synth_mix_50": (DEFAULT_CONFIG, [*SYNTH, "data.extra_train_share=0.5"]),
    "synth_mix_60": (DEFAULT_CONFIG, [*SYNTH, "data.extra_train_share=0.6"]),
    "synth_mix_75": (DEFAULT_CONFIG, [*SYNTH, "data.extra_train_share=0.75"]),
    "synth_mix_50_ensemble_2": (DEFAULT_CONFIG, [*SYNTH, "data.extra_train_share=0.5", "model.ensemble=2"]),
    "synth_48": (DEFAULT_CONFIG, ["data.synthetic_recordings=48"]),  # the default with twice the synthetic rooms
}
HEADLINE = ("frame_map", "fall_ap", "top1_accuracy", "macro_f1", "fall_precision", "fall_recall")


# ---------------------------------------------------------------------------- folds
def session_of(recording: str) -> str:
    return recording.rsplit("_", 1)[0]


def make_folds(recordings: list[str]) -> list[dict[str, Any]]:
    """One fold per recording: ``test``, inner ``val`` and ``train`` recordings.

    The inner validation recording is the next one (cyclically) whose session keeps at
    least one other recording in training, so every room stays in every training set.
    """
    folds = []
    n = len(recordings)
    for i, test in enumerate(recordings):
        rest = [r for r in recordings if r != test]
        val = None
        for k in range(1, n):
            cand = recordings[(i + k) % n]
            if cand == test:
                continue
            same = [r for r in rest if session_of(r) == session_of(cand) and r != cand]
            if same:
                val = cand
                break
        if val is None:
            raise ValueError(f"cannot pick an inner validation recording for fold {test}")
        folds.append({"test": test, "val": val, "train": [r for r in rest if r != val]})
    return folds


def time_ordered_folds(recordings: list[str]) -> list[dict[str, Any]]:
    """How users deploy: train on the earlier recordings of each room, test on the later ones.

    One fold: the last recording of every room is the test set, the one before the last of
    the room with most recordings calibrates (inner validation), the rest trains.
    """
    rooms: dict[str, list[str]] = {}
    for r in sorted(recordings):
        rooms.setdefault(session_of(r), []).append(r)
    test = [recs[-1] for recs in rooms.values() if len(recs) > 1]
    biggest = max(rooms.values(), key=len)
    val = biggest[-2]
    train = [r for r in sorted(recordings) if r not in test and r != val]
    return [{"test": test, "val": val, "train": train, "name": "later"}]


def with_context_objects(ann: dict, data_dir: Path) -> dict:
    """``ann`` plus the labelling tool's furniture and objects of each keyframe
    (``context_objects``, converted from ``raw_annotations/`` exactly as
    ``thermal-action convert-annotations`` converts them): the room a user's data carries."""
    from thermal_action.data.convert import convert_annotations

    with tempfile.TemporaryDirectory(prefix="bench_real_ctx_") as tmp:
        convert_annotations(data_dir / "raw_annotations", data_dir / "frames", Path(tmp))
        ctx = [c for split in ("train", "val")
               for c in json.loads((Path(tmp) / f"{split}.json").read_text()).get("context_objects", [])]
    ids = {im["id"] for im in ann["images"]}
    return {**ann, "context_objects": [c for c in ctx if c["image_id"] in ids]}


def write_fold_annotations(ann: dict, fold: dict, out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split in ("train", "val", "test"):
        recs = fold[split] if isinstance(fold[split], list) else [fold[split]]
        p = out / f"{split}.json"
        p.write_text(json.dumps(subset_by_recording(ann, recs)))
        paths[split] = p
    return paths


# ---------------------------------------------------------------------------- one fold
def class_prior_records(train_ann: Path, test_ann: Path) -> tuple[list[dict], list, list[str]]:
    import numpy as np

    from thermal_action.data.annotations import load_annotations
    from thermal_action.evaluation.io import make_prediction_records

    train, test = load_annotations(train_ann), load_annotations(test_ann)
    counts = np.zeros(len(train.class_names))
    for kf in train.keyframes:
        np.add.at(counts, np.asarray(kf.labels, dtype=np.int64), 1)
    prior = counts / counts.sum()
    image_ids = [kf.image_id for kf in test.keyframes for _ in range(len(kf.labels))]
    boxes = np.concatenate([np.asarray(kf.boxes_cxcywh_norm).reshape(-1, 4) for kf in test.keyframes])
    records = make_prediction_records(image_ids, boxes, np.tile(prior, (len(image_ids), 1)))
    return records, test.keyframes, list(train.class_names)


def run_fold(job: dict[str, Any]) -> dict[str, Any]:
    """Trains one (run, fold, seed) and returns the test fold's prediction records."""
    import torch

    torch.set_num_threads(job["threads"])
    logging.basicConfig(level=logging.WARNING)
    from thermal_action.config import load_config, replace_values
    from thermal_action.data.annotations import load_annotations

    paths = {k: Path(v) for k, v in job["paths"].items()}
    config, overrides = job["config"], job["overrides"]
    t0 = time.perf_counter()
    if config is None:
        records, keyframes, class_names = class_prior_records(paths["train"], paths["test"])
        return {**job, "records": records, "threshold": 0.5, "train_seconds": 0.0, "epochs": 0,
                "class_names": class_names}
    from thermal_action.training.evaluate import evaluate_checkpoint
    from thermal_action.training.train import train

    extra = [f"data.root={job['data_root']}", f"data.train_ann={paths['train']}", f"data.val_ann={paths['val']}",
             f"seed={job['seed']}", "trainer.progress_bar=false", "trainer.accelerator=cpu"]
    cfg = load_config(config, list(overrides) + extra + list(job["extra"]) + list(job.get("pretrain") or []))
    run_dir = Path(job["work"]) / f"{job['run']}_{job['fold']}_s{job['seed']}"
    if job.get("pretrain") is not None:
        from thermal_action.training.pretrain import pretrain

        frames = Path(job["data_root"]) / cfg.data.frames_dir
        pre = pretrain(cfg, [frames / f"{r}.h5" for r in job["pretrain_recordings"]], run_dir / "pretrain")
        cfg = replace_values(cfg, {"model.pretrained": str(pre.weights)})
    result = train(cfg, run_dir)
    seconds = time.perf_counter() - t0
    class_names = list(load_annotations(paths["test"]).class_names)
    out = {}
    for which in ("best", "last"):
        ckpt = result.best_checkpoint if which == "best" else result.last_checkpoint
        metrics = evaluate_checkpoint(ckpt, job["data_root"], paths["test"], run_dir / f"eval_test_{which}")
        records = json.loads((run_dir / f"eval_test_{which}" / "predictions.json").read_text())
        out[which] = {**job, "records": records, "threshold": metrics["fall"]["threshold"],
                      "train_seconds": seconds, "epochs": result.epochs, "class_names": class_names,
                      "fold_metrics": {k: metrics.get(k) for k in HEADLINE}}
    chosen = out[job["checkpoint"]]
    if job.get("run_events"):
        ckpt = result.best_checkpoint if job["checkpoint"] == "best" else result.last_checkpoint
        chosen["events"] = fold_events(Path(ckpt), job)
    chosen["checkpoint_path"] = str(result.best_checkpoint if job["checkpoint"] == "best"
                                    else result.last_checkpoint)
    other = "last" if job["checkpoint"] == "best" else "best"
    chosen["other"] = {"checkpoint": other, "records": out[other]["records"], "threshold": out[other]["threshold"]}
    return chosen


def fold_events(checkpoint: Path, job: dict[str, Any], rescored: bool = False) -> dict[str, Any]:
    """The deployed chain on a fold's test recording's bare frames: detector, tracker, model, alert
    rule; its fall events found, delays and false alerts. ``rescored``: a finished fold's checkpoint
    again, under today's default zone policy (``bed_threshold``; older checkpoints carry none)."""
    from thermal_action.alert_rule import AlertOverrides, AlertRule
    from thermal_action.inference.events import evaluate_events

    rule = AlertOverrides(bed_threshold=AlertRule().bed_threshold) if rescored else None
    out = checkpoint.parent.parent / ("events_rescored" if rescored else "events")
    report = evaluate_events(checkpoint, job["data_root"], job["paths"]["test"], out, alert_rule=rule)
    return {"per_recording": report["per_recording"], "events": report["events"],
            "false_alerts": report["false_alerts"], "alert_rule": report["alert_rule"], "rescored": rescored}


# ---------------------------------------------------------------------------- pooling
def pool(fold_results: list[dict[str, Any]], ann: dict) -> dict[str, Any]:
    """Pooled metrics over the test folds of one (run, seed)."""
    from thermal_action.data.annotations import load_annotations
    from thermal_action.evaluation.metrics import compute_metrics

    records, keyframes = [], []
    tp = fp = fn = 0
    class_names = fold_results[0]["class_names"]
    for r in fold_results:
        test = load_annotations(Path(r["paths"]["test"]))
        keyframes.extend(test.keyframes)
        records.extend(r["records"])
        m = compute_metrics(r["records"], test.keyframes, class_names, fall_threshold=r["threshold"])
        tp, fp, fn = tp + m["fall"]["tp"], fp + m["fall"]["fp"], fn + m["fall"]["fn"]
    m = compute_metrics(records, keyframes, class_names)
    lying = lying_confusion(m["confusion_matrix"], class_names)
    m["fall_precision"] = tp / (tp + fp) if tp + fp else None
    m["fall_recall"] = tp / (tp + fn) if tp + fn else None
    events = pool_events([r["events"] for r in fold_results if isinstance(r.get("events"), dict)])
    return {**{k: m.get(k) for k in HEADLINE}, "ap_per_class": m["ap_per_class"], **({"events": events} if events else {}),
            "fall_counts": {"tp": tp, "fp": fp, "fn": fn}, "lying_confusion": lying,
            "thresholds": [r["threshold"] for r in fold_results],
            "train_seconds_per_fold": statistics.fmean(r["train_seconds"] for r in fold_results),
            "epochs": [r["epochs"] for r in fold_results]}


def pool_events(per_fold: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Fall events of all test recordings of one (run, seed): found, delays, false alerts."""
    from thermal_action.evaluation.events import EventReport, pool_reports

    if not per_fold:
        return None
    return pool_reports(EventReport.from_dict(r) for f in per_fold for r in f["per_recording"].values()).to_dict()


FALL, BED = "lying down-lying with risk", "lying down-lying on the bed/couch"


def lying_confusion(cm: list[list[int]], class_names: list[str]) -> dict[str, Any]:
    """Bed versus floor: of the fall boxes and of the bed-lying boxes, how many have each as top-1."""
    f, b = class_names.index(FALL), class_names.index(BED)
    out = {}
    for name, i in (("fall", f), ("bed", b)):
        row = cm[i]
        out[name] = {"boxes": int(sum(row)), "top1_fall": int(row[f]), "top1_bed": int(row[b]),
                     "top1_other": int(sum(row) - row[f] - row[b])}
    return out


def summarize(values: list[float | None]) -> dict[str, float | None]:
    vals = [v for v in values if v is not None]
    if not vals:
        return {"mean": None, "min": None, "max": None}
    return {"mean": statistics.fmean(vals), "min": min(vals), "max": max(vals)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the thermal_real folder")
    parser.add_argument("--runs", nargs="*", default=["class_prior", "default", "keyframe_only", "crop_cnn"])
    parser.add_argument("--config", type=Path, help="add a run 'custom' from this config")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="overrides for every trained run (e.g. optim.epochs=6)")
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--folds", nargs="*", help="test recordings (default: all six)")
    parser.add_argument("--quick", action="store_true", help="one fold (SL14_R2), seed 0")
    parser.add_argument("--split", choices=("lofo", "time"), default="lofo",
                        help="lofo: leave one recording out (six folds); time: train on the earlier recordings of "
                             "each room, test on the later ones (how users deploy)")
    parser.add_argument("--events", action="store_true",
                        help="also run each fold's test recording through the built-in detector, tracker, model and "
                             "alert rule and count the fall events found, their delay and the false alerts")
    parser.add_argument("--rescore-events", action="store_true",
                        help="with --events and a --workdir: run the finished folds' checkpoints through today's "
                             "detector, tracker, event matching and default zone policy again (no training)")
    parser.add_argument("--no-context", action="store_true",
                        help="leave out the furniture (context_objects) of the raw annotations")
    parser.add_argument("--checkpoint", choices=("best", "last"), default="best")
    parser.add_argument("--jobs", type=int, default=2, help="folds trained at once (processes)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads per job (0: cores / jobs)")
    parser.add_argument("--json", type=Path, help="also write the JSON here")
    parser.add_argument("--workdir", type=Path, help="keep runs here (default: a temp dir)")
    args = parser.parse_args(argv)

    runs = dict(RUNS)
    runs.update({name: (config, overrides) for name, (config, overrides, _) in PRETRAIN_RUNS.items()})
    runs.update(MIX_RUNS)
    if args.config:
        runs["custom"] = (args.config, [])
        if "custom" not in args.runs:
            args.runs.append("custom")
    for name in args.runs:
        if name not in runs:
            parser.error(f"unknown run {name!r} (known: {', '.join(runs)})")
    if args.quick:
        args.folds, args.seeds = args.folds or ["SL14_R2"], [0]
    ann_path = args.data / "lofo" / "all.json"
    if not ann_path.is_file():
        parser.error(f"{ann_path} not found: pass --data pointing at the thermal_real folder")
    ann = json.loads(ann_path.read_text())
    if not args.no_context:
        ann = with_context_objects(ann, args.data)
    folds = make_folds(recordings_in(ann)) if args.split == "lofo" else time_ordered_folds(recordings_in(ann))
    if args.folds:
        folds = [f for f in folds if f["test"] in args.folds]
    threads = args.threads or max(1, (os.cpu_count() or 2) // max(1, args.jobs))

    with tempfile.TemporaryDirectory(prefix="bench_real_") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        jobs = []
        for fold in folds:
            fold_name = fold.get("name", fold["test"])
            paths = write_fold_annotations(ann, fold, work / "folds" / fold_name)
            for name in args.runs:
                config, overrides = runs[name]
                for seed in args.seeds if config is not None else [0]:
                    jobs.append({"run": name, "fold": fold_name, "seed": seed, "config": config,
                                 "overrides": overrides, "extra": args.set, "paths": {k: str(v) for k, v in paths.items()},
                                 "data_root": str(args.data), "work": str(work), "threads": threads,
                                 "checkpoint": args.checkpoint, "run_events": args.events,
                                 "pretrain": PRETRAIN_RUNS[name][2] if name in PRETRAIN_RUNS else None,
                                 "pretrain_recordings": [*fold["train"], fold["val"]]})
        t0 = time.perf_counter()
        done: list[dict[str, Any]] = []
        # Every finished (run, fold, seed) is kept in the work directory; a rerun with the same
        # --workdir takes them from there instead of training them again.
        finished_path = work / "finished.jsonl"
        if finished_path.is_file():
            key = lambda j: (j["run"], j["fold"], j["seed"])  # noqa: E731
            finished = {key(r): r for r in map(json.loads, finished_path.read_text().splitlines()) if r}
            done = [finished[key(j)] for j in jobs if key(j) in finished]
            jobs = [j for j in jobs if key(j) not in finished]
            if done:
                print(f"# {len(done)} finished folds taken from {finished_path}", file=sys.stderr)
            if args.events and args.rescore_events:
                for r in done:
                    if r.get("checkpoint_path"):
                        r["events"] = fold_events(Path(r["checkpoint_path"]), r, rescored=True)

        def keep(r: dict[str, Any]) -> None:
            done.append(r)
            with finished_path.open("a") as f:
                f.write(json.dumps(r, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)) + "\n")
        if args.jobs > 1:
            with mp.get_context("spawn").Pool(args.jobs) as pool_:
                for r in pool_.imap_unordered(run_fold, jobs):
                    keep(r)
                    _progress(r, t0)
        else:
            for job in jobs:
                r = run_fold(job)
                keep(r)
                _progress(r, t0)

        results: dict[str, Any] = {}
        for name in args.runs:
            if not any(r["run"] == name for r in done):
                continue
            per_seed = []
            for seed in sorted({r["seed"] for r in done if r["run"] == name}):
                per_seed.append(pool([r for r in done if r["run"] == name and r["seed"] == seed], ann))
            results[name] = {k: summarize([p[k] for p in per_seed]) for k in (*HEADLINE, "train_seconds_per_fold")}
            results[name]["per_seed"] = per_seed
            results[name]["overrides"] = runs[name][1] + (args.set if runs[name][0] else [])
            results[name]["config"] = None if runs[name][0] is None else str(runs[name][0])
            mine = [r for r in done if r["run"] == name and "other" in r]
            if mine:
                other = mine[0]["other"]["checkpoint"]
                per_seed = []
                for seed in sorted({r["seed"] for r in mine}):
                    rs = [{**r, "records": r["other"]["records"], "threshold": r["other"]["threshold"]}
                          for r in mine if r["seed"] == seed]
                    per_seed.append(pool(rs, ann))
                alt = {k: summarize([p[k] for p in per_seed]) for k in (*HEADLINE, "train_seconds_per_fold")}
                results[f"{name}@{other}"] = {**alt, "per_seed": per_seed, "overrides": results[name]["overrides"],
                                              "config": results[name]["config"], "checkpoint": other}

    out = {
        "benchmark": ("leave-one-recording-out" if args.split == "lofo" else "time-ordered (earlier -> later)")
        + " on real recordings (thermal_real)" + (" without furniture" if args.no_context else ", with furniture"),
        "machine": {**cpu_description(), "threads_per_job": threads, "jobs": args.jobs},
        "folds": folds,
        "seeds": args.seeds,
        "checkpoint": args.checkpoint,
        "wall_seconds": round(time.perf_counter() - t0, 1),
        "results": results,
    }
    emit(out, args.json, markdown_table(out))
    return 0


def emit(out: dict[str, Any], json_path: Path | None, table: str) -> None:
    """Prints the JSON (and writes it to ``json_path``), then the Markdown table."""
    text = json.dumps(out, indent=2)
    print(text)
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(text)
    print(table)


def _progress(r: dict[str, Any], t0: float) -> None:
    fm = r.get("fold_metrics") or {}
    mp_ = fm.get("frame_map")
    print(f"# {r['run']} fold {r['fold']} seed {r['seed']}: fold mAP {mp_ if mp_ is None else round(mp_, 3)}, "
          f"fall AP {fm.get('fall_ap')}, thr {r['threshold']:.3f}, {r['train_seconds']:.0f} s "
          f"({time.perf_counter() - t0:.0f} s elapsed)", file=sys.stderr, flush=True)


def markdown_table(out: dict[str, Any]) -> str:
    def fmt(v: dict[str, float | None], digits: int = 3) -> str:
        if v["mean"] is None:
            return "-"
        spread = f" ({v['min']:.{digits}f}-{v['max']:.{digits}f})" if v["min"] != v["max"] else ""
        return f"{v['mean']:.{digits}f}{spread}"

    lines = [f"\nCPU: {out['machine']['cpu']} ({', '.join(out['machine']['isa_flags'])}); "
             f"{out['machine']['jobs']} jobs x {out['machine']['threads_per_job']} threads; seeds {out['seeds']}; "
             f"{len(out['folds'])} folds; {out['wall_seconds']:.0f} s in all",
             "",
             "| run | frame-mAP | fall AP | top-1 | macro-F1 | fall P | fall R | falls read as bed (top-1) "
             "| CPU s per fold |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, r in out["results"].items():
        secs = r["train_seconds_per_fold"]["mean"]
        as_bed = [p["lying_confusion"]["fall"] for p in r["per_seed"] if "lying_confusion" in p]
        bed = (f"{statistics.fmean(c['top1_bed'] for c in as_bed):.1f} of {as_bed[0]['boxes']}"
               if as_bed and as_bed[0]["boxes"] else "-")
        lines.append(f"| {name} | " + " | ".join(fmt(r[k]) for k in HEADLINE)
                     + f" | {bed} | {'-' if not secs else f'{secs:.0f}'} |")
    with_events = {n: r for n, r in out["results"].items() if any("events" in p for p in r["per_seed"])}
    if with_events:
        lines += ["", "Fall events (bare frames: built-in detector, tracker, model, alert rule), per seed:", "",
                  "| run | seed | falls found | delay median / max (s) | false alerts | sensor-hours |",
                  "|---|---|---|---|---|---|"]
        for name, r in with_events.items():
            for seed, p in zip(out["seeds"], r["per_seed"]):
                e = p.get("events")
                if not e:
                    continue
                med, mx = e["delay_s"]["median"], e["delay_s"]["max"]
                delay = "-" if med is None else f"{med:.1f} / {mx:.1f}"
                lines.append(f"| {name} | {seed} | {e['found']}/{e['events']} | {delay} | {e['false_alerts']} | "
                             f"{e['sensor_hours']:.3f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
