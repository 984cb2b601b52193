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
    result = run_demo(tmp_path, minutes=0.02, overrides=TINY, num_recordings=3, val_recordings=1,
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
