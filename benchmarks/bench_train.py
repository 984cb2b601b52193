"""Training throughput (clips/s) of every shipped config (``thermal_action/configs``), through the real training path.

For each selected YAML it builds exactly what ``thermal-action train`` builds
(:func:`~thermal_action.training.datamodule.build_datasets`,
:func:`~thermal_action.training.train.build_system`,
:func:`~thermal_action.training.datamodule.build_datamodule`,
:func:`~thermal_action.training.train.build_trainer`) over a small synthetic dataset
(:func:`thermal_action.data.synth.write.generate_dataset`) and runs ``Trainer.fit`` for
``warm-up + timed + 1`` batches, so the numbers include what a run pays per step: the
config's precision (autocast), channels-last-3d, the optimiser and LR schedule, gradient
clipping, the interaction feature bank and Lightning's logging. Changed from the config:

- ``model.pretrained=""``: throughput does not depend on the weights' values (the files
  are not needed; with weights, ``optim.freeze_backbone_epochs`` would still compute the
  backbone's gradients and drop them, so a frozen epoch costs about the same);
- no validation, no checkpoint files (they are not training throughput);
- ``data.num_workers=0`` unless ``--num-workers``: the clips are then built in the
  training process, which the "incl. data" column shows;
- the batch size: configs at the original design's large input (``data.scale >= 4``,
  e.g. 256x384 = 41x the native pixels) cost ~25-80x more per clip than the CPU configs,
  so by default they run ``--large-batch-size 2`` clips per batch.

Measured per config:

- ``step_s``: mean wall time of one training step (forward, loss, backward, optimiser
  step), batch already loaded; ``clips_per_s`` = batch / ``step_s``;
- ``loop_clips_per_s``: the same over batch end to batch end, data loading included
  (what the progress bar shows);
- ``train_gflops``: FLOPs per clip of one whole step, counted on the extra last batch
  with ``torch.utils.flop_counter.FlopCounterMode`` (convolutions and matmuls, as
  ``bench_model.py``; 1 multiply-add = 2 FLOPs); ``gflop_per_s`` = achieved rate;
- ``share_of_peak``: ``gflop_per_s`` over this run's fp32 conv training peak
  (``bench_peak.py`` on the same threads before and after the configs, the higher);
- ``peak_mb``: on CPU the peak resident memory of the worker process (model, optimiser
  state, data and activations); on CUDA ``max_memory_allocated``.

The first ``--warmup`` steps are not timed: they pay for one-off work (oneDNN kernel
selection for each new input shape). Each config runs in a fresh subprocess.

Defaults keep the whole run to about four minutes on a 2-core CPU: the small-input
configs 3 warm-up + 10 timed steps at their own batch size, the large-input ones 1 + 2
steps at batch 2.

Usage::

    python benchmarks/bench_train.py                                       # every config, CPU, 2 threads
    python benchmarks/bench_train.py --configs cpu_default slowfast_r50_4x16 --steps 5
    python benchmarks/bench_train.py --accelerator gpu --large-batch-size 0 --warmup 3 --steps 10
    python benchmarks/bench_train.py --configs slowfast_r50_4x16 --precision bf16-mixed --batch-size 4
    python benchmarks/bench_train.py --configs slowfast_r50_scratch --set model.frozen_bn=true   # what one setting costs

Prints one JSON object and a Markdown table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

#: data.scale from which a config counts as large-input (the design configs use 6.4).
LARGE_INPUT_SCALE = 4.0
#: (warm-up steps, timed steps) of small-input and of large-input configs.
SMALL_STEPS = (3, 10)
LARGE_STEPS = (1, 2)
#: Keyframes per frame of a synthetic recording is ~1/9 (spacing 6-12 frames); this
#: margin keeps the training split larger than the batches a run asks for.
FRAMES_PER_CLIP = 12
TRAIN_RECORDINGS = 2


def config_names(selected: list[str] | None) -> list[str]:
    """Shipped config names to run: ``selected`` or all of them, CPU default first."""
    from thermal_action import configs

    names = configs.names()
    if selected:
        unknown = [n for n in selected if n not in names]
        if unknown:
            raise SystemExit(f"unknown config(s) {unknown}; the shipped ones are {names}")
        return selected
    return sorted(names, key=lambda n: (n != "cpu_default", n))


def plan(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Batch size and step counts of one config (``--batch-size``/``--warmup``/``--steps`` win)."""
    from thermal_action.config import load_config

    cfg = load_config(name)
    large = cfg.data.scale >= LARGE_INPUT_SCALE
    warmup, steps = LARGE_STEPS if large else SMALL_STEPS
    batch = cfg.data.batch_size
    if args.batch_size:
        batch = args.batch_size
    elif large and args.large_batch_size:
        batch = min(batch, args.large_batch_size)
    return {
        "config": name,
        "config_batch": cfg.data.batch_size,
        "batch": batch,
        "warmup": args.warmup if args.warmup is not None else warmup,
        "steps": args.steps if args.steps is not None else steps,
    }


