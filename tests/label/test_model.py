"""Labels of one recording: actions hold along a track until changed, box edits, split,
merge, and undo as a replay without the undone edit."""

from __future__ import annotations

import copy

import pytest

from thermal_action.label.model import LabelError, Op, base_labels, replay

KF = [0, 6, 12, 18, 24, 30]


def base():
    boxes = {f: {0: [1.0, 1.0, 9.0, 7.0], 1: [30.0, 20.0, 40.0, 28.0]} for f in KF}
    del boxes[30][1]  # track 1 leaves before the last keyframe
    return base_labels(KF, 60, 40, 14, boxes)


def op(kind, **args):
    return Op(kind, "S1", args, annotator="ada", time_ms=5)


def test_an_action_holds_along_the_track_until_changed_not_interpolated():
    lab = replay(base(), [op("set_action", track=0, frame=6, action=1), op("set_action", track=0, frame=24, action=3)])
    assert [lab.label_at(0, f) for f in KF] == [None, 1, 1, 1, 3, 3]
    assert [lab.label_at(1, f) for f in KF] == [None] * 6  # another person keeps its own (none)
    assert lab.events == {0: {6: 1, 24: 3}}  # two key presses, not one per keyframe
    lab.apply(op("set_action", track=0, frame=12, action=2))  # a change in the middle holds until the next one
    assert [lab.label_at(0, f) for f in KF] == [None, 1, 2, 2, 3, 3]
    lab.apply(op("set_action", track=0, frame=12, action=None))  # removing it: the earlier action holds again
    assert [lab.label_at(0, f) for f in KF] == [None, 1, 1, 1, 3, 3]


def test_only_keyframes_with_every_person_labelled_are_complete():
    lab = replay(base(), [op("set_action", track=0, frame=0, action=1)])
    assert lab.complete_keyframes() == [30]  # track 1 is unlabelled where it is seen
    lab.apply(op("set_action", track=1, frame=12, action=0))
    assert lab.complete_keyframes() == [12, 18, 24, 30]
    assert lab.label_counts()[:2] == [3, 4]


def test_touched_keyframes_are_those_whose_labels_the_edit_changed():
    lab = replay(base(), [op("set_action", track=0, frame=18, action=1)])
    assert sorted(lab.touched) == [18, 24, 30]
    assert lab.touched[24].annotator == "ada"


def test_set_box_moves_one_keyframe_and_clips_to_the_frame():
    lab = replay(base(), [op("set_box", track=0, frame=6, box=[55, 35, 65, 45])])
    assert lab.boxes[6][0] == [55.0, 35.0, 60.0, 40.0]
    assert lab.boxes[12][0] == [1.0, 1.0, 9.0, 7.0]
    with pytest.raises(LabelError, match="at least 1 px"):
        lab.apply(op("set_box", track=0, frame=6, box=[70, 50, 80, 60]))


def test_split_gives_the_later_part_a_new_unlabelled_track():
    lab = replay(base(), [op("set_action", track=0, frame=0, action=1), op("set_action", track=0, frame=24, action=2),
                          op("split", track=0, frame=12)])
    assert lab.frames_of(0) == [0, 6] and lab.frames_of(2) == [12, 18, 24, 30]
    assert [lab.label_at(2, f) for f in (12, 18, 24)] == [None, None, 2]  # only its own keyframes' actions
    assert lab.events[0] == {0: 1}
    with pytest.raises(LabelError, match="one part empty"):
        lab.apply(op("split", track=2, frame=12))


def test_merge_joins_two_tracks_and_refuses_shared_keyframes():
    lab = replay(base(), [op("split", track=1, frame=18), op("set_action", track=2, frame=18, action=4)])
    lab.apply(op("merge", track=1, other=2))
    assert lab.frames_of(1) == [0, 6, 12, 18, 24] and 2 not in lab.track_ids
    assert lab.label_at(1, 24) == 4
    with pytest.raises(LabelError, match="both have a box"):
        lab.apply(op("merge", track=0, other=1))


def test_add_delete_and_bad_edits():
    lab = base()
    lab.apply(op("add_person", frame=30, box=[10, 10, 20, 20]))
    assert lab.boxes[30][2] == [10.0, 10.0, 20.0, 20.0]
    lab.apply(op("delete_box", track=2, frame=30))
    assert 2 not in lab.track_ids
    lab.apply(op("delete_track", track=1))
    assert lab.track_ids == [0]
    for bad, msg in ((op("set_action", track=0, frame=7, action=1), "not a keyframe"),
                     (op("set_action", track=9, frame=6, action=1), "no track 9"),
                     (op("set_action", track=0, frame=6, action=14), "class index"),
                     (op("set_zones", zones=[{"kind": "sofa", "box": [0, 0, 0.5, 0.5]}]), "unknown zone kind"),
                     (op("jump"), "unknown edit")):
        with pytest.raises(LabelError, match=msg):
            lab.apply(bad)


def test_replay_is_the_undo_the_state_before_an_edit_comes_back():
    ops = [op("set_action", track=0, frame=0, action=1), op("set_box", track=1, frame=6, box=[2, 2, 9, 9]),
           op("split", track=0, frame=18)]
    before = replay(base(), ops[:2])
    after = replay(base(), ops)
    assert after.boxes != before.boxes
    again = replay(base(), ops[:2])
    assert again.boxes == before.boxes and again.events == before.events
    untouched = base()
    replay(untouched, ops)
    assert untouched.boxes == copy.deepcopy(base()).boxes  # replay never changes its base
