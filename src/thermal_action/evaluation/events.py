"""Fall events: what a care home buys, measured the way it experiences it.

A *fall event* is a run of keyframes of one person labelled as a fall: it starts at the
first fall keyframe and ends at the last one before a keyframe of that person with another
label (or the end of their keyframes). An alert (from the alert rule, on predictions made
from bare frames by the built-in detector, tracker and model) *finds* an event when it is on
the same sensor and its span (raised to ended) overlaps the event's span widened by
``slack_s`` on both sides: the annotated span is only as exact as the keyframes around it,
and a centred window scores a frame with up to half a window of lag.

Reported, per recording and pooled:

- ``events``, ``found``, ``missed`` and ``recall`` (found / events);
- ``delay_s``: for each found event, from its first fall keyframe to the first alert that
  found it being raised (negative: the alert came before the first fall keyframe, as when a
  recording starts with the person already down, or a second fall comes inside the alert
  rule's cooldown, where the first fall's alert is still open: one alert finds every event
  its span overlaps);
- ``false_alerts``: alerts that find no event; ``false_per_sensor_hour`` and
  ``false_per_sensor_day`` over the recordings' hours;
- ``alerts_per_event``: alerts that found an event, over the events found (1 is the goal:
  one alert per fall; below 1 where one alert covers two falls of a person).

Everything here takes plain values, so the metric does not depend on how the predictions
were made.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

#: Slack on both sides of an event's keyframe span when matching alerts (seconds).
DEFAULT_SLACK_S = 6.0


@dataclass(frozen=True)
class LabelledBox:
    """One annotated person box at a keyframe, as the event builder needs it."""

    sensor_id: str
    track_id: int
    timestamp_ms: int
    is_fall: bool


@dataclass(frozen=True)
class FallEvent:
    """A run of fall keyframes of one person: ``start_ms``/``end_ms`` are its first and last."""

    sensor_id: str
    track_id: int
    start_ms: int
    end_ms: int
    keyframes: int


@dataclass(frozen=True)
class AlertSpan:
    """An alert as the metric sees it: raised at ``raised_ms``, covering ``start_ms``-``end_ms``."""

    sensor_id: str
    raised_ms: int
    start_ms: int
    end_ms: int
    track_id: int = -1


def fall_events(boxes: Iterable[LabelledBox]) -> list[FallEvent]:
    """The fall events of labelled keyframe boxes (any order), sorted by sensor and start."""
    by_person: dict[tuple[str, int], list[LabelledBox]] = {}
    for b in boxes:
        by_person.setdefault((str(b.sensor_id), int(b.track_id)), []).append(b)
    events = []
    for (sensor, track), items in by_person.items():
        run: list[LabelledBox] = []
        for b in sorted(items, key=lambda x: x.timestamp_ms):
            if b.is_fall:
                run.append(b)
                continue
            if run:
                events.append(FallEvent(sensor, track, run[0].timestamp_ms, run[-1].timestamp_ms, len(run)))
                run = []
        if run:
            events.append(FallEvent(sensor, track, run[0].timestamp_ms, run[-1].timestamp_ms, len(run)))
    return sorted(events, key=lambda e: (e.sensor_id, e.start_ms, e.track_id))


@dataclass
class EventReport:
    """Fall events found and false alerts, for one recording or pooled."""

    events: int
    found: int
    false_alerts: int
    alerts: int
    sensor_hours: float
    delays_s: list[float] = field(default_factory=list)
    alerts_on_events: int = 0

    @property
    def missed(self) -> int:
        return self.events - self.found

    @property
    def recall(self) -> float | None:
        return self.found / self.events if self.events else None

    @property
    def false_per_sensor_hour(self) -> float | None:
        return self.false_alerts / self.sensor_hours if self.sensor_hours > 0 else None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EventReport:
        """The report :meth:`to_dict` wrote (delays as rounded there)."""
        return cls(events=d["events"], found=d["found"], false_alerts=d["false_alerts"], alerts=d["alerts"],
                   sensor_hours=d["sensor_hours"], delays_s=list(d["delay_s"]["values"]),
                   alerts_on_events=d["alerts_on_events"])

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("delays_s")
        per_hour = self.false_per_sensor_hour
        d.update(
            missed=self.missed, recall=self.recall, false_per_sensor_hour=per_hour,
            false_per_sensor_day=None if per_hour is None else per_hour * 24,
            delay_s={"median": statistics.median(self.delays_s) if self.delays_s else None,
                     "max": max(self.delays_s) if self.delays_s else None,
                     "values": [round(v, 2) for v in self.delays_s]},
            alerts_per_event=self.alerts_on_events / self.found if self.found else None,
        )
        return d


def pool_reports(reports: Iterable[EventReport]) -> EventReport:
    """One report over several recordings: counts and sensor-hours summed, delays joined."""
    reports = list(reports)
    return EventReport(
        events=sum(r.events for r in reports), found=sum(r.found for r in reports),
        false_alerts=sum(r.false_alerts for r in reports), alerts=sum(r.alerts for r in reports),
        sensor_hours=sum(r.sensor_hours for r in reports), delays_s=[d for r in reports for d in r.delays_s],
        alerts_on_events=sum(r.alerts_on_events for r in reports))


def _overlaps(alert: AlertSpan, event: FallEvent, slack_ms: float) -> float:
    """Overlap (ms, >= 0) of the alert's span with the widened event span; -1 when none."""
    lo, hi = max(alert.start_ms, event.start_ms - slack_ms), min(alert.end_ms, event.end_ms + slack_ms)
    return hi - lo if hi >= lo else -1.0


