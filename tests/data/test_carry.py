"""Labels carried along a track between two keyframes that agree (data.carry)."""

from __future__ import annotations

import numpy as np

from thermal_action.data.annotations import Keyframe
from thermal_action.data.carry import CARRIED, carry_labels_along_tracks

STAMPS = np.arange(1000, dtype=np.int64) * 170 + 1_760_000_000_000


def _kf(frame: int, boxes, labels, tracks, rec: str = "R1") -> Keyframe:
    norm = np.asarray(boxes, np.float32).reshape(-1, 4)
    return Keyframe(image_id=f"{rec}_{STAMPS[frame]}", sensor_id=rec, frame_idx=frame, timestamp=int(STAMPS[frame]),
                    width=60, height=40, boxes_cxcywh_norm=norm, boxes_xyxy=np.zeros_like(norm),
                    labels=np.asarray(labels, np.int64), track_ids=np.asarray(tracks, np.int64),
                    annotation_ids=np.arange(len(labels)), extras={"mac_address": "aa"})


def test_an_agreeing_person_is_carried_with_an_interpolated_box():
    a = _kf(10, [[0.2, 0.5, 0.1, 0.2], [0.7, 0.5, 0.1, 0.1], [0.5, 0.1, 0.1, 0.1]], [1, 2, 5], [0, 1, 9])
    b = _kf(20, [[0.4, 0.5, 0.1, 0.2], [0.8, 0.5, 0.1, 0.1]], [1, 3], [0, 1])  # track 9 left
    out = carry_labels_along_tracks([b, a], per_gap=1, max_gap=20, timestamps_of=lambda s: STAMPS)
    assert len(out) == 1
    kf = out[0]
    assert kf.frame_idx == 15 and kf.timestamp == STAMPS[15] and kf.image_id == f"R1_{STAMPS[15]}"
    assert kf.labels.tolist() == [1, -1]  # track 1 changed its label: it comes along unlabelled
    assert kf.track_ids.tolist() == [0, 1]
    np.testing.assert_allclose(kf.boxes_cxcywh_norm, [[0.3, 0.5, 0.1, 0.2], [0.75, 0.5, 0.1, 0.1]], atol=1e-6)
    np.testing.assert_allclose(kf.boxes_xyxy, [[15, 16, 21, 24], [42, 18, 48, 22]], atol=1e-4)
    assert kf.extras["label_source"] == CARRIED and kf.extras["mac_address"] == "aa"


def test_several_frames_per_gap_and_nothing_across_a_long_gap_or_a_disagreement():
    a, b = _kf(10, [[0.2, 0.5, 0.1, 0.2]], [1], [0]), _kf(22, [[0.4, 0.5, 0.1, 0.2]], [1], [0])
    c = _kf(90, [[0.4, 0.5, 0.1, 0.2]], [1], [0])  # 68 frames after b
    d = _kf(96, [[0.4, 0.5, 0.1, 0.2]], [4], [0])  # disagrees with c
    out = carry_labels_along_tracks([a, b, c, d], per_gap=3, max_gap=36, timestamps_of=lambda s: STAMPS)
    assert [k.frame_idx for k in out] == [13, 16, 19]
    assert carry_labels_along_tracks([a, b], per_gap=0, max_gap=36, timestamps_of=lambda s: STAMPS) == []
    assert carry_labels_along_tracks([a, b], per_gap=2, max_gap=11, timestamps_of=lambda s: STAMPS) == []


def test_recordings_are_kept_apart_and_existing_keyframes_are_not_made_again():
    a, b = _kf(10, [[0.2, 0.5, 0.1, 0.2]], [1], [0]), _kf(14, [[0.2, 0.5, 0.1, 0.2]], [1], [0])
    mid = _kf(12, [[0.2, 0.5, 0.1, 0.2]], [1], [0])
    other = _kf(12, [[0.2, 0.5, 0.1, 0.2]], [1], [0], rec="R2")
    out = carry_labels_along_tracks([a, b, other], per_gap=3, max_gap=36, timestamps_of=lambda s: STAMPS)
    assert [(k.sensor_id, k.frame_idx) for k in out] == [("R1", 11), ("R1", 12), ("R1", 13)]
    out = carry_labels_along_tracks([a, mid, b], per_gap=1, max_gap=36, timestamps_of=lambda s: STAMPS)
    assert [k.frame_idx for k in out] == [11, 13]
