"""Fall alerts from hand-made score sequences, offline and online: events, the gap, the
cooldown, the bed threshold."""

import dataclasses
from dataclasses import dataclass

import numpy as np
import pytest

from thermal_action.alert_rule import AlertRule
from thermal_action.inference.alerts import (
    AlertEvent,
    FallAlertMonitor,
    fall_class_index,
    find_fall_alerts,
    write_alerts,
)

FALL = 3


@dataclass
class P:
    sensor_id: str
    frame_idx: int
    timestamp: int
    track_id: int
    scores: np.ndarray
    bed_share: float | None = None


def seq(fall_scores, step=6, track=0, sensor="s1", t0=1_000_000, ms_per_frame=166, bed_share=None):
    """Predictions every ``step`` frames with the given fall scores (None = no prediction)."""
    out = []
    for i, s in enumerate(fall_scores):
        if s is None:
            continue
        scores = np.zeros(14)
        scores[FALL] = s
        f = i * step
        out.append(P(sensor, f, t0 + f * ms_per_frame, track, scores, bed_share))
    return out


def rule(**kw) -> AlertRule:
    """A rule without the cooldown unless asked (most tests are about one run)."""
    return AlertRule(**{"cooldown_seconds": 0.0, **kw})


def test_alert_needs_the_score_to_stay_high_long_enough():
    # One prediction a second (step 6 at 6 fps): 0.9 for 6 predictions = 5 s.
    preds = seq([0.1, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.2, 0.9, 0.9])
    alerts = find_fall_alerts(preds, FALL, rule(threshold=0.5, min_seconds=5.0))
    assert len(alerts) == 1
    a = alerts[0]
    assert (a.start_frame, a.end_frame, a.track_id) == (6, 36, 0)
    assert a.duration_s == pytest.approx(5.0)
    assert a.fired_frame == 36 and not a.active
    assert a.start_timestamp == 1_000_000 + 6 * 166
    # 5 high predictions span only 4 s: no alert.
    assert find_fall_alerts(seq([0.9] * 5), FALL, rule(min_seconds=5.0)) == []


def test_peak_and_threshold_is_inclusive():
    preds = seq([0.5, 0.7, 0.95, 0.6])
    (a,) = find_fall_alerts(preds, FALL, rule(threshold=0.5, min_seconds=3.0))
    assert a.peak_score == pytest.approx(0.95) and a.peak_frame == 12
    assert (a.start_frame, a.end_frame) == (0, 18)


def test_gap_without_prediction_is_bridged_but_long_gap_breaks():
    # Missing one prediction (1 s gap -> 2 s between predictions) keeps the run.
    preds = seq([0.9, 0.9, None, 0.9, 0.9, 0.9, 0.9])
    (a,) = find_fall_alerts(preds, FALL, rule(min_seconds=5.0, max_gap_seconds=2.0))
    assert (a.start_frame, a.end_frame) == (0, 36)
    # Missing three predictions: two separate 3 s runs, neither long enough.
    preds = seq([0.9, 0.9, 0.9, 0.9, None, None, None, 0.9, 0.9, 0.9, 0.9])
    assert find_fall_alerts(preds, FALL, rule(min_seconds=5.0, max_gap_seconds=2.0)) == []
    assert len(find_fall_alerts(preds, FALL, rule(min_seconds=3.0, max_gap_seconds=2.0))) == 2


def test_tracks_and_sensors_are_separate_and_order_does_not_matter():
    a = seq([0.9] * 4, track=1)
    b = seq([0.9, 0.1, 0.9, 0.9], track=2)
    c = seq([0.9] * 4, track=1, sensor="s2")
    mixed = list(reversed(a + b + c))
    alerts = find_fall_alerts(mixed, FALL, rule(min_seconds=3.0))
    assert [(x.sensor_id, x.track_id) for x in alerts] == [("s1", 1), ("s2", 1)]


def test_timestamps_clock():
    # 4 predictions 2 s apart by timestamp but only 6 frames apart.
    preds = seq([0.9] * 4, ms_per_frame=333)
    assert find_fall_alerts(preds, FALL, rule(min_seconds=5.0), use_timestamps=False) == []
    (a,) = find_fall_alerts(preds, FALL, rule(min_seconds=5.0, max_gap_seconds=3.0), use_timestamps=True)
    assert a.duration_s == pytest.approx(18 * 0.333)


