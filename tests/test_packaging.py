"""The extras match the jobs: predict, export, render and the service run without the training
libraries (Lightning, TensorBoard, matplotlib: the ``train`` extra), a subcommand whose library
is missing names the extra to install, and every such library is in the extra it names.
``predict`` and ``serve`` of an exported ``.onnx`` run without PyTorch at all (the gateway
install). (A wheel installed outside the checkout: ``tests/test_wheel.py``; the gateway
install in a fresh venv: ``scripts/check-gateway.sh``.)"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shlex
import signal
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import numpy as np
import pytest

from helpers.infer import make_frames, write_recording, write_tiny_checkpoint
from thermal_action.cli import EXTRAS

ROOT = Path(__file__).resolve().parents[1]
#: What ``pip install thermal-action`` without ``[train]`` lacks (and what those pull in).
TRAINING_LIBRARIES = ("lightning", "lightning_fabric", "pytorch_lightning", "tensorboard", "matplotlib")


def _blocking(folder: Path, names: tuple[str, ...], why: str) -> dict[str, str]:
    """The environment of a child process in which importing any of ``names`` fails."""
    for name in names:
        (folder / name).mkdir(parents=True)
        (folder / name / "__init__.py").write_text(
            f"raise ModuleNotFoundError('{name} is blocked: {why}', name={name!r})\n")
    # Absolute: the child runs elsewhere and must import this checkout, not another install.
    inherited = [os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(folder), *inherited])}


@pytest.fixture()
def without_training_libraries(tmp_path) -> dict[str, str]:
    """The environment of a child process in which importing a training library fails, as in
    an install without the ``train`` extra."""
    return _blocking(tmp_path / "blocked", TRAINING_LIBRARIES, "not installed without [train]")


@pytest.fixture()
def without_torch(tmp_path) -> dict[str, str]:
    """A child process's environment without PyTorch (and so without the training libraries
    and the ``onnx`` exporter packages), as in the gateway install (README, "Install")."""
    return _blocking(tmp_path / "blocked", ("torch", "onnx", "onnxscript", *TRAINING_LIBRARIES),
                     "not in the gateway install")


@pytest.fixture(scope="module")
def exported_tiny(tmp_path_factory) -> tuple[Path, Path]:
    """``(tiny .ckpt, its .onnx)``."""
    pytest.importorskip("onnxruntime")
    from thermal_action.inference.export import export_onnx

    tmp = tmp_path_factory.mktemp("exported")
    ckpt = write_tiny_checkpoint(tmp / "tiny.ckpt")
    return ckpt, export_onnx(ckpt, tmp / "tiny.onnx").path


def test_the_readme_gateway_command_installs_the_gateway_requirement_set():
    """The README's (and docs/gateway.md's) gateway ``pip install`` is exactly what
    ``scripts/check-gateway.sh`` installs and tests: the core without torch, ``serve``, ONNX Runtime."""
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "check_gateway.py"), "--requirements"],
                          capture_output=True, text=True, timeout=60, check=True)
    want = proc.stdout.split()
    assert want and not any(r.startswith("torch") for r in want) and any(r.startswith("onnxruntime") for r in want)
    for page in (ROOT / "README.md", ROOT / "docs" / "gateway.md"):
        lines = page.read_text().replace("\\\n", " ").splitlines()
        (command,) = [shlex.split(line) for line in lines if line.startswith('pip install "numpy')]
        assert command[2:] == want, page
        assert "pip install --no-deps thermal-action" in lines, page


def test_predict_with_an_exported_model_runs_without_torch(tmp_path, without_torch, exported_tiny):
    """The gateway's ``predict``: the ``.onnx`` alone, no torch importable; its predictions
    are those of the same file run where torch is installed, and a ``.ckpt`` says what it needs."""
    from thermal_action.inference.recordings import predict_recordings

    ckpt, onnx_file = exported_tiny
    rec = write_recording(tmp_path / "S1.h5", make_frames(30)[0])
    out = tmp_path / "out"
    script = textwrap.dedent(f"""
        import json, sys
        from thermal_action.cli import main
        codes = {{
            "onnx": main(["predict", {str(rec)!r}, "--checkpoint", {str(onnx_file)!r}, "--backend", "onnx",
                          "--out", {str(out / "gateway")!r}]),
            "ckpt": main(["predict", {str(rec)!r}, "--checkpoint", {str(ckpt)!r}, "--out", {str(out / "ckpt")!r}]),
        }}
        print("TORCH", "torch" in sys.modules, "CODES", json.dumps(codes))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env=without_torch, cwd=tmp_path)
    assert "CODES" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert json.loads(proc.stdout.split("CODES", 1)[1]) == {"onnx": 0, "ckpt": 2}, proc.stderr[-4000:]
    assert "TORCH False" in proc.stdout
    assert "thermal-action predict: error: needs torch, which is not installed" in proc.stderr
    predict_recordings(onnx_file, [rec], out / "here", backend="onnx")
    gateway, here = (json.loads((out / d / "predictions.json").read_text()) for d in ("gateway", "here"))
    assert len(gateway) == len(here) > 0
    for g, h in zip(gateway, here):
        assert g["bbox"] == h["bbox"] and g["frame_idx"] == h["frame_idx"]
        np.testing.assert_allclose(g["scores"], h["scores"], rtol=0, atol=1e-6)


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


@pytest.mark.slow
def test_the_service_runs_an_exported_model_without_torch(tmp_path, without_torch, exported_tiny):
    """``serve --backend onnx`` of an ``.onnx`` (the gateway) takes frames and predicts with no
    torch importable, in the service and in its worker processes."""
    httpx = pytest.importorskip("httpx")
    pytest.importorskip("fastapi")
    from helpers.serve import frames_with_people, now_stamps, start_serve_cli, wait_for
    from thermal_action.serve.protocol import encode_frames

    env = {**without_torch, "THERMAL_ACTION_TOKEN": "t0ken"}
    proc, address = start_serve_cli(exported_tiny[1], tmp_path / "data", env=env, backend="onnx")
    try:
        url, auth = address.split("/?")[0], {"Authorization": "Bearer t0ken"}
        body = encode_frames(frames_with_people(30), now_stamps(30))
        got = httpx.post(f"{url}/api/sensors/G1/frames", content=body,
                         headers={**auth, "content-type": "application/octet-stream"})
        assert got.status_code == 200, got.text

        def predictions() -> int:
            sensors = httpx.get(f"{url}/api/sensors", headers=auth).json()["sensors"]
            return sum(s["predictions"] for s in sensors if s["sensor_id"] == "G1")

        wait_for(predictions, timeout=60, what="predictions from the service")
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "Traceback" not in out and "blocked" not in out, out
