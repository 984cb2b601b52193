"""A miniature demo run: dataset, calibrated training, held-out evaluation, picture, summary."""

from __future__ import annotations

import json

import torch

from thermal_action.demo import run_demo

TINY = ["model.head_dim=32", "data.num_frames=16", "data.batch_size=4", "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=2", "trainer.num_sanity_val_steps=0", "trainer.progress_bar=false"]


def test_mini_demo_writes_everything(tmp_path):
    from PIL import Image

    torch.set_num_threads(1)
    result = run_demo(tmp_path, minutes=1e-4, overrides=TINY, num_recordings=3, val_recordings=1,
                      frames_per_recording=80)
    assert result.epochs == 2  # the budget is tiny: the minimum of two epochs
    assert (result.eval_dir / "metrics.json").is_file() and (result.eval_dir / "predictions.json").is_file()
    assert (result.run_dir / "checkpoints" / "best.ckpt").is_file()
    img = Image.open(result.picture)
    assert img.width > 5 * 60 * 6 and img.height > 40 * 6  # five upscaled frames in a row
    summary = json.loads((tmp_path / "demo_summary.json").read_text())
    for key in ("frame_map", "top1_accuracy", "macro_f1"):
        assert key in summary["metrics"] and key in summary["prior_metrics"]
    assert 0.0 <= summary["metrics"]["frame_map"] <= 1.0
    text = result.format_text()
    assert "class prior" in text and str(result.picture) in text
    # Bed versus floor: each lying class's top-1 recall and the boxes it rests on.
    for key in ("fall_top1_recall", "bed_lying_top1_recall"):
        assert key in summary["metrics"] and key.replace("_recall", "_boxes") in summary["metrics"]
    assert "fall top-1 recall" in text and "bed-lying top-1 recall" in text and "bed versus floor" in text
    # The room of every held-out keyframe is known: the dataset's rooms.json covers recordings
    # whose annotations have no furniture boxes.
    evaluated = json.loads((result.eval_dir / "metrics.json").read_text())["evaluated"]
    assert evaluated["rooms_file"] == "rooms.json" and "none" not in evaluated["keyframes_by_room_source"]


class _FakeBatch:
    def __init__(self, clips: int) -> None:
        self.num_clips = clips
        self.labels = torch.zeros(clips, dtype=torch.long)


class _FakeDataset:
    def preload(self) -> None:
        pass


class _FakeDatamodule:
    def __init__(self, batches: int, clips: int = 4) -> None:
        self.train_dataset = _FakeDataset()
        self._batches = [_FakeBatch(clips) for _ in range(batches)]

    def train_dataloader(self):
        return iter(self._batches)


class _FakeSystem:
    def __init__(self) -> None:
        self.model = torch.nn.Linear(2, 3)
        self.model.feature_bank = None

    def training_logits(self, batch):
        return self.model(torch.ones(batch.num_clips, 2))

    def loss(self, logits, labels):
        return torch.nn.functional.cross_entropy(logits, labels)


def _clock(step_seconds, monkeypatch):
    """perf_counter that advances by the given step durations (start and end of each step)."""
    import thermal_action.demo as demo

    ticks = []
    t = 0.0
    for s in step_seconds:
        ticks += [t, t + s]
        t += s + 1.0
    it = iter(ticks)
    monkeypatch.setattr(demo.time, "perf_counter", lambda: next(it))


def test_speed_calibration_is_the_median_after_warmup(monkeypatch):
    from thermal_action.config import Config
    from thermal_action.demo import measure_seconds_per_clip

    cfg = Config()
    system = _FakeSystem()
    before = {k: v.clone() for k, v in system.model.state_dict().items()}
    # 3 warm-up steps (slow), then 5 timed ones with one outlier: the median ignores both.
    _clock([9.0, 9.0, 9.0, 2.0, 2.0, 8.0, 2.0, 2.0], monkeypatch)
    assert measure_seconds_per_clip(cfg, system, _FakeDatamodule(batches=10)) == 2.0 / 4
    for k, v in system.model.state_dict().items():  # the model is restored
        assert torch.equal(v, before[k])

    # fewer batches than the warm-up: the warm-up steps count (a slower estimate, never faster)
    _clock([6.0, 4.0], monkeypatch)
    assert measure_seconds_per_clip(cfg, _FakeSystem(), _FakeDatamodule(batches=2)) == 5.0 / 4
