"""``thermal-action serve``: a long-running service that watches many live sensors.

Frames arrive over WebSocket, HTTP or MQTT (:mod:`~thermal_action.serve.protocol`), worker
processes run the streaming predictor on the sensors they own, predictions and fall alerts go
to SQLite (:mod:`~thermal_action.serve.store`) and to the dashboard served by the same process.
For the staff of a care home: each sensor's room and resident, alerts they acknowledge and
resolve by name (:mod:`~thermal_action.serve.operators`), a clip of each alert
(:mod:`~thermal_action.serve.clips`), notifications to a webhook and an MQTT topic
(:mod:`~thermal_action.serve.notify`), and their answers on alerts exported as training data
(:mod:`~thermal_action.serve.feedback`).
"""