def test_online_raises_once_then_ends_with_immutable_events():
    mon = FallAlertMonitor(FALL, rule(threshold=0.5, min_seconds=2.0))
    preds = seq([0.9, 0.9, 0.9, 0.9, 0.1])
    assert mon.update(preds[0]) == [] and mon.update(preds[1]) == []
    (raised,) = mon.update(preds[2])
    assert raised.kind == "raised" and raised.active and raised.fired_frame == 12 and raised.end_frame == 12
    assert mon.update(preds[3]) == []
    (now,) = mon.active_alerts  # a snapshot of the alert as it stands: extended
    assert now.kind == "active" and now.end_frame == 18 and now.key == raised.key
    assert raised.end_frame == 12  # an emitted event never changes
    with pytest.raises(dataclasses.FrozenInstanceError):
        raised.end_frame = 0
    (ended,) = mon.update(preds[4])
    assert ended.kind == "ended" and not ended.active and ended.end_frame == 18 and ended.key == raised.key
    assert raised.active  # still the "raised" it was
    assert mon.active_alerts == []


def test_a_raise_and_its_end_in_one_batch_are_two_events_in_order():
    """What a service worker round does: collect every event of many predictions, ship later."""
    mon = FallAlertMonitor(FALL, rule(min_seconds=1.0))
    batch = []
    for p in seq([0.1, 0.9, 0.9, 0.2, 0.9, 0.9, 0.9, 0.2]):
        batch += mon.update(p)
    assert [(e.kind, e.start_frame, e.end_frame) for e in batch] == [
        ("raised", 6, 12), ("ended", 6, 12), ("raised", 24, 30), ("ended", 24, 36)]
    assert [e for e in batch if not e.active] == find_fall_alerts(seq([0.1, 0.9, 0.9, 0.2, 0.9, 0.9, 0.9, 0.2]),
                                                                  FALL, rule(min_seconds=1.0))


def test_online_advance_ends_vanished_person_and_matches_offline():
    preds = seq([0.9] * 5)
    mon = FallAlertMonitor(FALL, rule(min_seconds=2.0, max_gap_seconds=2.0))
    for p in preds:
        mon.update(p)
    assert len(mon.active_alerts) == 1
    assert mon.advance("s1", 24 + 6, 0) == []  # 1 s later: still within the gap
    (ended,) = mon.advance("s1", 24 + 18, 0)
    assert not ended.active
    assert ended == find_fall_alerts(preds, FALL, rule(min_seconds=2.0))[0]


def test_zero_seconds_fires_on_first_high_score_and_bad_args():
    (a,) = find_fall_alerts(seq([0.2, 0.8, 0.2]), FALL, rule(min_seconds=0.0))
    assert a.start_frame == a.end_frame == 6 and a.duration_s == 0
    with pytest.raises(ValueError):
        FallAlertMonitor(FALL, fps=0)
    with pytest.raises(ValueError, match="not one of"):
        fall_class_index(["sitting"], "lying down-lying with risk")


def test_write_alerts(tmp_path):
    alerts = find_fall_alerts(seq([0.9] * 6), FALL, rule(min_seconds=5.0))
    write_alerts(alerts, tmp_path / "a.json", tmp_path / "a.csv")
    import csv
    import json

    assert json.loads((tmp_path / "a.json").read_text())[0]["end_frame"] == 30
    rows = list(csv.DictReader(open(tmp_path / "a.csv")))
    assert rows[0]["start_frame"] == "0" and rows[0]["peak_score"] == "0.9"


def test_a_new_run_inside_the_cooldown_continues_the_alert():
    scores = [0.9, 0.9, 0.9, 0.1, 0.1, 0.9, 0.9, 0.1]  # high, 2 s low, high again
    mon = FallAlertMonitor(FALL, rule(min_seconds=2.0, cooldown_seconds=10.0))
    events = [e for p in seq(scores) for e in mon.update(p)]
    assert [e.kind for e in events] == ["raised"]  # one fall, one alert; still cooling down
    (ended,) = mon.finish()
    assert (ended.start_frame, ended.end_frame, ended.fired_frame) == (0, 36, 12)
    assert ended.duration_s == pytest.approx(6.0)
    assert find_fall_alerts(seq(scores), FALL, rule(min_seconds=2.0, cooldown_seconds=10.0)) == [ended]
    # A cooldown shorter than the dip: two alerts.
    two = find_fall_alerts(seq(scores), FALL, rule(min_seconds=1.0, cooldown_seconds=2.0))
    assert [(a.start_frame, a.end_frame) for a in two] == [(0, 12), (30, 36)]
    # A run too short for an alert is no reason to wait: it is forgotten at once.
    assert find_fall_alerts(seq([0.9, 0.1, 0.9, 0.1]), FALL, rule(min_seconds=2.0, cooldown_seconds=60.0)) == []


