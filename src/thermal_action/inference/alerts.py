"""Fall alerts: a person whose fall-class score stays high for long enough, as immutable events.

One state machine serves both uses, so offline reports and live alerts always agree:

- online, :class:`FallAlertMonitor` takes predictions one at a time (as
  :class:`~thermal_action.inference.streaming.StreamingPredictor` makes them) and emits an
  :class:`AlertEvent` when an alert is raised and when it ends;
- offline, :func:`find_fall_alerts` feeds a recording's predictions through the same
  monitor in time order and returns each alert's final ("ended") event.

The rule is an :class:`~thermal_action.alert_rule.AlertRule` (threshold, min_seconds,
max_gap_seconds, cooldown_seconds, bed_threshold; its docstring draws it). How a run is
measured::

    score >= threshold:   o   o   o   .   o   o   o   o   x
    time (s):             0   1   2   3   4   5   6   7   8
                          |--------- one run -------|       <- '.' = no prediction
                                                             (person not detected);
                                                             a gap up to max_gap_seconds
                                                             does not break a run
                                              the alert is raised at 5 s when min_seconds=5;
                                              the 'x' (score < threshold) breaks the run at 7 s:
                                              a new run of the person before 6 + cooldown_seconds
                                              continues the alert, else it ends (end frame: 6 s)

The duration of a run is the time from its first to its latest above-threshold
prediction. Time is the frame index divided by ``fps`` by default: sensor
timestamps are bursty receive times (steps of 37-510 ms for a steady ~6 Hz
sensor), so the frame index is the better clock. ``use_timestamps=True`` uses the
timestamps (ms) instead, e.g. for a stream with dropped frames.

Events are frozen: an event once emitted never changes, so a "raised" and an "ended" of the
same alert that leave in one batch (one service worker round, a burst, a backlog) arrive as
two events, in order.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from thermal_action.alert_rule import AlertRule
from thermal_action.structures import PREDICTION

#: "raised": the alert starts; "ended": its final state; "active": a snapshot of an alert
#: still going on (:attr:`FallAlertMonitor.active_alerts`, never emitted).
ALERT_EVENT_KINDS = ("raised", "active", "ended")


class ScoredBox(Protocol):
    """What the monitor needs from a prediction (``Prediction`` has all of it). An optional
    ``bed_share`` attribute (share of the box on a bed/couch zone, None unknown) selects the
    rule's ``bed_threshold``."""

    sensor_id: str
    frame_idx: int
    timestamp: int
    track_id: int
    scores: np.ndarray


@dataclass(frozen=True)
class AlertEvent:
    """A fall alert as it stood when something happened to it (immutable).

    Attributes:
        kind: one of :data:`ALERT_EVENT_KINDS`.
        sensor_id, track_id: the sensor (recording) and the person.
        start_frame, end_frame: frame indices of the first and latest above-threshold
            prediction of the alert (inclusive); ``(sensor_id, track_id, start_frame)`` is
            the alert's :attr:`key`.
        start_timestamp, end_timestamp: their timestamps (ms since epoch).
        fired_frame, fired_timestamp: where the alert was raised (its run reached min_seconds).
        peak_score: the highest fall score so far; ``peak_frame`` where it was.
        duration_s: ``end - start`` in the monitor's clock (frames / fps or timestamps).
        box_xyxy: the person's box (pixels) at the latest above-threshold prediction; None
            when the predictions carry no box. The service folds a raise of a new track id
            near an open alert's box into it (:mod:`~thermal_action.serve.store`).
    """

    kind: str
    sensor_id: str
    track_id: int
    start_frame: int
    end_frame: int
    start_timestamp: int
    end_timestamp: int
    fired_frame: int
    fired_timestamp: int
    peak_score: float
    peak_frame: int
    duration_s: float
    box_xyxy: tuple[float, float, float, float] | None = None

    def __post_init__(self) -> None:
        if self.kind not in ALERT_EVENT_KINDS:
            raise ValueError(f"alert event kind must be one of {ALERT_EVENT_KINDS}, got {self.kind!r}")

    @property
    def key(self) -> tuple[str, int, int]:
        """``(sensor_id, track_id, start_frame)``: the same for every event of one alert."""
        return self.sensor_id, self.track_id, self.start_frame

    @property
    def active(self) -> bool:
        """Whether the alert was still going on (every kind but "ended")."""
        return self.kind != "ended"

    def to_dict(self) -> dict:
        """Plain data (``alerts.json``): the fields and ``active``."""
        return {**asdict(self), "active": self.active}


