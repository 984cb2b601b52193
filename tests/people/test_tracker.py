"""Track ids across frames: occlusion, crossing paths, small fast boxes, noise blobs."""

from __future__ import annotations

import numpy as np
import pytest

from thermal_action.people.results import Detections
from thermal_action.people.tracker import Tracker


def _box(cx: float, cy: float, w: float = 8.0, h: float = 6.0) -> list[float]:
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


def _dets(*boxes: list[float], score: float = 0.9) -> Detections:
    return Detections(np.array(boxes, np.float32).reshape(-1, 4), np.full(len(boxes), score, np.float32))


def _ids_by_position(out, key=lambda tb: tb.box_xyxy[0]) -> list[int]:
    return [tb.track_id for tb in sorted(out, key=key)]


def test_static_people_keep_their_ids():
    rng = np.random.default_rng(0)
    tr = Tracker()
    seen = set()
    for _ in range(20):
        jitter = rng.normal(0, 0.3, 2)
        out = tr.update(_dets(_box(10 + jitter[0], 10), _box(40, 25 + jitter[1])))
        assert _ids_by_position(out) == [0, 1]
        seen |= {tb.track_id for tb in out}
    assert seen == {0, 1}


def test_short_miss_keeps_id_long_miss_gets_new_id():
    tr = Tracker(max_misses=4)
    for t in range(5):
        tr.update(_dets(_box(10 + t, 10), _box(40, 25)))
    # The first person is missed for 3 frames (occluded, under the threshold).
    for t in range(5, 8):
        out = tr.update(_dets(_box(40, 25)))
        coasting = [tb for tb in out if tb.coasting]
        assert len(coasting) == 1 and coasting[0].track_id == 0
        assert coasting[0].score < 0.9  # decayed
    out = tr.update(_dets(_box(16, 10), _box(40, 25)))
    assert _ids_by_position(out) == [0, 1] and not any(tb.coasting for tb in out)
    # Now missed for longer than max_misses: the track ends and a new id starts.
    for _ in range(6):
        tr.update(_dets(_box(40, 25)))
    tr.update(_dets(_box(17, 10), _box(40, 25)))
    out = tr.update(_dets(_box(17, 10), _box(40, 25)))
    assert _ids_by_position(out) == [2, 1]


def test_crossing_paths_do_not_swap():
    # Two people walk past each other in opposite directions, 9 px apart vertically.
    tr = Tracker()
    for t in range(40):
        a = _box(5 + t, 12)  # left to right
        b = _box(45 - t, 21)  # right to left
        out = tr.update(_dets(b, a) if t % 2 else _dets(a, b))
        ids = {round(float(tb.box_xyxy[1])): tb.track_id for tb in out}
        assert ids == {9: 0, 18: 1}, f"frame {t}: {ids}"


def test_crossing_with_merged_frames_keeps_ids():
    # Two people walk past each other 2 px apart vertically; for five frames at the
    # crossing they are one blob. The missed track coasts on its velocity and each id
    # continues on its own side (without the velocity the ids swap).
    tr = Tracker()
    ids_a, ids_b = set(), set()
    for t in range(40):
        xa, xb = 5 + t, 45 - t
        if abs(xa - xb) <= 4:
            tr.update(_dets(_box((xa + xb) / 2, 16, 10, 8)))
            continue
        out = tr.update(_dets(_box(xa, 15), _box(xb, 17)))
        for tb in out:
            if tb.coasting:
                continue
            cx = (tb.box_xyxy[0] + tb.box_xyxy[2]) / 2
            (ids_a if abs(cx - xa) < abs(cx - xb) else ids_b).add(tb.track_id)
    assert ids_a == {0} and ids_b == {1}


def test_small_fast_box_uses_centroid_fallback():
    tr = Tracker(max_centroid_distance_px=6.0)
    ids = set()
    for t in range(10):
        out = tr.update(_dets(_box(5 + 4.5 * t, 20, 3, 3)))  # consecutive boxes never overlap
        ids |= {tb.track_id for tb in out}
    assert ids == {0}
    # Farther than the fallback distance is another person.
    tr2 = Tracker(max_centroid_distance_px=6.0, min_hits=1)
    tr2.update(_dets(_box(5, 20, 3, 3)))
    out = tr2.update(_dets(_box(20, 20, 3, 3)))
    assert [tb.track_id for tb in out if not tb.coasting] == [1]


def test_one_frame_blob_is_not_reported_and_empty_frames_work():
    tr = Tracker(min_hits=2)
    out = tr.update(_dets(_box(10, 10)))
    assert [tb.track_id for tb in out] == [0]  # warm-up: present from the start
    for _ in range(5):
        tr.update(_dets(_box(10, 10)))
    out = tr.update(_dets(_box(10, 10), _box(40, 30)))  # a noise blob, one frame only
    assert [tb.track_id for tb in out] == [0]
    out = tr.update(Detections.empty())
    assert [(tb.track_id, tb.coasting) for tb in out] == [(0, True)]
    tr.reset()
    assert tr.update(Detections.empty()) == [] and tr.tracks == []


def test_best_overlap_wins():
    tr = Tracker(min_hits=1)
    tr.update(_dets(_box(10, 10), _box(18, 10)))
    # Detection order swapped and shifted: each goes to the track it overlaps most.
    out = tr.update(_dets(_box(19, 10), _box(11, 10)))
    by_id = {tb.track_id: float(tb.box_xyxy[0]) for tb in out}
    assert by_id == {0: 7.0, 1: 15.0}
    assert all(t.hits == 2 and t.age == 1 for t in tr.tracks)


def test_bad_arguments():
    with pytest.raises(ValueError):
        Tracker(iou_threshold=0.0)
    with pytest.raises(ValueError):
        Tracker(min_hits=0)
