"""Several ``serve`` instances share the sensors through RabbitMQ (README, "More than one machine").

The topology, declared by every instance (idempotent)::

    gateway --MQTT thermal/<id>/frames--> amq.topic --"thermal.*.frames"--> thermal.frames
    (or AMQP, routing key thermal.<id>.frames)        (x-consistent-hash on the routing key)
                                                          |        |            |
                                                 thermal.frames.0  .1   ...  .<N-1>
                                          (quorum queues, x-single-active-consumer: true)
                                                          |
                                     every instance consumes every partition queue;
                                     the broker delivers each queue to ONE of them

What the broker guarantees, and what this module adds:

- *Affinity*: the consistent-hash exchange sends every message with the same routing key
  (one sensor) to the same queue while the bindings stay, and a single-active-consumer
  queue delivers to one consumer at a time, in order: a sensor's frames reach one instance.
- *Failover*: when the active consumer's connection closes (the process died: at once; the
  machine went away: after the missed heartbeats, ``amqp_heartbeat_seconds`` x 2), the broker
  makes another registered consumer active and redelivers the messages the dead one had not
  acknowledged. Frames are acknowledged once handed to the hub, so what is lost with an
  instance is what its workers had queued: the sensors' windows restart on the new instance.
  Quorum queues, not classic ones: classic queues with single active consumer could crash
  on failover in RabbitMQ 3.10/3.11 (rabbitmq-server issue 5460).
- *Sharing*: RabbitMQ 3.10's single active consumer never moves a queue to a consumer that
  registers later (4.0's quorum queues do, by consumer priority), so the first instance up
  would hold every partition. Each instance therefore announces itself (a fanout exchange,
  ``<exchange>.instances``, every ``PRESENCE_SECONDS``) and hands back the partitions it
  holds beyond its fair share, ``ceil(partitions / instances)``: it cancels its consumer on
  the queue and registers again, behind the others; the broker makes the next one active.
  "Holds" means the queue delivered to it in the last ``ACTIVE_SECONDS``.
- *Alerts once*: the store (PostgreSQL, shared) folds the raise that a moved sensor's
  restarted window makes into the alert its first instance raised
  (:meth:`~thermal_action.serve.store.Store.record_alert`); a sensor that arrived here and
  raised nothing for ``takeover_seconds`` gets the other instances' ongoing raises ended
  (``on_moved``), since nobody else will end them.

Presence for the dashboard: as with MQTT, a sensor counts as connected from its first message
while the link is up, and every sensor seen is reported disconnected when the link drops or a
partition is handed back.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

from thermal_action.serve.broker_ingest import BrokerIngest
from thermal_action.serve.config import ServeConfig, ingest_limits
from thermal_action.serve.protocol import (
    FrameFormatError,
    check_sensor_id,
)

logger = logging.getLogger(__name__)

TRANSPORT = "amqp"
#: Seconds between an instance's announcements; an instance unheard for 3 of them is gone.
PRESENCE_SECONDS = 2.0
#: A partition that delivered to this instance this recently is one it holds.
ACTIVE_SECONDS = 10.0
#: Seconds between two hand-backs (the others' announcements catch up in between).
REBALANCE_SECONDS = 8.0


@dataclass
class AmqpStats:
    """What the ingest did since it started.

    Attributes:
        connects: successful connections to the broker (1 + reconnects).
        disconnects: times the link was lost.
        messages: messages received.
        frames: frames decoded and handed to the hub.
        bad_messages: messages that did not decode (or named no valid sensor id).
        handed_back: partitions handed back to other instances (sharing).
    """

    connects: int = 0
    disconnects: int = 0
    messages: int = 0
    frames: int = 0
    bad_messages: int = 0
    handed_back: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def binding_key(mqtt_topic: str) -> str:
    """The AMQP routing-key pattern of an MQTT subscription (``thermal/+/frames`` ->
    ``thermal.*.frames``), as RabbitMQ's MQTT plugin maps topics to routing keys."""
    return ".".join("*" if level == "+" else "#" if level == "#" else level.replace(".", "/")
                    for level in mqtt_topic.split("/"))


def sensor_id_from_routing_key(key: str, mqtt_topic: str) -> str:
    """The sensor id in a routing key (``thermal.S1.frames``); RabbitMQ's MQTT plugin writes a
    ``.`` of a topic level as ``/``.

    Raises:
        FrameFormatError: the key does not match the subscription or its id is not valid.
    """
    want = mqtt_topic.split("/")
    levels = key.split(".")
    index = want.index("+")
    if len(levels) != len(want) or any(w != "+" and w != got.replace("/", ".") for w, got in zip(want, levels)):
        raise FrameFormatError(f"routing key {key!r} does not match {binding_key(mqtt_topic)!r}")
    return check_sensor_id(levels[index].replace("/", "."))


def partition_queues(exchange: str, partitions: int) -> list[str]:
    return [f"{exchange}.{i}" for i in range(partitions)]


