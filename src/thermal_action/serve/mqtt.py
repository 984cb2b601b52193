"""MQTT ingest: the service subscribes to a broker that sensor gateways publish to.

A gateway publishes each frame (or a batch) to ``thermal/<sensor_id>/frames`` (config
``mqtt_topic``; its one ``+`` level is the sensor id) with a payload in one of the two formats
of :mod:`~thermal_action.serve.protocol` (binary TAF1 records or JSON). :class:`MqttIngest`
hands every decoded message to the hub as ``hub.submit(sensor_id, frames, "mqtt")``; a message
that does not decode goes to ``hub.reject``. Nothing a publisher sends can raise out of the
client's callback: problems are logged and counted (:attr:`MqttIngest.stats`).

Presence: MQTT has no connection per sensor, so a sensor counts as connected from its first
message while the link to the broker is up; when the link drops (or the ingest stops) every
sensor seen is reported disconnected, and reconnected by its next message.

The paho-mqtt client runs its own network thread (``loop_start``) and reconnects with an
exponential backoff when the broker goes away; it subscribes again on every connect.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

from thermal_action.serve.broker_ingest import BrokerIngest
from thermal_action.serve.config import ServeConfig, ingest_limits
from thermal_action.serve.protocol import (
    FrameFormatError,
    check_sensor_id,
)

logger = logging.getLogger(__name__)

TRANSPORT = "mqtt"
DEFAULT_PORT = 1883


@dataclass
class MqttStats:
    """What the ingest received since it started.

    Attributes:
        connects: successful connections to the broker (1 + reconnects).
        disconnects: times the link to the broker was lost.
        messages: messages received.
        frames: frames decoded and handed to the hub.
        bad_messages: messages that did not decode (or named no valid sensor id).
        callback_errors: unexpected errors in the message callback (logged, swallowed).
    """

    connects: int = 0
    disconnects: int = 0
    messages: int = 0
    frames: int = 0
    bad_messages: int = 0
    callback_errors: int = 0

    def to_dict(self) -> dict[str, int]:
        """The counters as a plain dict."""
        return asdict(self)


def parse_mqtt_url(url: str) -> tuple[str, int, str, str]:
    """``mqtt://[user:password@]host[:port]`` (or ``tcp://``) -> ``(host, port, user, password)``.

    Raises:
        ValueError: not an ``mqtt://`` / ``tcp://`` URL with a host.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "tcp") or not parts.hostname:
        raise ValueError(f"MQTT URL {url!r} must look like mqtt://host:port")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError as e:
        raise ValueError(f"MQTT URL {url!r}: {e}") from None
    return parts.hostname, port, parts.username or "", parts.password or ""


def topic_sensor_level(pattern: str) -> int:
    """The index of the ``+`` level (the sensor id) in a subscription like ``thermal/+/frames``.

    Raises:
        ValueError: the pattern has not exactly one ``+`` level.
    """
    levels = pattern.split("/")
    plus = [i for i, level in enumerate(levels) if level == "+"]
    if len(plus) != 1:
        raise ValueError(f"MQTT topic {pattern!r} needs exactly one '+' level (the sensor id)")
    return plus[0]


def sensor_id_from_topic(topic: str, pattern: str) -> str:
    """The sensor id in ``topic`` published under the subscription ``pattern``.

    Raises:
        FrameFormatError: the topic does not match the pattern or its id level is not a valid id.
    """
    index = topic_sensor_level(pattern)
    levels, want = topic.split("/"), pattern.split("/")
    multi = want[-1] == "#"
    fixed = want[:-1] if multi else want
    if len(levels) < len(fixed) or (not multi and len(levels) != len(fixed)) or any(
            w not in ("+", "#") and w != got for w, got in zip(fixed, levels)):
        raise FrameFormatError(f"topic {topic!r} does not match the subscription {pattern!r}")
    return check_sensor_id(levels[index])


