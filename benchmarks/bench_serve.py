"""The live service end to end: N replayed sensors at their recorded ~6 fps into one
``thermal-action serve`` on this machine, network ingest to prediction stored in SQLite.

For each backend and sensor count the script starts ``thermal-action serve`` as its own
process (its worker processes included), replays recordings over WebSocket with
``thermal_action.serve.replay`` (bursty timestamps as recorded) for a warm-up and a measured
span, and reads the service's own numbers (``/api/stats``): frames accepted and dropped,
predictions, latency from the arrival of the frame that completed a window to its prediction
stored (the window's inherent lag, half a window with the centred keyframe, comes on top and
is printed separately), CPU seconds and peak memory of the service and its workers (from
/proc). A count "keeps up" when no frame was dropped, at least 90% of the frames the sensors send
(at the recordings' own rate) were taken in, what is waiting at the end is under one second
of frames, and p95 latency is under 500 ms.

Usage::

    python benchmarks/bench_serve.py --checkpoint thermal_demo/run/checkpoints/best.ckpt
    python benchmarks/bench_serve.py --sensors 8 16 24 32 --backends torch onnx --seconds 40

Without ``--checkpoint`` the demo's checkpoint is used (``thermal-action demo`` is run first
if it is missing). Recordings: the six real ones of ``../shared/thermal_real`` if present,
else the demo's synthetic ones.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from machine import cpu_description, describe_line  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "thermal_real"
P95_TARGET_S = 0.5


def _tree_pids(pid: int) -> list[int]:
    """``pid`` and its descendants (the service and its workers)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            kids = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            kids = []
        todo.extend(int(k) for k in kids)
    return out


def _cpu_seconds(pids: list[int]) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError):
            pass
    return total


def _rss_mb(pids: list[int]) -> float:
    total = 0
    for p in pids:
        try:
            m = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{p}/status").read_text())
            total += int(m.group(1)) if m else 0
        except OSError:
            pass
    return total / 1024


def default_checkpoint() -> Path:
    ckpt = ROOT / "thermal_demo" / "run" / "checkpoints" / "best.ckpt"
    if not ckpt.is_file():
        subprocess.run([sys.executable, "-m", "thermal_action.cli", "demo"], cwd=ROOT, check=True)
    return ckpt


def default_recordings() -> list[Path]:
    real = sorted(REAL.rglob("*.h5")) if REAL.is_dir() else []
    if real:
        return real
    return sorted((ROOT / "thermal_demo" / "dataset" / "frames").glob("*.h5"))


def recorded_fps(recordings: list[Path]) -> float:
    """Frames per second of the recordings by their own timestamps (what a replayed sensor sends)."""
    from thermal_action.serve.replay.recordings import read_raw_recording

    rates = []
    for path in recordings:
        ts = read_raw_recording(path).timestamps
        if len(ts) > 1 and ts[-1] > ts[0]:
            rates.append((len(ts) - 1) / ((ts[-1] - ts[0]) / 1000.0))
    return float(sum(rates) / len(rates)) if rates else 6.0


