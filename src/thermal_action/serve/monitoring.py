"""The service's own numbers: counters, recent samples (``/api/stats``) and the Prometheus
exposition (``/metrics``, through ``prometheus-client``).

Each :class:`Monitor` has its own :class:`~prometheus_client.CollectorRegistry` (two hubs in one
process, as in the tests, never share a metric). What the service measures as it goes is a
histogram with ``_bucket``, ``_sum`` and ``_count`` (rates and quantiles over any window in
Prometheus): the delay from capture to processing, the latency from arrival to a stored
prediction, and the seconds per forward pass. Everything else is read from the hub's state at
each scrape (:class:`HubCollector`): counters per sensor appear and go with their sensors.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from thermal_action.serve.sensors import DELAY_WINDOW_S, SensorState, percentile

#: Histogram buckets, seconds: capture to processed (``delay_warning_seconds`` is 15 by default).
DELAY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0)
#: Arrival of the frame completing a window to its prediction stored.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: One batched forward pass.
MODEL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass(frozen=True)
class SensorNumbers:
    """One sensor's counters at a scrape."""

    sensor_id: str
    frames: int
    dropped: int
    bad: int  # bad shape + bad message + invalid frames
    repaired_boxes: int
    refused_boxes: int
    predictions: int
    moves: int
    delay_p95_s: float | None

    @classmethod
    def of(cls, st: SensorState, now: float) -> "SensorNumbers":
        return cls(st.sensor_id, st.frames, st.dropped, st.bad_shape + st.bad_message + st.invalid_frames,
                   st.repaired_boxes, st.refused_boxes, st.predictions, st.moves, st.delay(now)[0])


class Monitor:
    """Counts and samples what the service does; thread-safe.

    Attributes:
        registry: the Prometheus registry of this service (its histograms, and the hub's
            collector once :meth:`collect_from` registered it).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.started = time.time()
        self.frames_total = 0
        self.dropped_total = 0
        self.alerts_raised = 0
        self.alert_repeats = 0
        self.worker_restarts = 0
        self.clips_saved = 0
        self._latency: deque = deque(maxlen=5000)  # s, frame arrival -> prediction stored
        self._model_ms: deque = deque(maxlen=2000)  # per forward pass
        self._frame_times: deque = deque(maxlen=20_000)  # (arrival, n)
        self._delays: deque = deque(maxlen=50_000)  # (time.time(), s) of every sensor: delay_p95_s
        self.registry = CollectorRegistry(auto_describe=True)
        self.delay_hist = Histogram("thermal_delay_seconds", "A frame's processing time minus its capture time, "
                                    "all sensors.", buckets=DELAY_BUCKETS, registry=self.registry)
        self.latency_hist = Histogram("thermal_latency_seconds", "Arrival of the frame that completed a window to "
                                      "its prediction stored (beyond the window's lag).", buckets=LATENCY_BUCKETS,
                                      registry=self.registry)
        self.model_hist = Histogram("thermal_model_seconds", "Seconds per batched forward pass.",
                                    buckets=MODEL_BUCKETS, registry=self.registry)

    # -- what happens

    def frames_accepted(self, now: float, n: int) -> None:
        with self._lock:
            self.frames_total += n
            self._frame_times.append((now, n))

    def frames_dropped(self, n: int) -> None:
        with self._lock:
            self.dropped_total += n

    def delay(self, now: float, seconds: float) -> None:
        """One sample of how far behind: processed minus captured."""
        with self._lock:
            self._delays.append((now, seconds))
        self.delay_hist.observe(seconds)

    def latency(self, seconds: float) -> None:
        with self._lock:
            self._latency.append(seconds)
        self.latency_hist.observe(seconds)

    def model(self, seconds: float, passes: int) -> None:
        """A round's ``seconds`` in the model over ``passes`` forward passes."""
        if passes <= 0:
            return
        per = seconds / passes
        with self._lock:
            self._model_ms.extend([1000 * per] * passes)
        for _ in range(passes):
            self.model_hist.observe(per)

    def alert(self, new: bool, repeat: bool) -> None:
        with self._lock:
            self.alerts_raised += new
            self.alert_repeats += repeat

    def worker_restarted(self, lost: int) -> None:
        with self._lock:
            self.worker_restarts += 1
            self.dropped_total += lost

    def clip_saved(self) -> None:
        with self._lock:
            self.clips_saved += 1

    # -- what it comes to

    def frames_per_second(self, window: float = 10.0) -> float:
        now = time.time()
        with self._lock:
            n = sum(k for t, k in self._frame_times if now - t <= window)
        return n / window

    def samples(self, now: float) -> dict[str, Any]:
        """Percentiles of the recent samples, and the totals."""
        with self._lock:
            lat = list(self._latency)
            model = list(self._model_ms)
            delays = [d for t, d in self._delays if now - t <= DELAY_WINDOW_S]
            totals = {"frames_total": self.frames_total, "frames_dropped_total": self.dropped_total,
                      "alerts_raised_total": self.alerts_raised, "alert_repeats_total": self.alert_repeats,
                      "clips_saved_total": self.clips_saved, "worker_restarts_total": self.worker_restarts}
        return {
            **totals, "frames_per_second": self.frames_per_second(),
            "model_ms_p50": percentile(model, 50), "model_ms_p95": percentile(model, 95),
            "latency_s_p50": percentile(lat, 50), "latency_s_p95": percentile(lat, 95),
            "latency_s_p99": percentile(lat, 99), "latency_samples": len(lat),
            "delay_p95_s": percentile(delays, 95), "delay_samples": len(delays),
        }

    def collect_from(self, stats: Callable[[], dict[str, Any]], sensors: Callable[[], list[SensorNumbers]]) -> None:
        """Registers the hub's numbers, read at each scrape."""
        self.registry.register(HubCollector(stats, sensors))

    def metrics_text(self) -> str:
        """The Prometheus text exposition of the registry."""
        return generate_latest(self.registry).decode()


