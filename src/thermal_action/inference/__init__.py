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

Names are imported from their modules (``from thermal_action.inference.predictor import
Predictor``): importing the package, as the CLI does for ``--help``, imports nothing.
"""