def match_events(events: Sequence[FallEvent], alerts: Sequence[AlertSpan], sensor_seconds: Mapping[str, float],
                 slack_s: float = DEFAULT_SLACK_S) -> dict[str, Any]:
    """Matches alerts to fall events per sensor.

    Args:
        events: from :func:`fall_events`.
        alerts: every alert raised on the same recordings.
        sensor_seconds: each recording's length (seconds); recordings without events or alerts
            count towards the sensor-hours too.
        slack_s: see the module docstring.

    Returns:
        ``{"per_recording": {sensor: EventReport.to_dict()}, "pooled": ..., "events": [...],
        "false_alerts": [...]}``; each event lists whether it was found and its delay.
    """
    slack_ms = slack_s * 1000.0
    sensors = sorted(set(sensor_seconds) | {e.sensor_id for e in events} | {a.sensor_id for a in alerts})
    reports: dict[str, EventReport] = {}
    event_rows, false_rows = [], []
    for sensor in sensors:
        evs = [e for e in events if e.sensor_id == sensor]
        als = sorted((a for a in alerts if a.sensor_id == sensor), key=lambda a: a.raised_ms)
        first_alert: dict[int, AlertSpan] = {}
        on_events = 0
        for a in als:
            # Every event the alert's span overlaps is found by it, not only the one it overlaps
            # most: a person who falls again inside the rule's cooldown gets one alert for both
            # falls (by design), and the first fall was alerted all the same.
            hits = [i for i, e in enumerate(evs) if _overlaps(a, e, slack_ms) >= 0]
            if not hits:
                false_rows.append(asdict(a))
                continue
            on_events += 1
            for i in hits:
                first_alert.setdefault(i, a)
        delays = []
        for i, e in enumerate(evs):
            a = first_alert.get(i)
            delay = None if a is None else (a.raised_ms - e.start_ms) / 1000.0
            if delay is not None:
                delays.append(delay)
            event_rows.append({**asdict(e), "found": a is not None, "delay_s": delay})
        reports[sensor] = EventReport(
            events=len(evs), found=len(first_alert), false_alerts=len(als) - on_events, alerts=len(als),
            sensor_hours=float(sensor_seconds.get(sensor, 0.0)) / 3600.0, delays_s=delays, alerts_on_events=on_events)
    return {"per_recording": {s: r.to_dict() for s, r in reports.items()},
            "pooled": pool_reports(reports.values()).to_dict(),
            "slack_s": slack_s, "events": event_rows, "false_alerts": false_rows}


def event_table(report: Mapping[str, Any]) -> str:
    """A Markdown table of :func:`match_events`' result, one row per recording and a pooled row."""
    def row(name: str, r: Mapping[str, Any]) -> str:
        med, mx = r["delay_s"]["median"], r["delay_s"]["max"]
        per_day = r["false_per_sensor_day"]
        return (f"| {name} | {r['found']}/{r['events']} | {'-' if med is None else f'{med:.1f}'} | "
                f"{'-' if mx is None else f'{mx:.1f}'} | {r['false_alerts']} | {r['sensor_hours']:.2f} | "
                f"{'-' if per_day is None else f'{per_day:.1f}'} |")
    lines = ["| recording | falls found | delay median (s) | delay max (s) | false alerts | sensor-hours | "
             "false / sensor-day |", "|---|---|---|---|---|---|---|"]
    lines += [row(s, r) for s, r in report["per_recording"].items()]
    lines.append(row("**pooled**", report["pooled"]))
    return "\n".join(lines)