@dataclass
class _Run:
    """One person's high scores; ``fired`` once an alert was raised for them."""

    start_frame: int
    start_ts: int
    start_t: float
    last_frame: int
    last_ts: int
    last_t: float
    peak_score: float
    peak_frame: int
    fired: tuple[int, int] | None = None  # (frame, timestamp) the alert was raised at
    box: tuple[float, float, float, float] | None = None  # xyxy pixels at the latest high score
    broken: bool = False  # a low score or a gap broke it; an alert waits out the cooldown


@dataclass
class FallAlertMonitor:
    """Online fall-alert state machine, one run per ``(sensor_id, track_id)``.

    Args:
        fall_index: index of the rule's fall class in the score vectors.
        rule: the alert rule (:class:`~thermal_action.alert_rule.AlertRule`).
        fps: frames per second for the frame-index clock (the sensors run at ~6 Hz).
        use_timestamps: measure time with the timestamps (ms) instead of frame / fps.
    """

    fall_index: int
    rule: AlertRule = field(default_factory=AlertRule)
    fps: float = PREDICTION.fps
    use_timestamps: bool = False
    _runs: dict[tuple[str, int], _Run] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.fps <= 0:
            raise ValueError(f"fps must be positive, got {self.fps}")

    def _time(self, frame_idx: int, timestamp: int) -> float:
        return timestamp / 1000.0 if self.use_timestamps else frame_idx / self.fps

    def _event(self, kind: str, key: tuple[str, int], run: _Run) -> AlertEvent:
        assert run.fired is not None
        return AlertEvent(
            kind=kind, sensor_id=key[0], track_id=key[1], start_frame=run.start_frame, end_frame=run.last_frame,
            start_timestamp=run.start_ts, end_timestamp=run.last_ts, fired_frame=run.fired[0],
            fired_timestamp=run.fired[1], peak_score=run.peak_score, peak_frame=run.peak_frame,
            duration_s=run.last_t - run.start_t, box_xyxy=run.box,
        )

    def _settle(self, key: tuple[str, int], run: _Run, t: float, high: bool) -> list[AlertEvent]:
        """Breaks the run at time ``t`` on a low score (``high`` False) or a gap, and ends it
        once broken and (without an alert, or with the cooldown over); returns the "ended"."""
        gap = t - run.last_t
        if not run.broken and (not high or gap > self.rule.max_gap_seconds):
            run.broken = True
        if run.broken and (run.fired is None or gap >= self.rule.cooldown_seconds):
            del self._runs[key]
            return [self._event("ended", key, run)] if run.fired is not None else []
        return []

    def update(self, pred: ScoredBox) -> list[AlertEvent]:
        """Takes one prediction (in time order per track).

        Returns:
            The events it caused, in order: an "ended" of the person's previous alert
            and/or a "raised" of a new one.
        """
        key = (str(pred.sensor_id), int(pred.track_id))
        frame, ts = int(pred.frame_idx), int(pred.timestamp)
        t = self._time(frame, ts)
        score = float(pred.scores[self.fall_index])
        high = score >= self.rule.threshold_for(getattr(pred, "bed_share", None))
        events: list[AlertEvent] = []
        run = self._runs.get(key)
        if run is not None:
            events += self._settle(key, run, t, high)
            run = self._runs.get(key)
        if not high:
            return events
        if run is None:
            run = _Run(frame, ts, t, frame, ts, t, score, frame)
            self._runs[key] = run
        else:  # the run goes on, or a new run inside the cooldown continues its alert
            run.broken = False
            run.last_frame, run.last_ts, run.last_t = frame, ts, t
            if score > run.peak_score:
                run.peak_score, run.peak_frame = score, frame
        box = getattr(pred, "box_xyxy", None)
        run.box = None if box is None else tuple(float(v) for v in box)  # type: ignore[assignment]
        if run.fired is None and run.last_t - run.start_t >= self.rule.min_seconds - 1e-9:
            run.fired = (frame, ts)
            events.append(self._event("raised", key, run))
        return events

    def advance(self, sensor_id: str, frame_idx: int, timestamp: int) -> list[AlertEvent]:
        """Ends the alerts of ``sensor_id`` whose person has had no prediction for longer than
        the gap and the cooldown ("ended" events).

        Streaming calls this as frames arrive, so a person who vanishes does not keep an
        alert open forever.
        """
        t = self._time(frame_idx, timestamp)
        events: list[AlertEvent] = []
        for key in [k for k in self._runs if k[0] == sensor_id]:
            events += self._settle(key, self._runs[key], t, high=True)
        return events

    def finish(self, sensor_id: str | None = None) -> list[AlertEvent]:
        """Ends all runs (of one sensor, or all); returns the "ended" events of their alerts."""
        keys = [k for k in self._runs if sensor_id is None or k[0] == sensor_id]
        runs = [(k, self._runs.pop(k)) for k in keys]
        return [self._event("ended", k, r) for k, r in runs if r.fired is not None]

    @property
    def active_alerts(self) -> list[AlertEvent]:
        """Snapshots (kind "active") of the alerts still going on, cooling down ones included."""
        return [self._event("active", k, r) for k, r in self._runs.items() if r.fired is not None]


