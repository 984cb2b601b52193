"""Where the live service's CPU goes: CPU time per stage over a fixed replay, per sensor-second.

The service's own code runs in this one process, stage after stage as ``serve`` runs it, on a
fixed replay: ``--sensors`` sensors play the real recordings (``../shared/thermal_real`` and
``../shared/thermal_sample``, cycled, sensor ``j`` of ``N`` ``j / N`` s late, as ``replay`` sends
them) for ``--seconds`` seconds of sensor time, in ticks of one frame period (1/6 s). Per tick:

==========================  =========================================================================
stage                       what runs (the code ``serve`` runs)
==========================  =========================================================================
ingest: parsing             ``protocol.decode_message`` of each sensor's binary message
ingest: hub                 ``Hub.submit`` (checks, new streams, the clip ring)
IPC (pickling)              pickling the frames to the worker and its results back, both ends
packet repair               ``StreamingPredictor._repair`` (the reader's dropped-packet repair)
person detector             ``PersonDetector.update``
tracker                     ``Tracker.update``
clip building               the window's snapshot and the model's clip builder (tubes, zones)
model                       the batched forward pass and the scores
alert rule                  ``FallAlertMonitor.update`` / ``advance``
worker: rest                the rest of a worker's round and the streaming predictor's bookkeeping
storing                     SQLite: predictions, alerts, alert clips
dashboard events            live views (PNG) and alert events, serialised as JSON for one open dashboard
hub: results, tick          the rest of ``Hub.on_message`` and the once-a-second tick
==========================  =========================================================================

CPU time is ``time.thread_time`` around each stage (exclusive of the stages nested in it), so
other jobs on a shared machine do not count, and torch runs on one thread, as in a worker.
Not covered: the web server (uvicorn's WebSocket framing, asyncio) and the queues' feeder
threads and pipes; ``bench_serve`` measures the whole process tree, the difference is theirs.

``--compare REV`` also profiles the package as it was at git revision ``REV`` (its ``src/``
unpacked to a temporary directory, run in a subprocess), alternating old and new runs, and
prints both side by side.

Usage::

    python benchmarks/bench_stages.py --checkpoint thermal_demo/run/checkpoints/best.ckpt
    python benchmarks/bench_stages.py --checkpoint CKPT --sensors 24 96 --seconds 60 --compare main \
        --out benchmarks/results/bench_stages.json

Prints a JSON object and a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from machine import cpu_description, describe_line  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
FPS = 6.0

STAGES = ["ingest: parsing", "ingest: hub", "IPC (pickling)", "packet repair", "person detector", "tracker",
          "clip building", "model", "alert rule", "worker: rest", "storing", "dashboard events",
          "hub: results, tick"]


def default_recordings() -> list[Path]:
    return sorted((SHARED / "thermal_real" / "frames").glob("*.h5")) + sorted(
        (SHARED / "thermal_sample" / "frames").glob("*.h5"))


class StageTimer:
    """Exclusive CPU time (``time.thread_time``) per named stage; stages may nest."""

    def __init__(self) -> None:
        self.cpu: Counter = Counter()
        self.calls: Counter = Counter()
        self._stack: list[float] = []  # child time of each open stage

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t = time.thread_time()
        self._stack.append(0.0)
        try:
            yield
        finally:
            spent = time.thread_time() - t
            children = self._stack.pop()
            self.cpu[name] += spent - children
            self.calls[name] += 1
            if self._stack:
                self._stack[-1] += spent

    def wrap(self, obj: Any, attr: str, name: str) -> None:
        """Times every call of ``obj.attr`` as ``name`` (replaces the attribute on ``obj``)."""
        fn = getattr(obj, attr)

        def timed(*args: Any, **kwargs: Any) -> Any:
            with self.stage(name):
                return fn(*args, **kwargs)

        setattr(obj, attr, timed)


class SimClock:
    """``time`` for the service's modules with the replay's clock: the rate limits (live views at
    ``dashboard_fps``) and silence checks see sensor time, however fast this process runs."""

    def __init__(self) -> None:
        self.now = 0.0  # sensor seconds since the start
        self.epoch = time.time()

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.epoch + self.now

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def _replay_schedule(recordings: list[Any], seconds: float) -> list[list[tuple[int, int, float]]]:
    """Ticks of ``(sensor index, frame index, send time s)``: every frame due within the tick;
    ``recordings[j]`` is sensor ``j``'s."""
    from thermal_action.serve.replay.recordings import schedule

    ticks: list[list[tuple[int, int, float]]] = [[] for _ in range(int(seconds * FPS))]
    for j, rec in enumerate(recordings):
        delay = j / len(recordings) * 1.0
        for i, s in schedule(rec.timestamps, loop=True):
            t = delay + s
            k = int(t * FPS)
            if k >= len(ticks):
                break
            ticks[k].append((j, i, t))
    return ticks