def test_the_alert_ends_when_the_cooldown_has_passed_online():
    mon = FallAlertMonitor(FALL, rule(min_seconds=1.0, cooldown_seconds=5.0))
    events = [e for p in seq([0.9, 0.9, 0.1]) for e in mon.update(p)]
    assert [e.kind for e in events] == ["raised"]
    assert mon.advance("s1", 6 + 24, 0) == []  # 4 s after the last high score
    (ended,) = mon.advance("s1", 6 + 30, 0)  # 5 s: over
    assert ended.kind == "ended" and ended.end_frame == 6
    later = seq([None] * 7 + [0.9, 0.9])  # a new run after the cooldown: a new alert
    assert mon.update(later[0]) == [] and [e.kind for e in mon.update(later[1])] == ["raised"]


def test_bed_threshold_holds_a_person_on_a_bed_to_the_stricter_threshold():
    r = rule(threshold=0.5, bed_threshold=0.8, min_seconds=1.0)
    assert find_fall_alerts(seq([0.7] * 3, bed_share=0.9), FALL, r) == []  # lying on the bed
    assert find_fall_alerts(seq([0.9] * 3, bed_share=0.9), FALL, r) != []  # very sure even there
    assert find_fall_alerts(seq([0.7] * 3, bed_share=0.2), FALL, r) != []  # mostly on the floor
    assert find_fall_alerts(seq([0.7] * 3), FALL, r) != []  # rooms unknown: the plain threshold
    assert find_fall_alerts(seq([0.7] * 3, bed_share=0.9), FALL, rule(threshold=0.5, min_seconds=1.0)) != []
    assert r.threshold_for(0.5) == 0.8 and r.threshold_for(0.49) == 0.5 and r.threshold_for(None) == 0.5
    assert rule(threshold=0.9, bed_threshold=0.8).threshold_for(1.0) == 0.9  # never laxer on a bed


@pytest.mark.parametrize("seed", range(20))
def test_online_with_advance_equals_offline_on_random_sequences(seed):
    rng = np.random.default_rng(seed)
    r = rule(threshold=0.5, min_seconds=float(rng.choice([0.0, 1.0, 3.0])), max_gap_seconds=2.0,
             cooldown_seconds=float(rng.choice([0.0, 2.0, 5.0])))
    preds = []
    for track in range(3):
        scores = [None if rng.random() < 0.15 else float(rng.random() < 0.6) * 0.9 + 0.05 for _ in range(40)]
        preds += seq(scores, track=track)
    mon = FallAlertMonitor(FALL, r)
    live = []
    for frame in sorted({p.frame_idx for p in preds}):
        for p in [p for p in preds if p.frame_idx == frame]:
            live += mon.update(p)
        live += mon.advance("s1", frame, 0)
    live += mon.finish()
    ended = sorted((e for e in live if not e.active), key=lambda a: (a.sensor_id, a.start_frame, a.track_id))
    assert ended == find_fall_alerts(preds, FALL, r)
    raised = [e for e in live if e.kind == "raised"]
    assert sorted(e.key for e in raised) == sorted(e.key for e in ended)  # each alert raised once, ended once


def test_alert_events_check_their_kind():
    with pytest.raises(ValueError, match="kind"):
        AlertEvent("fired", "s", 0, 0, 0, 0, 0, 0, 0, 0.9, 0, 0.0)


def test_events_carry_the_box_of_the_latest_high_score():
    @dataclass
    class Boxed(P):
        box_xyxy: np.ndarray | None = None

    preds = [Boxed(**vars(p), box_xyxy=np.array([i, 10.0, i + 8.0, 18.0])) for i, p in
             enumerate(seq([0.9, 0.9, 0.9, 0.2]))]
    monitor = FallAlertMonitor(FALL, rule(threshold=0.5, min_seconds=1.0))
    events = [e for p in preds for e in monitor.update(p)]
    assert [e.kind for e in events] == ["raised", "ended"]
    assert events[0].box_xyxy == (1.0, 10.0, 9.0, 18.0)  # raised at the second prediction
    assert events[1].box_xyxy == (2.0, 10.0, 10.0, 18.0)  # the low score's box is not where the fall was
    assert find_fall_alerts(seq([0.9, 0.9, 0.9]), FALL, rule(threshold=0.5, min_seconds=1.0))[0].box_xyxy is None
