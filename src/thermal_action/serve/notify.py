"""Alert notifications to the outside: a webhook (JSON POST) and an MQTT topic.

What is sent: one message per alert event, ``{"id", "event", "at", "who", "note", "alert"}``
with ``id`` unique per message (the same on every retry and every destination: a receiver
drops one it has seen), ``event`` one of :data:`NOTIFY_EVENTS` and ``alert`` the alert as
``GET /api/alerts`` shows it::

    {"id": "5f0c...", "event": "raised", "at": 1760000000000, "who": "system", "note": "",
     "alert": {"id": 7, "sensor_id": "bed-3", "room": "Room 12", "state": "ongoing", ...}}

How, per destination (an :class:`Outbox` each, so a dead webhook does not hold the MQTT
messages back): a bounded queue and one thread. The hub only puts a message in the queue
(never waits); a full queue drops the message. The thread delivers in order, retrying a
failure after ``backoff``, 2 x ``backoff``, 4 x ... (at most :data:`MAX_BACKOFF_S`) up to
``retries`` times; a message that never got through, or was dropped, is a *dead letter*,
counted (``/metrics``, ``/api/stats``) and logged. Messages still queued when the service stops
get one try each within :data:`STOP_GRACE_S`, the rest are dead letters too.

- Webhook (``alert_webhook_url``): ``POST`` of the JSON, ``Content-Type: application/json``;
  any 2xx answer is a delivery. With ``alert_webhook_secret`` set, every try is signed
  (:func:`webhook_signature`): ``X-Thermal-Action-Timestamp`` (Unix seconds of the try) and
  ``X-Thermal-Action-Signature: sha256=<hex>``, the HMAC-SHA256 under the secret of
  ``"<timestamp>." + body``. A receiver recomputes it over the raw body, compares in constant
  time, refuses a timestamp more than :data:`SIGNATURE_TOLERANCE_S` from its clock (a
  recorded request replayed later) and drops a message ``id`` it has already seen (a replay
  inside the tolerance, or a retry whose answer was lost): :func:`verify_webhook` does all of
  it but the last.
- MQTT (``mqtt_alert_topic`` on ``mqtt_alert_url``, else ``mqtt_url``): the JSON published
  with QoS 1, not retained (a late subscriber must not get an old alert as if new); delivered
  once the broker acknowledged it. ``{sensor_id}`` in the topic is replaced by the alert's sensor.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import queue
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from thermal_action.errors import SignatureError

logger = logging.getLogger(__name__)

#: The alert events sent out: a new alert, a raise folded into an unacknowledged one, people
#: acknowledging and resolving it, and the model seeing the person no longer down.
NOTIFY_EVENTS = ("raised", "repeat", "acknowledged", "resolved", "ended")
#: The longest wait between two tries of one message.
MAX_BACKOFF_S = 60.0
#: Seconds a stopping outbox spends on what is still queued.
STOP_GRACE_S = 2.0
#: The webhook's signature headers (:func:`webhook_signature`).
SIGNATURE_HEADER = "X-Thermal-Action-Signature"
TIMESTAMP_HEADER = "X-Thermal-Action-Timestamp"
#: A signed request whose timestamp is further than this from the receiver's clock is refused.
SIGNATURE_TOLERANCE_S = 300.0
#: The environment variable holding the webhook secret when the config does not.
WEBHOOK_SECRET_ENV = "THERMAL_ACTION_WEBHOOK_SECRET"


def alert_message(event: str, alert: dict[str, Any], who: str = "system", note: str = "",
                  at: int | None = None) -> dict[str, Any]:
    """The message of one alert event (module docstring)."""
    if event not in NOTIFY_EVENTS:
        raise ValueError(f"alert event must be one of {NOTIFY_EVENTS}, got {event!r}")
    return {"id": uuid.uuid4().hex, "event": event, "at": int(time.time() * 1000) if at is None else at,
            "who": who, "note": note, "alert": alert}


def webhook_signature(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Thermal-Action-Signature`` value: ``sha256=`` and the hex HMAC-SHA256 under
    ``secret`` (UTF-8) of ``b"<timestamp>." + body``; the timestamp is signed so that it
    cannot be changed to pass a replay check."""
    mac = hmac.new(secret.encode(), str(int(timestamp)).encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_webhook(secret: str, body: bytes, headers: Any, now: float | None = None,
                   tolerance: float = SIGNATURE_TOLERANCE_S) -> dict[str, Any]:
    """What a receiver does with a signed webhook request (for receivers written in Python,
    and the tests): checks the signature over the raw ``body`` and the timestamp's age;
    returns the parsed message. Dropping a message ``id`` seen before is left to the receiver,
    which alone knows what it has seen.

    Args:
        secret: the service's ``alert_webhook_secret``.
        body: the request body exactly as received (bytes, before any JSON parsing).
        headers: the request headers (a mapping; any case of the names).
        now: the receiver's clock, Unix seconds (default: now).
        tolerance: seconds the timestamp may be off.

    Raises:
        SignatureError: a header missing, a timestamp too old or too new, a wrong signature.
    """
    lower = {str(k).lower(): v for k, v in headers.items()}  # HTTP header names ignore case
    given, stamp = lower.get(SIGNATURE_HEADER.lower()), lower.get(TIMESTAMP_HEADER.lower())
    if not given or not stamp:
        raise SignatureError(f"unsigned request: {SIGNATURE_HEADER} and {TIMESTAMP_HEADER} are needed")
    try:
        ts = int(stamp)
    except ValueError:
        raise SignatureError(f"{TIMESTAMP_HEADER} {stamp!r} is not a whole number of seconds") from None
    off = (time.time() if now is None else now) - ts
    if abs(off) > tolerance:
        raise SignatureError(f"{TIMESTAMP_HEADER} is {off:.0f} s from now (more than {tolerance:.0f} s): "
                             "a replay, or a clock that is wrong")
    if not hmac.compare_digest(webhook_signature(secret, ts, body), given):
        raise SignatureError("the signature does not match the body (another secret, or a changed body)")
    return json.loads(body)


class Sink(Protocol):
    """A destination: ``send`` delivers one message or raises."""

    name: str

    def send(self, message: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class WebhookSink:
    """POSTs each message as JSON to ``url``.

    Args:
        url: ``http://`` or ``https://`` address.
        timeout: seconds a try may take.
        secret: signs every try (module docstring); empty: unsigned.
    """

    name = "webhook"

    def __init__(self, url: str, timeout: float = 5.0, secret: str = ""):
        self.url = url
        self.timeout = timeout
        self.secret = secret

    def send(self, message: dict[str, Any]) -> None:
        body = json.dumps(message).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "thermal-action-serve"}
        if self.secret:  # signed per try: a retry after a long backoff still passes the receiver's age check
            ts = int(time.time())
            headers[TIMESTAMP_HEADER] = str(ts)
            headers[SIGNATURE_HEADER] = webhook_signature(self.secret, ts, body)
        req = urllib.request.Request(self.url, data=body, method="POST", headers=headers)
        with urllib.request.urlopen(req, timeout=self.timeout) as r:  # noqa: S310 - the operator's configured URL
            if not 200 <= r.status < 300:
                raise urllib.error.HTTPError(self.url, r.status, f"answered {r.status}", r.headers, None)

    def close(self) -> None:
        pass


class MqttSink:
    """Publishes each message to ``topic`` (``{sensor_id}`` replaced) with QoS 1, not retained.

    Args:
        url: ``mqtt://[user:password@]host[:port]``.
        topic: where to publish.
        username, password: override the URL's.
        timeout: seconds to wait for the broker's acknowledgement.
    """

    name = "mqtt"

    def __init__(self, url: str, topic: str, username: str = "", password: str = "", timeout: float = 5.0):
        from thermal_action.serve.mqtt import parse_mqtt_url

        self.host, self.port, user, pw = parse_mqtt_url(url)
        self.username, self.password = username or user, password or pw
        self.topic = topic
        self.timeout = timeout
        self._client: Any = None

    def _connect(self) -> Any:
        import paho.mqtt.client as mqtt

        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                             client_id=f"thermal-action-alerts-{os.getpid()}-{uuid.uuid4().hex[:8]}",
                             clean_session=True)
        if self.username:
            client.username_pw_set(self.username, self.password or None)
        client.reconnect_delay_set(0.5, 10.0)
        client.connect_async(self.host, self.port, keepalive=30)
        client.loop_start()  # its thread connects, and reconnects when the broker goes away
        return client

    def send(self, message: dict[str, Any]) -> None:
        if self._client is None:
            self._client = self._connect()
        if not self._client.is_connected():
            # Not published while disconnected: paho would queue it and send it again on
            # reconnect, as well as the retry.
            raise ConnectionError(f"not connected to the broker {self.host}:{self.port}")
        topic = self.topic.replace("{sensor_id}", str(message["alert"].get("sensor_id", "")))
        info = self._client.publish(topic, json.dumps(message), qos=1, retain=False)
        info.wait_for_publish(self.timeout)
        if not info.is_published():
            raise TimeoutError(f"the broker {self.host}:{self.port} did not acknowledge within {self.timeout} s")

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.disconnect()
            finally:
                client.loop_stop()


