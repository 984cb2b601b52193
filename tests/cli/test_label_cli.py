"""``thermal-action label DATA_DIR --suggest N``: the keyframes to label next, end to end."""

from __future__ import annotations

import csv
import json

import pytest

from helpers.infer import tiny_config, write_tiny_checkpoint
from thermal_action.cli import main


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from thermal_action.data.synth.config import SynthConfig
    from thermal_action.data.synth.write import generate_dataset

    root = tmp_path_factory.mktemp("label")
    generate_dataset(root, SynthConfig(num_recordings=2, frames_per_recording=80, seed=1, val_recordings=1))
    return root


def _labelled(root):
    out = set()
    for split in ("train", "val"):
        for im in json.loads((root / "annotations" / f"{split}.json").read_text())["images"]:
            out.add((im["sensor_id"], int(im["frame_idx"])))
    return out


def test_suggest_writes_the_next_keyframes_from_a_checkpoint(dataset, tmp_path, capsys):
    ckpt = write_tiny_checkpoint(tmp_path / "m.ckpt", tiny_config())
    out = tmp_path / "next.csv"
    assert main(["label", str(dataset), "--suggest", "5", "--checkpoint", str(ckpt), "--suggest-out", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 5
    assert list(rows[0]) == ["recording", "frame", "time", "timestamp", "track", "score", "expected_gain", "reason"]
    labelled = _labelled(dataset)
    for r in rows:
        f = int(r["frame"])
        assert f % 6 == 0 and r["time"].startswith("20") and r["reason"]
        assert all(abs(f - g) > 3 for rec, g in labelled if rec == r["recording"])
        assert 0.0 <= float(r["score"]) and 0.0 <= float(r["expected_gain"])
    assert all(r["reason"].startswith(("uncertain", "random audit")) for r in rows)
    assert "5 keyframes to label next" in capsys.readouterr().out


def test_suggest_without_a_checkpoint_draws_at_random_into_json(dataset, capsys):
    assert main(["label", str(dataset), "--suggest", "3", "--seed", "2"]) == 0
    rows = json.loads((dataset / "suggestions.json").read_text())["suggestions"]
    assert len(rows) == 3 and all(r["reason"] == "random choice" for r in rows)
    assert main(["label", str(dataset), "--suggest", "3", "--strategy", "queue"]) == 2
    assert "--checkpoint" in capsys.readouterr().err
    assert main(["label", str(dataset), "--suggest", "0"]) == 2


def test_the_cli_offers_the_library_s_strategies():
    from thermal_action.active import STRATEGIES
    from thermal_action.cli.label import STRATEGIES as offered

    assert offered == STRATEGIES
