"""CLI smoke for train / evaluate (and resume): the commands a user types, in-process."""

from __future__ import annotations

import json

import pytest

from thermal_action.cli import main
from thermal_action.training.train import RUN_DIR_ENV

TINY = ["model.head_dim=32", "data.num_frames=16", "data.batch_size=4", "optim.epochs=1",
        "trainer.limit_train_batches=2", "trainer.limit_val_batches=2", "trainer.num_sanity_val_steps=0",
        "trainer.progress_bar=false"]


@pytest.fixture()
def dataset(tmp_path_factory):
    from thermal_action.data.synth.config import SynthConfig
    from thermal_action.data.synth.write import generate_dataset

    root = tmp_path_factory.mktemp("cli_synth")
    generate_dataset(root, SynthConfig(num_recordings=3, frames_per_recording=80, seed=1, val_recordings=1))
    return root


def test_train_resume_evaluate(tmp_path, dataset, capsys, monkeypatch):
    import torch

    torch.set_num_threads(1)
    monkeypatch.setenv(RUN_DIR_ENV, "unused")
    monkeypatch.delenv(RUN_DIR_ENV)  # restored (absent) after the test; the CLI sets it
    run = tmp_path / "run"
    # No --config: the CPU default, and it says so.
    assert main(["train", "--out", str(run), f"data.root={dataset}", *TINY]) == 0
    out = capsys.readouterr().out
    assert "no --config: training the CPU default (--config cpu_default)" in out
    assert "variant: crop_cnn" in (run / "config.yaml").read_text()
    assert "best checkpoint:" in out and str(run / "checkpoints" / "best.ckpt") in out
    assert (run / "config.yaml").is_file() and (run / "val_summary.jsonl").is_file()

    # --resume takes the run's own config.yaml; one more epoch continues the step count.
    assert main(["train", "--resume", "--out", str(run), "optim.epochs=2"]) == 0
    capsys.readouterr()
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 4

    ev = tmp_path / "eval"
    assert main(["evaluate", "--checkpoint", str(run / "checkpoints" / "best.ckpt"), "--data", str(dataset),
                 "--out", str(ev)]) == 0
    out = capsys.readouterr().out
    assert "frame-mAP" in out and "macro-F1" in out
    metrics = json.loads((ev / "metrics.json").read_text())
    assert metrics["evaluated"]["ann_file"] == "annotations/val.json"
    assert (ev / "predictions.json").is_file()