class StepTimer:
    """Lightning callback timing training steps; the last batch runs under a FLOP counter.

    Built lazily (``make``) so this module imports without Lightning in the parent process.
    """

    @staticmethod
    def make(warmup: int, steps: int, count_flops: bool, cuda: bool):
        import lightning as L
        import torch
        from torch.utils.flop_counter import FlopCounterMode

        from thermal_action.models.ops.conv import native_convolutions

        class _Timer(L.Callback):
            def __init__(self) -> None:
                self.step_s: list[float] = []
                self.loop_s: list[float] = []
                self.clips: list[int] = []
                self.rois: list[int] = []
                self.shapes: dict[str, list[int]] = {}
                self.flops: float | None = None
                self.flop_clips = 0
                self._t0 = 0.0
                self._prev_end: float | None = None
                self._counter: FlopCounterMode | None = None
                self._native: contextlib.AbstractContextManager | None = None

            def _now(self) -> float:
                if cuda:
                    torch.cuda.synchronize()
                return time.perf_counter()

            def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
                if not self.shapes:
                    self.shapes = {"fast": list(batch.fast.shape), "slow": list(batch.slow.shape)}  # (B, C, T, H, W)
                if batch_idx == warmup + steps and count_flops:
                    # The architecture's FLOPs: plain F.conv3d for this untimed batch.
                    self._native = native_convolutions()
                    self._native.__enter__()
                    self._counter = FlopCounterMode(display=False)
                    self._counter.__enter__()
                self._t0 = self._now()

            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
                end = self._now()
                if self._counter is not None:
                    self._counter.__exit__(None, None, None)
                    self._native.__exit__(None, None, None)
                    self._native = None
                    self.flops = float(self._counter.get_total_flops())
                    self.flop_clips = batch.num_clips
                    self._counter = None
                elif warmup <= batch_idx < warmup + steps:
                    self.step_s.append(end - self._t0)
                    # Batch end to batch end: the loader's work for this batch included.
                    self.loop_s.append(end - self._prev_end if self._prev_end is not None else end - self._t0)
                    self.clips.append(batch.num_clips)
                    self.rois.append(batch.num_rois)
                self._prev_end = end

        return _Timer()


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    """Trains one config for ``warmup + steps (+1)`` batches and times it (worker process)."""
    import logging

    import torch
    from lightning.pytorch.callbacks import ModelCheckpoint

    from thermal_action.config import load_config
    from thermal_action.training.datamodule import build_datamodule, build_datasets, class_counts
    from thermal_action.training.train import build_system, build_trainer

    logging.getLogger("lightning").setLevel(logging.WARNING)
    torch.set_num_threads(spec["threads"])
    name = spec["config"]
    raw = load_config(name)
    n_batches = spec["warmup"] + spec["steps"] + (1 if spec["flops"] else 0)
    overrides = [
        f"data.root={spec['data_root']}",
        f"data.batch_size={spec['batch']}",
        "model.pretrained=",
        "data.synthetic_recordings=0",  # the data is synthetic already; a step costs the same either way
        "optim.epochs=1",
        f"trainer.limit_train_batches={n_batches}",
        "trainer.limit_val_batches=0",
        "trainer.num_sanity_val_steps=0",
        "trainer.max_time_minutes=0",
        "trainer.progress_bar=false",
        f"trainer.accelerator={spec['accelerator']}",
        "trainer.devices=1",
        "trainer.num_nodes=1",
        "trainer.strategy=auto",
        "trainer.accumulate_grad_batches=1",
    ]
    if spec["num_workers"] >= 0:
        overrides.append(f"data.num_workers={spec['num_workers']}")
    if spec["precision"]:
        overrides.append(f"trainer.precision={spec['precision']}")
    overrides.extend(spec.get("overrides", []))
    cfg = load_config(name, overrides)

    torch.manual_seed(cfg.seed)
    train_ds, val_ds = build_datasets(cfg)
    system = build_system(cfg, list(train_ds.class_names), class_counts(train_ds), ground_truth=None)
    datamodule = build_datamodule(cfg, system.model.alpha, train_ds, val_ds)
    # Decoded recordings are cached by the dataset; read them now so the first steps time
    # the training, not the HDF5 decoding (a real run pays this once per worker).
    datamodule.train_dataset.preload()
    available = len(datamodule.train_dataloader())
    if available < n_batches:
        raise RuntimeError(f"the synthetic training set has {available} batches of {spec['batch']}, "
                           f"{n_batches} needed: raise --frames")

    cuda = cfg.trainer.accelerator in ("gpu", "cuda") or (
        cfg.trainer.accelerator == "auto" and torch.cuda.is_available())
    timer = StepTimer.make(spec["warmup"], spec["steps"], spec["flops"], cuda)
    out_dir = Path(spec["work_dir"]) / name
    trainer = build_trainer(cfg, out_dir, [timer])
    # Checkpoint files (hundreds of MB for R101 with AdamW state) are not training throughput.
    trainer.callbacks = [c for c in trainer.callbacks if not isinstance(c, ModelCheckpoint)]
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    trainer.fit(system, datamodule=datamodule)
    if len(timer.step_s) != spec["steps"]:
        raise RuntimeError(f"timed {len(timer.step_s)} of {spec['steps']} steps")

    clips = sum(timer.clips)
    step_s = sum(timer.step_s) / len(timer.step_s)
    clips_per_s = clips / sum(timer.step_s)
    gflops = timer.flops / timer.flop_clips / 1e9 if timer.flops else None
    if cuda:
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports kB
    fast, slow = timer.shapes["fast"], timer.shapes["slow"]
    return {
        "config": name,
        "overrides": list(spec.get("overrides", [])),
        "variant": cfg.model.variant,
        "interaction": cfg.model.interaction,
        "params_m": round(sum(p.numel() for p in system.model.parameters()) / 1e6, 2),
        # Quarter-turn augmentation swaps H and W in some batches (same cost): report the
        # sensor's orientation (40 x 60, wider than high).
        "input": f"{fast[2]}x{min(fast[3:])}x{max(fast[3:])}",
        "slow_frames": slow[2],
        "batch": spec["batch"],
        "config_batch": spec["config_batch"],
        "precision": str(trainer.precision),
        "channels_last": cfg.trainer.channels_last,
        "device": str(system.device.type),
        "threads": torch.get_num_threads(),
        "num_workers": cfg.data.num_workers,
        "warmup": spec["warmup"],
        "steps": spec["steps"],
        "boxes_per_clip": round(sum(timer.rois) / max(clips, 1), 2),
        "pretrained_skipped": raw.model.pretrained or None,
        "step_s": round(step_s, 3),
        "step_s_each": [round(s, 3) for s in timer.step_s],
        "clips_per_s": round(clips_per_s, 3),
        "loop_clips_per_s": round(clips / sum(timer.loop_s), 3),
        "train_gflops": round(gflops, 2) if gflops is not None else None,
        "gflop_per_s": round(gflops * clips_per_s, 1) if gflops is not None else None,
        "peak_mb": round(peak_mb),
    }


