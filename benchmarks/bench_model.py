"""Cost of the SlowFast detectors: FLOPs, forward / training-step time, peak memory.

For every selected variant, input size, batch size, precision (float32 or bf16
autocast) and memory format (contiguous or channels-last-3d) it measures

- ``fwd_gflops`` / ``train_gflops``: FLOPs per clip of one forward and of one
  forward + backward, counted by ``torch.utils.flop_counter.FlopCounterMode``
  (convolutions, matmuls; 1 multiply-add = 2 FLOPs);
- ``fwd_ms``: inference forward per batch (eval mode, ``torch.inference_mode``);
- ``train_ms``: one training step per batch (train mode, forward + backward of a
  cross-entropy loss; no optimizer step); both the median of ``--repeats`` runs after
  ``--warmup`` runs;
- ``train_gflops_per_s``: ``batch * train_gflops / train_ms``;
- ``share_of_peak``: ``train_gflops_per_s`` over this run's fp32 conv training peak (the
  best ``conv train fp32`` rate of ``bench_peak.py``, measured before and after the
  models on the same threads; the higher of the two counts); bf16 rows also get
  ``share_of_bf16_peak`` where the CPU has bf16;
- ``peak_mb``: on CPU, how far the worker process's peak resident memory
  (``getrusage(RUSAGE_SELF).ru_maxrss``) rose above its resident memory just before the
  first training step, model and inputs already allocated: what training needs for
  activations and gradients, allocator slack included. Each configuration runs in a fresh
  subprocess so the high-water mark is its own. On CUDA, ``max_memory_allocated``.

``--allocator reuse`` (the default) runs each row as ``thermal-action train`` runs on a CPU,
glibc keeping freed memory for reuse (``trainer.reuse_freed_memory``); ``system`` leaves
malloc's defaults, as a plain PyTorch script has them. FLOPs are counted with plain
``F.conv3d`` for every row (the same architecture, the same count).

The clip has ``--frames`` fast frames (32 = a 64-frame window at frame stride 2) and
``--boxes`` person boxes per clip. The CPU of the development machine is shared, so
absolute times are noisy; compare rows measured side by side in one run.

Usage::

    python benchmarks/bench_model.py                                   # default quick set
    python benchmarks/bench_model.py --variants slowfast_tiny --sizes 1x 2x 4x --batches 1 8
    python benchmarks/bench_model.py --variants slowfast_r50_4x16 --sizes seed --precisions fp32 bf16
    python benchmarks/bench_model.py --device cuda --sizes 4x seed

    python benchmarks/bench_model.py --variants slowfast_r50_4x16 --sizes seed 1x --precisions fp32 \
        --native-conv off on --bn frozen            # our conv paths vs plain F.conv3d
    python benchmarks/bench_model.py --variants slowfast_r50_4x16 --sizes seed --precisions fp32 \
        --formats channels_last contiguous --native-conv off on --allocator reuse system --bn train frozen
                                                                       # the speed issue's 2x

Prints one JSON object (with the CPU's name and ISA flags and the peaks) and a Markdown table.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

#: name -> (height, width); "seed" is the earlier implementation's 6.4x upsampled input.
SIZES = {"1x": (40, 60), "2x": (80, 120), "4x": (160, 240), "seed": (256, 384)}
#: What the issue measured for AlphAction's SlowFast-R50 4x16 (fp32, forward + backward,
#: one clip, this machine's CPU): seconds per step at 256x384 and at 40x60.
REFERENCE = {
    "variant": "alphaction slowfast_r50_4x16",
    "seed_train_s": 2.5,
    "1x_train_s": 0.14,
    "seed_train_gflops": 461,
}


def _rss_mb() -> float:
    """Current resident memory of this process in MB (Linux)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports kB


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    """Measures one configuration (runs in the worker process)."""
    import torch
    import torch.nn.functional as F
    from torch.utils.flop_counter import FlopCounterMode

    from thermal_action.config import ModelConfig
    from thermal_action.models.build import build_model
    from thermal_action.models.ops import conv
    from thermal_action.models.ops.cpu_workarounds import reuse_freed_memory

    os.environ[conv.NATIVE_CONV_ENV] = "1" if spec["native_conv"] else "0"  # plain F.conv3d for every conv when set
    if spec["allocator"] == "reuse":
        reuse_freed_memory()  # as `thermal-action train` on CPU (trainer.reuse_freed_memory)

    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    device = torch.device(spec["device"])
    torch.manual_seed(0)
    model = build_model(
        ModelConfig(
            variant=spec["variant"], interaction=spec["interaction"], dropout=0.2, frozen_bn=spec["frozen_bn"]
        ),
        num_classes=14,
    ).to(device)
    channels_last = spec["channels_last"]
    fmt = torch.channels_last_3d if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    b = spec["batch"]
    h, w = SIZES[spec["size"]]
    tf = spec["frames"]
    alpha = model.alpha
    fast = torch.randn(b, 1, tf, h, w, device=device).to(memory_format=fmt)
    slow = fast[:, :, alpha // 2 :: alpha].contiguous(memory_format=fmt)
    # --boxes person boxes per clip, ~10x10 native pixels scaled to the input.
    s = h / 40
    n = spec["boxes"]
    rois = torch.tensor(
        [[i, (5 + 12 * j) % 45 * s, (5 + 7 * j) % 25 * s, ((5 + 12 * j) % 45 + 10) * s, ((5 + 7 * j) % 25 + 10) * s]
         for i in range(b) for j in range(n)],
        dtype=torch.float32,
        device=device,
    )
    labels = torch.arange(rois.shape[0], device=device) % 14
    keys = [("bench", 10 * i) for i in range(b)] if spec["interaction"] != "none" else None
    use_bf16 = spec["precision"] == "bf16"

    def autocast():
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def infer():
        with torch.inference_mode(), autocast():
            model(slow, fast, rois, keys)

    def train_step():
        with autocast():
            logits = model(slow, fast, rois, keys)
        F.cross_entropy(logits.float(), labels).backward()
        model.zero_grad(set_to_none=True)

    def timed(fn) -> float:
        for _ in range(spec["warmup"]):
            fn()
        times = []
        for _ in range(spec["repeats"]):
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            times.append(time.perf_counter() - t0)
        return statistics.median(times) * 1000

    model.train()
    rss_before = _rss_mb()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    train_ms = timed(train_step)
    if device.type == "cuda":
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mb = max(_max_rss_mb() - rss_before, 0.0)
    def architecture_flops(fn) -> int:
        """FLOPs of one ``fn()`` counted with plain F.conv3d: the same for every row."""
        with conv.native_convolutions(), FlopCounterMode(display=False) as counter:
            fn()
        return counter.get_total_flops()

    train_flops = architecture_flops(train_step)
    model.eval()
    fwd_ms = timed(infer)
    fwd_flops = architecture_flops(infer)

    return {
        **{k: spec[k] for k in
           ("variant", "size", "batch", "precision", "channels_last", "interaction", "frozen_bn")},
        "conv": "native" if spec["native_conv"] else "thermal_action",
        "allocator": spec["allocator"],
        "input": f"{tf}x{h}x{w}",
        "threads": torch.get_num_threads(),
        "device": spec["device"],
        "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        "fwd_gflops": round(fwd_flops / b / 1e9, 3),
        "train_gflops": round(train_flops / b / 1e9, 3),
        "fwd_ms": round(fwd_ms, 1),
        "train_ms": round(train_ms, 1),
        "train_gflops_per_s": round(train_flops / 1e9 / (train_ms / 1000), 1),
        "peak_mb": round(peak_mb, 1),
    }


def _run_worker(spec: dict[str, Any], in_process: bool) -> dict[str, Any]:
    if in_process:
        return measure(spec)
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(spec)], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        return {**spec, "error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def add_share_of_peak(rows: list[dict[str, Any]], peak: dict[str, float]) -> None:
    """Adds ``share_of_peak`` (and ``share_of_bf16_peak``) to each measured row, in place."""
    for r in rows:
        if "error" in r:
            continue
        if peak.get("conv train fp32"):
            r["share_of_peak"] = round(r["train_gflops_per_s"] / peak["conv train fp32"], 3)
        if r["precision"] == "bf16" and peak.get("conv train bf16"):
            r["share_of_bf16_peak"] = round(r["train_gflops_per_s"] / peak["conv train bf16"], 3)


def measure_peak(threads: int, bf16: bool, repeats: int) -> dict[str, Any]:
    """``bench_peak.measure_peaks`` in a fresh subprocess on ``threads`` (as the model rows run)."""
    cmd = [sys.executable, str(Path(__file__).with_name("bench_peak.py")), "--threads", str(threads),
           "--bf16", "auto" if bf16 else "off", "--repeats", str(repeats)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.split("\n\n")[0])


def markdown(rows: list[dict[str, Any]]) -> str:
    cols = [
        ("variant", "variant"), ("input", "input (TxHxW)"), ("batch", "B"), ("precision", "prec"),
        ("channels_last", "CL3d"), ("frozen_bn", "frozen BN"), ("conv", "conv"), ("allocator", "malloc"),
        ("fwd_gflops", "fwd GFLOPs/clip"), ("train_gflops", "train GFLOPs/clip"),
        ("fwd_ms", "fwd ms"), ("train_ms", "train ms"), ("train_gflops_per_s", "train GFLOP/s"),
        ("share_of_peak", "share of fp32 conv peak"), ("peak_mb", "peak MB"),
    ]
    lines = ["| " + " | ".join(c[1] for c in cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['variant']} | {r['size']} | {r['batch']} | {r['precision']} | "
                         f"{r['channels_last']} | error: {r['error']} |")
            continue
        cells = [str(r.get(c[0], "-")) for c in cols]
        if "share_of_peak" in r:
            cells[[c[0] for c in cols].index("share_of_peak")] = f"{100 * r['share_of_peak']:.0f}%"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--variants", nargs="+", default=["slowfast_tiny", "slowfast_small", "slowfast_r50_4x16"])
    p.add_argument("--sizes", nargs="+", default=["1x"], choices=list(SIZES))
    p.add_argument("--batches", nargs="+", type=int, default=[1])
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    p.add_argument("--formats", nargs="+", default=["contiguous", "channels_last"],
                   choices=["contiguous", "channels_last"])
    p.add_argument("--bn", nargs="+", default=["train"], choices=["train", "frozen"],
                   help="'frozen': BatchNorm frozen (running statistics, no affine gradients), as AlphAction's "
                        "FROZEN_BN and the slowfast_r50_4x16 config, which our convs fold into the conv and its "
                        "fused ReLU; 'train frozen' runs both")
    p.add_argument("--frozen-bn", action="store_true", help="the same as --bn frozen")
    p.add_argument("--native-conv", nargs="+", default=["off"], choices=["off", "on"],
                   help="'on': every conv as plain F.conv3d (as THERMAL_ACTION_NATIVE_CONV=1 does), to measure "
                        "thermal_action.models.ops.conv's CPU paths side by side; 'off on' runs both")
    p.add_argument("--allocator", nargs="+", default=["reuse"], choices=["reuse", "system"],
                   help="'reuse': glibc keeps freed memory (thermal_action.models.ops.cpu_workarounds."
                        "reuse_freed_memory, as `thermal-action train` on CPU); 'system': malloc's defaults, as a "
                        "plain PyTorch script; 'reuse system' runs both")
    p.add_argument("--interaction", default="none", choices=["none", "parallel", "serial", "denseserial"])
    p.add_argument("--frames", type=int, default=32, help="fast-pathway frames per clip")
    p.add_argument("--boxes", type=int, default=2, help="person boxes per clip")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--in-process", action="store_true", help="no subprocess per row (peak memory then meaningless)")
    p.add_argument("--no-peak", action="store_true", help="skip bench_peak.py's machine peak (and the share column)")
    p.add_argument("--peak-repeats", type=int, default=3, help="timed runs per bench_peak.py rate")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.worker:
        print(json.dumps(measure(json.loads(args.worker))))
        return 0

    cpu_peak = args.device == "cpu" and not args.no_peak
    peaks = [measure_peak(args.threads, "bf16" in args.precisions, args.peak_repeats)] if cpu_peak else []
    rows = []
    bn_modes = ["frozen"] if args.frozen_bn else args.bn
    for variant, size, batch, precision, bn, fmt, native, allocator in itertools.product(
        args.variants, args.sizes, args.batches, args.precisions, bn_modes, args.formats, args.native_conv,
        args.allocator,
    ):
        spec = {
            "variant": variant, "size": size, "batch": batch, "precision": precision,
            "frozen_bn": bn == "frozen", "native_conv": native == "on",
            "channels_last": fmt == "channels_last", "interaction": args.interaction, "frames": args.frames,
            "boxes": args.boxes, "warmup": args.warmup, "repeats": args.repeats, "threads": args.threads,
            "device": args.device, "allocator": allocator,
        }
        row = _run_worker(spec, args.in_process)
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    peak: dict[str, float] = {}
    if cpu_peak:
        peaks.append(measure_peak(args.threads, "bf16" in args.precisions, args.peak_repeats))
        peak = {k: max(p["peak"].get(k, 0.0) for p in peaks) for k in peaks[0]["peak"]}
        add_share_of_peak(rows, peak)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from machine import cpu_description, describe_line  # benchmarks/ is not a package

    machine = cpu_description()
    print(json.dumps({"reference": REFERENCE, "machine": machine, "threads": args.threads,
                      "peak": peak, "peak_runs": [p["peak"] for p in peaks], "rows": rows}, indent=1))
    print()
    print(describe_line(machine, args.threads or None))
    if peak:
        print("Peak GFLOP/s of this run (best of before/after the models): "
              + ", ".join(f"{k} {v}" for k, v in peak.items()))
    print()
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