def test_errors_are_one_line_messages(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(RUN_DIR_ENV, "unused")
    monkeypatch.delenv(RUN_DIR_ENV)
    assert main(["train", "--config", "cpu_default", "--out", str(tmp_path)]) == 2
    assert "data.root is not set" in capsys.readouterr().err
    assert main(["train", "--resume", "--out", str(tmp_path / "none")]) == 2
    assert "config" in capsys.readouterr().err
    assert main(["evaluate", "--checkpoint", str(tmp_path / "x.ckpt"), "--data", str(tmp_path),
                 "--out", str(tmp_path / "e")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for name in ("train", "evaluate", "pretrain", "demo"):
        assert name in out


def test_runs_as_a_module():
    """``python -m thermal_action.cli`` works: the torchrun recipe of docs/training.md runs it with ``-m``."""
    import os
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "thermal_action.cli", "--help"], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "train" in proc.stdout


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    return err


def test_every_error_is_exit_2_and_one_line_and_debug_shows_the_traceback(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(RUN_DIR_ENV, raising=False)
    monkeypatch.delenv("THERMAL_ACTION_DEBUG", raising=False)
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(b"a run's checkpoint")
    argv = ["train", "--config", "cpu_default", "--out", str(tmp_path)]
    assert main(argv) == 2
    err = _one_line_error(capsys)
    assert err.startswith("thermal-action train: error: ") and "already holds checkpoints" in err and "--resume" in err
    assert (tmp_path / "checkpoints" / "last.ckpt").read_bytes() == b"a run's checkpoint"
    assert not (tmp_path / "config.yaml").exists()
    # --debug (before or after the subcommand) or the environment variable: the traceback.
    with pytest.raises(FileExistsError):
        main(["--debug", *argv])
    with pytest.raises(FileExistsError):
        main([*argv[:1], "--debug", *argv[1:]])
    monkeypatch.setenv("THERMAL_ACTION_DEBUG", "1")
    with pytest.raises(FileExistsError):
        main(argv)


def test_out_of_range_and_unknown_overrides_through_the_cli(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(RUN_DIR_ENV, raising=False)
    monkeypatch.delenv("THERMAL_ACTION_DEBUG", raising=False)
    config = "cpu_fast"
    assert main(["train", "--config", config, "--out", str(tmp_path / "r"), "optim.epochs=-1"]) == 2
    err = _one_line_error(capsys)
    assert "'optim.epochs' = -1 is out of range: allowed >= 1" in err and "command-line override" in err
    assert main(["train", "--config", config, "--out", str(tmp_path / "r"), "optim.bogus_key=1"]) == 2
    err = _one_line_error(capsys)
    assert "command-line override 'optim.bogus_key=1': unknown config key 'optim.bogus_key'" in err
    assert "cpu_fast.yaml" not in err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("command", ["predict", "render"])
@pytest.mark.parametrize("option, value", [("--fall-threshold", "2"), ("--fall-threshold", "nan"),
                                           ("--fall-threshold", "0"), ("--fall-bed-threshold", "1.5"),
                                           ("--fall-alert-seconds", "-1"), ("--fall-alert-cooldown-seconds", "inf")])
def test_a_bad_alert_rule_option_is_refused_before_any_work(command, option, value, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("THERMAL_ACTION_DEBUG", raising=False)
    where = ["--checkpoint", str(tmp_path / "missing.ckpt")] if command == "predict" else []
    assert main([command, str(tmp_path / "missing.h5"), *where, "--out", str(tmp_path / "o"), option, value]) == 2
    err = _one_line_error(capsys)
    assert err.startswith(f"thermal-action {command}: error: fall alert rule: ") and "missing" not in err
    assert not (tmp_path / "o").exists()


def test_a_pickled_checkpoint_gets_the_projects_refusal_everywhere(tmp_path, capsys, monkeypatch):
    import argparse

    import torch

    from thermal_action.models.checkpoint import CHECKPOINT_KEY

    monkeypatch.delenv("THERMAL_ACTION_DEBUG", raising=False)
    bad = tmp_path / "pickled.ckpt"
    torch.save({"state_dict": {}, CHECKPOINT_KEY: argparse.Namespace(code="x")}, bad)
    (tmp_path / "rec.h5").write_bytes(b"")
    commands = [
        ["evaluate", "--checkpoint", str(bad), "--data", str(tmp_path), "--out", str(tmp_path / "e")],
        ["predict", str(tmp_path / "rec.h5"), "--checkpoint", str(bad), "--out", str(tmp_path / "p")],
        ["export", str(tmp_path / "m.onnx"), "--checkpoint", str(bad)],
    ]
    for argv in commands:
        assert main(argv) == 2, argv
        err = _one_line_error(capsys)
        assert f"{bad}: refused: the file holds pickled Python objects (argparse.Namespace)" in err, err
        # Not torch's own text, which suggests simply re-running with weights_only=False.
        assert "Re-running" not in err and "WeightsUnpickler" not in err


def test_config_lists_every_key_with_default_range_and_meaning(capsys):
    from thermal_action.config import Config, _all_keys

    assert main(["config", "train", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["key"] for r in rows] == _all_keys(Config)
    lr = next(r for r in rows if r["key"] == "optim.lr")
    assert lr["range"] == "(0, 1]" and "learning rate" in lr["meaning"]
    assert sum(1 for r in rows if r["meaning"]) >= len(rows) - 2
    assert main(["config", "serve"]) == 0
    text = capsys.readouterr().out
    assert "fall_alert_seconds" in text and "the score must stay at or above the threshold this long" in text


def test_config_shows_a_shipped_config_with_the_defaults_it_changes(capsys):
    assert main(["config", "train", "--config", "cpu_fast", "--json"]) == 0
    rows = {r["key"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["model.head_dim"]["value"] == "256" != rows["model.head_dim"]["default"]
    assert rows["seed"]["value"] == rows["seed"]["default"]
    assert main(["config", "train", "--config", "cpu_fast"]) == 0
    text = capsys.readouterr().out
    assert any(line.startswith("model.head_dim") and " 256  (default " in line for line in text.splitlines())
    assert main(["config", "train", "--config", "cpu_fastt"]) == 2
    assert "did you mean --config cpu_fast?" in capsys.readouterr().err


def test_rooms_reach_train_and_evaluate_as_data_rooms(tmp_path, capsys, monkeypatch):
    """``--rooms PATH`` is ``data.rooms``, made absolute: a path typed on the command line is
    relative to where the command runs, not to data.root."""
    import thermal_action.training.evaluate as evaluate_module
    import thermal_action.training.train as train_module

    seen = {}

    def fake_train(cfg, out, resume=False):
        seen["train"] = cfg.data.rooms
        raise SystemExit(0)

    def fake_evaluate(checkpoint, data, ann, out, detections=None, overrides=None, device="cpu"):
        seen["evaluate"] = overrides
        return {k: 0.0 for k in ("frame_map", "top1_accuracy", "macro_f1", "fall_precision", "fall_recall", "fall_ap", "fall_boxes")} | {
            "evaluated": {}}

    monkeypatch.setattr(train_module, "train", fake_train)
    monkeypatch.setattr(evaluate_module, "evaluate_checkpoint", fake_evaluate)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit):
        main(["train", "--out", str(tmp_path / "run"), "--rooms", "rooms.json", "data.root=/data"])
    assert seen["train"] == str(tmp_path / "rooms.json")
    assert main(["evaluate", "--checkpoint", "x.ckpt", "--data", "/data", "--out", "e", "--rooms", "r.json",
                 "--json", "eval.iou_threshold=0.3"]) == 0
    assert seen["evaluate"] == ["eval.iou_threshold=0.3", f"data.rooms={tmp_path / 'r.json'}"]
