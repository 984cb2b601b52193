"""Prediction defaults live in one place (``structures.PREDICTION``), the alert rule's in
``AlertRule``: every entry point and the CLI take theirs from there, and none resolves the rule
on its own (every ``alert_rule`` parameter defaults to None: the model's rule)."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from thermal_action.cli import build_parser
from thermal_action.alert_rule import AlertRule
from thermal_action.inference.alerts import FallAlertMonitor, find_fall_alerts
from thermal_action.inference.recordings import predict_recording, predict_recordings
from thermal_action.inference.render import render_recording
from thermal_action.inference.streaming import StreamingPredictor
from thermal_action.structures import PREDICTION


def _defaults(fn) -> dict:
    return {k: v.default for k, v in inspect.signature(fn).parameters.items()
            if v.default is not inspect.Parameter.empty}


@pytest.mark.parametrize("fn, names", [
    (predict_recordings, {"step": "step", "fps": "fps"}),
    (predict_recording, {"step": "step"}),
    (StreamingPredictor.__init__, {"step": "step", "fps": "fps"}),
    (render_recording, {"fps": "fps"}),
    (find_fall_alerts, {"fps": "fps"}),
], ids=["predict_recordings", "predict_recording", "StreamingPredictor", "render_recording", "find_fall_alerts"])
def test_library_defaults_come_from_prediction_defaults(fn, names):
    got = _defaults(fn)
    for param, field in names.items():
        assert got[param] == getattr(PREDICTION, field), param
    assert not [k for k in got if k.startswith("fall_")]  # the rule's fields are no parameters
    for param in ("alert_rule", "rule"):
        assert got.get(param) is None  # None: the model's rule (or the default one)


def test_alert_monitor_and_cli_defaults_come_from_prediction_defaults():
    monitor = {f.name: f for f in dataclasses.fields(FallAlertMonitor)}
    assert monitor["fps"].default == PREDICTION.fps and monitor["rule"].default_factory() == AlertRule()
    args = build_parser().parse_args(["predict", "rec.h5", "--checkpoint", "m.ckpt", "--out", "o"])
    for name in ("step", "fps"):
        assert getattr(args, name) == getattr(PREDICTION, name), name
    for name in ("fall_class", "fall_threshold", "fall_alert_seconds", "fall_alert_gap_seconds",
                 "fall_alert_cooldown_seconds", "fall_bed_threshold"):
        assert getattr(args, name) is None, name  # not given: the checkpoint's rule decides
    assert build_parser().parse_args(["render", "rec.h5", "--out", "o.mp4"]).fps == PREDICTION.fps