def _gauge(name: str, doc: str, value: float | None) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=float("nan") if value is None else float(value))


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=float(value))


def _labelled(family: type, name: str, doc: str, label: str, values: list[tuple[str, float | None]]) -> Metric:
    m = family(name, doc, labels=[label])
    for key, v in values:
        if v is not None:
            m.add_metric([key], float(v))
    return m


class HubCollector:
    """The hub's state as Prometheus metrics, read at each scrape (a custom collector)."""

    def __init__(self, stats: Callable[[], dict[str, Any]], sensors: Callable[[], list[SensorNumbers]]):
        self.stats = stats
        self.sensors = sensors

    def describe(self) -> list[Metric]:
        return []  # the names depend on the state: nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        s = self.stats()
        per = self.sensors()
        g, c = GaugeMetricFamily, CounterMetricFamily
        yield _gauge("thermal_sensors_total", "Sensors known to the service.", s["sensors_total"])
        yield _gauge("thermal_sensors_live", "Sensors that sent a frame recently.", s["sensors_live"])
        yield _gauge("thermal_sensors_connected", "Sensors with an open connection.", s["sensors_connected"])
        yield _labelled(c, "thermal_frames", "Frames accepted, per sensor.", "sensor",
                        [(n.sensor_id, n.frames) for n in per])
        yield _counter("thermal_frames_dropped", "Frames dropped (queue full or lost in a worker crash).",
                       s["frames_dropped_total"])
        yield _labelled(c, "thermal_sensor_frames_dropped", "Frames dropped because the queue was full, per sensor.",
                        "sensor", [(n.sensor_id, n.dropped) for n in per])
        yield _labelled(g, "thermal_sensor_delay_seconds", "p95 over the last minute of a frame's processing "
                        "time minus its capture time, per sensor.", "sensor", [(n.sensor_id, n.delay_p95_s) for n in per])
        yield _gauge("thermal_delay_p95_seconds", "p95 over the last minute of a frame's processing time minus its "
                     "capture time, all sensors (what thermal_behind compares).", s["delay_p95_s"])
        yield _gauge("thermal_behind", "1 when the delay's p95 is above delay_warning_seconds.", int(s["behind"]))
        yield _labelled(c, "thermal_bad_frames", "Frames or messages refused, per sensor.", "sensor",
                        [(n.sensor_id, n.bad) for n in per])
        yield _labelled(c, "thermal_boxes_repaired", "Gateway boxes clipped to the frame, per sensor.", "sensor",
                        [(n.sensor_id, n.repaired_boxes) for n in per])
        yield _labelled(c, "thermal_boxes_refused", "Gateway boxes wholly outside the frame, dropped, per sensor.",
                        "sensor", [(n.sensor_id, n.refused_boxes) for n in per])
        yield _labelled(c, "thermal_predictions", "Person predictions, per sensor.", "sensor",
                        [(n.sensor_id, n.predictions) for n in per])
        yield _labelled(c, "thermal_sensor_moves", "Moves of a sensor to a less loaded worker, per sensor.", "sensor",
                        [(n.sensor_id, n.moves) for n in per])
        yield _gauge("thermal_frames_per_second", "Frames accepted per second, last 10 s.", s["frames_per_second"])
        yield _labelled(g, "thermal_queue_depth", "Frames waiting per worker.", "worker",
                        [(str(i), q) for i, q in enumerate(s["queue_depth"])])
        yield _counter("thermal_alerts", "Fall alerts raised.", s["alerts_raised_total"])
        yield _gauge("thermal_alerts_open", "Alerts nobody acknowledged yet.", s["alerts_open"])
        yield _counter("thermal_alert_repeats", "Raises folded into an unacknowledged alert of the same person.",
                       s["alert_repeats_total"])
        yield _labelled(c, "thermal_notify_sent", "Alert notifications delivered, per destination.", "sink",
                        [(k, v["sent"]) for k, v in s["notify"].items()])
        yield _labelled(c, "thermal_notify_dead_letters", "Alert notifications given up (retries spent, queue full, "
                        "service stopped), per destination.", "sink",
                        [(k, v["dead_letters"]) for k, v in s["notify"].items()])
        yield _counter("thermal_clips_saved", "Alert clips saved.", s["clips_saved_total"])
        yield _counter("thermal_sensors_refused", "New sensor ids refused: max_sensors reached.",
                       s["refused_sensors_total"])
        yield _counter("thermal_sensors_forgotten", "Sensors forgotten to make room for new ones.",
                       s["forgotten_sensors_total"])
        yield _counter("thermal_worker_restarts", "Worker processes restarted.", s["worker_restarts_total"])
        yield _gauge("thermal_workers_alive", "Worker processes running.", s["workers_alive"])
