"""PyTorch vs ONNX Runtime on CPU: the same inputs, side by side.

Exports the CPU default model (the shipped config ``cpu_default``, or ``--config``;
untrained weights: speed does not depend on them) or a given
checkpoint, then times the forward pass of both backends on identical inputs for a
few (clips, boxes) sizes, interleaving the two so machine load hits both alike, and
checks that their logits agree.

Usage::

    python benchmarks/bench_export.py                 # 1 thread
    python benchmarks/bench_export.py --threads 2 --repeats 10
    python benchmarks/bench_export.py --checkpoint runs/x/best.ckpt

Prints a JSON object and a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from thermal_action.config import Config, config_to_dict, load_config
from thermal_action.inference.export import _example_inputs, export_onnx
from thermal_action.inference.backends import OnnxBackend, TorchBackend
from thermal_action.structures import DEFAULT_CLASS_NAMES

CPU_DEFAULT = "cpu_default"  # the shipped config, by name


def untrained_checkpoint(cfg: Config, path: Path) -> Path:
    """An untrained model in the training checkpoint format (what ``export`` reads)."""
    from thermal_action.models.build import build_model
    from thermal_action.models.checkpoint import CHECKPOINT_KEY, checkpoint_extras

    torch.manual_seed(0)
    model = build_model(cfg.model, len(DEFAULT_CLASS_NAMES))
    torch.save({"state_dict": {"model." + k: v for k, v in model.state_dict().items()},
                CHECKPOINT_KEY: checkpoint_extras(config_to_dict(cfg), list(DEFAULT_CLASS_NAMES), "softmax")}, path)
    return path


def time_call(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", help="a training checkpoint (default: an untrained CPU default model)")
    p.add_argument("--config", help="YAML config for the untrained model")
    p.add_argument("--threads", type=int, default=1,
                   help="threads for both backends (1 measures cleanly on a shared machine; see bench_streaming)")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--sizes", default="1x1,1x3,4x8,16x16", help="CLIPSxBOXES cases")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="bench_export_"))
    if args.checkpoint:
        ckpt, source = Path(args.checkpoint), args.checkpoint
    else:
        cfg = load_config(args.config or CPU_DEFAULT)
        ckpt = untrained_checkpoint(cfg, tmp / "model.ckpt")
        source = f"{args.config or CPU_DEFAULT} " \
                 f"({cfg.model.variant}, {cfg.data.num_frames} frames, scale {cfg.data.scale})"
    t0 = time.perf_counter()
    report = export_onnx(ckpt, tmp / "model.onnx")
    export_s = time.perf_counter() - t0
    from thermal_action.models.checkpoint import load_checkpoint

    model = load_checkpoint(ckpt).model
    pt = TorchBackend(model)
    ort = OnnxBackend(report.path, num_threads=args.threads)
    meta = ort.metadata
    h, w = meta["input_hw"]
    t = meta["clip_length"]
    rows = []
    for case in args.sizes.split(","):
        b, r = (int(v) for v in case.split("x"))
        slow, fast, rois = _example_inputs(b, r, t, meta["alpha"], h, w, seed=b * 100 + r)
        want, got = pt(slow, fast, rois), ort(slow, fast, rois)
        diff = float(np.abs(want.numpy() - got).max())
        pt(slow, fast, rois), ort(slow, fast, rois)  # warm-up
        tp, to = [], []
        for _ in range(args.repeats):  # interleaved: load changes hit both backends alike
            tp += time_call(lambda: pt(slow, fast, rois), 1)
            to += time_call(lambda: ort(slow, fast, rois), 1)
        rows.append({
            "clips": b, "boxes": r,
            "torch_ms_median": 1000 * float(np.median(tp)), "onnx_ms_median": 1000 * float(np.median(to)),
            "torch_ms_min": 1000 * min(tp), "onnx_ms_min": 1000 * min(to),
            "speedup_onnx_over_torch": float(np.median(tp) / np.median(to)),
            "max_abs_logit_diff": diff,
        })
        print(f"# {b} clips x {r} boxes: torch {rows[-1]['torch_ms_median']:.1f} ms, "
              f"onnx {rows[-1]['onnx_ms_median']:.1f} ms", file=sys.stderr)
    result = {
        "model": source,
        "threads": args.threads,
        "cpu_count": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0],
        "exporter": report.exporter,
        "export_seconds": export_s,
        "onnx_mb": report.size_bytes / 1e6,
        "input_shapes": report.input_shapes,
        "runs": rows,
    }
    print(json.dumps(result, indent=2))
    print()
    print(f"Model: {source}; {args.threads} threads; {report.exporter} exporter; "
          f"median of {args.repeats} interleaved runs")
    print()
    print("| clips x boxes | PyTorch ms | ONNX Runtime ms | ORT speed-up | max logit diff |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['clips']} x {r['boxes']} | {r['torch_ms_median']:.1f} | {r['onnx_ms_median']:.1f} | "
              f"{r['speedup_onnx_over_torch']:.2f}x | {r['max_abs_logit_diff']:.1e} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
