"""A short fit writes the whole run directory; resume, determinism, freezing, refusals."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from thermal_action.config import load_config
from thermal_action.training.train import train

SUMMARY_KEYS = {"epoch", "step", "train_loss", "val_loss", "mAP", "top1", "macro_f1", "fall_precision",
                "fall_recall", "fall_ap", "fall_threshold", "fall_boxes", "lr", "clips_per_s", "time",
                "validation_overlaps_training"}


def _weights(path):
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def test_fit_writes_the_run_directory(trained_run):
    run = trained_run.run_dir
    assert trained_run.config_path == run / "config.yaml"
    cfg = load_config(run / "config.yaml")
    assert cfg.model.variant == "slowfast_tiny" and cfg.data.num_frames == 16
    assert trained_run.best_checkpoint == run / "checkpoints" / "best.ckpt" and trained_run.best_checkpoint.is_file()
    assert trained_run.last_checkpoint == run / "checkpoints" / "last.ckpt" and trained_run.last_checkpoint.is_file()
    assert list((run / "tensorboard").glob("version_0/events.out.tfevents.*"))
    with open(run / "csv" / "version_0" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    columns = set(rows[0])
    assert {"train/loss_step", "val/mAP", "val/top1", "val/macro_f1", "val/fall_precision", "val/fall_recall",
            "val/fall_ap", "val/fall_threshold", "val/loss"} <= columns
    lines = (run / "val_summary.jsonl").read_text().splitlines()
    assert len(lines) == 1
    row = json.loads(lines[0])
    assert set(row) == SUMMARY_KEYS
    assert row["epoch"] == 0 and row["step"] == 2
    assert 0.0 <= row["mAP"] <= 1.0 and row["train_loss"] > 0 and row["clips_per_s"] > 0
    assert trained_run.best_metric == pytest.approx(row["mAP"])
    assert trained_run.global_step == 2 and trained_run.epochs == 1
    # An honest split (whole recordings held out): nothing shared, recorded as such.
    assert row["validation_overlaps_training"] == {"recordings": [], "keyframes": []}
    assert "shares" not in trained_run.summary()


class _Interrupt(Exception):
    pass


class _StopAtEpoch(L.Callback):
    """Simulates a crash at the start of an epoch."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == self.epoch:
            raise _Interrupt()


def test_run_info_records_the_resolved_precision(trained_run):
    lines = (trained_run.run_dir / "run_info.jsonl").read_text().splitlines()
    assert len(lines) == 1
    info = json.loads(lines[0])
    assert info["resumed"] is False and info["threads"] >= 1
    assert info["precision"]["requested"] == "32-true" and info["precision"]["precision"] == "32-true"
    assert info["precision"]["device"] == "cpu" and info["precision"]["cpu"]["cpu"]
    assert trained_run.precision == "32-true"


def test_resume_continues_from_the_last_checkpoint(tmp_path, tiny_config):
    cfg = tiny_config("optim.epochs=2")
    with pytest.raises(_Interrupt):
        train(cfg, tmp_path, callbacks=[_StopAtEpoch(1)])
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == 2
    # A fresh run into the same directory is refused; resuming works.
    with pytest.raises(FileExistsError, match="--resume"):
        train(cfg, tmp_path)
    result = train(cfg, tmp_path, resume=True)
    assert result.global_step == 4 and result.epochs == 2
    assert torch.load(last, weights_only=True)["global_step"] == 4
    epochs = [json.loads(x)["epoch"] for x in (tmp_path / "val_summary.jsonl").read_text().splitlines()]
    assert epochs == [0, 1]
    steps = [json.loads(x)["step"] for x in (tmp_path / "val_summary.jsonl").read_text().splitlines()]
    assert steps == [2, 4]
    starts = [json.loads(x)["resumed"] for x in (tmp_path / "run_info.jsonl").read_text().splitlines()]
    assert starts == [False, True]
    # The resumed part logs into a new version, the first part's logs stay.
    assert (tmp_path / "csv" / "version_0" / "metrics.csv").is_file()
    assert (tmp_path / "csv" / "version_1" / "metrics.csv").is_file()


def test_resume_without_a_checkpoint_is_an_error(tmp_path, tiny_config):
    with pytest.raises(FileNotFoundError, match="last.ckpt"):
        train(tiny_config(), tmp_path, resume=True)


