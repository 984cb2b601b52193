"""The shared-sample fixture: skipped with a reason when the sample is missing, failed when CI requires it."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CONFTEST = Path(__file__).with_name("conftest.py")
# Under --import-mode=importlib the conftest is not importable by name.
_spec = importlib.util.spec_from_file_location("_suite_conftest", CONFTEST)
_suite = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_suite)
REQUIRE_SHARED_ENV, SHARED_SAMPLE_FILES = _suite.REQUIRE_SHARED_ENV, _suite.SHARED_SAMPLE_FILES

_TEST = '''
def test_reads_the_sample(shared_sample):
    assert (shared_sample / "frames" / "SL14_R1.h5").is_file()


def test_without_the_sample():
    pass
'''


def _run(root: Path, require: str | None) -> subprocess.CompletedProcess:
    """Runs pytest on a checkout at ``root / "clone"``, whose ``../shared`` is ``root / "shared"``."""
    env = {k: v for k, v in os.environ.items() if k != REQUIRE_SHARED_ENV}
    if require is not None:
        env[REQUIRE_SHARED_ENV] = require
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rsE", "-p", "no:cacheprovider", "-p", "no:xdist", "-o", "addopts=",
         str(root / "clone" / "tests")],
        cwd=root, env=env, capture_output=True, text=True, timeout=300,
    )


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    tests = tmp_path / "clone" / "tests"
    tests.mkdir(parents=True)
    shutil.copy(CONFTEST, tests / "conftest.py")
    (tests / "test_it.py").write_text(_TEST)
    (tmp_path / "clone" / "pytest.ini").write_text(
        "[pytest]\nmarkers =\n    shared_sample: needs ../shared/thermal_sample\n")
    return tmp_path


def test_missing_sample_is_a_visible_skip_and_a_failure_when_required(clone: Path):
    proc = _run(clone, None)
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert "1 passed, 1 skipped" in proc.stdout
    assert "SKIPPED" in proc.stdout and "shared sample missing" in proc.stdout and "SL14_R1.h5" in proc.stdout

    proc = _run(clone, "1")
    assert proc.returncode == 1, proc.stdout[-2000:]
    assert "1 passed, 1 error" in proc.stdout and f"{REQUIRE_SHARED_ENV}=1" in proc.stdout


def test_present_sample_runs_when_required(clone: Path):
    sample = clone / "shared" / "thermal_sample"
    for name in SHARED_SAMPLE_FILES:
        (sample / name).parent.mkdir(parents=True, exist_ok=True)
        (sample / name).write_bytes(b"")
    proc = _run(clone, "1")
    assert proc.returncode == 0 and "2 passed" in proc.stdout, proc.stdout[-2000:]
