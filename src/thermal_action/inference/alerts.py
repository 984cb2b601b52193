"""Fall alerts: a person whose fall-class score stays high for long enough.

One state machine serves both uses, so offline reports and live alerts always agree:

- online, :class:`FallAlertMonitor` takes predictions one at a time (as
  :class:`~thermal_action.inference.streaming.StreamingPredictor` makes them) and
  says when an alert starts and when it ends;
- offline, :func:`find_fall_alerts` feeds a recording's predictions through the same
  monitor in time order and returns the finished alerts.

How a run is measured::

    score >= threshold:   o   o   o   .   o   o   o   o   x
    time (s):             0   1   2   3   4   5   6   7   8
                          |--------- one run -------|       <- '.' = no prediction
                                                             (person not detected);
                                                             a gap up to max_gap_seconds
                                                             does not break a run
                                              alert fires at 5 s when min_seconds=5;
                                              the 'x' (score < threshold) ends it at 7 s

The duration of a run is the time from its first to its latest above-threshold
prediction. Time is the frame index divided by ``fps`` by default: sensor
timestamps are bursty receive times (steps of 37-510 ms for a steady ~6 Hz
sensor), so the frame index is the better clock. ``use_timestamps=True`` uses the
timestamps (ms) instead, e.g. for a stream with dropped frames.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from thermal_action.structures import FALLBACK_FALL_THRESHOLD, PREDICTION


class ScoredBox(Protocol):
    """What the monitor needs from a prediction (``Prediction`` has all of it)."""

    sensor_id: str
    frame_idx: int
    timestamp: int
    track_id: int
    scores: np.ndarray


@dataclass
class FallAlert:
    """A person whose fall score stayed at or above the threshold for ``min_seconds``.

    Attributes:
        sensor_id: the recording / sensor.
        track_id: the person.
        start_frame, end_frame: frame indices of the first and latest
            above-threshold prediction of the run (inclusive).
        start_timestamp, end_timestamp: their timestamps (ms since epoch).
        peak_score: the highest fall score in the run; ``peak_frame`` where it was.
        duration_s: ``end - start`` in the monitor's clock (frames / fps or timestamps).
        fired_frame: the frame at which the alert fired (the run reached min_seconds).
        active: True while the run goes on (online only); False once it has ended.
    """

    sensor_id: str
    track_id: int
    start_frame: int
    end_frame: int
    start_timestamp: int
    end_timestamp: int
    peak_score: float
    peak_frame: int
    duration_s: float
    fired_frame: int
    active: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Run:
    start_frame: int
    start_ts: int
    start_t: float
    last_frame: int
    last_ts: int
    last_t: float
    peak_score: float
    peak_frame: int
    alert: FallAlert | None = None


@dataclass
class FallAlertMonitor:
    """Online fall-alert state machine, one run per ``(sensor_id, track_id)``.

    Args:
        fall_index: index of the fall class in the score vectors.
        threshold: a prediction counts as "fallen" when its fall score is >= this.
        min_seconds: how long the score must stay high before the alert fires
            (0 fires on the first high score).
        fps: frames per second for the frame-index clock (the sensors run at ~6 Hz).
        use_timestamps: measure time with the timestamps (ms) instead of frame / fps.
        max_gap_seconds: a run survives this long without any prediction for the
            track (the detector may lose a person lying still on a warm floor); a
            score below the threshold always ends it.
    """

    fall_index: int
    threshold: float = FALLBACK_FALL_THRESHOLD
    min_seconds: float = PREDICTION.fall_alert_seconds
    fps: float = PREDICTION.fps
    use_timestamps: bool = False
    max_gap_seconds: float = 2.0
    _runs: dict[tuple[str, int], _Run] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.fps <= 0:
            raise ValueError(f"fps must be positive, got {self.fps}")
        if self.min_seconds < 0 or self.max_gap_seconds < 0:
            raise ValueError("min_seconds and max_gap_seconds must be >= 0")

    def _time(self, frame_idx: int, timestamp: int) -> float:
        return timestamp / 1000.0 if self.use_timestamps else frame_idx / self.fps

    def _close(self, key: tuple[str, int]) -> FallAlert | None:
        run = self._runs.pop(key)
        if run.alert is None:
            return None
        run.alert.active = False
        return run.alert

    def update(self, pred: ScoredBox) -> list[FallAlert]:
        """Takes one prediction (in time order per track).

        Returns:
            Alerts whose state changed: a newly fired one (``active=True``) and/or
            one that just ended (``active=False``, final frame range).
        """
        key = (str(pred.sensor_id), int(pred.track_id))
        frame, ts = int(pred.frame_idx), int(pred.timestamp)
        t = self._time(frame, ts)
        score = float(pred.scores[self.fall_index])
        changed: list[FallAlert] = []
        run = self._runs.get(key)
        if run is not None and (score < self.threshold or t - run.last_t > self.max_gap_seconds):
            ended = self._close(key)
            if ended is not None:
                changed.append(ended)
            run = None
        if score < self.threshold:
            return changed
        if run is None:
            run = _Run(frame, ts, t, frame, ts, t, score, frame)
            self._runs[key] = run
        else:
            run.last_frame, run.last_ts, run.last_t = frame, ts, t
            if score > run.peak_score:
                run.peak_score, run.peak_frame = score, frame
        duration = run.last_t - run.start_t
        if run.alert is None and duration >= self.min_seconds - 1e-9:
            run.alert = FallAlert(
                sensor_id=key[0], track_id=key[1], start_frame=run.start_frame, end_frame=frame,
                start_timestamp=run.start_ts, end_timestamp=ts, peak_score=run.peak_score,
                peak_frame=run.peak_frame, duration_s=duration, fired_frame=frame,
            )
            changed.append(run.alert)
        elif run.alert is not None:
            a = run.alert
            a.end_frame, a.end_timestamp, a.duration_s = frame, ts, duration
            a.peak_score, a.peak_frame = run.peak_score, run.peak_frame
        return changed

    def advance(self, sensor_id: str, frame_idx: int, timestamp: int) -> list[FallAlert]:
        """Ends the runs of ``sensor_id`` that have had no prediction for longer than the gap.

        Streaming calls this as frames arrive, so a person who vanishes does not
        keep an alert open forever.
        """
        t = self._time(frame_idx, timestamp)
        ended = []
        for key in [k for k, r in self._runs.items() if k[0] == sensor_id and t - r.last_t > self.max_gap_seconds]:
            alert = self._close(key)
            if alert is not None:
                ended.append(alert)
        return ended

    def finish(self, sensor_id: str | None = None) -> list[FallAlert]:
        """Ends all runs (of one sensor, or all); returns the alerts among them."""
        keys = [k for k in self._runs if sensor_id is None or k[0] == sensor_id]
        return [a for a in (self._close(k) for k in keys) if a is not None]

    @property
    def active_alerts(self) -> list[FallAlert]:
        return [r.alert for r in self._runs.values() if r.alert is not None]


def find_fall_alerts(
    predictions: Iterable[ScoredBox],
    fall_index: int,
    threshold: float = FALLBACK_FALL_THRESHOLD,
    min_seconds: float = PREDICTION.fall_alert_seconds,
    fps: float = PREDICTION.fps,
    use_timestamps: bool = False,
    max_gap_seconds: float = 2.0,
) -> list[FallAlert]:
    """Offline fall alerts over a set of predictions (any order, any recordings).

    Returns:
        Finished alerts, sorted by sensor, start frame and track.
    """
    monitor = FallAlertMonitor(fall_index, threshold, min_seconds, fps, use_timestamps, max_gap_seconds)
    ordered = sorted(predictions, key=lambda p: (str(p.sensor_id), int(p.track_id), int(p.frame_idx)))
    alerts: list[FallAlert] = []
    for pred in ordered:
        alerts.extend(a for a in monitor.update(pred) if not a.active)
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
    "duration_s", "peak_score", "peak_frame", "fired_frame",
)


def write_alerts(alerts: Sequence[FallAlert], json_path: str | Path, csv_path: str | Path | None = None) -> None:
    """Writes alerts as a JSON list (and optionally CSV)."""
    Path(json_path).write_text(json.dumps([a.to_dict() for a in alerts], indent=1))
    if csv_path is not None:
        with open(csv_path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=ALERT_CSV_FIELDS, extrasaction="ignore")
            w.writeheader()
            for a in alerts:
                w.writerow(a.to_dict())
