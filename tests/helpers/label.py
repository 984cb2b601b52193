"""Helpers for the labelling page's tests: a tiny folder of recordings and the ``label`` command."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from helpers.infer import make_frames, write_recording

__all__ = ["start_label_cli", "write_dataset"]


def write_dataset(root: Path, sensors: tuple[str, ...] = ("S1",), n: int = 60,
                  mac_address: str = "02:00:00:00:00:01") -> Path:
    """``root/frames/<sensor>.h5`` of two warm people walking (the built-in detector finds
    them), one per sensor id, all from one device (``mac_address``); later ones start later."""
    import h5py

    for i, sensor in enumerate(sensors):
        frames, _ = make_frames(n, seed=i)
        path = write_recording(root / "frames" / f"{sensor}.h5", frames, t0=1_760_482_247_375 + i * 100_000)
        with h5py.File(path, "a") as f:
            f.attrs["mac_address"] = mac_address
    return root


def start_label_cli(data_dir: Path, *args: str, token: str = "test-token",
                    timeout: float = 120.0) -> tuple[subprocess.Popen, str]:
    """``thermal-action label DATA_DIR --port 0`` as a child process; returns it and the page's
    address (``http://127.0.0.1:PORT/?token=...``) once it serves."""
    proc = subprocess.Popen([sys.executable, "-m", "thermal_action.cli", "label", str(data_dir), "--port", "0",
                             "--token", token, "--annotator", "tester", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=dict(os.environ))
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        seen.append(line)
        if line.startswith("labelling on "):
            return proc, line.split()[2]
        if not line and proc.poll() is not None:
            raise AssertionError(f"label exited early with code {proc.returncode}:\n{''.join(seen)}")
    proc.kill()
    raise AssertionError(f"label did not start in {timeout} s:\n{''.join(seen)}")