def find_fall_alerts(
    predictions: Iterable[ScoredBox],
    fall_index: int,
    rule: AlertRule | None = None,
    fps: float = PREDICTION.fps,
    use_timestamps: bool = False,
) -> list[AlertEvent]:
    """Offline fall alerts over a set of predictions (any order, any recordings).

    Args:
        predictions: scored people.
        fall_index: index of the rule's fall class in the score vectors.
        rule: the alert rule (None: the defaults).
        fps: frame rate of the clock (:class:`FallAlertMonitor`).
        use_timestamps: time from timestamps instead of frame indices (:class:`FallAlertMonitor`).

    Returns:
        The final ("ended") event of every alert, sorted by sensor, start frame and track.
    """
    monitor = FallAlertMonitor(fall_index, rule if rule is not None else AlertRule(), fps, use_timestamps)
    ordered = sorted(predictions, key=lambda p: (str(p.sensor_id), int(p.track_id), int(p.frame_idx)))
    alerts: list[AlertEvent] = []
    for pred in ordered:
        alerts.extend(e for e in monitor.update(pred) if not e.active)
    alerts.extend(monitor.finish())
    return sorted(alerts, key=lambda a: (a.sensor_id, a.start_frame, a.track_id))


def fall_class_index(class_names: Sequence[str], fall_class: str) -> int:
    """Index of ``fall_class`` in ``class_names`` (a clear error when it is missing)."""
    names = list(class_names)
    if fall_class not in names:
        raise ValueError(f"fall class {fall_class!r} is not one of the model's classes {names}")
    return names.index(fall_class)


ALERT_CSV_FIELDS = (
    "sensor_id", "track_id", "start_frame", "end_frame", "start_timestamp", "end_timestamp",
    "duration_s", "peak_score", "peak_frame", "fired_frame", "fired_timestamp",
)


def write_alerts(alerts: Sequence[AlertEvent], json_path: str | Path, csv_path: str | Path | None = None) -> None:
    """Writes alerts as a JSON list (and optionally CSV)."""
    Path(json_path).write_text(json.dumps([a.to_dict() for a in alerts], indent=1))
    if csv_path is not None:
        with open(csv_path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=ALERT_CSV_FIELDS, extrasaction="ignore")
            w.writeheader()
            for a in alerts:
                w.writerow(a.to_dict())
