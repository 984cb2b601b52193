"""A worker's round in the sensors' state: the storage policy, forgotten tracks, refused frames, delays."""

from __future__ import annotations

import numpy as np

from thermal_action.alert_rule import AlertRule
from thermal_action.serve.messages import FrameError, FrameTracks, LiveFrame, Round, ScoredPerson
from thermal_action.serve.model import ModelInfo
from thermal_action.serve.results import FORGET_TRACK_MS, record_round, record_tracks
from thermal_action.serve.sensors import SensorTable
from thermal_action.structures import DEFAULT_CLASS_NAMES, FALL_CLASS_NAME

T0 = 1_760_000_000_000
FALL = DEFAULT_CLASS_NAMES.index(FALL_CLASS_NAME)
STANDING = DEFAULT_CLASS_NAMES.index("standing")
INFO = ModelInfo(tuple(DEFAULT_CLASS_NAMES), (40, 60), FALL, AlertRule(), 0, 8)


def _table() -> SensorTable:
    table = SensorTable(8, 3600.0, make_ring=lambda: None, home=lambda sensor_id: 0)
    table.get_or_add("S1")
    return table


def _person(ts: int, top: int, track: int = 0) -> ScoredPerson:
    scores = np.full(len(DEFAULT_CLASS_NAMES), 0.01, np.float32)
    scores[top] = 0.7
    return ScoredPerson("S1", 0, ts, track, (1.0, 2.0, 9.0, 8.0), scores, arrival_s=100.0)


def test_a_person_is_stored_once_per_interval_and_at_every_change_of_action():
    table = _table()
    preds = [_person(T0 + 1000 * i, STANDING) for i in range(7)] + [_person(T0 + 7000, FALL)]
    rows, latencies = record_round(table, Round(predictions=preds), INFO, store_every_seconds=3.0, now=101.5)
    assert [(r[1] - T0, r[4]) for r in rows] == [(0, "standing"), (3000, "standing"), (6000, "standing"),
                                                  (7000, FALL_CLASS_NAME)]
    assert rows[-1][6] == np.float32(0.7)  # the fall score
    assert latencies == [1.5] * 8
    st = table.get("S1")
    assert st.predictions == 8 and st.tracks[0].action == FALL_CLASS_NAME


def test_tracks_gone_from_the_live_frame_are_forgotten_only_when_old():
    table = _table()
    record_round(table, Round(predictions=[_person(T0, STANDING, track=1), _person(T0 + 9000, STANDING, track=2)]),
                 INFO, 5.0, now=0.0)
    live = LiveFrame(np.zeros((40, 60), np.float32), T0 + FORGET_TRACK_MS + 1, np.zeros((0, 4), np.float32),
                     np.zeros(0, np.int64), repaired_pixels=3)
    record_round(table, Round(live={"S1": live}, errors=[FrameError("S1", "invalid_frame", "no valid pixel", 2)]),
                 INFO, 5.0, now=0.0)
    st = table.get("S1")
    assert set(st.tracks) == {2} and st.live is live and st.repaired_pixels == 3
    assert st.invalid_frames == 2 and "2 frame(s) refused: no valid pixel" in st.last_error


def test_the_newest_tracked_frame_gives_the_sensors_delay():
    table = _table()
    tracks = FrameTracks(np.array([T0, T0 + 500], np.int64), np.array([0, 0], np.int64),
                         np.zeros((0, 4), np.float32), np.zeros(0, np.int64))
    now = (T0 + 2500) / 1000.0
    delays = record_tracks(table, Round(tracks={"S1": tracks, "unknown": tracks}), now)
    assert delays == [2.0] and table.get("S1").delays[-1] == (now, 2.0)
