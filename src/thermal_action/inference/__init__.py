"""Running trained detectors: recordings, live streams, alerts, videos, ONNX.

- :mod:`.predictor`: :class:`Predictor` (model + the training preprocessing).
- :mod:`.backends`: PyTorch and ONNX Runtime backends of a :class:`Predictor`.
- :mod:`.boxes`: person boxes of a recording (annotations, detections files,
  built-in detector and tracker); detections files are read by
  :mod:`thermal_action.evaluation.detections`, which ``evaluate`` shares.
- :mod:`.outputs`: :class:`Prediction` and the ``predictions`` files.
- :mod:`.recordings`: ``predict`` over recordings (files in, files out).
- :mod:`.streaming`: :class:`StreamingPredictor`, many live sensors, batched.
- :mod:`.alerts`: fall alerts as events (a high fall score held for some seconds; the rule is
  :class:`thermal_action.alert_rule.AlertRule`).
- :mod:`.render`: MP4 / GIF of a recording with predictions.
- :mod:`.export`: ONNX export with a dynamic number of boxes.

The built-in person detector and tracker are :mod:`thermal_action.people`.

Names are imported lazily (``from thermal_action.inference import Predictor``) so
that importing the package, as the CLI does for ``--help``, stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Predictor": "predictor",
    "Prediction": "outputs",
    "predict_recordings": "recordings",
    "predict_recording": "recordings",
    "StreamingPredictor": "streaming",
    "StreamFrame": "streaming",
    "AlertEvent": "alerts",
    "FallAlertMonitor": "alerts",
    "find_fall_alerts": "alerts",
    "render_recording": "render",
    "export_onnx": "export",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