def _run_worker(spec: dict[str, Any], in_process: bool) -> dict[str, Any]:
    if in_process:
        return measure(spec)
    proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        return {**spec, "error": lines[-1] if lines else f"exit code {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def make_dataset(root: Path, clips_needed: int, seed: int) -> dict[str, Any]:
    """A synthetic dataset whose training split holds at least ~``clips_needed`` keyframes."""
    from thermal_action.data.synth.config import SynthConfig
    from thermal_action.data.synth.write import generate_dataset

    frames = max(200, 64 + math.ceil(clips_needed / TRAIN_RECORDINGS) * FRAMES_PER_CLIP)
    summary = generate_dataset(root, SynthConfig(num_recordings=TRAIN_RECORDINGS + 1, val_recordings=1,
                                                 frames_per_recording=frames, seed=seed))
    return {"recordings": TRAIN_RECORDINGS + 1, "frames_per_recording": frames,
            "train_keyframes": summary["images"]["train"], "train_boxes": summary["boxes"]["train"]}


def _fmt(v: Any, spec: str = "") -> str:
    return "-" if v is None else format(v, spec)


def markdown(rows: list[dict[str, Any]]) -> str:
    head = ["config", "variant", "input fast TxHxW (slow T)", "B", "precision", "warm-up+timed", "s/step",
            "clips/s", "clips/s incl. data", "train GFLOPs/clip", "GFLOP/s", "share of fp32 conv peak", "peak MB",
            "pretrained"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['config']} | error: {r['error']} |" + " |" * (len(head) - 2))
            continue
        batch = f"{r['batch']}" + (f" (cfg {r['config_batch']})" if r["batch"] != r["config_batch"] else "")
        lines.append("| " + " | ".join([
            r["config"],
            r["variant"] + (f" + {r['interaction']}" if r["interaction"] != "none" else ""),
            f"{r['input']} ({r['slow_frames']})",
            batch,
            r["precision"],
            f"{r['warmup']}+{r['steps']}",
            _fmt(r["step_s"], ".3g"),
            _fmt(r["clips_per_s"], ".3g"),
            _fmt(r["loop_clips_per_s"], ".3g"),
            _fmt(r["train_gflops"], ".1f"),
            _fmt(r["gflop_per_s"], ".0f"),
            f"{100 * r['share_of_peak']:.0f}%" if r.get("share_of_peak") is not None else "-",
            _fmt(r["peak_mb"]),
            "random init (file skipped)" if r["pretrained_skipped"] else "none",
        ]) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", nargs="+", help="shipped config names, e.g. cpu_default (default: all)")
    p.add_argument("--batch-size", type=int, default=0, help="clips per batch for every config (0: see below)")
    p.add_argument("--large-batch-size", type=int, default=2,
                   help=f"cap on the batch of configs with data.scale >= {LARGE_INPUT_SCALE:g} "
                        "(0: the config's own batch size)")
    p.add_argument("--warmup", type=int, help=f"untimed steps (default {SMALL_STEPS[0]}, "
                                              f"{LARGE_STEPS[0]} for large-input configs)")
    p.add_argument("--steps", type=int, help=f"timed steps (default {SMALL_STEPS[1]}, "
                                             f"{LARGE_STEPS[1]} for large-input configs)")
    p.add_argument("--accelerator", "--device", dest="accelerator", default="cpu",
                   help="trainer.accelerator: cpu, gpu (cuda) or auto")
    p.add_argument("--precision", default="", help="trainer.precision override (default: the config's)")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    p.add_argument("--num-workers", type=int, default=0, help="data.num_workers (-1: the config's)")
    p.add_argument("--no-flops", action="store_true", help="skip the extra FLOP-counting step")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic dataset")
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                   help="config overrides for every config, as on the train command line (e.g. model.frozen_bn=true)")
    p.add_argument("--json", help="also write the JSON to this path")
    p.add_argument("--in-process", action="store_true", help="no subprocess per config (peak memory then shared)")
    p.add_argument("--no-peak", action="store_true",
                   help="skip bench_peak.py's machine peak before and after the configs (and the share column)")
    p.add_argument("--peak-repeats", type=int, default=3, help="timed runs per bench_peak.py rate")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.worker:
        print(json.dumps(measure(json.loads(args.worker))))
        return 0
    accelerator = "gpu" if args.accelerator == "cuda" else args.accelerator
    plans = [plan(n, args) for n in config_names(args.configs)]
    extra = 0 if args.no_flops else 1
    clips_needed = max(q["batch"] * (q["warmup"] + q["steps"] + extra + 1) for q in plans)

    start = time.perf_counter()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_model import measure_peak  # benchmarks/ is not a package

    cpu_peak = accelerator == "cpu" and not args.no_peak
    peaks = [measure_peak(args.threads, False, args.peak_repeats)] if cpu_peak else []
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        data_root = Path(tmp) / "dataset"
        dataset = make_dataset(data_root, clips_needed, args.seed)
        print(f"synthetic dataset: {dataset}", file=sys.stderr, flush=True)
        for q in plans:
            spec = {**q, "data_root": str(data_root), "work_dir": str(Path(tmp) / "runs"), "threads": args.threads,
                    "accelerator": accelerator, "precision": args.precision, "num_workers": args.num_workers,
                    "flops": not args.no_flops, "overrides": args.set}
            t0 = time.perf_counter()
            row = _run_worker(spec, args.in_process)
            row["wall_s"] = round(time.perf_counter() - t0, 1)
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)

    peak: dict[str, float] = {}
    if cpu_peak:
        peaks.append(measure_peak(args.threads, False, args.peak_repeats))
        peak = {k: max(q["peak"].get(k, 0.0) for q in peaks) for k in peaks[0]["peak"]}
        for r in rows:
            if r.get("gflop_per_s") is not None and peak.get("conv train fp32"):
                r["share_of_peak"] = round(r["gflop_per_s"] / peak["conv train fp32"], 3)
    from machine import cpu_description, describe_line  # benchmarks/ is not a package

    machine = cpu_description()
    out = {
        "benchmark": "train",
        "machine": {**machine, "line": describe_line(machine)},
        "threads": args.threads,
        "accelerator": accelerator,
        "peak": peak,
        "peak_runs": [q["peak"] for q in peaks],
        "dataset": {**dataset, "kind": "synthetic (thermal_action.data.synth), 40x60 frames"},
        "notes": [
            "model.pretrained is empty for every config: throughput does not depend on the weights",
            "timed: Lightning training steps (forward, loss, backward, gradient clipping, optimiser and LR "
            "schedule), batch already loaded; 'incl. data' adds the DataLoader's clip building",
            "no validation and no checkpoint writing during the measurement",
        ],
        "seconds": round(time.perf_counter() - start, 1),
        "rows": rows,
    }
    text = json.dumps(out, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text)
    print()
    print(f"Training throughput, {out['machine']['line']}, {args.threads} threads, accelerator {accelerator}, "
          f"data.num_workers {'config' if args.num_workers < 0 else args.num_workers}; random weights.")
    if peak:
        print(f"fp32 conv training peak of this run (bench_peak.py before and after the configs, the higher): "
              f"{peak['conv train fp32']} GFLOP/s")
    print()
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
