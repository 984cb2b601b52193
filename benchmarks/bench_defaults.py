"""Training time of the CPU default against the defaults before it, side by side in one run.

Each config is trained with ``thermal-action train`` (its own process, one after the other, the
same threads) on the real recordings of ``shared/thermal_real`` (``annotations/train.json``: four
recordings, ``val.json``: two), the whole schedule, wall time from process start to exit
(synthetic-room generation, data loading, validation and checkpoints included). The
whole-frame default of before takes minutes per epoch, so by default one of its 8 epochs is run
and multiplied by 8 (``--full`` trains it all).

Configs: ``cpu_default`` as shipped; the previous crop-CNN default (the same without synthetic
rooms, ensemble and final-epoch choice); the default at the time the speed issue was filed
(``benchmarks/configs_history/cpu_default_2025_whole_frame_2x.yaml``). Their real-data accuracy
is ``bench_real.py``'s (docs/benchmarks.md, "Accuracy on real recordings").

Usage::

    python benchmarks/bench_defaults.py [--threads 2] [--json PATH] [--full]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_description  # noqa: E402  (benchmarks/ is not a package)

REPO = Path(__file__).resolve().parents[1]
DEFAULT = "cpu_default"  # the shipped config, by name
OLD = REPO / "benchmarks" / "configs_history" / "cpu_default_2025_whole_frame_2x.yaml"
PREVIOUS = ["data.synthetic_recordings=0", "model.ensemble=1", "trainer.select_checkpoint=best"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "thermal_real")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--full", action="store_true", help="train the old whole-frame default's 8 epochs")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    if not (args.data / "annotations" / "train.json").is_file():
        p.error(f"{args.data}/annotations/train.json not found: pass --data pointing at thermal_real")
    runs = [
        ("cpu_default", DEFAULT, [], 1),
        ("previous default (crop CNN, real data only)", DEFAULT, PREVIOUS, 1),
        ("default when the speed issue was filed (whole frame, 2x)", OLD, [] if args.full else ["optim.epochs=1"],
         1 if args.full else 8),
    ]
    exe = Path(sys.executable).with_name("thermal-action")
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    results = []
    with tempfile.TemporaryDirectory(prefix="bench_defaults_") as tmp:
        for name, config, extra, factor in runs:
            out = Path(tmp) / f"run{len(results)}"
            t0 = time.perf_counter()
            subprocess.run([str(exe), "train", "--config", str(config), "--out", str(out), f"data.root={args.data}",
                            "trainer.progress_bar=false", *extra], check=True, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wall = time.perf_counter() - t0
            rows = [json.loads(line) for line in (out / "val_summary.jsonl").read_text().splitlines()]
            results.append({"config": name, "overrides": extra, "wall_s": round(wall, 1), "epochs_run": len(rows),
                            "schedule_s": round(wall * factor, 1), "extrapolated": factor > 1})
            print(f"# {name}: {wall:.1f} s for {len(rows)} epochs", flush=True)
            shutil.rmtree(out, ignore_errors=True)
    base = results[0]["schedule_s"]
    for r in results:
        r["x_cpu_default_time"] = round(r["schedule_s"] / base, 2)
    report = {"benchmark": "training time of the CPU defaults on thermal_real (4 train + 2 val recordings)",
              "machine": {**cpu_description(), "threads": args.threads}, "results": results}
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)
    print("\n| config | whole schedule (s) | x cpu_default |\n|---|---|---|")
    for r in results:
        note = " (1 epoch x 8)" if r["extrapolated"] else ""
        print(f"| {r['config']} | {r['schedule_s']:.0f}{note} | {r['x_cpu_default_time']:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