def start_service(checkpoint: Path, data_dir: Path, backend: str, workers: int) -> tuple[subprocess.Popen, str, str]:
    token = "bench-token"
    cmd = [sys.executable, "-m", "thermal_action.cli", "serve", "--checkpoint", str(checkpoint),
           f"data_dir={data_dir}", "port=0", f"workers={workers}", f"backend={backend}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "THERMAL_ACTION_TOKEN": token})
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            raise RuntimeError("serve exited before it was ready")
        if line.startswith("serving on "):
            url = line.split()[2].split("/?")[0]
            # Keep reading its output so a full pipe never blocks it.
            import threading

            threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
            return proc, url, token
    raise TimeoutError("serve did not start")


def run_one(args: argparse.Namespace, checkpoint: Path, recordings: list[Path], backend: str, n: int,
            fps: float) -> dict[str, Any]:
    from thermal_action.serve.replay.player import replay

    with tempfile.TemporaryDirectory() as tmp:
        proc, url, token = start_service(checkpoint, Path(tmp) / "data", backend, args.workers)
        headers = {"Authorization": f"Bearer {token}"}
        try:
            pids = _tree_pids(proc.pid)
            import threading

            stop = threading.Event()
            box: dict[str, Any] = {}

            def send() -> None:
                box["summary"] = replay(recordings, url.replace("http", "ws"), token=token, loop=True, sensors=n,
                                        duration=args.warmup + args.seconds, stop=stop)

            sender = threading.Thread(target=send, daemon=True)
            sender.start()
            time.sleep(args.warmup)
            s0 = httpx.get(f"{url}/api/stats", headers=headers).json()
            cpu0, t0 = _cpu_seconds(pids), time.monotonic()
            peak_rss = 0.0
            while sender.is_alive() and time.monotonic() - t0 < args.seconds + 30:
                peak_rss = max(peak_rss, _rss_mb(pids))
                time.sleep(1.0)
            sender.join(30)
            wall = time.monotonic() - t0
            cpu = _cpu_seconds(pids) - cpu0
            time.sleep(1.0)  # what was in flight lands
            s1 = httpx.get(f"{url}/api/stats", headers=headers).json()
            info = httpx.get(f"{url}/api/info", headers=headers).json()
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
    summary = box.get("summary")
    frames = s1["frames_total"] - s0["frames_total"]
    dropped = s1["frames_dropped_total"] - s0["frames_dropped_total"]
    waiting = sum(s1["queue_depth"])
    p95 = s1["latency_s_p95"]
    expected = n * fps
    keeps_up = bool(dropped == 0 and frames >= 0.9 * expected * wall and waiting <= expected
                and p95 is not None and p95 < P95_TARGET_S)
    return {
        "backend": backend, "sensors": n, "workers": args.workers, "seconds": round(wall, 1),
        "frames": frames, "frames_per_s": round(frames / wall, 1), "expected_frames_per_s": round(expected, 1),
        "dropped": dropped, "waiting_at_end": waiting,
        "predictions": s1["predictions_total"] - s0["predictions_total"],
        "latency_p50_ms": None if s1["latency_s_p50"] is None else round(1000 * s1["latency_s_p50"]),
        "latency_p95_ms": None if p95 is None else round(1000 * p95),
        "window_lag_s": round(info["lag_seconds"], 2),
        "model_ms_p50": None if s1["model_ms_p50"] is None else round(s1["model_ms_p50"], 1),
        "cpu_cores_used": round(cpu / wall, 2), "peak_rss_mb": round(peak_rss),
        "late_sends": summary.totals()["frames_late"] if summary is not None else None,
        "alerts": s1["alerts_raised_total"], "keeps_up": keeps_up,
    }


def table(rows: list[dict], desc: str) -> str:
    lines = [f"CPU: {desc}", "",
             "| backend | sensors | frames/s (asked) | dropped | latency p50 / p95 ms | model ms | CPU cores | "
             "memory MB | keeps up |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['backend']} | {r['sensors']} | {r['frames_per_s']} ({r['expected_frames_per_s']}) | "
                     f"{r['dropped']} | {r['latency_p50_ms']} / {r['latency_p95_ms']} | {r['model_ms_p50']} | "
                     f"{r['cpu_cores_used']} | {r['peak_rss_mb']} | {'yes' if r['keeps_up'] else 'no'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", type=Path, help="default: the demo's best.ckpt (the demo runs if missing)")
    p.add_argument("--recordings", type=Path, nargs="*", help="default: ../shared/thermal_real, else the demo's")
    p.add_argument("--backends", nargs="+", default=["torch", "onnx"])
    p.add_argument("--sensors", type=int, nargs="+", default=[8, 16, 24, 32])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--warmup", type=float, default=12.0, help="seconds of replay before measuring")
    p.add_argument("--seconds", type=float, default=30.0, help="measured seconds per run")
    p.add_argument("--out", type=Path, help="write the JSON here too")
    args = p.parse_args(argv)
    checkpoint = args.checkpoint or default_checkpoint()
    recordings = args.recordings or default_recordings()
    desc = cpu_description()
    fps = recorded_fps(recordings)
    rows = []
    for backend in args.backends:
        for n in sorted(args.sensors):
            r = run_one(args, checkpoint, recordings, backend, n, fps)
            print(json.dumps(r), file=sys.stderr, flush=True)
            rows.append(r)
            if not r["keeps_up"]:
                break  # larger counts will not keep up either
    best = {b: max([r["sensors"] for r in rows if r["backend"] == b and r["keeps_up"]], default=0)
            for b in args.backends}
    out = {"machine": desc, "checkpoint": str(checkpoint), "recordings": [str(r) for r in recordings],
           "load_average_at_start": os.getloadavg(), "runs": rows, "largest_keeping_up": best}
    print(json.dumps(out, indent=2))
    print(table(rows, describe_line(desc)))
    if args.out:
        args.out.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
