"""Shared helpers for the service tests: a tiny checkpoint, frames, polling."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

import numpy as np

from helpers.infer import make_frames, write_tiny_checkpoint

__all__ = ["FakePool", "Webhook", "make_frames", "write_tiny_checkpoint", "now_stamps", "wait_for", "serve_overrides",
           "alert_event", "start_serve_cli", "pid_alive"]


class FakePool:
    """A worker pool for hub tests: records what the hub queues; ``room`` frames fit before the
    queue is full. Frames queued on a worker wait there (``pending``) until :meth:`done`."""

    def __init__(self, n: int = 2, room: int = 10**9):
        self.n, self.room = n, room
        self.waiting = [0] * n  # frames queued and not yet done, per worker
        self.put: list[tuple] = []  # (worker, sensor, [timestamps])
        self.ended: list[tuple] = []  # (worker, sensor)
        self.layouts: list[tuple] = []  # (worker, sensor, RoomLayout)
        self.inbox: list[tuple] = []  # ("frames" | "end" | "layout", worker, sensor) in queueing order
        self.slots = []

    def __len__(self) -> int:
        return self.n

    def put_frames(self, worker, sensor_id, frames, max_pending):
        if len(frames) > min(self.room, max_pending):
            return False
        self.room -= len(frames)
        self.waiting[worker] += len(frames)
        self.put.append((worker, sensor_id, [f.timestamp for f in frames]))
        self.inbox.append(("frames", worker, sensor_id))
        return True

    def end_stream(self, worker, sensor_id):
        self.ended.append((worker, sensor_id))
        self.inbox.append(("end", worker, sensor_id))

    def set_layout(self, worker, sensor_id, layout):
        self.layouts.append((worker, sensor_id, layout))
        self.inbox.append(("layout", worker, sensor_id))

    def pending(self):
        return list(self.waiting)

    def done(self, worker, n=None):
        """The worker took ``n`` of its waiting frames (None: all)."""
        self.waiting[worker] -= self.waiting[worker] if n is None else n

    def alive(self):
        return self.n


def now_stamps(n: int, start_ms: int | None = None, step_ms: int = 166) -> list[int]:
    """``n`` capture timestamps 6 Hz apart, starting now (so the timeline shows them)."""
    t0 = int(time.time() * 1000) if start_ms is None else start_ms
    return [t0 + step_ms * i for i in range(n)]


def wait_for(check: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    """Polls ``check`` until it returns something truthy; fails after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def serve_overrides(data_dir: Path, **more: Any) -> list[str]:
    """Service settings for tests: any free port, every person raises an alert at once (the
    tiny checkpoint is untrained: threshold 1e-6, 0 s), every prediction stored; a key given
    as None is left out (the checkpoint's alert rule then decides it)."""
    base = {"data_dir": str(data_dir), "port": 0, "workers": 1, "fall_threshold": 1e-6, "fall_alert_seconds": 0,
            "store_every_seconds": 0}
    base.update(more)
    return [f"{k}={v}" for k, v in base.items() if v is not None]


def alert_event(kind: str, sensor_id: str, track_id: int, start_timestamp: int, end_timestamp: int,
                peak_score: float, fired_timestamp: int | None = None, frame_ms: int = 166,
                box: tuple[float, float, float, float] | None = None):
    """An :class:`AlertEvent` as a worker sends it (frames from the timestamps, 166 ms apart);
    ``fired_timestamp`` defaults to the end of a "raised" and the start of an "ended"; ``box``:
    the person's box (pixels), None unknown."""
    from thermal_action.inference.alerts import AlertEvent

    if fired_timestamp is None:
        fired_timestamp = end_timestamp if kind == "raised" else start_timestamp
    frame = lambda ts: (ts - start_timestamp) // frame_ms  # noqa: E731
    return AlertEvent(kind, sensor_id, track_id, 0, frame(end_timestamp), start_timestamp, end_timestamp,
                      frame(fired_timestamp), fired_timestamp, peak_score, frame(end_timestamp),
                      (end_timestamp - start_timestamp) / 1000, box)


def frames_with_people(n: int, seed: int = 0) -> np.ndarray:
    return make_frames(n, seed=seed, dropped=())[0]


def start_serve_cli(checkpoint: Path, data_dir: Path, env: dict[str, str] | None = None,
                    timeout: float = 120.0, python: str = sys.executable,
                    **overrides: Any) -> tuple[subprocess.Popen, str]:
    """``thermal-action serve`` as a child process of ``python`` (another environment's, for an
    install check), stdout and stderr merged into ``proc.stdout``; returns it and the banner's
    address (``http://127.0.0.1:PORT/?token=...``) once it serves."""
    proc = subprocess.Popen([python, "-m", "thermal_action.cli", "serve", "--checkpoint", str(checkpoint),
                             *serve_overrides(data_dir, **overrides)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**os.environ, **(env or {})},
                            cwd=data_dir.parent)
    line, seen = "", []
    deadline = time.monotonic() + timeout
    while not line.startswith("serving on ") and time.monotonic() < deadline:
        line = proc.stdout.readline()
        seen.append(line)
        if not line and proc.poll() is not None:
            raise AssertionError(f"serve exited early with code {proc.returncode}:\n{''.join(seen)}")
    if not line.startswith("serving on "):
        proc.kill()
        raise AssertionError(f"serve did not start in {timeout} s:\n{''.join(seen)}")
    return proc, line.split()[2]


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie nobody reaped yet counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return not Path("/proc").is_dir()  # gone from /proc on Linux; elsewhere kill(0) is all we have


class Webhook:
    """A local HTTP server that answers ``fail_first`` requests with 503, then 204.

    ``received``: the delivered messages (JSON, with ``content_type``); ``requests``: every try
    as ``(headers, raw body)``, failed ones included."""

    def __init__(self, fail_first: int = 0):
        self.received: list[dict] = []
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.tries = 0
        self.fail_first = fail_first
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests.append((dict(self.headers.items()), body))
                outer.tries += 1
                if outer.tries <= outer.fail_first:
                    self.send_response(503)
                    self.end_headers()
                    return
                outer.received.append({"content_type": self.headers["Content-Type"], **json.loads(body)})
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
