"""The "label next" queue: ranked by ``thermal_action.active`` over the model's scores of the
keyframes that still have an unlabelled person; without that module or a checkpoint, those
keyframes in order, with a note that says why."""

from __future__ import annotations

import sys

import pytest
from helpers.infer import write_tiny_checkpoint
from helpers.label import write_dataset

from thermal_action.label.session import LabelSession


@pytest.fixture(scope="module")
def scored(tmp_path_factory) -> LabelSession:
    tmp = tmp_path_factory.mktemp("queue")
    root = write_dataset(tmp / "data", ("R1", "R2"))
    return LabelSession(root, checkpoint=write_tiny_checkpoint(tmp / "tiny.ckpt"))


def label_track(s: LabelSession, sensor: str) -> set[int]:
    """Labels every track of a recording; returns its now complete keyframes."""
    view = s.view(sensor)
    for t in view["tracks"]:
        first = next(f for f in view["keyframes"] if str(t) in view["boxes"][str(f)])
        s.submit({"op": "set_action", "recording": sensor, "args": {"track": t, "frame": first, "action": 1}})
    return set(s.recording(sensor).state.complete_keyframes())


def test_the_checkpoint_scores_every_preannotated_person(scored):
    view = scored.view("R1")
    for f, people in view["boxes"].items():
        assert set(view["scores"].get(f, {})) == set(people)
        assert all(len(p) == 14 and abs(sum(p) - 1) < 1e-3 for p in view["scores"].get(f, {}).values())


def test_without_the_ranking_module_the_queue_lists_unlabelled_keyframes_and_says_so(scored, monkeypatch):
    import thermal_action

    monkeypatch.setitem(sys.modules, "thermal_action.active", None)  # import fails as if absent
    monkeypatch.delattr(thermal_action, "active", raising=False)
    q = scored.queue(50)
    assert not q["ranked"] and "not installed" in q["note"]
    assert [(x["recording"], x["frame_index"]) for x in q["suggestions"]] == sorted(
        (x["recording"], x["frame_index"]) for x in q["suggestions"])


def test_the_ranked_queue_suggests_only_keyframes_with_someone_unlabelled(scored):
    pytest.importorskip("thermal_action.active", reason="the ranking module is not in this tree")
    done = label_track(scored, "R1")
    assert done
    q = scored.queue(50)
    assert q["ranked"] and q["suggestions"]
    keys = [(x["recording"], x["frame_index"]) for x in q["suggestions"]]
    assert not {("R1", f) for f in done} & set(keys)
    assert all(x["expected_gain"] >= 0 and x["reason"] for x in q["suggestions"])
