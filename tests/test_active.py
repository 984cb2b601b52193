"""The labelling queue (thermal_action.active): the acquisition score's terms against hand
values, and rank_keyframes' strategies, audit slice, exclusions and neighbour discount."""

from __future__ import annotations

import math

import numpy as np
import pytest

from thermal_action.active import (
    STRATEGIES,
    KeyframeScores,
    Suggestion,
    class_weights,
    person_scores,
    rank_keyframes,
    write_suggestions,
)
from thermal_action.data.annotations import Keyframe

K = 4
COUNTS = [100, 100, 2, 0]  # classes 2 and 3 are scarce


def _ks(frame: int, probs, members=None, rec: str = "R1", tracks=None) -> KeyframeScores:
    p = np.asarray(probs, dtype=np.float64).reshape(-1, K)
    return KeyframeScores(rec, frame, 1_760_000_000.0 + frame / 6, p,
                          np.arange(len(p)) if tracks is None else np.asarray(tracks),
                          None if members is None else np.asarray(members, dtype=np.float64))


def _kf(rec: str, frame: int, labels=(1,)) -> Keyframe:
    n = len(labels)
    return Keyframe(image_id=f"{rec}_{frame}", sensor_id=rec, frame_idx=frame, timestamp=frame, width=60, height=40,
                    boxes_cxcywh_norm=np.full((n, 4), 0.2, np.float32), boxes_xyxy=np.zeros((n, 4), np.float32),
                    labels=np.asarray(labels, np.int64), track_ids=np.arange(n), annotation_ids=np.arange(n))


