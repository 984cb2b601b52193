"""Fall alerts from hand-made score sequences, offline and online."""

from dataclasses import dataclass

import numpy as np
import pytest

from thermal_action.inference.alerts import FallAlertMonitor, fall_class_index, find_fall_alerts, write_alerts

FALL = 3


@dataclass
class P:
    sensor_id: str
    frame_idx: int
    timestamp: int
    track_id: int
    scores: np.ndarray


def seq(fall_scores, step=6, track=0, sensor="s1", t0=1_000_000, ms_per_frame=166):
    """Predictions every ``step`` frames with the given fall scores (None = no prediction)."""
    out = []
    for i, s in enumerate(fall_scores):
        if s is None:
            continue
        scores = np.zeros(14)
        scores[FALL] = s
        f = i * step
        out.append(P(sensor, f, t0 + f * ms_per_frame, track, scores))
    return out


def test_alert_needs_the_score_to_stay_high_long_enough():
    # One prediction a second (step 6 at 6 fps): 0.9 for 6 predictions = 5 s.
    preds = seq([0.1, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.2, 0.9, 0.9])
    alerts = find_fall_alerts(preds, FALL, threshold=0.5, min_seconds=5.0)
    assert len(alerts) == 1
    a = alerts[0]
    assert (a.start_frame, a.end_frame, a.track_id) == (6, 36, 0)
    assert a.duration_s == pytest.approx(5.0)
    assert a.fired_frame == 36 and not a.active
    assert a.start_timestamp == 1_000_000 + 6 * 166
    # 5 high predictions span only 4 s: no alert.
    assert find_fall_alerts(seq([0.9] * 5), FALL, min_seconds=5.0) == []


def test_peak_and_threshold_is_inclusive():
    preds = seq([0.5, 0.7, 0.95, 0.6])
    (a,) = find_fall_alerts(preds, FALL, threshold=0.5, min_seconds=3.0)
    assert a.peak_score == pytest.approx(0.95) and a.peak_frame == 12
    assert (a.start_frame, a.end_frame) == (0, 18)


def test_gap_without_prediction_is_bridged_but_long_gap_breaks():
    # Missing one prediction (1 s gap -> 2 s between predictions) keeps the run.
    preds = seq([0.9, 0.9, None, 0.9, 0.9, 0.9, 0.9])
    (a,) = find_fall_alerts(preds, FALL, min_seconds=5.0, max_gap_seconds=2.0)
    assert (a.start_frame, a.end_frame) == (0, 36)
    # Missing three predictions: two separate 3 s runs, neither long enough.
    preds = seq([0.9, 0.9, 0.9, 0.9, None, None, None, 0.9, 0.9, 0.9, 0.9])
    assert find_fall_alerts(preds, FALL, min_seconds=5.0, max_gap_seconds=2.0) == []
    assert len(find_fall_alerts(preds, FALL, min_seconds=3.0, max_gap_seconds=2.0)) == 2


def test_tracks_and_sensors_are_separate_and_order_does_not_matter():
    a = seq([0.9] * 4, track=1)
    b = seq([0.9, 0.1, 0.9, 0.9], track=2)
    c = seq([0.9] * 4, track=1, sensor="s2")
    mixed = list(reversed(a + b + c))
    alerts = find_fall_alerts(mixed, FALL, min_seconds=3.0)
    assert [(x.sensor_id, x.track_id) for x in alerts] == [("s1", 1), ("s2", 1)]


def test_timestamps_clock():
    # 4 predictions 2 s apart by timestamp but only 6 frames apart.
    preds = seq([0.9] * 4, ms_per_frame=333)
    assert find_fall_alerts(preds, FALL, min_seconds=5.0, use_timestamps=False) == []
    (a,) = find_fall_alerts(preds, FALL, min_seconds=5.0, use_timestamps=True, max_gap_seconds=3.0)
    assert a.duration_s == pytest.approx(18 * 0.333)


def test_online_fires_once_then_ends():
    mon = FallAlertMonitor(FALL, threshold=0.5, min_seconds=2.0)
    preds = seq([0.9, 0.9, 0.9, 0.9, 0.1])
    assert mon.update(preds[0]) == [] and mon.update(preds[1]) == []
    (fired,) = mon.update(preds[2])
    assert fired.active and fired.fired_frame == 12 and fired.end_frame == 12
    assert mon.update(preds[3]) == [] and fired.end_frame == 18  # the live alert is extended
    (ended,) = mon.update(preds[4])
    assert ended is fired and not ended.active and ended.end_frame == 18
    assert mon.active_alerts == []


def test_online_advance_ends_vanished_person_and_matches_offline():
    preds = seq([0.9] * 5)
    mon = FallAlertMonitor(FALL, min_seconds=2.0, max_gap_seconds=2.0)
    for p in preds:
        mon.update(p)
    assert len(mon.active_alerts) == 1
    assert mon.advance("s1", 24 + 6, 0) == []  # 1 s later: still within the gap
    (ended,) = mon.advance("s1", 24 + 18, 0)
    assert not ended.active
    assert ended == find_fall_alerts(preds, FALL, min_seconds=2.0)[0]


def test_zero_seconds_fires_on_first_high_score_and_bad_args():
    (a,) = find_fall_alerts(seq([0.2, 0.8, 0.2]), FALL, min_seconds=0.0)
    assert a.start_frame == a.end_frame == 6 and a.duration_s == 0
    with pytest.raises(ValueError):
        FallAlertMonitor(FALL, fps=0)
    with pytest.raises(ValueError, match="not one of"):
        fall_class_index(["sitting"], "lying down-lying with risk")


def test_write_alerts(tmp_path):
    alerts = find_fall_alerts(seq([0.9] * 6), FALL, min_seconds=5.0)
    write_alerts(alerts, tmp_path / "a.json", tmp_path / "a.csv")
    import csv
    import json

    assert json.loads((tmp_path / "a.json").read_text())[0]["end_frame"] == 30
    rows = list(csv.DictReader(open(tmp_path / "a.csv")))
    assert rows[0]["start_frame"] == "0" and rows[0]["peak_score"] == "0.9"