def model_flops_per_person(predictor: Any, window: Any) -> int:
    """FLOPs of the model for one person (``torch.utils.flop_counter``: convolutions and matmuls, a
    multiply-add counted as 2), from one clip with one person and one with two: for person tubes
    the cost is one tube pass per person (times the test-time views and members)."""
    import numpy as np
    from torch.utils.flop_counter import FlopCounterMode

    from thermal_action.inference.predictor import ClipRequest

    counts = []
    for boxes in (np.array([[10, 10, 20, 24]], np.float32), np.array([[10, 10, 20, 24], [30, 12, 42, 30]], np.float32)):
        with FlopCounterMode(display=False) as counter:
            predictor.predict_clips([ClipRequest(window, predictor.frames_before, boxes)])
        counts.append(counter.get_total_flops())
    return counts[1] - counts[0]


def peak_gflops_per_thread() -> tuple[float | None, str | None]:
    """The fp32 conv forward peak of ``bench_peak.py`` per thread, from its newest stored result."""
    for name in ("bench_peak_2threads_zen5.json", "bench_peak_2threads.json"):
        path = ROOT / "benchmarks" / "results" / name
        if path.is_file():
            d = json.loads(path.read_text())
            rows = [r for r in d["rows"] if r["kind"] == "conv fwd" and r["precision"] == "fp32"]
            if rows:
                return rows[0]["median_gflop_per_s"] / d["threads"], str(path.relative_to(ROOT))
    return None, None


