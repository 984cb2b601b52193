"""``thermal-action serve``: a long-running service that watches many live sensors.

Frames arrive over WebSocket, HTTP or MQTT (:mod:`~thermal_action.serve.protocol`), worker
processes run the streaming predictor on the sensors they own, predictions and fall alerts go
to SQLite and to the dashboard served by the same process.
"""