def declare_topology(channel: Any, exchange: str, partitions: int, mqtt_topic: str) -> list[str]:
    """Declares the exchanges, the partition queues and their bindings (idempotent; every
    instance does it at connect). Returns the queue names."""
    channel.exchange_declare(exchange, "x-consistent-hash", durable=True)
    channel.exchange_bind(exchange, "amq.topic", routing_key=binding_key(mqtt_topic))
    channel.exchange_declare(f"{exchange}.instances", "fanout", durable=False)
    queues = partition_queues(exchange, partitions)
    for q in queues:
        channel.queue_declare(q, durable=True, arguments={"x-queue-type": "quorum", "x-single-active-consumer": True})
        channel.queue_bind(q, exchange, routing_key="1")  # the weight on the hash ring: equal shares
    return queues


class AmqpIngest(BrokerIngest):
    """Consumes the partition queues at ``cfg.amqp_url`` and feeds the hub (module docstring).

    Args:
        hub: the service's hub (``submit``, ``reject``, ``connected``, ``disconnected``).
        cfg: the service config (``amqp_*``, ``mqtt_topic``, ``takeover_seconds``).
        instance: this instance's name (announced to the others).
        on_moved: called once per sensor that arrived here, ``takeover_seconds`` after its
            first message (the service ends the other instances' ongoing raises of it).
        reconnect_delay: seconds between tries to reach the broker.
    """

    transport = TRANSPORT
    label = "AMQP"

    def __init__(self, hub: Any, cfg: ServeConfig, instance: str,
                 on_moved: Callable[[str], None] | None = None, reconnect_delay: float = 1.0):
        self.hub = hub
        self.url = cfg.amqp_url
        self.exchange = cfg.amqp_exchange
        self.partitions = cfg.amqp_partitions
        self.prefetch = cfg.amqp_prefetch
        self.heartbeat = cfg.amqp_heartbeat_seconds
        self.topic = cfg.mqtt_topic
        self.takeover_seconds = cfg.takeover_seconds
        self.instance = instance
        self.on_moved = on_moved
        self.limits = ingest_limits(cfg)
        self.reconnect_delay = reconnect_delay
        self.stats = AmqpStats()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._thread: threading.Thread | None = None
        self._seen: dict[str, int] = {}  # sensor id -> the partition it came from
        self._arrived: dict[str, float] = {}  # sensor id -> first message here (monotonic), until on_moved ran
        self._last_delivery: dict[int, float] = {}  # partition -> monotonic time
        self._peers: dict[str, tuple[float, int]] = {}  # other instance -> (last announcement, partitions it held)
        self._tags: dict[str, int] = {}  # consumer tag -> partition

    # -- lifecycle

    def start(self) -> None:
        import pika  # noqa: F401 - the cluster extra: missing, it fails the start (the CLI names the extra)

        logging.getLogger("pika").setLevel(logging.WARNING)  # its INFO lines narrate every connect and close

        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="serve-amqp", daemon=True)
        self._thread.start()
        logger.info("AMQP: instance %s consuming %d partitions of %s", self.instance, self.partitions, self.exchange)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(15)
            self._thread = None
        self._forget(set(self._seen))

    def wait_connected(self, timeout: float | None = None) -> bool:
        return self._connected.wait(timeout)

    def held_partitions(self) -> list[int]:
        """The partitions that delivered to this instance in the last ``ACTIVE_SECONDS``."""
        now = time.monotonic()
        with self._lock:
            return sorted(p for p, t in self._last_delivery.items() if now - t <= ACTIVE_SECONDS)

    def instances(self) -> list[str]:
        """This instance and the others heard from in the last ``3 x PRESENCE_SECONDS``."""
        now = time.monotonic()
        with self._lock:
            return sorted({self.instance, *(n for n, (t, _) in self._peers.items() if now - t <= 3 * PRESENCE_SECONDS)})

    def _fewest_held_by_others(self) -> int:
        """The fewest partitions a live other instance said it holds."""
        now = time.monotonic()
        with self._lock:
            return min((h for t, h in self._peers.values() if now - t <= 3 * PRESENCE_SECONDS), default=0)

    # -- the connection thread

    def _run(self) -> None:
        import pika

        params = pika.URLParameters(self.url)
        params.heartbeat = self.heartbeat
        params.blocked_connection_timeout = 60
        while not self._stop.is_set():
            conn = None
            try:
                conn = pika.BlockingConnection(params)
                self._serve(conn)
            except Exception as e:  # noqa: BLE001 - the broker went away or refused: retry
                if self._connected.is_set():
                    with self._lock:
                        self.stats.disconnects += 1
                    logger.warning("AMQP: lost the broker (%s); reconnecting", e)
                else:
                    logger.info("AMQP: cannot reach the broker yet (%s); retrying", e)
            finally:
                self._connected.clear()
                self._forget(set(self._seen))
                if conn is not None and conn.is_open:
                    try:
                        conn.close()
                    except Exception:  # noqa: BLE001 - closing a broken link
                        pass
            self._stop.wait(self.reconnect_delay)

    def _serve(self, conn: Any) -> None:
        ch = conn.channel()
        ch.basic_qos(prefetch_count=self.prefetch)
        queues = declare_topology(ch, self.exchange, self.partitions, self.topic)
        presence = ch.queue_declare("", exclusive=True, auto_delete=True).method.queue
        ch.queue_bind(presence, f"{self.exchange}.instances")
        ch.basic_consume(presence, self._on_presence, auto_ack=True)
        with self._lock:
            self._tags.clear()
            self._last_delivery.clear()
        for p, q in enumerate(queues):
            self._consume(ch, p, q)
        with self._lock:
            self.stats.connects += 1
        self._connected.set()
        logger.info("AMQP: connected; registered on %d partition queues", len(queues))
        next_hello = next_rebalance = 0.0
        while not self._stop.is_set():
            conn.process_data_events(time_limit=0.25)
            now = time.monotonic()
            if now >= next_hello:
                ch.basic_publish(f"{self.exchange}.instances", "", json.dumps(
                    {"instance": self.instance, "held": len(self.held_partitions())}).encode())
                next_hello = now + PRESENCE_SECONDS
            if now >= next_rebalance:
                if self._rebalance(ch, queues):
                    next_rebalance = now + REBALANCE_SECONDS
                else:
                    next_rebalance = now + PRESENCE_SECONDS
            self._check_moved(now)

    def _consume(self, ch: Any, partition: int, queue: str) -> None:
        tag = ch.basic_consume(queue, self._on_frames)
        with self._lock:
            self._tags[tag] = partition

    def _rebalance(self, ch: Any, queues: list[str]) -> bool:
        """Hands back the partitions beyond this instance's fair share, as many as another
        instance lacks of its own (an instance that just died still claims its share for a
        few seconds: nothing goes back to it); True if it did."""
        live = self.instances()
        held = self.held_partitions()
        fair = math.ceil(len(queues) / len(live))
        n = min(len(held) - fair, fair - self._fewest_held_by_others())
        if len(live) < 2 or n <= 0:
            return False
        give = held[len(held) - n:]
        with self._lock:
            by_partition = {p: tag for tag, p in self._tags.items()}
        for p in give:
            ch.basic_cancel(by_partition[p])  # delivered messages stay ours to acknowledge
            with self._lock:
                self._tags.pop(by_partition[p], None)
                self._last_delivery.pop(p, None)
                self.stats.handed_back += 1
                moved = {s for s, q in self._seen.items() if q == p}
            self._forget(moved)
            self._consume(ch, p, queues[p])  # registered again, behind the other instances
        logger.info("AMQP: %s holds %d partitions, fair share %d of %d among %d instances: handed back %s",
                    self.instance, len(held), fair, len(queues), len(live), give)
        return True

    def _check_moved(self, now: float) -> None:
        with self._lock:
            due = [s for s, t in self._arrived.items() if now - t >= self.takeover_seconds]
            for s in due:
                del self._arrived[s]
        for sensor_id in due:
            if self.on_moved is not None:
                try:
                    self.on_moved(sensor_id)
                except Exception:  # noqa: BLE001 - a store hiccup must not stop the ingest
                    logger.exception("AMQP: on_moved(%r) failed", sensor_id)

    # -- callbacks (the connection thread)

    def _on_presence(self, ch: Any, method: Any, props: Any, body: bytes) -> None:
        try:
            hello = json.loads(body)
            name, held = str(hello["instance"]), int(hello["held"])
        except (ValueError, KeyError, TypeError):
            return
        if name != self.instance:
            with self._lock:
                if name not in self._peers:
                    logger.info("AMQP: instance %s is up", name)
                self._peers[name] = (time.monotonic(), held)

    def _on_frames(self, ch: Any, method: Any, props: Any, body: bytes) -> None:
        try:
            self._handle(method.consumer_tag, method.routing_key, body)
        except Exception:  # noqa: BLE001 - a publisher must never stop the ingest
            logger.exception("AMQP: error handling a message on %r", method.routing_key)
        ch.basic_ack(method.delivery_tag)  # handed to the hub (or refused): the broker may forget it

    def _handle(self, tag: str, routing_key: str, body: bytes) -> None:
        now = time.monotonic()
        with self._lock:
            self.stats.messages += 1
            partition = self._tags.get(tag, -1)
            self._last_delivery[partition] = now
        try:
            sensor_id = sensor_id_from_routing_key(routing_key, self.topic)
        except FrameFormatError as e:
            self._bad(None, str(e))
            return
        with self._lock:
            new = sensor_id not in self._seen
            self._seen[sensor_id] = partition
            if new:
                self._arrived.setdefault(sensor_id, now)
        if new:
            self.hub.connected(sensor_id, TRANSPORT)
        self._submit(sensor_id, body)

    def _forget(self, sensors: set[str]) -> None:
        with self._lock:
            for s in sensors:
                self._seen.pop(s, None)
        for sensor_id in sorted(sensors):
            try:
                self.hub.disconnected(sensor_id, TRANSPORT)
            except Exception:  # noqa: BLE001 - presence bookkeeping must not stop the ingest
                logger.exception("AMQP: hub.disconnected(%r) failed", sensor_id)