def profile(checkpoint: Path, recordings: list[Path], sensors: int, seconds: float, workers: int) -> dict[str, Any]:
    """CPU seconds per stage of ``sensors`` sensors over ``seconds`` of their time (module docstring)."""
    import torch

    import thermal_action.serve.hub as hub_mod
    import thermal_action.serve.workers as workers_mod
    from thermal_action.inference.predictor import Predictor
    from thermal_action.inference.streaming import StreamingPredictor
    from thermal_action.people.person_detector import PersonDetector
    from thermal_action.people.tracker import Tracker
    from thermal_action.serve.config import ServeConfig
    from thermal_action.serve.hub import Hub
    from thermal_action.serve.protocol import decode_message, encode_frames
    from thermal_action.serve.replay.recordings import read_raw_recording, sensor_ids
    from thermal_action.serve.messages import Frames, QueuedFrame
    from thermal_action.serve.model import load_model
    from thermal_action.serve.routing import worker_for
    from thermal_action.serve.store import Store
    from thermal_action.serve.workers import WorkerOptions, _Worker

    torch.set_num_threads(1)
    timer = StageTimer()
    clock = SimClock()
    hub_mod.time = clock  # type: ignore[assignment]
    workers_mod.time = clock  # type: ignore[assignment]
    recs = [read_raw_recording(p) for p in recordings]
    ids = sensor_ids([r.name for r in recs], sensors)
    ticks = _replay_schedule([recs[k] for _, k in ids], seconds)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = ServeConfig(data_dir=tmp, workers=workers)
        model, info = load_model(checkpoint, cfg, None)
        store = Store(Path(tmp) / "serve.db")
        hub = Hub(cfg, info, store, None)
        hub.router.n_workers = workers
        sent: list[int] = [0]

        def dashboard(event: dict) -> None:
            with timer.stage("dashboard events"):
                sent[0] += len(json.dumps(event))

        hub.add_listener(dashboard)
        timer.wrap(hub.store, "add_predictions", "storing")
        timer.wrap(hub.store, "record_alert", "storing")
        timer.wrap(hub.clips, "save", "storing")
        timer.wrap(hub, "live", "dashboard events")
        timer.wrap(hub, "sensors_status", "dashboard events")
        opts = WorkerOptions.from_config(cfg, model, info.alert_rule, alerts=info.fall_index is not None)
        pool = []
        people = [0]

        def count_people(predictor: Any) -> None:
            fn = predictor.predict_clips

            def counted(requests: Any) -> Any:
                people[0] += sum(len(r.boxes_xyxy) for r in requests)
                return fn(requests)

            predictor.predict_clips = counted

        for w in range(workers):
            predictor = Predictor.from_checkpoint(checkpoint, max_clips_per_batch=opts.batch_clips, num_threads=1)

            def detector() -> Any:
                d = PersonDetector()
                timer.wrap(d, "update", "person detector")
                return d

            def tracker() -> Any:
                t = Tracker()
                timer.wrap(t, "update", "tracker")
                return t

            stream = StreamingPredictor(predictor, step=opts.step, alert_rule=opts.alert_rule, alerts=opts.alerts,
                                        fps=opts.fps, detector_factory=detector, tracker_factory=tracker)
            timer.wrap(stream, "_repair", "packet repair")
            timer.wrap(stream, "_due", "clip building")
            timer.wrap(predictor, "build_clip", "clip building")
            timer.wrap(predictor, "predict_clips", "model")
            count_people(predictor)
            if stream.monitor is not None:
                timer.wrap(stream.monitor, "update", "alert rule")
                timer.wrap(stream.monitor, "advance", "alert rule")
            worker = _Worker(w, opts, stream)
            timer.wrap(worker, "round", "worker: rest")
            pool.append(worker)
        predictions = alerts = frames = 0
        wall0 = time.perf_counter()
        epoch0_ms = clock.epoch * 1000.0
        for k, due in enumerate(ticks):
            clock.now = (k + 1) / FPS
            inbox: list[list] = [[] for _ in range(workers)]
            for j, i, t in due:
                sid = ids[j][0]
                rec = recs[ids[j][1]]
                payload = encode_frames(rec.frames[[i]], [round(epoch0_ms + t * 1000.0)])
                with timer.stage("ingest: parsing"):
                    frames_in = decode_message(payload)
                with timer.stage("ingest: hub"):
                    hub.submit(sid, frames_in, "ws")
                with timer.stage("IPC (pickling)"):
                    msg = Frames(sid, clock.time(), tuple(QueuedFrame(f.timestamp, f.frame, f.boxes) for f in frames_in))
                    inbox[worker_for(sid, workers)].append(pickle.loads(pickle.dumps(msg, protocol=-1)))
                frames += 1
            for w, msgs in enumerate(inbox):
                if not msgs:
                    continue
                result, _ = pool[w].round(msgs)
                with timer.stage("IPC (pickling)"):
                    result = pickle.loads(pickle.dumps(result, protocol=-1))
                predictions += len(result.predictions)
                alerts += sum(a.kind == "raised" for a in result.alerts) if result.alerts else 0
                with timer.stage("hub: results, tick"):
                    hub.on_message(w, result)
            if (k + 1) % int(FPS) == 0:
                with timer.stage("hub: results, tick"):
                    hub.tick()
        wall = time.perf_counter() - wall0
        store.close()
        flops = model_flops_per_person(pool[0].stream.predictor, recs[0].frames[:pool[0].stream.predictor.window_length])
    sensor_seconds = sensors * seconds
    total = sum(timer.cpu.values())
    model_gflop = flops * people[0] / 1e9
    peak, peak_file = peak_gflops_per_thread()
    achieved = model_gflop / timer.cpu["model"] if timer.cpu["model"] else None
    rows = [{"stage": s, "cpu_s": round(timer.cpu[s], 4), "calls": timer.calls[s],
             "ms_per_sensor_s": round(1000 * timer.cpu[s] / sensor_seconds, 4),
             "share": round(timer.cpu[s] / total, 4) if total else 0.0} for s in STAGES]
    return {"sensors": sensors, "seconds": seconds, "sensor_seconds": sensor_seconds, "workers": workers,
            "frames": frames, "predictions": predictions, "alerts_raised": alerts,
            "dashboard_bytes": sent[0], "cpu_s_total": round(total, 3),
            "ms_per_sensor_s_total": round(1000 * total / sensor_seconds, 3),
            "cores_at_real_time": round(total / seconds, 3),
            "sensors_per_core_by_cpu": round(sensor_seconds / total, 1) if total else None,
            "people_scored": people[0], "model_gflop_per_person": round(flops / 1e9, 4),
            "model_gflop_per_s": None if achieved is None else round(achieved, 2),
            "peak_gflop_per_s_per_thread": peak, "peak_from": peak_file,
            "model_share_of_peak": None if achieved is None or not peak else round(achieved / peak, 4),
            "wall_s": round(wall, 1), "stages": rows}


