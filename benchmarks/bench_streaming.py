"""How many live sensors one CPU keeps up with, and how late predictions come.

Every sensor delivers a frame every 1/6 s (a "tick"); each tick, the frames of all
sensors go into :meth:`StreamingPredictor.push_many` (repair, built-in detector and
tracker per frame, then one batched forward pass for every window that completed).
Sensors start at staggered times, as real ones do, so their keyframes (every
``step`` frames) spread over the ticks. The ticks are run back to back and timed;

- real-time factor (wall) = stream time / compute time (>= 1: keeps up on this
  machine as it is, other processes included);
- real-time factor per core (CPU) = stream time / CPU time of the process, with one
  thread: what one dedicated core does, even on a shared machine. The work splits
  over cores by running one process per core with its own sensors, so a 2-core CPU
  serves about twice as many sensors. (Two threads in one process measure badly on
  a shared machine: a descheduled thread leaves the other spinning, 10x slower for
  PyTorch here.)
- latency of a prediction = compute time of the tick that completed its window,
  plus any queueing when earlier ticks overran, replayed on a 6 fps arrival
  schedule; the inherent lag (the keyframe is the window centre, so its window
  completes ``frames_after`` frames later) comes on top and is reported apart.

The model is the CPU default (the shipped config ``cpu_default``, or ``--config``) with
untrained weights: speed does not depend on the weights.
Frames come from the synthetic generator (people, furniture, dropped packets).

Usage::

    python benchmarks/bench_streaming.py                      # torch and onnx, 8/16/24 sensors
    python benchmarks/bench_streaming.py --backends onnx --sensors 16 32 --causal --batch-wait 0 5
    python benchmarks/bench_streaming.py --checkpoint runs/x/best.ckpt --backends torch

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

from thermal_action.config import load_config
from thermal_action.data.dataset import build_clip_builder
from thermal_action.data.synth.config import SynthConfig
from thermal_action.data.synth.recording import simulate_recording
from thermal_action.inference.backends import TorchBackend
from thermal_action.inference.boxes import FrameBoxes
from thermal_action.inference.predictor import Predictor
from thermal_action.inference.streaming import StreamFrame, StreamingPredictor
from thermal_action.models.build import build_model
from thermal_action.structures import DEFAULT_CLASS_NAMES

FPS = 6.0
CPU_DEFAULT = "cpu_default"  # the shipped config, by name


def make_predictor(args: argparse.Namespace) -> tuple[Predictor, str]:
    if args.checkpoint:
        return (Predictor.from_checkpoint(args.checkpoint, backend=args.backend, max_clips_per_batch=args.batch,
                                          num_threads=args.threads), str(args.checkpoint))
    cfg = load_config(args.config or CPU_DEFAULT)
    source = str(args.config or CPU_DEFAULT)
    source = f"{source} ({cfg.model.variant}, {cfg.data.num_frames} frames, {args.backend})"
    if args.backend == "onnx":
        from bench_export import untrained_checkpoint  # beside this script

        tmp = Path(tempfile.mkdtemp(prefix="bench_streaming_"))
        ckpt = untrained_checkpoint(cfg, tmp / "model.ckpt")
        return (Predictor.from_checkpoint(ckpt, backend="onnx", onnx_path=tmp / "model.onnx",
                                          max_clips_per_batch=args.batch, num_threads=args.threads), source)
    torch.manual_seed(0)
    model = build_model(cfg.model, len(DEFAULT_CLASS_NAMES)).eval()
    return Predictor(TorchBackend(model), build_clip_builder(cfg.data), DEFAULT_CLASS_NAMES,
                     max_clips_per_batch=args.batch), source


def sensor_frames(num_recordings: int, frames: int) -> list[np.ndarray]:
    cfg = SynthConfig(num_recordings=num_recordings, frames_per_recording=frames, seed=3, val_recordings=0)
    return [simulate_recording(cfg, i).frames for i in range(num_recordings)]


def replay_latency(tick_seconds: list[float], completed: list[list[int]], first_tick: int) -> dict[str, float]:
    """Latency of predictions on a real-time arrival schedule (queueing included).

    Args:
        tick_seconds: compute time of each timed tick.
        completed: per timed tick, the ticks at which the windows it returned completed
            (earlier than the tick itself when ``batch_wait`` held them back).
        first_tick: tick number of the first timed tick.
    """
    free_at, lat = 0.0, []
    for i, (c, comp) in enumerate(zip(tick_seconds, completed)):
        arrival = (first_tick + i) / FPS
        done = max(arrival, free_at) + c
        free_at = done
        lat += [done - t / FPS for t in comp]
    if not lat:
        return {"p50_ms": float("nan"), "p95_ms": float("nan"), "max_ms": float("nan")}
    a = np.asarray(lat) * 1000
    return {"p50_ms": float(np.percentile(a, 50)), "p95_ms": float(np.percentile(a, 95)), "max_ms": float(a.max())}


def run(predictor: Predictor, recordings: list[np.ndarray], num_sensors: int, ticks: int, step: int,
        causal: bool, batch_wait: int) -> dict:
    sp = StreamingPredictor(predictor, step=step, causal=causal, alerts=False, batch_wait=batch_wait)
    warm = predictor.window_length
    rng = np.random.default_rng(num_sensors)
    # Staggered starts: sensor s joins at tick s % step, so the sensors' keyframes (every
    # step frames of each stream) spread evenly over the ticks, as with real sensors.
    phase = [s % step for s in range(num_sensors)]
    starts = [int(rng.integers(0, len(recordings[0]) - warm - ticks - step)) for _ in range(num_sensors)]

    def tick(i: int, boxes: FrameBoxes | None = None) -> list[StreamFrame]:
        return [StreamFrame(f"s{s}", recordings[s % len(recordings)][starts[s] + i - phase[s]], int(i * 1000 / FPS),
                            boxes) for s in range(num_sensors) if i >= phase[s]]

    # Warm-up (untimed): first frames without people (no model calls) to fill the
    # buffers, then with the detectors, so the timed ticks' keyframes have people.
    for i in range(warm):
        sp.push_many(tick(i, FrameBoxes.empty() if i < warm - sp.lag_frames - step else None))
    sp.stats = type(sp.stats)()
    seconds, produced, completed = [], [], []
    cpu0 = time.process_time()
    for i in range(warm, warm + ticks):
        items = tick(i)
        t = time.perf_counter()
        out = sp.push_many(items)
        seconds.append(time.perf_counter() - t)
        windows = {(p.sensor_id, p.frame_idx) for p in out}
        produced.append(len(windows))
        # The window of keyframe k of sensor s completed when its frame k + lag arrived.
        completed.append([k + sp.lag_frames + phase[int(name[1:])] for name, k in windows])
    cpu_s = time.process_time() - cpu0
    stream_s = ticks / FPS
    compute_s = float(sum(seconds))
    st = sp.stats
    return {
        "sensors": num_sensors,
        "causal": causal,
        "batch_wait": batch_wait,
        "ticks": ticks,
        "stream_seconds": stream_s,
        "compute_seconds": compute_s,
        "realtime_factor": stream_s / compute_s,
        "keeps_up": compute_s <= stream_s,
        "cpu_seconds": cpu_s,
        # CPU time is what the work costs whatever else runs on the machine: with one
        # thread, stream time / CPU time is the real-time factor of one dedicated core.
        "realtime_factor_per_core": stream_s / cpu_s,
        "windows": int(sum(produced)),
        "forward_passes": st.forward_passes,
        "ms_per_frame_detect_track": 1000 * st.seconds_frames / max(st.frames, 1),
        "ms_per_window_model": 1000 * st.seconds_model / max(sum(produced), 1),
        "tick_ms_p50": float(np.percentile(np.asarray(seconds) * 1000, 50)),
        "tick_ms_max": float(np.max(seconds) * 1000),
        "latency_compute": replay_latency(seconds, completed, warm),
    }


def component_costs(predictor: Predictor, recordings: list[np.ndarray], batches: list[int],
                    repeats: int = 3) -> dict:
    """Per-part CPU costs (model: minimum of repeats).

    CPU time, not wall time: on a shared machine it is what the work costs a
    dedicated core (with one thread); the end-to-end runs show both.
    """
    from thermal_action.people.person_detector import PersonDetector
    from thermal_action.people.tracker import Tracker

    frames = recordings[0]
    det, trk = PersonDetector(), Tracker()
    per_frame = []
    for f in frames[:120]:
        t = time.process_time()
        trk.update(det.update(f))
        per_frame.append(time.process_time() - t)
    # Steady state: skip the first frames (background initialisation); CPU time, mean.
    detect_ms = 1000 * float(np.mean(per_frame[20:]))
    model = {}
    k = predictor.frames_before
    boxes = np.array([[10, 8, 22, 18], [35, 20, 47, 30]], np.float32)
    from thermal_action.inference.predictor import ClipRequest

    for b in batches:
        reqs = [ClipRequest(frames[i: i + predictor.window_length], k, boxes) for i in range(b)]
        predictor.predict_clips(reqs)  # warm-up
        best = min(time_it(lambda: predictor.predict_clips(reqs)) for _ in range(repeats))
        model[b] = 1000 * best / b
    return {"detect_track_ms_per_frame": detect_ms, "model_ms_per_window_by_batch": model}


def time_it(fn) -> float:
    """CPU seconds of one call (with one thread: the time a dedicated core would take)."""
    t = time.process_time()
    fn()
    return time.process_time() - t


def capacity(detect_ms: float, window_ms: float, step: int) -> float:
    """Sensors one CPU serves in real time: each sensor needs FPS frames and FPS / step windows per second."""
    per_sensor_ms = FPS * detect_ms + FPS / step * window_ms
    return 1000.0 / per_sensor_ms


def bench_backend(args: argparse.Namespace, backend: str) -> dict:
    args.backend = backend
    predictor, source = make_predictor(args)
    recordings = sensor_frames(4, predictor.window_length + args.step + args.ticks + 64)
    rows = []
    for causal in ([False, True] if args.causal else [False]):
        for wait in args.batch_wait:
            for n in args.sensors:
                rows.append(run(predictor, recordings, n, args.ticks, args.step, causal, wait))
                print(f"# {backend}: {n} sensors{' causal' if causal else ''}, batch_wait {wait}: "
                      f"x{rows[-1]['realtime_factor']:.2f} wall, x{rows[-1]['realtime_factor_per_core']:.2f} per core",
                      file=sys.stderr)
    comp = component_costs(predictor, recordings, [1, 4, 16])
    comp["sensors_per_core_by_batch"] = {b: capacity(comp["detect_track_ms_per_frame"], ms, args.step)
                                         for b, ms in comp["model_ms_per_window_by_batch"].items()}
    centred = [r for r in rows if not r["causal"]]
    best = max(centred, key=lambda r: r["sensors"] * min(r["realtime_factor_per_core"], 10))
    return {
        "backend": backend,
        "model": source,
        "window_frames": predictor.window_length,
        "inherent_lag_frames": predictor.frames_after,
        "max_sensors_in_real_time_wall": max([r["sensors"] for r in centred if r["keeps_up"]], default=0),
        "max_sensors_in_real_time_per_core": max(
            [r["sensors"] for r in centred if r["realtime_factor_per_core"] >= 1], default=0),
        # The work of one stream divides over cores (run one process per core with its
        # own sensors), so a 2-core CPU serves twice what one core does.
        "estimated_sensors_per_core": best["sensors"] * best["realtime_factor_per_core"],
        "estimated_sensors_2_cores": 2 * best["sensors"] * best["realtime_factor_per_core"],
        "components": comp,
        "runs": rows,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sensors", type=int, nargs="+", default=[8, 16, 24])
    p.add_argument("--ticks", type=int, default=24, help="timed frames per sensor (24 = 4 s of stream)")
    p.add_argument("--step", type=int, default=6)
    p.add_argument("--threads", type=int, default=1,
                   help="threads per process; 1 scales by processes (one per core) and is the only setting "
                        "that measures cleanly on a shared machine")
    p.add_argument("--batch", type=int, default=16, help="clips per forward pass")
    p.add_argument("--config", help="config of the model: a shipped name or a YAML file (default: cpu_default)")
    p.add_argument("--checkpoint", help="a trained checkpoint instead of an untrained model")
    p.add_argument("--backends", nargs="+", default=["torch", "onnx"], choices=["torch", "onnx"])
    p.add_argument("--causal", action="store_true", help="also measure causal mode")
    p.add_argument("--batch-wait", type=int, nargs="+", default=[0],
                   help="ticks a window may wait for others to share its forward pass (e.g. 0 5)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    results = [bench_backend(args, b) for b in args.backends]
    lag = results[0]["inherent_lag_frames"]
    out = {
        "threads": args.threads,
        "cpu_count": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0],
        "step": args.step,
        "fps": FPS,
        "inherent_lag_frames": lag,
        "inherent_lag_seconds": lag / FPS,
        "bench_seconds": time.perf_counter() - t0,
        "backends": results,
    }
    print(json.dumps(out, indent=2))
    print()
    print(f"{args.threads} thread(s) per process; step {args.step} at {FPS:g} fps; load average "
          f"{out['load_average_1min']:.1f} on {os.cpu_count()} CPUs; inherent lag {lag} frames = {lag / FPS:.1f} s "
          "(centred keyframe; 0 in causal mode)")
    print()
    print("| backend | sensors | mode | batch wait | real time (wall) | real time per core (CPU) "
          "| detect+track ms/frame | model ms/window | latency p50 / p95 / max ms |")
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for res in results:
        for r in res["runs"]:
            lat = r["latency_compute"]
            print(f"| {res['backend']} | {r['sensors']} | {'causal' if r['causal'] else 'centred'} | {r['batch_wait']} "
                  f"| x{r['realtime_factor']:.2f} | x{r['realtime_factor_per_core']:.2f} "
                  f"| {r['ms_per_frame_detect_track']:.1f} | {r['ms_per_window_model']:.1f} "
                  f"| {lat['p50_ms']:.0f} / {lat['p95_ms']:.0f} / {lat['max_ms']:.0f} |")
    print()
    print("| backend | detect+track CPU ms/frame | model CPU ms/window (1 / 4 / 16 clips per pass) "
          "| sensors per core (parts) | sensors per core (end to end) | 2-core estimate |")
    print("| --- | ---: | --- | ---: | ---: | ---: |")
    for res in results:
        c = res["components"]
        ms = c["model_ms_per_window_by_batch"]
        print(f"| {res['backend']} | {c['detect_track_ms_per_frame']:.1f} | "
              f"{' / '.join(f'{ms[b]:.0f}' for b in ms)} | {max(c['sensors_per_core_by_batch'].values()):.0f} | "
              f"{res['estimated_sensors_per_core']:.0f} | {res['estimated_sensors_2_cores']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
