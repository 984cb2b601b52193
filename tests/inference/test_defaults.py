"""Prediction defaults live in one place (``structures.PREDICTION``): every entry point and the
CLI take theirs from it."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from thermal_action.cli import build_parser
from thermal_action.inference.alerts import FallAlertMonitor, find_fall_alerts
from thermal_action.inference.recordings import predict_recording, predict_recordings
from thermal_action.inference.render import render_recording
from thermal_action.inference.streaming import StreamingPredictor
from thermal_action.structures import FALLBACK_FALL_THRESHOLD, PREDICTION


def _defaults(fn) -> dict:
    return {k: v.default for k, v in inspect.signature(fn).parameters.items()
            if v.default is not inspect.Parameter.empty}


@pytest.mark.parametrize("fn, names", [
    (predict_recordings, {"step": "step", "fall_class": "fall_class", "fall_threshold": "fall_threshold",
                          "fall_alert_seconds": "fall_alert_seconds", "fps": "fps"}),
    (predict_recording, {"step": "step"}),
    (StreamingPredictor.__init__, {"step": "step", "fall_class": "fall_class", "fall_threshold": "fall_threshold",
                                   "fall_alert_seconds": "fall_alert_seconds", "fps": "fps"}),
    (render_recording, {"fps": "fps", "fall_class": "fall_class"}),
    (find_fall_alerts, {"min_seconds": "fall_alert_seconds", "fps": "fps"}),
], ids=["predict_recordings", "predict_recording", "StreamingPredictor", "render_recording", "find_fall_alerts"])
def test_library_defaults_come_from_prediction_defaults(fn, names):
    got = _defaults(fn)
    for param, field in names.items():
        assert got[param] == getattr(PREDICTION, field), param


def test_alert_monitor_and_cli_defaults_come_from_prediction_defaults():
    monitor = {f.name: f.default for f in dataclasses.fields(FallAlertMonitor)}
    assert monitor["min_seconds"] == PREDICTION.fall_alert_seconds and monitor["fps"] == PREDICTION.fps
    assert monitor["threshold"] == FALLBACK_FALL_THRESHOLD
    args = build_parser().parse_args(["predict", "rec.h5", "--checkpoint", "m.ckpt", "--out", "o"])
    for name in ("step", "fall_class", "fall_threshold", "fall_alert_seconds", "fps"):
        assert getattr(args, name) == getattr(PREDICTION, name), name
    assert build_parser().parse_args(["render", "rec.h5", "--out", "o.mp4"]).fps == PREDICTION.fps
