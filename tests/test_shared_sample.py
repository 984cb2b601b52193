"""The shared-sample fixture: skipped with a reason when the sample is missing, failed when CI requires it."""

from __future__ import annotations

from pathlib import Path

import pytest

CONFTEST = Path(__file__).with_name("conftest.py")
REQUIRE_SHARED_ENV = "THERMAL_ACTION_REQUIRE_SHARED"

_TEST = '''
def test_reads_the_sample(shared_sample):
    assert (shared_sample / "frames" / "SL14_R1.h5").is_file()


def test_without_the_sample():
    pass
'''


@pytest.fixture
def clone(pytester: pytest.Pytester) -> Path:
    """A checkout at ``clone/`` with this suite's conftest; its ``../shared`` is ``pytester.path / "shared"``."""
    tests = pytester.path / "clone" / "tests"
    tests.mkdir(parents=True)
    (tests / "conftest.py").write_text(CONFTEST.read_text())
    (tests / "test_it.py").write_text(_TEST)
    return tests


def _run(pytester: pytest.Pytester, tests: Path) -> pytest.RunResult:
    # In process: the copied conftest's imports (torch) are already loaded.
    return pytester.runpytest_inprocess(str(tests), "-p", "no:cacheprovider", "-p", "no:xdist", "-rsE", "-o",
                                        "markers=shared_sample: needs ../shared/thermal_sample")


def test_missing_sample_is_a_visible_skip_and_a_failure_when_required(pytester, clone, monkeypatch):
    monkeypatch.delenv(REQUIRE_SHARED_ENV, raising=False)
    result = _run(pytester, clone)
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED*shared sample missing*SL14_R1.h5*"])

    monkeypatch.setenv(REQUIRE_SHARED_ENV, "1")
    result = _run(pytester, clone)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines([f"shared sample missing*{REQUIRE_SHARED_ENV}=1)"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_present_sample_runs_when_required(pytester, clone, monkeypatch):
    for name in ("frames/SL14_R1.h5", "frames/sensor_info.json", "annotations/train.json", "annotations/val.json",
                 "annotations/class_mapping.json", "raw_annotations/SL14_R1_annotation.json"):
        path = pytester.path / "shared" / "thermal_sample" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    monkeypatch.setenv(REQUIRE_SHARED_ENV, "1")
    _run(pytester, clone).assert_outcomes(passed=2)