@dataclass
class OutboxStats:
    """One destination's counters.

    Attributes:
        sent: messages delivered.
        failures: tries that failed (each retry counts).
        dead_letters: messages given up (retries spent, queue full, or the service stopped).
        queued: messages waiting now.
        last_error: why the latest try failed, if any.
    """

    sent: int = 0
    failures: int = 0
    dead_letters: int = 0
    queued: int = 0
    last_error: str | None = None


class Outbox:
    """A bounded queue and a thread delivering to one :class:`Sink` (module docstring).

    Args:
        sink: the destination.
        max_queue: messages waiting at most; beyond, new ones are dead letters.
        retries: tries after the first, per message.
        backoff: seconds before the first retry; doubles per retry up to :data:`MAX_BACKOFF_S`.
    """

    def __init__(self, sink: Sink, max_queue: int = 1000, retries: int = 6, backoff: float = 1.0):
        self.sink = sink
        self.retries = retries
        self.backoff = backoff
        self._queue: queue.Queue = queue.Queue(maxsize=max_queue)
        self._stats = OutboxStats()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._held: dict[str, Any] | None = None  # the message being retried when stop() came

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"notify-{self.sink.name}", daemon=True)
        self._thread.start()

    def put(self, message: dict[str, Any]) -> bool:
        """Queues ``message`` without waiting; False (a dead letter) when the queue is full or stopped."""
        if self._stop.is_set():
            self._dead(message, "the service is stopping")
            return False
        try:
            self._queue.put_nowait(message)
            return True
        except queue.Full:
            self._dead(message, f"{self._queue.maxsize} messages already waiting")
            return False

    def _dead(self, message: dict[str, Any], why: str) -> None:
        with self._lock:
            self._stats.dead_letters += 1
        alert = message.get("alert", {})
        logger.error("alert notification to %s given up (%s event of alert %s): %s", self.sink.name,
                     message.get("event"), alert.get("id"), why)

    def _try(self, message: dict[str, Any]) -> bool:
        try:
            self.sink.send(message)
        except Exception as e:  # noqa: BLE001 - any failure of the destination is a failed try
            with self._lock:
                self._stats.failures += 1
                self._stats.last_error = f"{type(e).__name__}: {e}"
            return False
        with self._lock:
            self._stats.sent += 1
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                message = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            self._deliver(message)

    def _deliver(self, message: dict[str, Any]) -> None:
        delay = self.backoff
        for attempt in range(self.retries + 1):
            if self._try(message):
                return
            if attempt == self.retries:
                break
            logger.warning("alert notification to %s failed (%s); retrying in %.1f s", self.sink.name,
                           self._stats.last_error, delay)
            if self._stop.wait(delay):  # stopping: stop() gives it its last try
                self._held = message
                return
            delay = min(delay * 2, MAX_BACKOFF_S)
        self._dead(message, f"{self.retries + 1} tries failed, the last: {self._stats.last_error}")

    def stop(self, grace: float = STOP_GRACE_S) -> None:
        """Stops the thread; what is still queued gets one try each within ``grace`` seconds."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(grace + 10)
        left = [self._held] if self._held is not None else []
        self._held = None
        while True:
            try:
                left.append(self._queue.get_nowait())
            except queue.Empty:
                break
        deadline = time.monotonic() + grace
        for message in left:
            if time.monotonic() > deadline or not self._try(message):
                self._dead(message, "the service stopped before it was delivered")
        self.sink.close()

    def stats(self) -> OutboxStats:
        with self._lock:
            return OutboxStats(**{**asdict(self._stats), "queued": self._queue.qsize()})


def webhook_secret(cfg: Any) -> str:
    """The webhook's signing secret: ``alert_webhook_secret``, else ``$THERMAL_ACTION_WEBHOOK_SECRET``,
    else none (unsigned)."""
    return cfg.alert_webhook_secret or os.environ.get(WEBHOOK_SECRET_ENV, "")


class Notifier:
    """Sends alert events to every configured destination (module docstring); without any it
    does nothing.

    Args:
        outboxes: one per destination.
    """

    def __init__(self, outboxes: list[Outbox] | None = None):
        self.outboxes = list(outboxes or [])

    @classmethod
    def from_config(cls, cfg: Any) -> "Notifier":
        """The destinations the service config names (``alert_webhook_url``, ``mqtt_alert_topic``)."""
        sinks: list[Sink] = []
        if cfg.alert_webhook_url:
            sinks.append(WebhookSink(cfg.alert_webhook_url, cfg.notify_timeout_seconds,
                                     webhook_secret(cfg)))
        if cfg.mqtt_alert_topic:
            # A broker of its own brings its credentials in its URL; the ingest broker's are mqtt_username/_password.
            own = bool(cfg.mqtt_alert_url)
            sinks.append(MqttSink(cfg.mqtt_alert_url or cfg.mqtt_url, cfg.mqtt_alert_topic,
                                  "" if own else cfg.mqtt_username, "" if own else cfg.mqtt_password,
                                  cfg.notify_timeout_seconds))
        return cls([Outbox(s, cfg.notify_queue, cfg.notify_retries, cfg.notify_backoff_seconds) for s in sinks])

    def start(self) -> None:
        for o in self.outboxes:
            o.start()

    def stop(self) -> None:
        for o in self.outboxes:
            o.stop()

    def notify(self, event: str, alert: dict[str, Any], who: str = "system", note: str = "") -> None:
        """Queues one alert event for every destination; never waits."""
        if not self.outboxes:
            return
        message = alert_message(event, alert, who, note)
        for o in self.outboxes:
            o.put(message)

    def stats(self) -> dict[str, Any]:
        """``{sent, dead_letters, queued, sinks: {name: OutboxStats as a dict}}``."""
        per = {o.sink.name: asdict(o.stats()) for o in self.outboxes}
        return {"sent": sum(s["sent"] for s in per.values()),
                "dead_letters": sum(s["dead_letters"] for s in per.values()),
                "queued": sum(s["queued"] for s in per.values()), "sinks": per}
