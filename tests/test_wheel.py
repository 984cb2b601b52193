"""The wheel carries what a user without a checkout needs: built from this checkout, unpacked
alone (``--no-deps``: this environment has the dependencies) and run from elsewhere, it loads
its shipped configs by name and serves its dashboard files. (``scripts/check-wheel.sh``, a
step of ``.ci/run``, installs it with its dependencies into a fresh venv.)"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed_wheel(tmp_path_factory) -> tuple[Path, Path]:
    """``(wheel, folder it is installed into)``."""
    setuptools = pytest.importorskip("setuptools")
    if int(setuptools.__version__.split(".")[0]) < 77:  # pyproject.toml's build requirement
        pytest.skip(f"setuptools {setuptools.__version__} cannot build without isolation")
    tmp = tmp_path_factory.mktemp("wheel")
    # Built from a copy: an in-tree build leaves build/ behind, whose stale files later wheels pick up.
    tree = tmp / "tree"
    junk = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
    shutil.copytree(ROOT / "src", tree / "src", ignore=junk)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tree / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist"), str(tree)],
                   check=True, timeout=300, cwd=tmp)
    (wheel,) = (tmp / "dist").glob("thermal_action-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(tmp / "site"), str(wheel)], check=True, timeout=300)
    return wheel, tmp / "site"


def test_the_wheel_holds_the_configs_and_the_dashboard(installed_wheel):
    names = set(zipfile.ZipFile(installed_wheel[0]).namelist())
    shipped = {p.name for p in (ROOT / "src" / "thermal_action" / "configs").glob("*.yaml")}
    assert shipped and {f"thermal_action/configs/{n}" for n in shipped} <= names
    assert {"thermal_action/serve/static/index.html", "thermal_action/py.typed"} <= names
    assert not any(n.startswith(("tests/", "benchmarks/")) for n in names)


def test_the_installed_wheel_loads_a_shipped_config_by_name_outside_the_checkout(installed_wheel, tmp_path):
    site = installed_wheel[1]
    env = {**os.environ, "PYTHONPATH": str(site)}
    script = ("import sys, thermal_action; from thermal_action.cli import main; "
              "print('FROM', thermal_action.__file__); sys.exit(main(sys.argv[1:]))")
    proc = subprocess.run([sys.executable, "-c", script, "config", "train", "--config", "cpu_default"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"FROM {site}" in proc.stdout  # the wheel's copy, not the checkout's
    assert any(line.startswith("model.variant") and '"crop_cnn"' in line for line in proc.stdout.splitlines())
