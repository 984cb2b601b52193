"""Bed versus floor in held-out synthetic rooms, and the demo's alerts, the way the demo runs them.

For each seed: ``thermal-action demo`` (``run_demo``: five synthetic rooms, the fifth held out,
the shipped ``cpu_default`` for its 8 epochs whatever the machine's speed), then

1. the two lying classes' top-1 confusion on the demo's held-out room and on three more held-out
   rooms (``synth`` seed 1000 + seed, 7 recordings, the last 6 held out, their ``rooms.json``
   given): what "lying on the bed/couch" (the bed) and "lying with risk" (the fall) boxes are
   read as, with the number of boxes each rests on;
2. with ``--events``, the demo's 10 recordings (8 training, 2 held out) through the deployed
   chain offline: bare frames, the built-in person detector and tracker, the model, the
   checkpoint's alert rule and the dataset's ``rooms.json`` (``evaluate --events``, what the
   service runs per sensor with its zones set); alerts raised against annotated fall events.

``--set KEY=VALUE`` adds demo overrides (a variant to compare); ``--name`` keeps its runs apart
in ``--workdir``, where finished runs are reused. Prints JSON (``--json``) and a Markdown table.

Usage::

    python benchmarks/bench_demo_rooms.py --seeds 0 1 --events --workdir /tmp/demo_rooms
    python benchmarks/bench_demo_rooms.py --seeds 0 --name no_rooms_file --set data.rooms= --workdir ...
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_real  # noqa: E402  (benchmarks/ is not a package)
from machine import cpu_description  # noqa: E402

FALL, BED = bench_real.FALL, bench_real.BED
#: The extra held-out rooms of a seed: ``synth`` with this seed offset, 7 recordings, 6 held out.
EXTRA_SEED_OFFSET = 1000


def lying_confusion(predictions: list[dict], ann_path: Path) -> dict[str, dict[str, int]]:
    """For each annotated bed and fall box: the top-1 class of its prediction (matched by box)."""
    ann = json.loads(ann_path.read_text())
    names = [c["name"] for c in ann["categories"]]
    by_image: dict[str, list[dict]] = defaultdict(list)
    for r in predictions:
        by_image[str(r["image_id"])].append(r)
    out: dict[str, Counter] = {BED: Counter(), FALL: Counter()}
    for box in ann["annotations"]:
        label = names[box["category_id"]]
        if label not in out:
            continue
        preds = by_image.get(str(box["image_id"]), [])
        if not preds:
            out[label]["(no prediction)"] += 1
            continue
        match = min(preds, key=lambda r: float(np.abs(np.asarray(r["bbox"]) - box["bbox"]).sum()))
        out[label][names[int(np.argmax(match["scores"]))]] += 1
    return {k: dict(v) for k, v in out.items()}


def recall(confusion: dict[str, dict[str, int]], label: str) -> dict[str, Any]:
    row = confusion.get(label, {})
    n = sum(row.values())
    return {"right": row.get(label, 0), "boxes": n, "recall": row.get(label, 0) / n if n else None}


def demo_events(demo_dir: Path) -> dict[str, Any]:
    """The demo's recordings through detector, tracker, model and alert rule (offline)."""
    from thermal_action.evaluation.events import EventReport, pool_reports
    from thermal_action.inference.events import evaluate_events

    ckpt = demo_dir / "run" / "checkpoints" / "last.ckpt"
    data = demo_dir / "dataset"
    parts, reports = {}, []
    for split in ("train", "val"):
        r = evaluate_events(ckpt, data, data / "annotations" / f"{split}.json", demo_dir / "events" / split,
                            rooms=data / "rooms.json")
        parts[split] = {"pooled": r["pooled"], "events": r["events"], "false_alerts": r["false_alerts"]}
        reports.append(EventReport.from_dict(r["pooled"]))
    pooled = pool_reports(reports).to_dict()
    return {"all": pooled, **parts, "alert_rule": r["alert_rule"]}


