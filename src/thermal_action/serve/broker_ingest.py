"""What the broker ingests (:mod:`.mqtt`, :mod:`.amqp`) share: one message's frames decoded into
the hub, and a message that is not frames counted, logged at debug level and reported to the hub
(which tells the dashboard), never dropped silently."""

from __future__ import annotations

import logging
import threading
from typing import Any

from thermal_action.errors import FrameFormatError
from thermal_action.serve.protocol import decode_message

logger = logging.getLogger(__name__)


class BrokerIngest:
    """Base of a broker ingest. Subclasses set ``hub``, ``limits``, ``stats`` (with ``frames`` and
    ``bad_messages`` counters), ``_lock`` and the class attributes ``transport`` and ``label``."""

    transport: str
    label: str
    hub: Any
    limits: Any
    stats: Any
    _lock: threading.Lock

    def _submit(self, sensor_id: str, payload: bytes) -> None:
        """Decodes ``payload`` (one message of ``sensor_id``) and hands its frames to the hub."""
        try:
            frames = decode_message(payload, self.limits)
        except FrameFormatError as e:
            self._bad(sensor_id, str(e))
            return
        self.hub.submit(sensor_id, frames, self.transport)
        with self._lock:
            self.stats.frames += len(frames)

    def _bad(self, sensor_id: str | None, reason: str) -> None:
        with self._lock:
            self.stats.bad_messages += 1
        logger.debug("%s: bad message from %s: %s", self.label, sensor_id or "an unknown sensor", reason)
        self.hub.reject(sensor_id, self.transport, reason)