class MqttIngest(BrokerIngest):
    """Subscribes to ``cfg.mqtt_topic`` on the broker at ``cfg.mqtt_url`` and feeds the hub.

    Args:
        hub: the service's hub (``submit``, ``reject``, ``connected``, ``disconnected``; thread-safe).
        cfg: the service config (``mqtt_url``, ``mqtt_topic``, ``mqtt_username``, ``mqtt_password``).
        reconnect_min_delay: seconds before the first reconnect attempt; doubles up to ...
        reconnect_max_delay: ... this many seconds between attempts.
        keepalive: seconds between pings the broker expects.
        qos: subscription quality of service (0: at most once, what a live stream wants).
    """

    transport = TRANSPORT
    label = "MQTT"

    def __init__(self, hub: Any, cfg: ServeConfig, reconnect_min_delay: float = 0.5,
                 reconnect_max_delay: float = 10.0, keepalive: int = 30, qos: int = 0):
        self.hub = hub
        self.topic = cfg.mqtt_topic
        topic_sensor_level(self.topic)  # fail at construction, not in the callback
        self.host, self.port, user, password = parse_mqtt_url(cfg.mqtt_url)
        self.username = cfg.mqtt_username or user
        self.password = cfg.mqtt_password or password
        self.qos = qos
        self.limits = ingest_limits(cfg)
        self.keepalive = keepalive
        self.reconnect_delays = (reconnect_min_delay, reconnect_max_delay)
        self.stats = MqttStats()
        self._lock = threading.Lock()
        self._seen: set[str] = set()
        self._connected = threading.Event()
        self._client = None

    # -- lifecycle

    def start(self) -> None:
        """Connects in the background (retried until the broker answers) and starts receiving."""
        import paho.mqtt.client as mqtt

        if self._client is not None:
            return
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                             client_id=f"thermal-action-serve-{os.getpid()}-{uuid.uuid4().hex[:8]}",
                             clean_session=True)
        if self.username:
            client.username_pw_set(self.username, self.password or None)
        client.reconnect_delay_set(*self.reconnect_delays)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.connect_async(self.host, self.port, keepalive=self.keepalive)
        self._client = client
        client.loop_start()  # its thread retries the first connection too
        logger.info("MQTT: connecting to %s:%d, topic %s", self.host, self.port, self.topic)

    def stop(self) -> None:
        """Disconnects, stops the network thread and reports every sensor seen as disconnected."""
        client, self._client = self._client, None
        if client is None:
            return
        try:
            client.disconnect()
        finally:
            client.loop_stop()
        self._connected.clear()
        self._forget_sensors()

    def wait_connected(self, timeout: float | None = None) -> bool:
        """Blocks until subscribed to the broker (True) or ``timeout`` seconds passed (False)."""
        return self._connected.wait(timeout)

    @property
    def is_connected(self) -> bool:
        """Whether the link to the broker is up and subscribed."""
        return self._connected.is_set()

    def __enter__(self) -> MqttIngest:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- paho callbacks (the client's network thread)

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            logger.warning("MQTT: broker %s:%d refused the connection: %s", self.host, self.port, reason_code)
            return
        # Up once the broker has granted the subscription (SUBACK), not at CONNACK: a frame
        # published between the two would not reach this client.
        client.subscribe(self.topic, qos=self.qos)

    def _on_subscribe(self, client: Any, userdata: Any, mid: Any, reason_codes: Any, properties: Any) -> None:
        refused = [rc for rc in reason_codes if rc.is_failure]
        if refused:
            logger.warning("MQTT: broker %s:%d refused the subscription to %s: %s", self.host, self.port, self.topic,
                           refused[0])
            return
        with self._lock:
            self.stats.connects += 1
            again = self.stats.connects > 1
        logger.info("MQTT: %s %s:%d, subscribed to %s", "reconnected to" if again else "connected to",
                    self.host, self.port, self.topic)
        self._connected.set()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        was_up = self._connected.is_set()
        self._connected.clear()
        if not was_up:
            return
        with self._lock:
            self.stats.disconnects += 1
        if self._client is not None:
            logger.warning("MQTT: lost the broker %s:%d (%s); reconnecting", self.host, self.port, reason_code)
        self._forget_sensors()

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        try:
            self._handle(message.topic, message.payload)
        except Exception:  # noqa: BLE001 - a publisher must never stop the ingest
            with self._lock:
                self.stats.callback_errors += 1
            logger.exception("MQTT: error handling a message on %r", getattr(message, "topic", "?"))

    # -- the work

    def _handle(self, topic: str, payload: bytes) -> None:
        with self._lock:
            self.stats.messages += 1
        try:
            sensor_id = sensor_id_from_topic(topic, self.topic)
        except FrameFormatError as e:
            self._bad(None, str(e))
            return
        self._mark_seen(sensor_id)
        self._submit(sensor_id, payload)

    def _mark_seen(self, sensor_id: str) -> None:
        with self._lock:
            new = sensor_id not in self._seen
            self._seen.add(sensor_id)
        if new:
            self.hub.connected(sensor_id, TRANSPORT)

    def _forget_sensors(self) -> None:
        with self._lock:
            seen, self._seen = self._seen, set()
        for sensor_id in sorted(seen):
            try:
                self.hub.disconnected(sensor_id, TRANSPORT)
            except Exception:  # noqa: BLE001 - presence bookkeeping must not stop the ingest
                logger.exception("MQTT: hub.disconnected(%r) failed", sensor_id)
