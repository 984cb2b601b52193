"""Saving: the journal survives a process killed mid-append, files are replaced whole, and a
new session over the same labels folder shows every acknowledged edit."""

from __future__ import annotations

import json

import pytest
from helpers.label import write_dataset

from thermal_action.errors import DatasetError
from thermal_action.label.journal import Journal, write_atomic
from thermal_action.label.model import LabelError
from thermal_action.label.session import LabelSession


def test_journal_appends_and_reads_back(tmp_path):
    j = Journal(tmp_path / "journal.jsonl")
    assert j.read() == []
    j.append({"op": "a", "n": 1})
    j.append({"op": "b", "n": 2})
    assert [r["n"] for r in Journal(j.path).read()] == [1, 2]


def test_a_torn_last_line_is_dropped_and_cut_from_the_file(tmp_path):
    j = Journal(tmp_path / "journal.jsonl")
    j.append({"n": 1})
    with open(j.path, "ab") as f:
        f.write(b'{"n": 2, "op": "set_ac')  # killed in the middle of the append
    assert [r["n"] for r in j.read()] == [1]
    assert j.dropped_torn_line
    j.append({"n": 3})
    assert [r["n"] for r in Journal(j.path).read()] == [1, 3]


def test_a_broken_line_before_the_last_names_the_file_and_line(tmp_path):
    path = tmp_path / "journal.jsonl"
    path.write_text('{"n": 1}\nnot json\n{"n": 3}\n')
    with pytest.raises(DatasetError, match=r"journal.jsonl \[line 2\]"):
        Journal(path).read()


def test_write_atomic_replaces_the_whole_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "out" / "train.json"
    write_atomic(path, "old")
    write_atomic(path, "new")
    assert path.read_text() == "new"
    assert [p.name for p in path.parent.iterdir()] == ["train.json"]


def tracked(session, sensor="S1"):
    view = session.view(sensor)
    track = max(view["tracks"], key=lambda t: sum(str(t) in view["boxes"][str(f)] for f in view["keyframes"]))
    frames = [f for f in view["keyframes"] if str(track) in view["boxes"][str(f)]]
    return view, track, frames


def test_a_new_session_shows_every_saved_edit_and_edits_apply_once(dataset):
    s = LabelSession(dataset, annotator="ada")
    view, track, frames = tracked(s)
    assert len(view["keyframes"]) == 10 and len(view["tracks"]) >= 2  # 60 frames, every 6th; two people
    s.submit({"op": "set_action", "recording": "S1", "args": {"track": track, "frame": frames[0], "action": 1},
              "id": "e1"})
    s.submit({"op": "set_action", "recording": "S1", "args": {"track": track, "frame": frames[0], "action": 1},
              "id": "e1"})  # the page retried: applied once
    s.submit({"op": "set_box", "recording": "S1", "args": {"track": track, "frame": frames[1], "box": [2, 3, 12, 11]},
              "id": "e2"})
    s.submit({"op": "set_action", "recording": "S1", "args": {"track": track, "frame": frames[2], "action": 2},
              "id": "e3"})
    s.submit({"op": "undo", "recording": "S1", "id": "e4"})
    with pytest.raises(LabelError, match="class index"):
        s.submit({"op": "set_action", "recording": "S1", "args": {"track": track, "frame": frames[0], "action": 99}})
    again = LabelSession(dataset)  # a reload, or a restart after a kill
    v = again.view("S1")
    assert v["boxes"][str(frames[1])][str(track)] == [2.0, 3.0, 12.0, 11.0]
    assert all(v["labels"][str(f)][str(track)] == 1 for f in frames)  # held along the track; the undone 2 is gone
    assert v["undo"] == 2
    assert len((dataset / "labels" / "journal.jsonl").read_text().splitlines()) == 4  # no line for the refused edit


def test_zones_are_carried_to_the_next_recording_of_the_same_sensor(tmp_path):
    root = write_dataset(tmp_path / "data", ("R1", "R2"))
    s = LabelSession(root)
    bed = {"kind": "bed", "name": "", "box": [0.5, 0.1, 0.9, 0.6]}
    s.submit({"op": "set_zones", "recording": "R1", "args": {"zones": [bed]}})
    zones, source = s.zones_of("R2")
    assert zones == [bed] and source == "carried from R1 (same sensor)"
    rooms = json.loads((root / "labels" / "rooms.json").read_text())
    assert set(rooms["sensors"]) == {"R1", "R2"}
    s.submit({"op": "set_zones", "recording": "R2", "args": {"zones": []}})  # R2's own: no furniture
    assert s.zones_of("R2") == ([], "drawn for this recording")