def test_person_scores_match_hand_values():
    w = class_weights(COUNTS)
    np.testing.assert_allclose(w, np.sqrt(1.0 / (1.0 + np.array(COUNTS))))
    uniform = np.full((1, K), 0.25)
    onehot = np.eye(K)[[3]]
    t = person_scores(np.concatenate([uniform, onehot]), None, w)
    np.testing.assert_allclose(t["uncertainty"], [1.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(t["disagreement"], [0.0, 0.0])
    np.testing.assert_allclose(t["boost"], [w.mean(), 1.0])
    np.testing.assert_allclose(t["score"], [w.mean(), 0.0], atol=1e-9)
    np.testing.assert_allclose(t["expected_gain"], [0.75 * w.mean(), 0.0])
    # Two sure members that disagree: the mean is 50/50, each member has no entropy, so the
    # mutual information is the whole entropy of the mean, log 2 (normalised by log K).
    members = np.stack([np.eye(K)[[0]], np.eye(K)[[1]]]) * 0.999 + 0.001 / K
    d = person_scores(members.mean(axis=0), members, w)["disagreement"]
    assert d[0] == pytest.approx(math.log(2) / math.log(K), abs=0.02)


def test_queue_puts_uncertain_keyframes_first_and_skips_labelled_ones():
    scores = [_ks(0, [0.97, 0.01, 0.01, 0.01]), _ks(6, [0.4, 0.3, 0.2, 0.1]), _ks(30, [0.25] * 4),
              _ks(60, [0.25] * 4)]
    out = rank_keyframes([_kf("R1", 60)], scores, label_counts=[5, 5, 5, 5], random_share=0.0)
    assert [s.frame_index for s in out] == [30, 6, 0]
    assert all(isinstance(s, Suggestion) for s in out)
    assert out[0].score == pytest.approx(1.0) and out[0].expected_gain == pytest.approx(0.75)
    assert "entropy 1.00" in out[0].reason


def test_scarce_classes_are_boosted_and_label_counts_decide_which():
    lean_common = [0.6, 0.2, 0.1, 0.1]
    lean_scarce = [0.1, 0.1, 0.2, 0.6]  # the same entropy, mass on classes 2-3
    scores = [_ks(0, lean_common), _ks(60, lean_scarce)]
    first = rank_keyframes([], scores, label_counts=COUNTS, random_share=0.0)[0]
    assert first.frame_index == 60
    assert "(0 labels)" in first.reason
    flipped = rank_keyframes([], scores, label_counts=COUNTS[::-1], random_share=0.0)[0]
    assert flipped.frame_index == 0
    by_name = rank_keyframes([], scores, label_counts={"0": 0, "1": 0, "2": 100, "3": 100}, random_share=0.0)
    assert by_name[0].frame_index == 0


def test_ensemble_disagreement_ranks_a_keyframe_higher():
    mean = np.array([[0.5, 0.5, 0.0, 0.0]]) * 0.98 + 0.005
    agree = np.stack([mean, mean])
    split = np.stack([np.array([[0.98, 0.0, 0.01, 0.01]]), np.array([[0.0, 0.98, 0.01, 0.01]])]) + 0.0
    scores = [_ks(0, mean, agree), _ks(60, split.mean(axis=0), split)]
    out = rank_keyframes([], scores, label_counts=[5, 5, 5, 5], random_share=0.0)
    assert out[0].frame_index == 60 and "disagreement" in out[0].reason
    assert out[0].score > out[1].score


def test_a_mapping_of_member_scores_is_combined_like_the_ensemble():
    members = np.random.default_rng(0).dirichlet(np.ones(K), size=(2, 3))  # (M, N, K)
    out = rank_keyframes([], {("R1", 0): members}, label_counts=[5] * K, random_share=0.0)
    assert len(out) == 1 and out[0].track_id is None and math.isnan(out[0].timestamp)


def test_rarest_orders_by_the_label_count_of_the_predicted_class():
    scores = [_ks(0, [0.7, 0.1, 0.1, 0.1]), _ks(60, [0.1, 0.1, 0.7, 0.1]), _ks(120, [0.1, 0.1, 0.1, 0.7])]
    out = rank_keyframes([], scores, strategy="rarest", label_counts=COUNTS, random_share=0.0)
    assert [s.frame_index for s in out] == [120, 60, 0]
    assert out[0].reason.endswith("(0 labels)")


def test_random_is_seeded_and_every_keyframe_appears_once():
    scores = [_ks(f, [0.25] * 4) for f in range(0, 600, 6)]
    a = rank_keyframes([], scores, strategy="random", seed=3)
    b = rank_keyframes([], scores, strategy="random", seed=3)
    c = rank_keyframes([], scores, strategy="random", seed=4)
    assert [s.frame_index for s in a] == [s.frame_index for s in b] != [s.frame_index for s in c]
    assert sorted(s.frame_index for s in a) == list(range(0, 600, 6))


def test_the_audit_slice_is_random_spread_and_can_be_switched_off():
    rng = np.random.default_rng(1)
    scores = [_ks(f, rng.dirichlet(np.ones(K))) for f in range(0, 6000, 30)]
    out = rank_keyframes([], scores, n=20, random_share=0.1, label_counts=[5] * K)
    audit = [i for i, s in enumerate(out) if s.reason.startswith("random audit")]
    assert audit == [4, 14]
    queue = rank_keyframes([], scores, n=20, random_share=0.0, label_counts=[5] * K)
    assert not any(s.reason.startswith("random audit") for s in queue)
    # The rest of the list is the queue's own order.
    assert [s.frame_index for i, s in enumerate(out) if i not in audit] == [s.frame_index for s in queue[:18]]


def test_a_neighbour_of_a_chosen_keyframe_counts_half():
    scores = [_ks(0, [0.25] * 4), _ks(6, [0.25] * 4), _ks(300, [0.3, 0.3, 0.2, 0.2])]
    out = rank_keyframes([], scores, label_counts=[5] * K, random_share=0.0)
    assert [s.frame_index for s in out] == [0, 300, 6]


def test_keyframes_without_people_are_never_suggested_and_bad_arguments_fail():
    scores = [_ks(0, np.zeros((0, K))), _ks(6, [0.25] * 4)]
    assert [s.frame_index for s in rank_keyframes([], scores)] == [6]
    with pytest.raises(ValueError, match="strategy"):
        rank_keyframes([], scores, strategy="best")
    with pytest.raises(ValueError, match="random_share"):
        rank_keyframes([], scores, random_share=1.5)
    with pytest.raises(ValueError, match="label_counts"):
        rank_keyframes([], scores, label_counts=[1, 2])
    assert set(STRATEGIES) == {"queue", "random", "rarest"}


def test_suggestions_write_as_csv_and_json(tmp_path):
    out = rank_keyframes([], [_ks(6, [0.25] * 4), _ks(60, [0.7, 0.1, 0.1, 0.1])], label_counts=[5] * K)
    csv_text = write_suggestions(tmp_path / "s.csv", out).read_text().splitlines()
    assert csv_text[0] == "recording,frame,time,timestamp,track,score,expected_gain,reason"
    assert len(csv_text) == 3 and csv_text[1].startswith("R1,6,2025-10-09T")
    import json

    rows = json.loads(write_suggestions(tmp_path / "s.json", out).read_text())["suggestions"]
    assert [r["frame"] for r in rows] == [6, 60] and rows[0]["track"] == 0
