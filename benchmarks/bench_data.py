"""Data-loading throughput: clips per second through the dataset and collate, cold and warm.

Writes its own small dataset to a temporary directory with h5py (the on-disk format of
DATA_FORMAT.md: gzip level 4, chunks of 64 frames, ~8% of frames with dropped packets),
then measures in one process (= one DataLoader worker):

- ``read_recording``: decode + repair of one 500-frame file (the cold cost);
- ``cold``: a fresh dataset's first pass (each recording read once, then cached);
- ``warm``: later passes from the in-memory cache, with and without augmentation, both
  normalisation modes;
- ``no cache``: ``cache=False``, every clip re-reads its recording (bounded memory);
- ``+ collate``: batches of 8 through :class:`ClipCollator` (SlowFast packing).

Clips are the default 64-frame windows at stride 2 (T = 32) at native 40 x 60.

Usage::

    python benchmarks/bench_data.py [--recordings 4] [--frames 500] [--keyframes 40] [--seed 0]

Prints a JSON object and a Markdown table. Runs in well under a minute.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch

from thermal_action.config import DataConfig
from thermal_action.data.dataset import build_collate, build_dataset
from thermal_action.data.hdf5 import read_recording

CATEGORIES = [{"id": i, "name": f"class{i}"} for i in range(14)]


def write_dataset(root: Path, recordings: int, frames: int, keyframes: int, seed: int) -> None:
    """Recordings with warm moving blobs and dropped packets, keyframes spread evenly."""
    rng = np.random.default_rng(seed)
    (root / "frames").mkdir(parents=True)
    (root / "annotations").mkdir()
    images, anns = [], []
    yy, xx = np.mgrid[0:40, 0:60]
    for r in range(recordings):
        sensor = f"B{r}"
        f = (18.0 + rng.normal(0, 0.3, size=(frames, 40, 60))).astype(np.float32)
        cx = 10 + 40 * (0.5 + 0.5 * np.sin(np.linspace(0, 6, frames) + r))
        for t in range(frames):
            f[t] += 6.0 * np.exp(-(((xx - cx[t]) / 4) ** 2 + ((yy - 20) / 3) ** 2))
        dropped = rng.random(frames) < 0.08
        for t in np.flatnonzero(dropped):
            f[t].reshape(-1)[-576 * int(rng.integers(1, 5)):] = -273.2
        ts = 1_760_000_000_000 + np.cumsum(rng.choice([37, 165, 510], size=frames)).astype(np.int64)
        with h5py.File(root / "frames" / f"{sensor}.h5", "w") as h:
            h.create_dataset("frames", data=f, compression="gzip", compression_opts=4, chunks=(64, 40, 60))
            h["timestamps"] = ts
            h["frame_seqs"] = ts
            h.attrs.update({"sensor_id": sensor, "frame_height": 40, "frame_width": 60, "total_frames": frames})
        for k, t in enumerate(np.linspace(0, frames - 1, keyframes).round().astype(int)):
            image_id = f"{sensor}_{ts[t]}"
            images.append({"id": image_id, "sensor_id": sensor, "timestamp": int(ts[t]), "width": 60, "height": 40,
                           "frame_idx": int(t)})
            for p in range(k % 3):  # 0, 1 or 2 persons
                anns.append({"id": len(anns), "image_id": image_id, "category_id": int(rng.integers(14)),
                             "bbox": [float(cx[t]) / 60, (14 + 12 * p) / 40, 11 / 60, 8 / 40], "object_id": p})
    (root / "annotations" / "train.json").write_text(
        json.dumps({"images": images, "annotations": anns, "categories": CATEGORIES}))


class Timer:
    """CPU time of this process (what one worker spends; the machine may be shared) and wall time."""

    def __enter__(self) -> "Timer":
        self.cpu0, self.wall0 = time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.cpu = time.process_time() - self.cpu0
        self.wall = time.perf_counter() - self.wall0


def clips_per_second(ds, n_passes: int = 1, limit: int | None = None) -> dict[str, float]:
    n = len(ds) if limit is None else min(limit, len(ds))
    with Timer() as t:
        for e in range(n_passes):
            ds.set_epoch(e)
            for i in range(n):
                ds[i]
    return {"cpu": n * n_passes / t.cpu, "wall": n * n_passes / t.wall}


def collated_per_second(ds, collate, batch_size: int = 8, n_passes: int = 3) -> dict[str, float]:
    count = 0
    with Timer() as t:
        for e in range(n_passes):
            ds.set_epoch(e)
            for b in range(0, len(ds) - batch_size + 1, batch_size):
                collate([ds[i] for i in range(b, b + batch_size)])
                count += batch_size
    return {"cpu": count / t.cpu, "wall": count / t.wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--recordings", type=int, default=4)
    ap.add_argument("--frames", type=int, default=500)
    ap.add_argument("--keyframes", type=int, default=40, help="per recording")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)  # one DataLoader worker's view

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_dataset(root, args.recordings, args.frames, args.keyframes, args.seed)
        cfg = DataConfig(root=str(root))
        h5 = root / "frames" / "B0.h5"
        read_recording(h5)  # warm the page cache: we measure decoding, not the disk
        reps = 5
        with Timer() as t:
            for _ in range(reps):
                rec = read_recording(h5)
        read_ms = t.cpu / reps * 1000

        results: dict[str, dict[str, float]] = {}
        ds = build_dataset(cfg, cfg.train_ann, train=True)
        results["cold_aug"] = clips_per_second(ds)  # first pass: reads every recording once
        results["warm_aug"] = clips_per_second(ds, n_passes=3)
        ds_eval = build_dataset(cfg, cfg.train_ann, train=False)
        ds_eval.preload()
        results["warm_noaug"] = clips_per_second(ds_eval, n_passes=3)
        fixed = dataclasses.replace(cfg, normalization="fixed")
        ds_fixed = build_dataset(fixed, fixed.train_ann, train=True)
        ds_fixed.preload()
        results["warm_aug_fixed"] = clips_per_second(ds_fixed, n_passes=3)
        nocache = dataclasses.replace(cfg, cache=False)
        results["nocache_aug"] = clips_per_second(build_dataset(nocache, nocache.train_ann, train=True), limit=40)
        results["warm_aug_collate"] = collated_per_second(ds, build_collate(cfg, alpha=4, train=True))

    out = {
        "benchmark": "data",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, 1 thread",
        "dataset": {"recordings": args.recordings, "frames_per_recording": args.frames,
                    "keyframes": args.recordings * args.keyframes, "clip": "64 frames, stride 2 (T=32), 40x60",
                    "dropped_packet_frames_per_file": rec.repair.repaired_frames},
        "read_recording_ms": round(read_ms, 2),
        "clips_per_cpu_s": {k: round(v["cpu"], 1) for k, v in results.items()},
        "clips_per_wall_s": {k: round(v["wall"], 1) for k, v in results.items()},
    }
    print(json.dumps(out, indent=2))
    rows = [
        ("read_recording (one 500-frame file, decode + repair)", f"{read_ms:.1f} ms"),
        ("cold: first pass, default background norm + augmentation", f"{results['cold_aug']['cpu']:.0f} clips/s"),
        ("warm (cached), background norm + augmentation", f"{results['warm_aug']['cpu']:.0f} clips/s"),
        ("warm (cached), background norm, no augmentation", f"{results['warm_noaug']['cpu']:.0f} clips/s"),
        ("warm (cached), fixed norm + augmentation", f"{results['warm_aug_fixed']['cpu']:.0f} clips/s"),
        ("no cache (re-read file per clip) + augmentation", f"{results['nocache_aug']['cpu']:.0f} clips/s"),
        ("warm + ClipCollator (batch 8, alpha 4)", f"{results['warm_aug_collate']['cpu']:.0f} clips/s"),
    ]
    print("\n| data loading (one worker: 1 process, 1 thread; per CPU-second) | |\n| --- | --- |")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
