"""The extras match the jobs: predict, export, render and the service run without the training
libraries (Lightning, TensorBoard, matplotlib: the ``train`` extra), a subcommand whose library
is missing names the extra to install, and every such library is in the extra it names.
(A wheel installed outside the checkout: ``tests/test_wheel.py``.)"""

from __future__ import annotations

import importlib.metadata
import json
import os
import signal
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

from helpers.infer import make_frames, write_recording, write_tiny_checkpoint
from thermal_action.cli import EXTRAS

ROOT = Path(__file__).resolve().parents[1]
#: What ``pip install thermal-action`` without ``[train]`` lacks (and what those pull in).
TRAINING_LIBRARIES = ("lightning", "lightning_fabric", "pytorch_lightning", "tensorboard", "matplotlib")


@pytest.fixture()
def without_training_libraries(tmp_path) -> dict[str, str]:
    """The environment of a child process in which importing a training library fails, as in
    an install without the ``train`` extra."""
    blocked = tmp_path / "blocked"
    for name in TRAINING_LIBRARIES:
        (blocked / name).mkdir(parents=True)
        (blocked / name / "__init__.py").write_text(
            f"raise ModuleNotFoundError('{name} is blocked: not installed without [train]', name={name!r})\n")
    # Absolute: the child runs elsewhere and must import this checkout, not another install.
    inherited = [os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocked), *inherited])}


def test_every_optional_library_is_in_the_extra_the_cli_names():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    distributions = importlib.metadata.packages_distributions()
    for module, extra in EXTRAS.items():
        names = {req.split(">")[0].split("=")[0].split("[")[0].strip().lower() for req in extras[extra]}
        assert {d.lower() for d in distributions.get(module, [])} & names, (module, extra, names)
    assert set(EXTRAS.values()) | {"all", "dev"} == set(extras)


def test_predict_export_and_render_run_without_the_training_libraries(tmp_path, without_training_libraries):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("imageio_ffmpeg")
    ckpt = write_tiny_checkpoint(tmp_path / "tiny.ckpt")
    rec = write_recording(tmp_path / "S1.h5", make_frames(30)[0])
    out = tmp_path / "out"
    script = textwrap.dedent(f"""
        import json, sys
        from thermal_action.cli import main
        codes = {{
            "predict": main(["predict", {str(rec)!r}, "--checkpoint", {str(ckpt)!r}, "--out", {str(out / "p")!r}]),
            "export": main(["export", {str(out / "m.onnx")!r}, "--checkpoint", {str(ckpt)!r}]),
            "predict onnx": main(["predict", {str(rec)!r}, "--checkpoint", {str(out / "m.onnx")!r},
                                  "--backend", "onnx", "--out", {str(out / "po")!r}]),
            "render": main(["render", {str(rec)!r}, "--predictions", {str(out / "p" / "predictions.json")!r},
                            "--out", {str(out / "v.mp4")!r}, "--stop", "4", "--scale", "2"]),
            "train": main(["train", "--out", {str(out / "run")!r}]),
        }}
        print("CODES", json.dumps(codes))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env=without_training_libraries, cwd=tmp_path)
    assert "CODES" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-4000:]
    codes = json.loads(proc.stdout.split("CODES", 1)[1])
    assert codes == {"predict": 0, "export": 0, "predict onnx": 0, "render": 0, "train": 2}, proc.stderr[-4000:]
    assert (out / "po" / "predictions.json").is_file() and (out / "v.mp4").is_file()
    # The one subcommand that needs a training library says which extra brings it.
    assert ("thermal-action train: error: needs lightning, which is not installed: "
            "pip install 'thermal-action[train]'") in proc.stderr


@pytest.mark.slow
def test_the_service_runs_without_the_training_libraries(tmp_path, without_training_libraries):
    """``serve`` (ONNX backend: the checkpoint exported at start) takes frames and predicts."""
    httpx = pytest.importorskip("httpx")
    pytest.importorskip("onnxruntime")
    pytest.importorskip("fastapi")
    from helpers.serve import frames_with_people, now_stamps, start_serve_cli, wait_for
    from thermal_action.serve.protocol import encode_frames

    ckpt = write_tiny_checkpoint(tmp_path / "tiny.ckpt")
    env = {**without_training_libraries, "THERMAL_ACTION_TOKEN": "t0ken"}
    proc, address = start_serve_cli(ckpt, tmp_path / "data", env=env, backend="onnx")
    try:
        url, auth = address.split("/?")[0], {"Authorization": "Bearer t0ken"}
        body = encode_frames(frames_with_people(30), now_stamps(30))
        got = httpx.post(f"{url}/api/sensors/P1/frames", content=body,
                         headers={**auth, "content-type": "application/octet-stream"})
        assert got.status_code == 200, got.text

        def predictions() -> int:
            sensors = httpx.get(f"{url}/api/sensors", headers=auth).json()["sensors"]
            return sum(s["predictions"] for s in sensors if s["sensor_id"] == "P1")

        wait_for(predictions, timeout=60, what="predictions from the service")
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "Traceback" not in out, out
