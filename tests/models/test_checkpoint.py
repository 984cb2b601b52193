"""A checkpoint carries its fall alert rule; checkpoints from before rules (a calibrated threshold,
or the config's) still load, as the default rule with that threshold."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from helpers.infer import tiny_config, write_tiny_checkpoint
from thermal_action.alert_rule import AlertRule
from thermal_action.models.checkpoint import CHECKPOINT_KEY, load_checkpoint, read_checkpoint_info


def _rewrite(path: Path, **extras) -> Path:
    """The checkpoint with its extras changed (a value None: the key removed, as in old files)."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    for key, value in extras.items():
        if value is None:
            ckpt[CHECKPOINT_KEY].pop(key, None)
        else:
            ckpt[CHECKPOINT_KEY][key] = value
    torch.save(ckpt, path)
    return path


def test_the_rule_a_checkpoint_carries_comes_back(tmp_path):
    rule = AlertRule(threshold=0.31, min_seconds=3.0, cooldown_seconds=12.0, bed_threshold=0.8)
    path = write_tiny_checkpoint(tmp_path / "a.ckpt", alert_rule=rule)
    assert read_checkpoint_info(path).alert_rule == rule
    assert load_checkpoint(path).alert_rule == rule


def test_old_checkpoints_load_with_their_calibrated_or_configured_threshold(tmp_path):
    path = _rewrite(write_tiny_checkpoint(tmp_path / "old.ckpt"), alert_rule=None,
                    fall_calibration={"threshold": 0.37, "target_recall": 0.95, "recall": 1.0})
    assert read_checkpoint_info(path).alert_rule == AlertRule(threshold=0.37)
    configured = write_tiny_checkpoint(tmp_path / "cfg.ckpt", cfg=tiny_config("eval.fall_threshold=0.6"))
    _rewrite(configured, alert_rule=None, fall_calibration={"threshold": 0.37})
    assert read_checkpoint_info(configured).alert_rule == AlertRule(threshold=0.6)  # the user's wins
    bare = _rewrite(write_tiny_checkpoint(tmp_path / "bare.ckpt"), alert_rule=None, fall_calibration=None)
    assert read_checkpoint_info(bare).alert_rule == AlertRule()


def test_a_checkpoint_with_an_invalid_rule_is_refused_naming_the_file(tmp_path):
    path = _rewrite(write_tiny_checkpoint(tmp_path / "bad.ckpt"), alert_rule={"threshold": 7.0})
    with pytest.raises(ValueError, match=r"bad\.ckpt: its fall alert rule is not valid: .*threshold"):
        read_checkpoint_info(path)
