"""The gateway install at work: ``predict`` and ``serve`` of an exported tiny model in
another environment (``--python``, one without torch), driven from this checkout's
``.venv`` (which exports the model and reads the service's API). Called by
``scripts/check-gateway.sh``; exits non-zero with the reason on any failure.

Usage: PYTHONPATH=src:tests .venv/bin/python scripts/check_gateway.py --python GATEWAY_PY --work DIR
       .venv/bin/python scripts/check_gateway.py --requirements   (the gateway's requirement set)
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
#: The gateway's processes import its own install, never this checkout's ``src``.
GATEWAY_ENV = {**os.environ, "PYTHONPATH": ""}


def gateway_requirements(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """What the gateway installs besides ``thermal-action --no-deps``: every core dependency but
    torch, the ``serve`` extra and the ``export`` extra's ONNX Runtime (README, "Install")."""
    project = tomllib.loads(pyproject.read_text())["project"]
    extras = project["optional-dependencies"]
    core = [r for r in project["dependencies"] if not r.startswith("torch")]
    return core + extras["serve"] + [r for r in extras["export"] if r.startswith("onnxruntime")]


def check_predict(python: str, model: Path, work: Path) -> int:
    """``predict --backend onnx`` in the gateway; its scores are this environment's."""
    from helpers.infer import make_frames, write_recording
    from thermal_action.inference.recordings import predict_recordings

    rec = write_recording(work / "S1.h5", make_frames(30)[0])
    proc = subprocess.run([python, "-m", "thermal_action.cli", "predict", str(rec), "--checkpoint", str(model),
                           "--backend", "onnx", "--out", str(work / "gateway")], capture_output=True, text=True,
                          cwd=work, env=GATEWAY_ENV, timeout=300)
    if proc.returncode != 0:
        sys.exit(f"gateway predict failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    predict_recordings(model, [rec], work / "here", backend="onnx")
    gateway, here = (json.loads((work / d / "predictions.json").read_text()) for d in ("gateway", "here"))
    if not len(gateway) == len(here) > 0:
        sys.exit(f"gateway predict: {len(gateway)} predictions, {len(here)} here")
    worst = max(float(np.abs(np.subtract(g["scores"], h["scores"])).max()) for g, h in zip(gateway, here))
    if worst > 1e-6:
        sys.exit(f"gateway predict: scores differ from the checkout's by {worst:.2e}")
    return len(gateway)


def check_serve(python: str, model: Path, work: Path) -> int:
    """``serve --backend onnx`` in the gateway takes frames over HTTP and predicts."""
    import httpx

    from helpers.serve import frames_with_people, now_stamps, start_serve_cli, wait_for
    from thermal_action.serve.protocol import encode_frames

    proc, address = start_serve_cli(model, work / "data", env={"THERMAL_ACTION_TOKEN": "t0ken", "PYTHONPATH": ""},
                                    python=python, backend="onnx")
    try:
        url, auth = address.split("/?")[0], {"Authorization": "Bearer t0ken"}
        got = httpx.post(f"{url}/api/sensors/G1/frames", content=encode_frames(frames_with_people(30), now_stamps(30)),
                         headers={**auth, "content-type": "application/octet-stream"})
        if got.status_code != 200:
            sys.exit(f"gateway serve: POST frames -> {got.status_code} {got.text[:500]}")

        def predictions() -> int:
            sensors = httpx.get(f"{url}/api/sensors", headers=auth).json()["sensors"]
            return sum(s["predictions"] for s in sensors if s["sensor_id"] == "G1")

        count = wait_for(predictions, timeout=120, what="predictions from the gateway's service")
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    if proc.returncode != 0 or "Traceback" in out:
        sys.exit(f"gateway serve exited with {proc.returncode}:\n{out[-3000:]}")
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", help="the gateway environment's python")
    parser.add_argument("--work", type=Path, help="an empty folder outside the checkout")
    parser.add_argument("--requirements", action="store_true", help="print the gateway's requirements, one a line")
    args = parser.parse_args()
    if args.requirements:
        print("\n".join(gateway_requirements()))
        return
    if not (args.python and args.work):
        parser.error("--python and --work are required")
    from helpers.infer import write_tiny_checkpoint
    from thermal_action.inference.export import export_onnx

    probe = subprocess.run([args.python, "-c", "import importlib.util as u, thermal_action; "
                            "print(u.find_spec('torch') is None, thermal_action.__file__)"],
                           capture_output=True, text=True, env=GATEWAY_ENV, cwd=args.work, timeout=120)
    if not probe.stdout.startswith("True ") or "site-packages" not in probe.stdout:
        sys.exit(f"the gateway environment has torch, or no thermal_action: {probe.stdout}{probe.stderr[-2000:]}")
    work = args.work
    ckpt = write_tiny_checkpoint(work / "tiny.ckpt")
    model = export_onnx(ckpt, work / "tiny.onnx").path
    ckpt.unlink()  # the gateway gets the .onnx alone
    n_predict = check_predict(args.python, model, work)
    n_serve = check_serve(args.python, model, work)
    print(f"gateway check: no torch; predict wrote {n_predict} predictions equal to the checkout's; "
          f"serve made {n_serve} from frames over HTTP")


if __name__ == "__main__":
    main()