def test_same_seed_same_weights(tmp_path, tiny_config):
    a = train(tiny_config("trainer.deterministic=true", "seed=3"), tmp_path / "a")
    b = train(tiny_config("trainer.deterministic=true", "seed=3"), tmp_path / "b")
    c = train(tiny_config("trainer.deterministic=true", "seed=4"), tmp_path / "c")
    wa, wb, wc = _weights(a.last_checkpoint), _weights(b.last_checkpoint), _weights(c.last_checkpoint)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    assert any(not torch.equal(wa[k], wc[k]) for k in wa if wa[k].is_floating_point())


def test_frozen_backbone_keeps_pretrained_weights(tmp_path, tiny_config):
    from thermal_action.models.build import build_model

    cfg = tiny_config()
    pretrained = build_model(cfg.model, 14)
    path = tmp_path / "pretrained.pt"
    torch.save({"state_dict": pretrained.state_dict()}, path)
    result = train(tiny_config(f"model.pretrained={path}", "optim.freeze_backbone_epochs=1"), tmp_path / "run")
    trained = _weights(result.last_checkpoint)
    before = pretrained.state_dict()
    backbone = [k for k in before if k.startswith("backbone.")]
    head = [k for k in before if k.startswith("head.") and before[k].is_floating_point()]
    # Weights and BatchNorm statistics of the backbone: untouched while frozen.
    for k in backbone:
        assert torch.equal(trained["model." + k], before[k]), k
    assert any(not torch.equal(trained["model." + k], before[k]) for k in head)


class _LoopProbe(L.Callback):
    """What the training loop runs with: its loss, model, data set and sampler, and the clips
    (dataset indices, in the sampler's order) of the batches it trains on."""

    def on_train_start(self, trainer, pl_module):
        loader = trainer.train_dataloader
        self.loss, self.model, self.dataset, self.sampler = pl_module.loss, pl_module.model, loader.dataset, loader.sampler
        batches = trainer.num_training_batches
        self.trained_indices = list(loader.sampler)[: batches * loader.batch_size]


def test_class_weights_focal_loss_balanced_sampler_and_channels_last_reach_the_training_loop(tmp_path, tiny_config):
    from thermal_action.training.datamodule import EpochSampler, class_counts
    from thermal_action.training.losses import class_weights_from_counts

    probe = _LoopProbe()
    cfg = tiny_config("optim.class_weights=inverse", "optim.class_weight_max=5", "data.class_balanced_sampler=true",
                      "optim.loss=focal", "trainer.channels_last=true")
    result = train(cfg, tmp_path, callbacks=[probe])
    assert result.global_step == 2 and result.best_checkpoint.is_file()
    # The loss weighs the classes by their inverse training frequency, not uniformly.
    want = class_weights_from_counts(class_counts(probe.dataset), "inverse", 5.0)
    assert probe.loss.kind == "focal" and probe.loss.weighted
    torch.testing.assert_close(probe.loss.class_weights, want)
    assert probe.loss.class_weights.max() > 2 * probe.loss.class_weights.min()
    # The sampler draws clips by their rarest class, and the 3D convolutions run channels-last.
    assert isinstance(probe.sampler, EpochSampler) and probe.sampler.weights is not None
    assert len(set(np.round(probe.sampler.weights, 9).tolist())) > 1
    convs = [m.weight for m in probe.model.modules() if isinstance(m, torch.nn.Conv3d) and m.weight.shape[2:].numel() > 1]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last_3d) for w in convs)


def test_training_with_an_extra_synthetic_set(tmp_path, tiny_config, synth_root):
    """The tiny set mixed with itself at share 0.5: the epoch holds as many extra clips as
    primary ones, and the batches trained on include extra clips."""
    from thermal_action.data.dataset import MixedClipDataset

    probe = _LoopProbe()
    result = train(tiny_config(f"data.extra_train_root={synth_root}", "data.extra_train_share=0.5"), tmp_path,
                   callbacks=[probe])
    assert result.global_step == 2 and result.best_checkpoint.is_file()
    assert isinstance(probe.dataset, MixedClipDataset)
    n = len(probe.dataset.primary)
    assert probe.dataset.extra_per_epoch == n and len(probe.sampler) == 2 * n
    assert any(i >= n for i in probe.trained_indices) and any(i < n for i in probe.trained_indices)


