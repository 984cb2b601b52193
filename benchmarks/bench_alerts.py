"""Fall alerts the way a care home meets them: events found, delay, false alerts per sensor-day.

Two parts, each for the CPU default with and without the room (``--runs``), several seeds:

1. **Real falls** (``shared/thermal_real``, leave-one-recording-out exactly as
   ``bench_real.py``, which this runs with ``--events``): each fold's model on its test
   recording's bare frames, through the built-in person detector and tracker, the model and the
   checkpoint's alert rule; the annotated fall events (runs of fall keyframes of one person)
   found, the delay from an event's first fall keyframe to its alert, and the alerts that match
   no event.
2. **Fall-free days** (``thermal-action synth --day``: a resident's evening, a night asleep in bed,
   couch and chair spells, naps, kneeling and bending beside furniture, getting in and out of
   bed; no fall): the same chain with the day's ``rooms.json``; every alert is a false alert.
   The models are those of one LOFO fold (``--day-fold``), so no extra training; training seed
   ``s`` watches day ``s`` (a resident and room of their own, ``DayConfig(seed=s)``). Each day
   also reports its **coverage**: the share of its annotated keyframes with the resident in
   view that got a prediction within one prediction step (in bed and overall), since a person
   the detector has lost can raise no alert, false or true.

Prints JSON (``--json`` writes it) and a Markdown table.

Usage::

    python benchmarks/bench_alerts.py                                  # both runs, 3 seeds, 2 h of day
    python benchmarks/bench_alerts.py --seeds 0 --day-hours 1 --folds SL14_R2   # a quick look
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_real  # noqa: E402  (benchmarks/ is not a package)
from machine import cpu_description  # noqa: E402


#: The class of a resident asleep (or lying) on a bed or couch, whose coverage is reported apart.
BED_CLASS = "lying down-lying on the bed/couch"


def day_coverage(day_dir: Path, predictions, step: int) -> dict[str, Any]:
    """Share of the day's annotated keyframe boxes (the resident in view) that have a prediction
    within ``step`` frames, over all boxes and over those of :data:`BED_CLASS`."""
    from bisect import bisect_left

    ann = json.loads((day_dir / "annotations" / "day.json").read_text())
    frame_of = {img["id"]: (img["sensor_id"], int(img["frame_idx"])) for img in ann["images"]}
    predicted: dict[str, list[int]] = {}
    for p in predictions:
        predicted.setdefault(p.sensor_id, []).append(int(p.frame_idx))
    for frames in predicted.values():
        frames.sort()

    def near(sensor: str, f: int) -> bool:
        frames = predicted.get(sensor, [])
        i = bisect_left(frames, f - step)
        return i < len(frames) and frames[i] <= f + step

    hits = {"all": [0, 0], "bed": [0, 0]}
    for box in ann["annotations"]:
        hit = near(*frame_of[box["image_id"]])
        for key in ("all", "bed") if box["category_name"] == BED_CLASS else ("all",):
            hits[key][0] += hit
            hits[key][1] += 1
    return {key: {"covered": h, "boxes": n, "share": h / n if n else None} for key, (h, n) in hits.items()}


def day_alerts(checkpoint: Path, day_dir: Path, out: Path) -> dict[str, Any]:
    """Alerts of one checkpoint over a fall-free day (each one false), and its coverage."""
    from thermal_action.data.hdf5 import read_timestamps
    from thermal_action.inference.recordings import predict_recordings
    from thermal_action.structures import PREDICTION

    recordings = sorted((day_dir / "frames").glob("*.h5"))
    t0 = time.perf_counter()
    run = predict_recordings(checkpoint, recordings, out, boxes="detector", rooms=day_dir / "rooms.json")
    hours = sum(float(ts[-1] - ts[0]) / 3.6e6 for ts in (read_timestamps(p) for p in recordings))
    summary = run.summary()
    return {"alerts": len(run.alerts), "sensor_hours": hours,
            "false_per_sensor_day": len(run.alerts) / hours * 24 if hours else None,
            "predictions": len(run.predictions), "predictions_without_room": summary["predictions_without_room"],
            "coverage": day_coverage(day_dir, run.predictions, PREDICTION.step),
            "seconds": round(time.perf_counter() - t0, 1), "seconds_by_part": summary["seconds"],
            "alert_rule": run.alert_rule.to_dict(),
            "alerts_list": [{"track_id": a.track_id, "start_timestamp": a.start_timestamp,
                             "duration_s": a.duration_s, "peak_score": a.peak_score} for a in run.alerts]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=bench_real.DEFAULT_DATA, help="the thermal_real folder")
    parser.add_argument("--runs", nargs="*", default=["default", "no_room"])
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--folds", nargs="*", help="test recordings (default: all six)")
    parser.add_argument("--day-hours", type=float, default=2.0, help="hours of fall-free day")
    parser.add_argument("--day-start", type=float, default=22.0, help="clock time the day starts (h)")
    parser.add_argument("--day-fold", default="SL14_R1", help="the fold whose models watch the day")
    parser.add_argument("--day-seeds", type=int, nargs="*", help="seeds watched over the day (default: --seeds)")
    parser.add_argument("--rescore-events", action="store_true",
                        help="score the real folds already finished in --workdir again with today's detector, "
                             "tracker, event matching and zone policy (bench_real.py --rescore-events)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--workdir", type=Path, required=True, help="keeps the runs, the day and the outputs")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    real_json = work / "real.json"
    real_argv = ["--data", str(args.data), "--runs", *args.runs, "--seeds", *map(str, args.seeds), "--events",
                 "--jobs", str(args.jobs), "--workdir", str(work / "real"), "--json", str(real_json)]
    if args.folds:
        real_argv += ["--folds", *args.folds]
    if args.rescore_events:
        real_argv.append("--rescore-events")
    bench_real.main(real_argv)
    real = json.loads(real_json.read_text())

    from thermal_action.data.synth.day import DayConfig, generate_day

    days: dict[str, dict[int, Any]] = {}
    generated: dict[int, float] = {}
    for seed in args.day_seeds if args.day_seeds is not None else args.seeds:
        # Training seed s watches day s: a resident and a room of its own.
        day_dir = work / f"day_{args.day_hours:g}h_s{seed}"
        if not (day_dir / "rooms.json").is_file():
            t_gen = time.perf_counter()
            generate_day(day_dir, DayConfig(hours=args.day_hours, start_hour=args.day_start, seed=seed))
            generated[seed] = round(time.perf_counter() - t_gen, 1)
        for name in args.runs:
            ckpt = work / "real" / f"{name}_{args.day_fold}_s{seed}" / "checkpoints" / "last.ckpt"
            if not ckpt.is_file():
                print(f"# no checkpoint {ckpt}: day skipped", file=sys.stderr)
                continue
            out_dir = work / "day_out" / f"{name}_s{seed}_{args.day_hours:g}h"
            days.setdefault(name, {})[seed] = day_alerts(ckpt, day_dir, out_dir)
            cov = days[name][seed]["coverage"]
            print(f"# day {seed} {name}: {days[name][seed]['alerts']} alerts in "
                  f"{days[name][seed]['sensor_hours']:.2f} h; resident predicted at {cov['all']['share']:.2f} of "
                  f"the keyframes in view, {cov['bed']['share'] or 0:.2f} in bed", file=sys.stderr, flush=True)

    out = {"benchmark": "fall alerts: real fall events (LOFO, bare frames) and fall-free synthetic days",
           "machine": cpu_description(), "seeds": args.seeds, "runs": args.runs,
           "day": {"hours": args.day_hours, "start_hour": args.day_start, "fold": args.day_fold,
                   "generate_seconds": generated},
           "wall_seconds": round(time.perf_counter() - t0, 1),
           "real": {name: [p.get("events") for p in real["results"][name]["per_seed"]] for name in args.runs
                    if name in real["results"]},
           "days": days}
    bench_real.emit(out, args.json, markdown_table(out))
    return 0


def markdown_table(out: dict[str, Any]) -> str:
    lines = [f"\nCPU: {out['machine']['cpu']}; seeds {out['seeds']}; {out['wall_seconds']:.0f} s in all", "",
             "| run | seed | real falls found | delay median / max (s) | real false alerts (sensor-h) "
             "| fall-free day: false alerts (sensor-h) | false alerts per sensor-day "
             "| day keyframes predicted: all / in bed |",
             "|---|---|---|---|---|---|---|---|"]
    for name in out["runs"]:
        for seed, e in zip(out["seeds"], out["real"].get(name, [])):
            d = out["days"].get(name, {}).get(seed) or out["days"].get(name, {}).get(str(seed))
            delay = "-" if not e or e["delay_s"]["median"] is None else \
                f"{e['delay_s']['median']:.1f} / {e['delay_s']['max']:.1f}"
            real = "-" if not e else f"{e['found']}/{e['events']}"
            real_false = "-" if not e else f"{e['false_alerts']} ({e['sensor_hours']:.2f})"
            day = "-" if not d else f"{d['alerts']} ({d['sensor_hours']:.1f})"
            per_day = "-" if not d or d["false_per_sensor_day"] is None else f"{d['false_per_sensor_day']:.1f}"
            cov = (d or {}).get("coverage")
            covered = "-" if not cov else f"{cov['all']['share']:.2f} / {cov['bed']['share'] or 0:.2f}"
            lines.append(f"| {name} | {seed} | {real} | {delay} | {real_false} | {day} | {per_day} | {covered} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