def _unpack_src(rev: str, dest: Path) -> Path:
    """The package's ``src/`` at git revision ``rev``, unpacked under ``dest``."""
    data = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", rev, "src"], check=True,
                          capture_output=True).stdout
    tar = dest / "src.tar"
    tar.write_bytes(data)
    with tarfile.open(tar) as t:
        t.extractall(dest, filter="data")
    return dest / "src"


def _run_child(src: Path, args: argparse.Namespace, sensors: int) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--one", "--checkpoint", str(args.checkpoint), "--sensors", str(sensors),
           "--seconds", str(args.seconds), "--workers", str(args.workers)]
    if args.recordings:
        cmd += ["--recordings", *map(str, args.recordings)]
    env = {**os.environ, "PYTHONPATH": str(src)}
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"profiling {src} failed (exit {out.returncode}):\n{out.stderr[-4000:]}")
    return json.loads(out.stdout)


def table(results: list[dict[str, Any]], desc: str) -> str:
    """Markdown: per stage, ms of CPU per sensor-second and the share, one column pair per run."""
    heads = " | ".join(f"{r['label']} ms/sensor-s | share" for r in results)
    lines = [f"CPU: {desc}; CPU time per stage (thread time), one torch thread", "",
             f"| stage | {heads} |", "|---|" + "---|---|" * len(results)]
    for s in STAGES:
        cells = []
        for r in results:
            row = next(x for x in r["stages"] if x["stage"] == s)
            cells.append(f"{row['ms_per_sensor_s']:.3f} | {100 * row['share']:.1f}%")
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    lines.append("| **total** | " + " | ".join(f"**{r['ms_per_sensor_s_total']:.2f}** | 100%" for r in results) + " |")
    lines.append("| sensors per core (CPU time) | " + " | ".join(
        f"{r['sensors_per_core_by_cpu']} | " for r in results) + " |")
    lines.append("| model GFLOP/s (share of the fp32 conv peak per thread) | " + " | ".join(
        f"{r['model_gflop_per_s']} | {r['model_share_of_peak']}" for r in results) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--recordings", type=Path, nargs="*", help="default: ../shared/thermal_real and thermal_sample")
    p.add_argument("--sensors", type=int, nargs="+", default=[24])
    p.add_argument("--seconds", type=float, default=60.0, help="sensor seconds replayed per sensor")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--compare", metavar="REV", help="also profile git revision REV's package, side by side")
    p.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, help="write the JSON here too")
    args = p.parse_args(argv)
    recordings = args.recordings or default_recordings()
    if args.one:
        print(json.dumps(profile(args.checkpoint, recordings, args.sensors[0], args.seconds, args.workers)))
        return 0
    desc = cpu_description()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        old_src = _unpack_src(args.compare, Path(tmp)) if args.compare else None
        for n in args.sensors:
            if old_src is not None:
                r = _run_child(old_src, args, n)
                r["label"] = f"{args.compare} ({n})"
                r["package"] = args.compare
                results.append(r)
                print(json.dumps({k: v for k, v in r.items() if k != "stages"}), file=sys.stderr, flush=True)
            r = _run_child(ROOT / "src", args, n)
            r["label"] = f"this tree ({n})"
            r["package"] = "working tree"
            results.append(r)
            print(json.dumps({k: v for k, v in r.items() if k != "stages"}), file=sys.stderr, flush=True)
    out = {"machine": desc, "checkpoint": str(args.checkpoint), "recordings": [str(r) for r in recordings],
           "load_average_at_start": os.getloadavg(), "compare": args.compare, "runs": results}
    text = json.dumps(out, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    print(table(results, describe_line(desc, threads=1)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