def test_training_generates_its_synthetic_rooms_in_the_run_directory(tmp_path, tiny_config):
    from thermal_action.config import load_config
    from thermal_action.data.dataset import MixedClipDataset
    from thermal_action.models.checkpoint import read_checkpoint_info

    probe = _LoopProbe()
    cfg = tiny_config("data.synthetic_recordings=1", "data.synthetic_frames=60", "data.extra_train_share=0.5")
    result = train(cfg, tmp_path / "run", callbacks=[probe])
    assert result.global_step == 2 and result.best_checkpoint.is_file()
    assert sorted(p.name for p in (tmp_path / "run" / "synthetic" / "frames").glob("*.h5")) == ["SYN00_R1.h5"]
    # The generated room is what the training loop mixes in.
    assert isinstance(probe.dataset, MixedClipDataset)
    assert {k.sensor_id for k in probe.dataset.extra.keyframes} == {"SYN00_R1"}
    assert probe.dataset.extra_per_epoch > 0
    # The saved config asks for the same rooms again (not for the generated folder).
    saved = load_config(tmp_path / "run" / "config.yaml")
    assert saved.data.synthetic_recordings == 1 and saved.data.extra_train_root == ""
    assert read_checkpoint_info(result.best_checkpoint).config.data.synthetic_recordings == 1


class _BankProbe(L.Callback):
    """Records whether each validation clip's keyframe is already in the bank before its step."""

    def __init__(self):
        self.seen_before_step: list[bool] = []

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        bank = pl_module.model.feature_bank
        self.seen_before_step += [key in bank for key in zip(batch.sensor_ids, batch.frame_idxs.tolist())]


def test_interaction_training_fills_the_bank_before_validation(tmp_path, tiny_config):
    probe = _BankProbe()
    result = train(tiny_config("model.interaction=parallel", "model.interaction_dim=16"), tmp_path,
                   callbacks=[probe])
    assert result.global_step == 2
    # The first pass wrote every validation keyframe, so even the first one has its memory.
    assert len(probe.seen_before_step) == 8 and all(probe.seen_before_step)


class _WorseEveryEpoch(L.Callback):
    """Makes the monitored validation mAP fall every epoch, so the best epoch is the first."""

    def on_validation_end(self, trainer, pl_module):
        if not trainer.sanity_checking:
            trainer.callback_metrics["val/mAP"] = torch.tensor(1.0 - 0.1 * trainer.current_epoch)


def test_last_checkpoint_is_the_final_epoch_when_the_best_is_earlier(tmp_path, tiny_config):
    result = train(tiny_config("optim.epochs=3"), tmp_path, callbacks=[_WorseEveryEpoch()])
    best = torch.load(result.best_checkpoint, weights_only=True)
    last = torch.load(result.last_checkpoint, weights_only=True)
    assert best["global_step"] == 2 and best["epoch"] == 0
    assert last["global_step"] == 6
    assert not any(torch.equal(best["state_dict"][k], last["state_dict"][k])
                   for k in best["state_dict"] if k.endswith("classifier.weight"))
    # No temporary file is left behind by the atomic saves.
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]


