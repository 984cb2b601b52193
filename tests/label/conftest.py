"""A tiny folder of recordings to label (``helpers.label.write_dataset``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.label import write_dataset


@pytest.fixture
def dataset(tmp_path) -> Path:
    return write_dataset(tmp_path / "data")
