"""Fall events from keyframes, and alerts matched to them."""

from __future__ import annotations

import pytest

from thermal_action.evaluation.events import AlertSpan, FallEvent, LabelledBox, event_table, fall_events, match_events


def _boxes(sensor, track, labels, t0=0, step=2000):
    return [LabelledBox(sensor, track, t0 + i * step, lab == "F") for i, lab in enumerate(labels)]


def test_a_fall_event_is_a_run_of_fall_keyframes_of_one_person():
    boxes = _boxes("A", 1, "ssFFFsFF") + _boxes("A", 2, "FF", t0=1000) + _boxes("B", 1, "ssss")
    events = fall_events(boxes)
    assert events == [FallEvent("A", 2, 1000, 3000, 2), FallEvent("A", 1, 4000, 8000, 3),
                      FallEvent("A", 1, 12000, 14000, 2)]
    assert fall_events([]) == []


def test_alerts_find_events_and_the_rest_are_false_alerts():
    events = [FallEvent("A", 1, 10_000, 30_000, 5), FallEvent("A", 1, 100_000, 110_000, 3),
              FallEvent("B", 4, 50_000, 60_000, 2)]
    alerts = [AlertSpan("A", raised_ms=17_000, start_ms=12_000, end_ms=40_000),   # finds event 1, 7 s late
              AlertSpan("A", raised_ms=33_000, start_ms=33_000, end_ms=36_000),   # a repeat on event 1 (within slack)
              AlertSpan("A", raised_ms=70_000, start_ms=65_000, end_ms=80_000),   # false
              AlertSpan("B", raised_ms=48_000, start_ms=45_000, end_ms=49_000)]   # 1 s before B's span: within slack
    r = match_events(events, alerts, {"A": 3600.0, "B": 1800.0, "C": 1800.0}, slack_s=6.0)
    a, b, pooled = r["per_recording"]["A"], r["per_recording"]["B"], r["pooled"]
    assert (a["events"], a["found"], a["missed"], a["false_alerts"], a["alerts"]) == (2, 1, 1, 1, 3)
    assert a["delay_s"]["values"] == [7.0] and a["alerts_per_event"] == 2.0
    assert b["found"] == 1 and b["delay_s"]["values"] == [-2.0]
    assert r["per_recording"]["C"]["events"] == 0 and r["per_recording"]["C"]["false_alerts"] == 0
    assert pooled["events"] == 3 and pooled["found"] == 2 and pooled["false_alerts"] == 1
    assert pooled["sensor_hours"] == pytest.approx(2.0)
    assert pooled["false_per_sensor_hour"] == pytest.approx(0.5) and pooled["false_per_sensor_day"] == pytest.approx(12)
    assert pooled["recall"] == pytest.approx(2 / 3)
    assert [e["found"] for e in r["events"]] == [True, False, True]
    table = event_table(r)
    assert "| **pooled** | 2/3 |" in table and "| A | 1/2 | 7.0 | 7.0 | 1 | 1.00 | 24.0 |" in table


def test_an_alert_outside_the_slack_is_false_and_no_events_means_no_recall():
    r = match_events([FallEvent("A", 1, 10_000, 20_000, 2)], [AlertSpan("A", 27_000, 27_000, 30_000)], {"A": 60.0},
                     slack_s=6.0)
    assert r["pooled"]["found"] == 0 and r["pooled"]["false_alerts"] == 1
    empty = match_events([], [], {"A": 60.0})
    assert empty["pooled"]["recall"] is None and empty["pooled"]["false_per_sensor_hour"] == 0.0


def test_one_alert_finds_every_event_its_span_overlaps():
    # A recording that starts with the person down (a fall before it), who gets up and falls
    # again inside the rule's cooldown: one alert, raised before the first fall keyframe, open
    # over both events, finds both (it overlaps the second one more).
    events = [FallEvent("A", 0, 12_000, 17_000, 4), FallEvent("A", 0, 40_000, 70_000, 22)]
    r = match_events(events, [AlertSpan("A", raised_ms=5_000, start_ms=0, end_ms=80_000)], {"A": 80.0},
                     slack_s=6.0)
    assert [(e["found"], e["delay_s"]) for e in r["events"]] == [(True, -7.0), (True, -35.0)]
    pooled = r["pooled"]
    assert (pooled["found"], pooled["false_alerts"], pooled["alerts_per_event"]) == (2, 0, 0.5)
