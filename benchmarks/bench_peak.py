"""This machine's matmul and 3D-convolution peak, on the configured threads, in this run.

Speed is quoted as a share of what the CPU reaches on its best-shaped kernels, measured
in the same run (the machine is shared and its clock and load drift): a model at 60
GFLOP/s on a CPU whose convolutions peak at 80 is near its limit, at 60 on one that
peaks at 400 it is not. Measured:

- ``matmul``: an ``N x N`` by ``N x N`` matmul (``--matmul-size``, 2048: 17 GFLOP);
- ``conv``: ``torch.nn.Conv3d`` forward, and forward + backward (input and weight
  gradients, as in training), for the shapes in :data:`CONV_SHAPES`: the 1x3x3, 3x1x1,
  1x1x1 and 3x3x3 kernels the SlowFasts and the person-tube CNN use, at their channel
  widths; channels-last-3d, as ``trainer.channels_last`` trains;
- both in fp32, and in bf16 where the CPU reports bf16 instructions (``--bf16 auto``;
  ``on`` forces it; a bf16 side stops after ``--bf16-cap`` x its fp32 time, so a CPU
  that emulates bf16 costs seconds, not minutes): matmul on bf16 tensors, the convs
  under ``torch.autocast("cpu", torch.bfloat16)`` as ``bf16-mixed`` runs them.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` (1 multiply-add = 2
FLOPs), as ``bench_model.py`` counts them; each rate is the best of ``--repeats``
timed runs after one warm-up (a peak is what the machine *can* do; the median is in
the JSON too). The peak of a kind is its best shape.

Usage::

    python benchmarks/bench_peak.py --threads 2
    python benchmarks/bench_peak.py --threads 1 --bf16 off --repeats 5

Prints one JSON object and a Markdown table. ``bench_model.py`` calls :func:`measure_peaks`
in its own run to report each model as a share of the fp32 conv peak.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_description, describe_line  # noqa: E402  (benchmarks/ is not a package)

#: name -> (in channels, out channels, kernel (kT, kH, kW), input (B, T, H, W)).
CONV_SHAPES: dict[str, tuple[int, int, tuple[int, int, int], tuple[int, int, int, int]]] = {
    # The shape: a SlowFast slow-pathway res2 spatial conv.
    "1x3x3 64->64": (64, 64, (1, 3, 3), (1, 8, 64, 96)),
    # A slow-pathway temporal conv (res4/res5 of the R50 4x16 are 3x1x1).
    "3x1x1 128->128": (128, 128, (3, 1, 1), (1, 8, 32, 48)),
    # A bottleneck's pointwise conv: a matmul in disguise.
    "1x1x1 256->64": (256, 64, (1, 1, 1), (1, 8, 32, 48)),
    # The person-tube CNN (cpu_default's crop_cnn) and the compact SlowFasts: few channels.
    "3x3x3 16->32": (16, 32, (3, 3, 3), (8, 32, 16, 16)),
    "3x3x3 64->64": (64, 64, (3, 3, 3), (4, 8, 16, 16)),
}


def _timed(fn: Callable[[], None], repeats: int, budget_s: float = float("inf")) -> tuple[list[float], bool]:
    """Seconds of each of ``repeats`` calls after one warm-up; stops once ``budget_s`` is spent."""
    start = time.perf_counter()
    fn()
    times: list[float] = []
    for _ in range(repeats):
        if time.perf_counter() - start > budget_s:
            return times, True
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times, False


def _flops(fn: Callable[[], None]) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def _rate(flops: int, times: list[float], capped: bool) -> dict[str, Any]:
    if not times:
        return {"gflop_per_s": None, "median_gflop_per_s": None, "ms": None, "capped": True}
    return {
        "gflop_per_s": round(flops / min(times) / 1e9, 1),
        "median_gflop_per_s": round(flops / statistics.median(times) / 1e9, 1),
        "ms": round(1000 * min(times), 2),
        "capped": capped,
    }


def matmul_rate(n: int, dtype: str, repeats: int, budget_s: float = float("inf")) -> dict[str, Any]:
    """GFLOP/s of an ``n x n`` by ``n x n`` matmul in ``dtype`` (``"fp32"`` or ``"bf16"``)."""
    import torch

    dt = torch.float32 if dtype == "fp32" else torch.bfloat16
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(dt)
    b = torch.randn(n, n, generator=gen).to(dt)
    times, capped = _timed(lambda: torch.mm(a, b), repeats, budget_s)
    return {"kind": "matmul", "shape": f"{n}x{n} @ {n}x{n}", "precision": dtype, "gflop": round(2 * n**3 / 1e9, 2),
            **_rate(2 * n**3, times, capped)}


def conv_rate(name: str, dtype: str, train: bool, repeats: int, budget_s: float = float("inf")) -> dict[str, Any]:
    """GFLOP/s of the :data:`CONV_SHAPES` conv ``name``: forward, or forward + backward when ``train``."""
    import torch

    c_in, c_out, k, (b, t, h, w) = CONV_SHAPES[name]
    fmt = torch.channels_last_3d
    torch.manual_seed(0)
    conv = torch.nn.Conv3d(c_in, c_out, k, padding=tuple(x // 2 for x in k), bias=False).to(memory_format=fmt)
    x = torch.randn(b, c_in, t, h, w).contiguous(memory_format=fmt).requires_grad_(train)
    mixed = dtype == "bf16"

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mixed), torch.set_grad_enabled(train):
            y = conv(x)
        if train:
            y.backward(torch.ones_like(y))
            conv.weight.grad = None
            x.grad = None

    flops = _flops(step)
    times, capped = _timed(step, repeats, budget_s)
    return {"kind": "conv train" if train else "conv fwd", "shape": f"{name}, input {b}x{c_in}x{t}x{h}x{w}",
            "precision": dtype, "gflop": round(flops / 1e9, 2), **_rate(flops, times, capped)}


def measure_peaks(threads: int = 0, bf16: str = "auto", repeats: int = 3, matmul_size: int = 2048,
                  bf16_cap: float = 5.0, shapes: list[str] | None = None) -> dict[str, Any]:
    """Every rate of this module on ``threads`` torch threads (0: torch's default).

    Args:
        threads: torch intra-op threads.
        bf16: ``"auto"`` (where the CPU reports bf16 instructions), ``"on"`` or ``"off"``.
        repeats: timed runs per rate (after one warm-up).
        matmul_size: N of the matmul.
        bf16_cap: a bf16 rate stops after this multiple of its fp32 counterpart's time.
        shapes: names in :data:`CONV_SHAPES` (None: all).

    Returns:
        ``{"machine", "threads", "rows", "peak"}``; ``peak`` holds the best GFLOP/s of each
        ``(kind, precision)``, e.g. ``peak["conv train fp32"]``.
    """
    import torch

    from thermal_action.models.ops.cpu_workarounds import cap_onednn_isa
    from thermal_action.training.precision import cpu_has_bf16, cpu_info

    cap_onednn_isa()  # the kernels training would run (and not the AMX bf16 ones that corrupt memory)
    if threads:
        torch.set_num_threads(threads)
    with_bf16 = bf16 == "on" or (bf16 == "auto" and cpu_has_bf16(cpu_info().flags))
    precisions = ["fp32", "bf16"] if with_bf16 else ["fp32"]
    rows = []

    def add(fp32_row_fn: Callable[[str, float], dict[str, Any]]) -> None:
        fp32 = fp32_row_fn("fp32", float("inf"))
        rows.append(fp32)
        if "bf16" in precisions:
            budget = bf16_cap * (fp32["ms"] or 0) / 1000 * (repeats + 1)
            rows.append(fp32_row_fn("bf16", budget))

    add(lambda p, budget: matmul_rate(matmul_size, p, repeats, budget))
    for name in shapes or list(CONV_SHAPES):
        for train in (False, True):
            add(lambda p, budget, name=name, train=train: conv_rate(name, p, train, repeats, budget))
    peak: dict[str, float] = {}
    for r in rows:
        key = f"{r['kind']} {r['precision']}"
        if r["gflop_per_s"] is not None and r["gflop_per_s"] > peak.get(key, 0.0):
            peak[key] = r["gflop_per_s"]
    return {"machine": cpu_description(), "threads": torch.get_num_threads(), "bf16": with_bf16,
            "bf16_cap": bf16_cap, "rows": rows, "peak": peak}


def markdown(result: dict[str, Any]) -> str:
    """The Markdown table of :func:`measure_peaks`: one line per shape, fp32 and bf16 side by side."""
    by_shape: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for r in result["rows"]:
        by_shape.setdefault((r["kind"], r["shape"]), {})[r["precision"]] = r
    bf16 = result["bf16"]
    head = ["kernel", "shape", "GFLOP", "fp32 ms", "fp32 GFLOP/s"] + (["bf16 ms", "bf16 GFLOP/s", "bf16 / fp32"]
                                                                     if bf16 else [])
    lines = [describe_line(result["machine"], result["threads"]), "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (kind, shape), by_p in by_shape.items():
        f = by_p["fp32"]
        cells = [kind, shape, str(f["gflop"]), str(f["ms"]), str(f["gflop_per_s"])]
        if bf16:
            b = by_p.get("bf16") or {}
            speed = (f"{b['gflop_per_s'] / f['gflop_per_s']:.2f}x" if b.get("gflop_per_s") and f["gflop_per_s"]
                     else f"stopped: over {result['bf16_cap']}x the fp32 time")
            cells += [str(b.get("ms", "-")), str(b.get("gflop_per_s", "-")), speed]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Peak GFLOP/s (best shape): " + ", ".join(f"{k} **{v}**" for k, v in result["peak"].items())]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    p.add_argument("--bf16", default="auto", choices=["auto", "on", "off"],
                   help="bf16 rates: auto = where the CPU reports bf16 instructions")
    p.add_argument("--bf16-cap", type=float, default=5.0, help="stop a bf16 rate after this multiple of fp32's time")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per rate, after one warm-up")
    p.add_argument("--matmul-size", type=int, default=2048)
    p.add_argument("--shapes", nargs="+", choices=list(CONV_SHAPES), help="conv shapes (default: all)")
    p.add_argument("--json", type=Path, help="also write the JSON here")
    args = p.parse_args(argv)
    result = measure_peaks(args.threads, args.bf16, args.repeats, args.matmul_size, args.bf16_cap, args.shapes)
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text)
    print()
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
