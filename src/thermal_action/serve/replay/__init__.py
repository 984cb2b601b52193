"""Replay recordings as live sensors into ``thermal-action serve`` (for tests, demos, benchmarks).

``replay(["a.h5", "b.h5"], "ws://127.0.0.1:8765", token=...)`` sends each recording as one
sensor, frame by frame at the times the recording was captured: frame ``i`` leaves at
``start + (t_i - t_0) / speed``, so the sensor's bursts (steps of ~165 ms, a ~0.5 s gap, 2-3
frames ~37 ms apart, gaps of seconds) reach the service as they would live. The frames go as
stored in the file, dropped packets (0 K tails) included: repairing them is the service's job.

Timestamps. Each sent frame carries its scheduled send time (ms since epoch): the replay's
first frame is "now", and the steps are the recording's divided by ``speed``. With ``loop``
the recording starts again one typical frame step (the median step) after its last frame, so
the timestamps keep increasing across repetitions. They are made strictly increasing (a
recording whose timestamps repeat or go backwards is sent with 1 ms steps there).

Sensors. One per recording, named by the file stem; ``sensors=N`` more than the recordings
cycles them with ids ``<stem>-<k>`` (``k``: the copy, from 0). Sensor ``j`` of ``N`` starts
``j / N * stagger_seconds`` late, so copies of one recording do not all burst at once.

Targets (one connection per sensor, except MQTT: one client for all):

- ``ws://HOST:PORT``: WebSocket ``/ws/sensors/{id}?token=...``, one binary message (TAF1
  records, :func:`~thermal_action.serve.protocol.encode_frames`) per send; the server's JSON
  error messages are counted.
- ``http://HOST:PORT``: ``POST /api/sensors/{id}/frames`` with ``Authorization: Bearer``,
  binary body; the answer's ``errors`` and ``dropped`` are counted.
- ``mqtt://HOST:PORT``: publish to ``topic`` (``{sensor}`` replaced by the id).

Drops. What the server dropped (its queue full) is what it says: the HTTP answers'
``dropped``, the WebSocket error messages that say ``N frame(s) dropped``, and, when the
service's ``/api/sensors`` answers the token, each sensor's ``dropped`` counter read before
and after the replay (the difference wins over the messages: the counters miss nothing).
Over MQTT the broker answers nothing about the service: the drops are unknown (``None``).

A send normally holds one frame; frames that are already due when the sender gets to them
(it fell behind) go together in one message and count as late when more than
``late_ms`` behind the schedule. When the server goes away the sender reconnects with an
exponential backoff (0.2 s doubling up to 5 s); the frames due meanwhile are not sent
(counted as failed), like a live sensor's, and the schedule goes on in real time. A refused
token (HTTP 401 / WebSocket close 4401) stops that sensor: retrying cannot help.

Where things are: :mod:`.recordings` (reading a recording as stored, the send schedule, sensor
ids), :mod:`.transports` (the WebSocket, HTTP and MQTT clients), :mod:`.summary` (what each
sensor did, the server's drop counters) and :mod:`.player` (the senders and :func:`~.player.replay`).
Replay is a client: it speaks the wire protocol (:mod:`thermal_action.serve.protocol`) and
imports none of the server (an import-linter contract in ``pyproject.toml``).
"""
