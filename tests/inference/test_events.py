"""``evaluate --events``: the deployed chain (detector, tracker, model, alert rule) on bare
frames, held against the annotated fall events."""

from __future__ import annotations

import json

import pytest

from helpers.infer import write_tiny_checkpoint
from thermal_action.alert_rule import AlertOverrides
from thermal_action.data.annotations import load_annotations
from thermal_action.evaluation.events import LabelledBox, fall_events
from thermal_action.inference.events import evaluate_events


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from thermal_action.data.synth.config import SynthConfig
    from thermal_action.data.synth.write import generate_dataset

    root = tmp_path_factory.mktemp("events_data")
    generate_dataset(root, SynthConfig(num_recordings=2, frames_per_recording=160, seed=3, val_recordings=1))
    return root


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return write_tiny_checkpoint(tmp_path_factory.mktemp("events_ckpt") / "tiny.ckpt")


def _expected_events(ann_path):
    ann = load_annotations(ann_path)
    fall = ann.class_names.index("lying down-lying with risk")
    return fall_events(LabelledBox(k.sensor_id, int(t), k.timestamp, int(lab) == fall)
                       for k in ann.keyframes for lab, t in zip(k.labels, k.track_ids))


def test_every_alert_is_found_or_false_and_the_files_say_so(dataset, ckpt, tmp_path):
    ann = dataset / "annotations" / "train.json"
    expected = _expected_events(ann)
    # A threshold every tracked person crosses: each detected person raises alerts.
    report = evaluate_events(ckpt, dataset, ann, tmp_path, alert_rule=AlertOverrides(threshold=1e-6, min_seconds=1))
    pooled = report["pooled"]
    assert len(expected) > 0 and pooled["events"] == len(expected)
    assert pooled["alerts"] > 0 and pooled["alerts"] == pooled["alerts_on_events"] + pooled["false_alerts"]
    assert pooled["sensor_hours"] > 0 and report["box_source"] == "detector"
    # The annotations' furniture became the layout file the predictions read.
    assert report["rooms"]["source"] == "the annotations' furniture" and (tmp_path / "rooms.json").is_file()
    alerts = json.loads((tmp_path / "predictions" / "alerts.json").read_text())
    assert len(alerts) == pooled["alerts"]
    saved = json.loads((tmp_path / "events.json").read_text())
    assert saved["pooled"] == pooled and "| **pooled** |" in (tmp_path / "events.md").read_text()


def test_a_rule_that_never_fires_finds_nothing_and_raises_nothing(dataset, ckpt, tmp_path):
    ann = dataset / "annotations" / "train.json"
    report = evaluate_events(ckpt, dataset, ann, tmp_path, alert_rule=AlertOverrides(threshold=1.0, min_seconds=3600))
    assert report["pooled"]["found"] == 0 and report["pooled"]["false_alerts"] == 0
    assert report["pooled"]["missed"] == report["pooled"]["events"]


def test_evaluate_events_on_the_command_line(dataset, ckpt, tmp_path, capsys):
    from thermal_action.cli import main

    argv = ["evaluate", "--checkpoint", str(ckpt), "--data", str(dataset), "--ann", "annotations/train.json",
            "--out", str(tmp_path), "--events"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "fall events (built-in detector and tracker" in out and "| **pooled** |" in out
    assert (tmp_path / "events" / "events.json").is_file() and (tmp_path / "metrics.json").is_file()
