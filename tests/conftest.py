"""Suite-wide settings and the shared real sample.

The suite runs as ``pytest -n 2`` on 2-core machines: with PyTorch's default of one
thread per core in each worker, the workers oversubscribe the cores and tiny training
steps run 5-20x slower. One intra-op thread per worker keeps the suite fast.

The real sample recording (``SL14_R1`` with its annotations) lives outside the
repository, in ``../shared/thermal_sample`` beside the checkout. Tests that need it take
the :func:`shared_sample` fixture (which marks them ``shared_sample``, so ``-m "not
shared_sample"`` leaves them out). Without the sample they are skipped, with the reason
in the summary; with ``THERMAL_ACTION_REQUIRE_SHARED=1`` (set by ``.ci/run``) they fail
instead, so CI cannot pass without having run them.
"""

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)

pytest_plugins = ["pytester"]  # tests/test_shared_sample.py runs this conftest in a throwaway checkout

SHARED_SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "thermal_sample"  # ../shared beside the checkout
#: The files of the sample the tests read.
SHARED_SAMPLE_FILES = (
    "frames/SL14_R1.h5",
    "frames/sensor_info.json",
    "annotations/train.json",
    "annotations/val.json",
    "annotations/class_mapping.json",
    "raw_annotations/SL14_R1_annotation.json",
)
REQUIRE_SHARED_ENV = "THERMAL_ACTION_REQUIRE_SHARED"


def _missing_sample_files() -> list[str]:
    return [f for f in SHARED_SAMPLE_FILES if not (SHARED_SAMPLE / f).is_file()]


def _shared_required() -> bool:
    return os.environ.get(REQUIRE_SHARED_ENV, "0") not in ("", "0")


def pytest_report_header(config: pytest.Config) -> str:
    missing = _missing_sample_files()
    state = "present" if not missing else f"MISSING ({len(missing)} of {len(SHARED_SAMPLE_FILES)} files)"
    required = f", required ({REQUIRE_SHARED_ENV}=1)" if _shared_required() else ""
    return f"shared sample: {SHARED_SAMPLE} {state}{required}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "shared_sample" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.shared_sample)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("shared_sample") is None:
        return
    missing = _missing_sample_files()
    if not missing:
        return
    reason = f"shared sample missing: {SHARED_SAMPLE} lacks {', '.join(missing)}"
    if _shared_required():
        pytest.fail(f"{reason} ({REQUIRE_SHARED_ENV}=1)", pytrace=False)
    pytest.skip(f"{reason} (set {REQUIRE_SHARED_ENV}=1 to fail instead)")


@pytest.fixture(scope="session")
def shared_sample() -> Path:
    """``../shared/thermal_sample``: the real recording ``SL14_R1`` and its annotations.

    Tests taking it are marked ``shared_sample`` and skipped (or failed, see the module
    docstring) before they start when the sample is missing.
    """
    return SHARED_SAMPLE