def run_seed(work: Path, seed: int, overrides: list[str], events: bool) -> dict[str, Any]:
    from thermal_action.data.synth.config import SynthConfig
    from thermal_action.data.synth.write import generate_dataset
    from thermal_action.demo import run_demo
    from thermal_action.training.evaluate import evaluate_checkpoint

    done = work / "result.json"
    if done.is_file():
        return json.loads(done.read_text())
    t0 = time.perf_counter()
    if not (work / "demo_summary.json").is_file():
        run_demo(work, seed=seed, overrides=overrides, minutes=1e3)  # the config's 8 epochs on any machine
    summary = json.loads((work / "demo_summary.json").read_text())
    extra = work / "extra_rooms"
    if not (extra / "rooms.json").is_file():
        generate_dataset(extra, SynthConfig(num_recordings=7, val_recordings=6, seed=EXTRA_SEED_OFFSET + seed))
    ckpt = work / "run" / "checkpoints" / "last.ckpt"
    m = evaluate_checkpoint(ckpt, extra, "annotations/val.json", work / "eval_extra",
                            overrides=["data.rooms=rooms.json", "eval.plots=false"])
    demo_conf = lying_confusion(json.loads((work / "eval" / "predictions.json").read_text()),
                                work / "dataset" / "annotations" / "val.json")
    extra_conf = lying_confusion(json.loads((work / "eval_extra" / "predictions.json").read_text()),
                                 extra / "annotations" / "val.json")
    out = {"seed": seed, "overrides": overrides,
           "demo_room": {"frame_map": summary["metrics"]["frame_map"], "fall_ap": summary["metrics"]["fall_ap"],
                         "bed": recall(demo_conf, BED), "fall": recall(demo_conf, FALL), "confusion": demo_conf},
           "extra_rooms": {"frame_map": m["frame_map"], "fall_ap": m["fall_ap"], "bed": recall(extra_conf, BED),
                           "fall": recall(extra_conf, FALL), "confusion": extra_conf,
                           "keyframes_by_room_source": m["evaluated"]["keyframes_by_room_source"]},
           "seconds": round(time.perf_counter() - t0, 1)}
    if events:
        out["events"] = demo_events(work)
    done.write_text(json.dumps(out, indent=1))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1])
    parser.add_argument("--name", default="demo", help="name of this variant's runs in --workdir")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="demo config overrides")
    parser.add_argument("--events", action="store_true", help="also run the demo's recordings through the alerts")
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    results = [run_seed(args.workdir / f"{args.name}_s{s}", s, args.set, args.events) for s in args.seeds]
    out = {"benchmark": "bed versus floor in held-out synthetic rooms; the demo's alerts", "name": args.name,
           "overrides": args.set, "machine": cpu_description(), "seeds": args.seeds,
           "wall_seconds": round(time.perf_counter() - t0, 1), "per_seed": results}
    bench_real.emit(out, args.json, markdown_table(out))
    return 0


def markdown_table(out: dict[str, Any]) -> str:
    def frac(r: dict[str, Any]) -> str:
        return f"{r['right']}/{r['boxes']}"

    lines = [f"\nCPU: {out['machine']['cpu']}; {out['name']} {out['overrides']}", "",
             "| seed | demo room: bed / fall top-1 | frame-mAP | 3 more rooms: bed / fall top-1 | frame-mAP "
             "| demo recordings: alerts / fall events (found) | false alerts |",
             "|---|---|---|---|---|---|---|"]
    for r in out["per_seed"]:
        d, x, e = r["demo_room"], r["extra_rooms"], (r.get("events") or {}).get("all")
        ev = "-" if not e else f"{e['alerts']} / {e['events']} ({e['found']})"
        lines.append(f"| {r['seed']} | {frac(d['bed'])} / {frac(d['fall'])} | {d['frame_map']:.3f} | "
                     f"{frac(x['bed'])} / {frac(x['fall'])} | {x['frame_map']:.3f} | {ev} | "
                     f"{'-' if not e else e['false_alerts']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
