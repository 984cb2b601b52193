"""Active learning on real recordings: does the labelling queue buy accuracy with fewer labels?

A simulated labeller on the six recordings of ``shared/thermal_real``, leave-one-recording-out
with ``bench_real.py``'s folds (test recording, inner validation recording, training
recordings). Of each fold's training recordings (the *pool*), a seeded random 20% of the
keyframes starts labelled; each round a strategy picks the next 20% of the pool's keyframes,
the labeller "labels" them (their annotations are revealed), the model is retrained from
scratch on what is labelled and scored on the test recording:

- ``queue``: :func:`thermal_action.active.rank_keyframes` with ``strategy="queue"`` on the
  previous round's model (entropy + ensemble disagreement, scarcity boost, neighbours
  discounted, 10% of each round drawn at random: the product's queue as shipped);
- ``random``: a seeded random choice;
- ``rarest``: the rarest predicted class first (``strategy="rarest"``, no random slice);
- ``full``: every keyframe of the pool labelled (the reference), and the class prior.

Budgets: 20% -> 40% -> 60% of the pool's keyframes (and 100%). The inner validation recording
stays fully labelled in every run (it only calibrates the fall threshold: the config keeps
the final epoch). The people's boxes are the annotated ones (the simulated labeller draws the
boxes of the keyframes it is shown; the model scores those boxes).

Learning from what is not labelled, at the 20% start (and, ``--options-full``, at 100%): ``carry`` (labels carried
along a track between two labelled keyframes that agree, ``data.carry_labels``) and ``pseudo``
(pseudo-labels of the 20% model on the pool recordings' unlabelled frames, found by the
built-in detector and tracker, ``data.pseudo_label_checkpoint``), each against the same
budget without.

Compute: the simulation trains a cheaper config than the shipped default (``--set``; by default
``cpu_default`` without its synthetic rooms, without test-time augmentation, 6 epochs,
validated once at the end); the full-label reference uses the same cheap config, so the
comparison is like for like, and its numbers are below the shipped default's.

Every finished run is kept in ``--workdir`` (``done/<fold>_s<seed>_<run>.json``); a rerun with
the same workdir takes it from there. Results are pooled over the six test recordings per
(run, seed) as in ``bench_real.py``; the JSON and the table are rewritten after every
finished fold.

Usage::

    python benchmarks/bench_active.py --workdir /tmp/bench_active --seeds 0 --json benchmarks/results/bench_active.json
    python benchmarks/bench_active.py --quick        # one fold, seed 0, no options
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_real import (  # noqa: E402  (benchmarks/ is not a package)
    DEFAULT_CONFIG,
    DEFAULT_DATA,
    class_prior_records,
    emit,
    make_folds,
    pool,
    summarize,
    with_context_objects,
    write_fold_annotations,
)
from machine import cpu_description  # noqa: E402

from thermal_action.data.annotations import recordings_in  # noqa: E402

#: The simulation's cheaper training (see the module docstring).
CHEAP = ["data.synthetic_recordings=0", "model.test_time_augmentation=1", "optim.epochs=6",
         "trainer.check_val_every_n_epoch=6", "trainer.num_sanity_val_steps=0", "eval.plots=false"]
SHARES = (0.2, 0.4, 0.6)
STRATEGIES = ("queue", "random", "rarest")
#: Options against the same budget without: name -> overrides ({start} is the 20% run's checkpoint).
OPTIONS = {
    "carry": ["data.carry_labels=2"],
    "pseudo": ["data.pseudo_label_checkpoint={start}"],
    "pseudo_50": ["data.pseudo_label_checkpoint={start}", "data.pseudo_label_threshold=0.5"],
    # The control for carry: the same labels, about as many optimiser steps as carry's ~2.1x
    # clips give (epochs are fixed, so more clips are also more steps).
    "longer": ["optim.epochs=13", "trainer.check_val_every_n_epoch=13"],
}
HEADLINE = ("frame_map", "fall_ap", "top1_accuracy", "macro_f1")


# ---------------------------------------------------------------------------- one fold and seed
def _train_and_test(ctx: dict[str, Any], name: str, labelled: list[str], overrides: list[str]) -> dict[str, Any]:
    """Trains the cheap config on the ``labelled`` pool keyframes (+ the validation recording)
    and scores the test recording."""
    from thermal_action.config import load_config
    from thermal_action.training.evaluate import evaluate_checkpoint
    from thermal_action.training.train import train

    run_dir = Path(ctx["work"]) / "runs" / f"{ctx['fold']}_s{ctx['seed']}_{name}"
    run_dir.mkdir(parents=True, exist_ok=True)
    train_ann = json.loads(Path(ctx["paths"]["train"]).read_text())
    keep = set(labelled)
    train_ann = {**train_ann, "images": [im for im in train_ann["images"] if im["id"] in keep],
                 "annotations": [a for a in train_ann["annotations"] if a["image_id"] in keep],
                 "context_objects": [c for c in train_ann.get("context_objects", []) if c["image_id"] in keep]}
    (run_dir / "labelled.json").write_text(json.dumps(train_ann))
    extra = [f"data.root={ctx['data_root']}", f"data.train_ann={run_dir / 'labelled.json'}",
             f"data.val_ann={ctx['paths']['val']}", f"seed={ctx['seed']}", "trainer.progress_bar=false",
             "trainer.accelerator=cpu"]
    t0 = time.perf_counter()
    if ctx["config"] is None:
        records, _, class_names = class_prior_records(run_dir / "labelled.json", Path(ctx["paths"]["test"]))
        return {"records": records, "threshold": 0.5, "train_seconds": 0.0, "epochs": 0,
                "class_names": class_names, "checkpoint": None}
    cfg = load_config(ctx["config"], [*ctx["cheap"], *overrides, *extra])
    result = train(cfg, run_dir / "train")
    seconds = time.perf_counter() - t0
    metrics = evaluate_checkpoint(result.best_checkpoint, ctx["data_root"], ctx["paths"]["test"], run_dir / "test",
                                  overrides=["eval.plots=false"])
    records = json.loads((run_dir / "test" / "predictions.json").read_text())
    from thermal_action.data.annotations import load_annotations

    return {"records": records, "threshold": metrics["fall"]["threshold"], "train_seconds": seconds,
            "epochs": result.epochs, "class_names": list(load_annotations(ctx["paths"]["test"]).class_names),
            "checkpoint": str(result.best_checkpoint), "train_clips": _train_clips(run_dir / "train"),
            "fold_metrics": {k: metrics.get(k) for k in HEADLINE}}


def _train_clips(run_dir: Path) -> dict[str, int] | None:
    """Training keyframes of the run by label origin (annotations, carried, pseudo)."""
    info = run_dir / "run_info.jsonl"
    if not info.is_file():
        return None
    rows = [json.loads(line) for line in info.read_text().splitlines() if line.strip()]
    return rows[-1].get("train_keyframes") if rows else None


def _select(ctx: dict[str, Any], strategy: str, checkpoint: str | None, labelled: list[str],
            pool_kfs: list[Any], n: int, round_: int, cache: dict[str, Any]) -> list[str]:
    """The next ``n`` keyframes of the pool by ``strategy``, via ``rank_keyframes``."""
    from thermal_action.active import KeyframeScores, rank_keyframes, score_keyframes

    done = set(labelled)
    lab_kfs = [k for k in pool_kfs if k.image_id in done]
    todo = [k for k in pool_kfs if k.image_id not in done]
    if strategy == "random":
        k = 14
        scores = [KeyframeScores(kf.sensor_id, kf.frame_idx, kf.timestamp / 1000, np.full((kf.num_boxes, k), 1 / k),
                                 kf.track_ids) for kf in todo]
    else:
        if checkpoint not in cache:
            from thermal_action.inference.predictor import Predictor

            cache.clear()
            cache[checkpoint] = score_keyframes(Predictor.from_checkpoint(checkpoint), todo, ctx["frames_dir"])
        scores = [s for s in cache[checkpoint] if (s.recording, s.frame_index) not in
                  {(k.sensor_id, k.frame_idx) for k in lab_kfs}]
    picked = rank_keyframes(lab_kfs, scores, strategy=strategy, n=n, seed=1000 * ctx["seed"] + round_,
                            random_share=0.1 if strategy == "queue" else 0.0)
    by_key = {(k.sensor_id, k.frame_idx): k.image_id for k in todo}
    chosen = [by_key[(s.recording, s.frame_index)] for s in picked]
    if len(chosen) < n:  # keyframes without people are never suggested: fill at random
        rest = sorted(set(by_key.values()) - set(chosen))
        rng = np.random.default_rng([ctx["seed"], round_, 7])
        chosen += list(rng.choice(rest, size=min(n - len(chosen), len(rest)), replace=False))
    return chosen


def run_chain(ctx: dict[str, Any]) -> list[dict[str, Any]]:
    """Every run of one (fold, seed), in order; finished runs are read back from the workdir."""
    import torch

    torch.set_num_threads(ctx["threads"])
    logging.basicConfig(level=logging.WARNING)
    from thermal_action.data.annotations import load_annotations

    done_dir = Path(ctx["work"]) / "done"
    done_dir.mkdir(parents=True, exist_ok=True)
    pool_kfs = [k for k in load_annotations(ctx["paths"]["train"]).keyframes if k.sensor_id in ctx["train_recs"]]
    ids = sorted(k.image_id for k in pool_kfs)
    step = int(round(SHARES[0] * len(ids)))
    rng = np.random.default_rng([ctx["seed"], ctx["fold_index"]])
    start = sorted(rng.choice(ids, size=step, replace=False).tolist())
    out: list[dict[str, Any]] = []
    seen: dict[str, dict[str, Any]] = {}
    cache: dict[str, Any] = {}

    def run(name: str, labelled: list[str], overrides: list[str] = (), config: Any = "default",
            selected: dict | None = None) -> dict[str, Any]:
        if name in seen:
            return seen[name]
        path = done_dir / f"{ctx['fold']}_s{ctx['seed']}_{name}.json"
        if path.is_file():
            r = json.loads(path.read_text())
        else:
            c = {**ctx, "config": ctx["config"] if config == "default" else config}
            t0 = time.perf_counter()
            r = {"fold": ctx["fold"], "seed": ctx["seed"], "run": name, "labelled": sorted(labelled),
                 "labelled_keyframes": len(labelled), "pool_keyframes": len(ids),
                 "labelled_boxes": sum(k.num_boxes for k in pool_kfs if k.image_id in set(labelled)),
                 "overrides": list(overrides), "paths": ctx["paths"], **(selected or {}),
                 **_train_and_test(c, name, labelled, list(overrides))}
            r["wall_seconds"] = time.perf_counter() - t0
            path.write_text(json.dumps(r, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))
            fm = r.get("fold_metrics") or {}
            print(f"# {ctx['fold']} s{ctx['seed']} {name}: {len(labelled)}/{len(ids)} keyframes, fold mAP "
                  f"{fm.get('frame_map')}, {r['wall_seconds']:.0f} s", file=sys.stderr, flush=True)
        out.append(r)
        seen[name] = r
        return r

    runs = ctx["runs"]
    if "class_prior" in runs:
        run("prior_20", start, config=None)
        run("prior_100", ids, config=None)
    first = run("start_20", start)
    if "full" in runs:
        run("full_100", ids)
    state = {s: (start, first["checkpoint"]) for s in STRATEGIES if s in runs}
    for round_, share in enumerate(SHARES[1:], start=1):
        for s in list(state):
            labelled, ckpt = state[s]
            name = f"{s}_{int(round(share * 100))}"
            path = done_dir / f"{ctx['fold']}_s{ctx['seed']}_{name}.json"
            if path.is_file():
                r = run(name, [])
            else:
                t0 = time.perf_counter()
                new = _select(ctx, s, ckpt, labelled, pool_kfs, step, round_, cache)
                r = run(name, sorted(set(labelled) | set(new)),
                        selected={"picked": new, "select_seconds": time.perf_counter() - t0})
            state[s] = (r["labelled"], r["checkpoint"])
    for opt in ctx["options"]:
        overrides = [o.format(start=first["checkpoint"]) for o in OPTIONS[opt]]
        run(f"{opt}_20", start, overrides)
    for opt in ctx["options_full"]:
        full_ckpt = run("full_100", ids)["checkpoint"]
        run(f"{opt}_100", ids, [o.format(start=full_ckpt) for o in OPTIONS[opt]])
    return out


# ---------------------------------------------------------------------------- pooling
def aggregate(done: list[dict[str, Any]], ann: dict) -> dict[str, Any]:
    """Per run: pooled metrics per seed over the folds that have it, their mean and spread."""
    results: dict[str, Any] = {}
    names = sorted({r["run"] for r in done}, key=_run_order)
    classes = [c["name"] for c in sorted(ann["categories"], key=lambda c: c["id"])]
    boxes: dict[str, list[int]] = {}
    for a in ann["annotations"]:
        boxes.setdefault(a["image_id"], []).append(int(a["category_id"]))
    for name in names:
        per_seed = []
        mine = [r for r in done if r["run"] == name]
        for seed in sorted({r["seed"] for r in mine}):
            rs = [r for r in mine if r["seed"] == seed]
            p = pool(rs, ann)
            p.update(seed=seed, folds=sorted(r["fold"] for r in rs),
                     labelled_keyframes=sum(r["labelled_keyframes"] for r in rs),
                     pool_keyframes=sum(r["pool_keyframes"] for r in rs),
                     labelled_boxes=sum(r["labelled_boxes"] for r in rs),
                     per_fold={r["fold"]: (r.get("fold_metrics") or {}).get("frame_map") for r in rs})
            if all("picked" in r for r in rs):
                # What the strategy chose this round: boxes per class of its picked keyframes.
                picked = [c for r in rs for i in r["picked"] for c in boxes.get(i, [])]
                p["picked_boxes"] = {name: picked.count(k) for k, name in enumerate(classes) if picked.count(k)}
            per_seed.append(p)
        results[name] = {k: summarize([p[k] for p in per_seed]) for k in (*HEADLINE, "train_seconds_per_fold")}
        results[name]["label_share"] = per_seed[0]["labelled_keyframes"] / per_seed[0]["pool_keyframes"]
        results[name]["per_seed"] = per_seed
        results[name]["overrides"] = mine[0]["overrides"]
    return results


def _run_order(name: str) -> tuple[int, int, str]:
    kind, _, pct = name.rpartition("_")
    order = ["prior", "start", "queue", "random", "rarest", "full", "longer", "carry", "pseudo", "pseudo_50"]
    return (order.index(kind) if kind in order else 99, int(pct) if pct.isdigit() else 0, name)


def paired(results: dict[str, Any], a: str, b: str) -> dict[str, Any] | None:
    """``a`` minus ``b`` frame-mAP per seed (pooled) and per fold, where both ran."""
    if a not in results or b not in results:
        return None
    sa = {p["seed"]: p for p in results[a]["per_seed"]}
    sb = {p["seed"]: p for p in results[b]["per_seed"]}
    seeds = sorted(set(sa) & set(sb))
    pooled = [sa[s]["frame_map"] - sb[s]["frame_map"] for s in seeds]
    folds = [sa[s]["per_fold"][f] - sb[s]["per_fold"][f] for s in seeds for f in sa[s]["per_fold"]
             if f in sb[s]["per_fold"] and sa[s]["per_fold"][f] is not None and sb[s]["per_fold"][f] is not None]
    return {"pooled_by_seed": pooled, "fold_wins": sum(d > 0 for d in folds), "fold_losses": sum(d < 0 for d in folds),
            "folds": len(folds)}


def markdown_table(out: dict[str, Any]) -> str:
    def fmt(v: dict[str, float | None]) -> str:
        if v["mean"] is None:
            return "-"
        spread = f" ({v['min']:.3f}-{v['max']:.3f})" if v["min"] != v["max"] else ""
        return f"{v['mean']:.3f}{spread}"

    res = out["results"]
    classes = out.get("class_names") or []
    lines = [f"\nCPU: {out['machine']['cpu']}; {out['machine']['jobs']} jobs x {out['machine']['threads_per_job']} "
             f"threads; seeds {out['seeds']}; {len(out['folds'])} folds; {out['wall_seconds']:.0f} s "
             f"(the runs themselves: {out.get('run_seconds_total', 0):.0f} s); "
             f"config {out['config']} + {' '.join(out['cheap'])}",
             "",
             "| run | labels (share of the pool; keyframes, 6 folds summed) | frame-mAP | fall AP | top-1 | macro-F1 "
             "| s per fold |",
             "|---|---|---|---|---|---|---|"]
    for name, r in res.items():
        secs = r["train_seconds_per_fold"]["mean"]
        lines.append(f"| {name} | {r['label_share']:.0%} ({r['per_seed'][0]['labelled_keyframes']}) | "
                     + " | ".join(fmt(r[k]) for k in HEADLINE) + f" | {'-' if not secs else f'{secs:.0f}'} |")
    if classes:
        present = [c for c in classes if any(p["ap_per_class"].get(c) is not None
                                             for r in res.values() for p in r["per_seed"])]
        short = [c.split("-", 1)[-1][:18] for c in present]
        lines += ["", "Per-class AP (mean over seeds):", "", "| run | " + " | ".join(short) + " |",
                  "|---|" + "---|" * len(present)]
        for name, r in res.items():
            vals = []
            for c in present:
                v = [p["ap_per_class"].get(c) for p in r["per_seed"] if p["ap_per_class"].get(c) is not None]
                vals.append(f"{statistics.fmean(v):.2f}" if v else "-")
            lines.append(f"| {name} | " + " | ".join(vals) + " |")
    picks = {n: r for n, r in res.items() if all("picked_boxes" in p for p in r["per_seed"])}
    if picks:
        lines += ["", "Boxes of the keyframes each round picked (all folds and seeds): share of the classes other than "
                  "standing and falls:", "", "| run | boxes picked | rare-class boxes | share |", "|---|---|---|---|"]
        common = {"standing", "lying down-lying with risk"}
        for name, r in picks.items():
            tot = sum(sum(p["picked_boxes"].values()) for p in r["per_seed"])
            rare = sum(v for p in r["per_seed"] for c, v in p["picked_boxes"].items() if c not in common)
            lines.append(f"| {name} | {tot} | {rare} | {rare / tot:.0%} |" if tot else f"| {name} | 0 | 0 | - |")
    comps = out.get("paired") or {}
    if comps:
        lines += ["", "Paired frame-mAP differences (pooled per seed; test folds won/lost):", "",
                  "| comparison | pooled difference by seed | folds won / lost |", "|---|---|---|"]
        for key, c in comps.items():
            if c:
                diffs = ", ".join(f"{d:+.3f}" for d in c["pooled_by_seed"])
                lines.append(f"| {key} | {diffs} | {c['fold_wins']} / {c['fold_losses']} of {c['folds']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the thermal_real folder")
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="the config the simulation starts from")
    parser.add_argument("--set", nargs="*", default=CHEAP, metavar="KEY=VALUE",
                        help="overrides making it cheaper (default: %(default)s)")
    parser.add_argument("--runs", nargs="*", default=["class_prior", "full", *STRATEGIES],
                        help="class_prior, full, queue, random, rarest")
    parser.add_argument("--options", nargs="*", default=[], choices=sorted(OPTIONS),
                        help="learning from what is not labelled, at the 20%% start")
    parser.add_argument("--options-full", nargs="*", default=[], choices=sorted(OPTIONS),
                        help="options also measured with every label (pseudo: the full-label model's pseudo-labels)")
    parser.add_argument("--options-full-seeds", type=int, nargs="*", default=[0],
                        help="the seeds --options-full runs for (default: 0)")
    parser.add_argument("--seeds", type=int, nargs="*", default=[0])
    parser.add_argument("--folds", nargs="*", help="test recordings (default: all six)")
    parser.add_argument("--quick", action="store_true", help="one fold (SL14_R2), seed 0")
    parser.add_argument("--jobs", type=int, default=2, help="(fold, seed) chains run at once (processes)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per job")
    parser.add_argument("--json", type=Path, help="also write the JSON here (rewritten after every fold)")
    parser.add_argument("--workdir", type=Path, required=True, help="runs and finished results are kept here")
    args = parser.parse_args(argv)
    if args.quick:
        args.folds, args.seeds = args.folds or ["SL14_R2"], [0]

    ann_path = args.data / "lofo" / "all.json"
    if not ann_path.is_file():
        parser.error(f"{ann_path} not found: pass --data pointing at the thermal_real folder")
    ann = with_context_objects(json.loads(ann_path.read_text()), args.data)
    folds = make_folds(recordings_in(ann))
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    ctxs = []
    for seed in args.seeds:
        for i, fold in enumerate(folds):
            if args.folds and fold["test"] not in args.folds:
                continue
            paths = write_fold_annotations(ann, fold, work / "folds" / fold["test"])
            ctxs.append({"fold": fold["test"], "fold_index": i, "seed": seed, "paths": {k: str(v) for k, v in paths.items()},
                         "train_recs": fold["train"], "data_root": str(args.data),
                         "frames_dir": str(args.data / "frames"), "work": str(work), "config": args.config,
                         "cheap": list(args.set), "runs": args.runs, "options": args.options,
                         "options_full": args.options_full if seed in args.options_full_seeds else [],
                         "threads": args.threads})
    t0 = time.perf_counter()
    class_names = [c["name"] for c in sorted(ann["categories"], key=lambda c: c["id"])]
    done: list[dict[str, Any]] = []

    def report() -> None:
        results = aggregate(done, ann)
        pairs = {}
        for share in (40, 60):
            for other in ("random", "rarest"):
                pairs[f"queue_{share} - {other}_{share}"] = paired(results, f"queue_{share}", f"{other}_{share}")
        pairs["queue_40 - full_100"] = paired(results, "queue_40", "full_100")
        pairs["queue_60 - full_100"] = paired(results, "queue_60", "full_100")
        for opt in OPTIONS:
            pairs[f"{opt}_20 - start_20"] = paired(results, f"{opt}_20", "start_20")
            pairs[f"{opt}_20 - longer_20"] = paired(results, f"{opt}_20", "longer_20") if opt == "carry" else None
            pairs[f"{opt}_100 - full_100"] = paired(results, f"{opt}_100", "full_100")
        out = {"benchmark": "active learning, leave-one-recording-out on real recordings (thermal_real), simulated "
                            "labeller", "machine": {**cpu_description(), "threads_per_job": args.threads,
                                                    "jobs": args.jobs},
               "config": args.config, "cheap": list(args.set), "shares": list(SHARES),
               "folds": folds if not args.folds else [f for f in folds if f["test"] in args.folds],
               "seeds": args.seeds, "class_names": class_names, "wall_seconds": round(time.perf_counter() - t0, 1),
               # Runs taken from the workdir ran in earlier invocations: their own seconds, summed.
               "run_seconds_total": round(sum(r.get("wall_seconds", 0.0) for r in done), 1),
               "results": results, "paired": {k: v for k, v in pairs.items() if v}}
        slim = json.loads(json.dumps(out))
        emit(slim, args.json, markdown_table(slim))

    if args.jobs > 1:
        with mp.get_context("spawn").Pool(args.jobs) as pool_:
            for rs in pool_.imap_unordered(run_chain, ctxs):
                done.extend(rs)
                report()
    else:
        for ctx in ctxs:
            done.extend(run_chain(ctx))
            report()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    sys.exit(main())
