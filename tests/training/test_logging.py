"""Training output says each thing once: no doubled Lightning lines, no advertisement, no
progress bar redrawn into a log file."""

from __future__ import annotations

import io
import logging

import pytest

from thermal_action.training.train import build_trainer, one_line_per_lightning_record


@pytest.fixture
def root_handler():
    """A root handler as the CLI's ``logging.basicConfig`` installs it, with Lightning imported
    (which gives the ``lightning`` logger a handler of its own)."""
    import lightning.pytorch  # noqa: F401

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    root.addHandler(handler)
    lightning_logger = logging.getLogger("lightning")
    saved = list(lightning_logger.handlers), lightning_logger.propagate
    lightning_logger.addHandler(logging.StreamHandler(stream))  # what Lightning's import does
    yield stream
    root.removeHandler(handler)
    lightning_logger.handlers[:] = saved[0]
    lightning_logger.propagate = saved[1]


def test_a_lightning_record_is_written_once_and_its_advertisement_not_at_all(root_handler):
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    rank_zero.setLevel(logging.INFO)
    one_line_per_lightning_record()
    rank_zero.info("GPU available: False, used: False")
    rank_zero.info("\N{ELECTRIC LIGHT BULB} Tip: For seamless cloud logging, try installing litlogger")
    text = root_handler.getvalue()
    assert text.count("GPU available") == 1
    assert "Tip" not in text


def test_no_progress_bar_when_stderr_is_not_a_terminal(tiny_config, tmp_path, monkeypatch):
    import sys

    cfg = tiny_config("trainer.progress_bar=true")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    assert build_trainer(cfg, tmp_path, []).progress_bar_callback is None
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert build_trainer(cfg, tmp_path, []).progress_bar_callback is not None


def test_the_end_of_training_summary_names_the_metric_and_the_fall_alarm(trained_run):
    text = trained_run.summary()
    assert "validation frame-mAP" in text and "step =" not in text
    assert "fall alarm:      threshold" in text and "validation fall boxes" in text
    rows = [__import__("json").loads(line) for line in trained_run.val_summary.read_text().splitlines()]
    assert rows[-1]["fall_boxes"] is not None
