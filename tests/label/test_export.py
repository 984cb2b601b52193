"""Round trip: labels -> raw JSONL + COCO + rooms.json -> convert-annotations, validate and a
tiny train read them unchanged."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.configs import tiny_config
from helpers.label import write_dataset

from thermal_action.data.annotations import load_annotations
from thermal_action.data.validate import validate_dataset
from thermal_action.label.session import LabelSession

BED = {"kind": "bed", "name": "", "box": [0.55, 0.1, 0.95, 0.5]}


def label_everything(s: LabelSession) -> None:
    """Every track of every recording: standing from its first keyframe, sitting from its fourth."""
    for sensor in s.recordings:
        view = s.view(sensor)
        for t in view["tracks"]:
            frames = [f for f in view["keyframes"] if str(t) in view["boxes"][str(f)]]
            s.submit({"op": "set_action", "recording": sensor, "args": {"track": t, "frame": frames[0], "action": 1},
                      "annotator": "ada"})
            if len(frames) > 3:
                s.submit({"op": "set_action", "recording": sensor,
                          "args": {"track": t, "frame": frames[3], "action": 0}, "annotator": "bo"})
    s.submit({"op": "set_zones", "recording": next(iter(s.recordings)), "args": {"zones": [BED]}})


@pytest.fixture(scope="module")
def labelled(tmp_path_factory) -> tuple[Path, LabelSession]:
    root = write_dataset(tmp_path_factory.mktemp("label") / "data", ("R1", "R2"))
    s = LabelSession(root)
    label_everything(s)
    return root / "labels", s


def test_the_files_hold_every_labelled_keyframe_with_annotators_and_furniture(labelled):
    out, s = labelled
    complete = {sensor: len(r.state.complete_keyframes()) for sensor, r in s.recordings.items()}
    assert all(n >= 8 for n in complete.values())
    raw = {p.name: [json.loads(line) for line in p.read_text().splitlines()] for p in (out / "raw_annotations").iterdir()}
    assert {k: len(v) for k, v in raw.items()} == {f"{k}_annotation.json": n for k, n in complete.items()}
    line = raw["R1_annotation.json"][-1]
    assert {a["category"] for a in line["annotations"]} == {"person", "furniture"}
    assert {a["subcategory"] for a in line["annotations"] if a["category"] == "person"} == {"sitting"}
    ann = [load_annotations(out / "annotations" / f"{split}.json") for split in ("train", "val")]
    assert sum(len(a.keyframes) for a in ann) == sum(complete.values())
    assert {kf.sensor_id for kf in ann[1].keyframes} == {"R2"}  # the later recording is held out whole
    annotators = {kf.extras["annotator_id"] for a in ann for kf in a.keyframes}
    assert annotators == {"ada", "bo"}
    r2_rooms = {kf.layout.source for kf in ann[1].keyframes}
    assert r2_rooms == {"annotations"}  # R1's bed carried to R2, the same sensor


def test_convert_annotations_reads_the_raw_files_to_the_same_coco(labelled, tmp_path):
    out, _ = labelled
    r = subprocess.run([sys.executable, "-m", "thermal_action.cli", "convert-annotations", str(out / "raw_annotations"),
                        str(out / "frames"), str(tmp_path)], check=False, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    for split in ("train", "val"):
        ours = json.loads((out / "annotations" / f"{split}.json").read_text())
        assert all(im.pop("annotator_id") for im in ours["images"])  # the one thing convert does not carry
        assert json.loads((tmp_path / f"{split}.json").read_text()) == ours


def test_validate_finds_no_problem(labelled):
    out, _ = labelled
    report = validate_dataset(out).to_dict()
    assert report["problems"] == []
    assert report["recordings"] == 2 and report["keyframes"] >= 16
    assert report["rooms_file"] is not None  # rooms.json beside the annotations, checked too


@pytest.mark.slow
def test_a_tiny_train_runs_on_the_labels(labelled, tmp_path):
    from thermal_action.training.train import train

    out, _ = labelled
    result = train(tiny_config(f"data.root={out}"), tmp_path / "run")
    assert Path(result.best_checkpoint).is_file()