def test_select_checkpoint_last_makes_best_the_final_epoch(tmp_path, tiny_config):
    """A fixed schedule: with validation getting worse every epoch best.ckpt is still the
    final epoch, and the reported metric is that epoch's validation mAP."""
    result = train(tiny_config("optim.epochs=3", "trainer.select_checkpoint=last"), tmp_path,
                   callbacks=[_WorseEveryEpoch()])
    best = torch.load(result.best_checkpoint, weights_only=True)
    last = torch.load(result.last_checkpoint, weights_only=True)
    assert best["global_step"] == last["global_step"] == 6 and result.monitor == "step"
    assert all(torch.equal(best["state_dict"][k], last["state_dict"][k]) for k in best["state_dict"])
    rows = [json.loads(line) for line in (tmp_path / "val_summary.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and result.best_metric == rows[-1]["mAP"]
    with pytest.raises(ValueError, match="select_checkpoint must be one of"):
        train(tiny_config("trainer.select_checkpoint=final"), tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_an_interrupted_run_resumed_ends_with_the_uninterrupted_weights(tmp_path, tiny_config):
    cfg = tiny_config("optim.epochs=3", "trainer.deterministic=true", "model.dropout=0.5")
    full = train(cfg, tmp_path / "full", callbacks=[_WorseEveryEpoch()])
    with pytest.raises(_Interrupt):
        train(cfg, tmp_path / "cut", callbacks=[_WorseEveryEpoch(), _StopAtEpoch(2)])
    resumed = train(cfg, tmp_path / "cut", resume=True, callbacks=[_WorseEveryEpoch()])
    assert resumed.global_step == full.global_step == 6
    a, b = _weights(full.last_checkpoint), _weights(resumed.last_checkpoint)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.fixture(scope="module")
def full_val_run(tmp_path_factory, tiny_config):
    """A tiny run validated on a whole set that holds falls (the tiny val recording has none)."""
    return train(tiny_config("trainer.limit_val_batches=1.0", "data.val_ann=annotations/train.json"),
                 tmp_path_factory.mktemp("full_val"))


def test_tensorboard_shows_the_fall_ap_and_the_calibrated_threshold(full_val_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from thermal_action.models.checkpoint import read_checkpoint_info

    events = EventAccumulator(str(next((full_val_run.run_dir / "tensorboard").glob("version_0"))))
    events.Reload()
    assert {"val/fall_ap", "val/fall_threshold"} <= set(events.Tags()["scalars"])
    threshold = events.Scalars("val/fall_threshold")[-1].value
    assert threshold == pytest.approx(read_checkpoint_info(full_val_run.last_checkpoint).alert_rule.threshold, rel=1e-6)
    assert 0.0 <= events.Scalars("val/fall_ap")[-1].value <= 1.0


def test_checkpoints_carry_an_alert_rule_with_the_calibrated_threshold(full_val_run):
    import torch

    from thermal_action.alert_rule import AlertRule
    from thermal_action.models.checkpoint import CHECKPOINT_KEY, read_checkpoint_info

    trained_run = full_val_run
    info = read_checkpoint_info(trained_run.best_checkpoint)
    cal = info.fall_calibration
    assert cal is not None and cal["target_recall"] == 0.95 and cal["num_falls"] > 0
    assert 0.0 < cal["threshold"] <= 1.0 and cal["recall"] >= 0.95
    assert info.alert_rule == AlertRule(threshold=cal["threshold"])  # the rest: the defaults
    stored = torch.load(trained_run.best_checkpoint, map_location="cpu", weights_only=True)[CHECKPOINT_KEY]
    assert stored["alert_rule"] == info.alert_rule.to_dict()
    row = json.loads((trained_run.run_dir / "val_summary.jsonl").read_text().splitlines()[-1])
    assert row["fall_threshold"] == pytest.approx(cal["threshold"])
    assert row["fall_recall"] >= 0.95


def test_evaluate_and_predict_use_the_calibrated_threshold(full_val_run, synth_root, tmp_path):
    from thermal_action.inference.predictor import Predictor
    from thermal_action.models.checkpoint import read_checkpoint_info
    from thermal_action.training.evaluate import evaluate_checkpoint

    ckpt = full_val_run.best_checkpoint
    calibrated = read_checkpoint_info(ckpt).fall_calibration["threshold"]
    m = evaluate_checkpoint(ckpt, synth_root, "annotations/train.json", tmp_path / "a")
    assert m["fall"]["threshold"] == pytest.approx(calibrated)
    assert m["evaluated"]["fall_threshold_source"] == "calibrated"
    assert m["evaluated"]["alert_rule"]["threshold"] == pytest.approx(calibrated)
    assert m["fall_recall"] >= 0.95  # the set it was calibrated on
    # ... and trained on: said in metrics.json, as in the checkpoint.
    train_ids = sorted(im["id"] for im in json.loads((synth_root / "annotations" / "train.json").read_text())["images"])
    assert m["evaluated"]["overlaps_training"]["keyframes"] == train_ids
    assert read_checkpoint_info(ckpt).validation_overlaps_training["keyframes"] == train_ids
    m = evaluate_checkpoint(ckpt, synth_root, "annotations/train.json", tmp_path / "b",
                            overrides=["eval.fall_threshold=0.99"])
    assert m["fall"]["threshold"] == 0.99 and m["evaluated"]["fall_threshold_source"] == "config"
    assert Predictor.from_checkpoint(ckpt).alert_rule.threshold == pytest.approx(calibrated)


def _copy_run(run_dir, dest):
    import shutil

    shutil.copytree(run_dir, dest)
    return dest


def test_resume_from_a_truncated_last_checkpoint_says_how_to_use_best(trained_run, tmp_path, capsys, monkeypatch):
    from thermal_action.cli import main
    from thermal_action.training.train import RUN_DIR_ENV

    monkeypatch.delenv(RUN_DIR_ENV, raising=False)
    run = _copy_run(trained_run.run_dir, tmp_path / "run")
    last, best = run / "checkpoints" / "last.ckpt", run / "checkpoints" / "best.ckpt"
    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 2])  # a torn file, as a crash mid-copy would leave
    assert main(["train", "--resume", "--out", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert f"{last}: not a readable PyTorch checkpoint" in err
    assert f"{best} is intact (saved at epoch 0, step 2)" in err
    assert f"mv {last} {last}.damaged && cp {best} {last}" in err
    # Nothing was written by the refused resume.
    assert sorted(p.name for p in (run / "csv").iterdir()) == ["version_0"]
    # Following the advice resumes from best.ckpt.
    last.rename(str(last) + ".damaged")
    best_bytes = best.read_bytes()
    last.write_bytes(best_bytes)
    assert main(["train", "--resume", "--out", str(run), "optim.epochs=2"]) == 0
    capsys.readouterr()
    assert torch.load(last, weights_only=True)["global_step"] == 4


class _TornWrite(Exception):
    pass


def test_an_interrupted_checkpoint_save_leaves_the_old_file_intact(trained_run, tmp_path, monkeypatch):
    from lightning.fabric.plugins import TorchCheckpointIO

    from thermal_action.training.train import AtomicCheckpointIO

    run = _copy_run(trained_run.run_dir, tmp_path / "run")
    last = run / "checkpoints" / "last.ckpt"
    before = last.read_bytes()

    def torn_save(self, checkpoint, path, storage_options=None):
        # The process dies half-way through writing the new checkpoint.
        with open(path, "wb") as f:
            f.write(before[: len(before) // 3])
        raise _TornWrite()

    monkeypatch.setattr(TorchCheckpointIO, "save_checkpoint", torn_save)
    with pytest.raises(_TornWrite):
        AtomicCheckpointIO().save_checkpoint({"global_step": 99}, last)
    assert last.read_bytes() == before
    assert torch.load(last, weights_only=True)["global_step"] == trained_run.global_step
    # The torn temporary file is not a checkpoint name that --resume or the run-directory check would pick up.
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt", "last.ckpt.tmp"]


def test_the_trainer_overrides_no_private_lightning_method():
    """Lightning's private methods change between releases without notice: the run's callbacks
    and checkpoint writer extend only its public hooks."""
    from lightning.fabric.plugins import TorchCheckpointIO
    from lightning.pytorch.callbacks import Checkpoint

    from thermal_action.training import train as train_module
    from thermal_action.training.datamodule import SetDatasetEpoch, ThermalDataModule
    from thermal_action.training.system import ActionDetectionSystem

    for cls, base in ((train_module.AtomicCheckpointIO, TorchCheckpointIO), (train_module.LastCheckpoint, Checkpoint),
                      (train_module.ValidationSummary, L.Callback), (train_module.ProgressBar, L.Callback),
                      (ActionDetectionSystem, L.LightningModule), (ThermalDataModule, L.LightningDataModule),
                      (SetDatasetEpoch, L.Callback)):
        assert issubclass(cls, base)
        inherited = {name for klass in cls.__mro__[1:] for name in vars(klass)}
        private = {name for name in vars(cls) if name.startswith("_") and not name.startswith("__")
                   and name in inherited and name != "_abc_impl"}  # _abc_impl: set by ABCMeta on every subclass
        assert private == set(), f"{cls.__name__} overrides Lightning's private {sorted(private)}"


@pytest.fixture
def synth_copy(synth_root, tmp_path):
    """A private copy of the synthetic dataset, to break."""
    import shutil

    return shutil.copytree(synth_root, tmp_path / "data")


def _empty_annotations(path):
    data = json.loads(path.read_text())
    path.write_text(json.dumps(dict(data, annotations=[])))


@pytest.mark.parametrize("split", ["train", "val"])
@pytest.mark.parametrize("class_weights", ["none", "inverse"])
def test_a_set_without_labelled_boxes_is_an_error_naming_it(synth_copy, tiny_config, tmp_path, split, class_weights):
    from thermal_action.errors import DatasetError

    _empty_annotations(synth_copy / "annotations" / f"{split}.json")
    cfg = tiny_config(f"data.root={synth_copy}", f"optim.class_weights={class_weights}")
    with pytest.raises(DatasetError, match=rf"annotations/{split}\.json: no labelled box in its \d+ keyframes"):
        train(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("kind", ["no_frames", "truncated", "other_size"])
def test_an_unusable_recording_fails_before_the_run_directory_is_made(synth_copy, tiny_config, tmp_path, kind):
    import h5py
    import numpy as np

    from thermal_action.errors import DatasetError

    path = synth_copy / "frames" / "SYN00_R2.h5"
    if kind == "truncated":
        path.write_bytes(path.read_bytes()[:2000])
    else:
        with h5py.File(path, "a") as f:
            n = f["frames"].shape[0]
            del f["frames"]
            if kind == "other_size":
                f["frames"] = np.full((n, 24, 32), 18.0, np.float32)
    with pytest.raises(DatasetError, match=r"SYN00_R2\.h5"):
        train(tiny_config(f"data.root={synth_copy}"), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_checkpoints_record_the_training_frame_size(trained_run):
    from thermal_action.models.checkpoint import read_checkpoint_info

    assert read_checkpoint_info(trained_run.best_checkpoint).frame_size == (40, 60)
    assert read_checkpoint_info(trained_run.last_checkpoint).frame_size == (40, 60)


def test_choose_run_dir_is_one_directory_for_every_process(tmp_path, monkeypatch):
    from thermal_action.training.train import RUN_DIR_ENV, choose_run_dir

    monkeypatch.chdir(tmp_path)
    for var in (RUN_DIR_ENV, "WORLD_SIZE", "SLURM_NTASKS"):
        monkeypatch.delenv(var, raising=False)
    first = choose_run_dir(None, "cpu_default")
    assert first.parent == Path("runs") and first.name.startswith("cpu_default-")
    # A process DDP launches later (same environment) gets the same directory.
    assert choose_run_dir(None, "other") == first
    assert choose_run_dir(tmp_path / "given") == tmp_path / "given"
    monkeypatch.delenv(RUN_DIR_ENV)
    with pytest.raises(ValueError, match="resuming needs the run directory"):
        choose_run_dir(None, resume=True)
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="torchrun"):
        choose_run_dir(None)


@pytest.mark.parametrize(("accelerator", "setting", "applied"),
                         [("cpu", "true", True), ("cpu", "false", False), ("auto", "true", True)])
def test_build_trainer_keeps_freed_memory_only_when_asked_on_a_cpu(tmp_path, monkeypatch, accelerator, setting,
                                                                   applied):
    from thermal_action.config import load_config
    from thermal_action.training import train as train_module

    calls = []
    monkeypatch.setattr(train_module, "reuse_freed_memory", lambda: calls.append(1) or True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cfg = load_config(None, [f"trainer.accelerator={accelerator}", f"trainer.reuse_freed_memory={setting}",
                             "trainer.precision=32-true", "trainer.progress_bar=false"])
    train_module.build_trainer(cfg, tmp_path, [])
    assert bool(calls) is applied


def test_validation_that_overlaps_training_is_warned_about_and_recorded(synth_copy, tiny_config, tmp_path, caplog):
    """The only validation keyframe is also a training keyframe: validation scores what was
    trained on, and the fall threshold is calibrated on it. Warned, and on record."""
    from thermal_action.models.checkpoint import read_checkpoint_info

    train_ann = json.loads((synth_copy / "annotations" / "train.json").read_text())
    image = next(im for im in train_ann["images"] if any(a["image_id"] == im["id"] for a in train_ann["annotations"]))
    (synth_copy / "annotations" / "val.json").write_text(json.dumps(dict(
        train_ann, images=[image], annotations=[a for a in train_ann["annotations"] if a["image_id"] == image["id"]])))
    with caplog.at_level("WARNING", logger="thermal_action.training.train"):
        result = train(tiny_config(f"data.root={synth_copy}"), tmp_path / "run")
    shared = {"recordings": [image["sensor_id"]], "keyframes": [image["id"]]}
    assert (f"the validation set annotations/val.json shares 1 recording(s) with the training set "
            f"({image['sensor_id']}); 1 of its keyframes are training keyframes ({image['id']})") in caplog.text
    row = json.loads((result.run_dir / "val_summary.jsonl").read_text().splitlines()[-1])
    assert row["validation_overlaps_training"] == shared
    assert read_checkpoint_info(result.best_checkpoint).validation_overlaps_training == shared
    assert f"validation shares 1 recording(s) with training ({image['sensor_id']}), 1 keyframe(s)" in result.summary()
