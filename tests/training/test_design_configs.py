"""The four configurations of the original design (and the CPU default) load and train one step."""

from __future__ import annotations

import re

import pytest
import torch

from thermal_action import configs
from thermal_action.config import load_config, replace_values
from thermal_action.training.datamodule import build_datamodule, build_datasets, class_counts
from thermal_action.training.schedule import build_optimizer
from thermal_action.training.train import build_system

DESIGN = ["slowfast_r50_4x16", "slowfast_r101_8x8", "slowfast_r101_8x8_denseserial", "slowfast_r50_scratch"]


@pytest.mark.parametrize("name", DESIGN)
def test_design_config_is_the_original_setup(name):
    text = configs.find(name).read_text()
    cfg = load_config(name)
    assert cfg.data.scale == pytest.approx(6.4)  # 40x60 -> 256x384
    assert (round(40 * cfg.data.scale), round(60 * cfg.data.scale)) == (256, 384)
    assert cfg.data.num_frames == 64 and cfg.data.frame_stride == 2
    assert ("r101" in name) == ("r101" in cfg.model.variant)
    assert ("denseserial" in name) == (cfg.model.interaction == "denseserial")
    if name.endswith("scratch"):
        assert cfg.model.pretrained == "" and cfg.optim.freeze_backbone_epochs == 0
    else:
        # States the file it expects, in the config and in a comment.
        assert cfg.model.pretrained.endswith(".pth") and "Pretrained weights" in text
        assert cfg.optim.freeze_backbone_epochs > 0


@pytest.mark.parametrize("name", [*DESIGN, "cpu_default"])
def test_config_trains_one_step_on_a_tiny_input(name, synth_root, tmp_path):
    """Config -> datasets -> model, loss, optimiser -> one optimiser step, on native 40x60 clips of
    16 frames (alpha 8: 1 slow frame; alpha 4: 2), batch 2, without the weights file. (The
    Lightning loop itself is covered by test_train.py; a full-size checkpoint would only add
    seconds of disk writes.)"""
    overrides = [f"data.root={synth_root}", "data.scale=1", "data.num_frames=16", "data.batch_size=2",
                 "data.num_workers=0", "model.pretrained=", "trainer.accelerator=cpu"]
    cfg = load_config(name, overrides)
    if cfg.model.interaction != "none":
        cfg = replace_values(cfg, {"model.interaction_dim": 32})  # the structure is still built and run, just narrower
    cfg = replace_values(cfg, {"data.synthetic_frames": min(cfg.data.synthetic_frames, 60)})  # a config's synthetic mix, kept tiny
    torch.manual_seed(0)
    train_ds, val_ds = build_datasets(cfg, synthetic_dir=tmp_path / "synthetic")
    system = build_system(cfg, list(train_ds.class_names), class_counts(train_ds), ground_truth=None)
    dm = build_datamodule(cfg, system.model.alpha, train_ds, val_ds)
    batch = next(iter(dm.train_dataloader()))
    assert batch.slow.shape[2] * system.model.alpha == batch.fast.shape[2] == 8
    opt = build_optimizer(system.model, cfg.optim.optimizer, cfg.optim.lr, cfg.optim.weight_decay)
    before = {k: v.detach().clone() for k, v in system.model.named_parameters() if v.requires_grad}
    system.model.train()
    loss = system.loss(system(batch), batch.labels)
    assert torch.isfinite(loss) and loss.item() > 0
    loss.backward()
    opt.step()
    after = dict(system.model.named_parameters())
    # An ensemble's members are "members.<i>.<the single model's names>".
    changed = [re.sub(r"^members\.\d+\.", "", k) for k in before if not torch.equal(before[k], after[k].detach())]
    assert any(k.startswith("head.classifier") for k in changed)
    assert any(k.startswith("backbone.") for k in changed)
    assert all(torch.isfinite(after[k]).all() for k in before)
