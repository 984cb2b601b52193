"""Self-supervised pretraining (``thermal_action.training.pretrain``, ``thermal-action pretrain``)."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
import yaml

from thermal_action.models.build import build_model
from thermal_action.training.pretrain import ContrastiveModel, TwoViewBatcher, info_nce, pretrain, propose_people

#: Person-crop CNN on small tubes: what the shipped cpu_default pretrains, at test size.
TUBE = ["model.variant=crop_cnn", "model.tube_size=8", "model.head_dim=16", "pretrain.epochs=1",
        "pretrain.batch_size=4", "pretrain.max_samples=8", "pretrain.frame_step=5"]


def _info_nce_loop(za: np.ndarray, zb: np.ndarray, temperature: float) -> float:
    """NT-Xent written out one anchor at a time (the reference)."""
    z = np.concatenate([za, zb])
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    n = len(za)
    total = 0.0
    for i in range(2 * n):
        pair = (i + n) % (2 * n)
        logits = [z[i] @ z[j] / temperature for j in range(2 * n) if j != i]
        others = [j for j in range(2 * n) if j != i]
        total += -(logits[others.index(pair)] - math.log(sum(math.exp(v) for v in logits)))
    return total / (2 * n)


def test_info_nce_matches_the_written_out_loss():
    rng = np.random.default_rng(0)
    za, zb = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    loss, _ = info_nce(torch.tensor(za), torch.tensor(zb), 0.3)
    assert loss.item() == pytest.approx(_info_nce_loop(za, zb, 0.3), rel=1e-5)


def test_info_nce_accuracy_is_one_when_views_agree_and_items_differ():
    z = torch.eye(4) * 3.0
    loss, acc = info_nce(z, z.clone(), 0.1)
    assert acc.item() == 1.0
    assert loss.item() < 1e-3
    with pytest.raises(ValueError, match="two"):
        info_nce(z[:1], z[:1], 0.1)


@pytest.mark.parametrize("extra", [TUBE, ["model.variant=slowfast_tiny"]], ids=["crop_cnn_tubes", "slowfast_frame"])
def test_contrastive_model_shapes_and_gradients(tiny_config, synth_root, extra):
    """Two views of a few real synthetic people: (R, P) embeddings, finite gradients everywhere
    the objective reaches (backbone and projection; the classifier head is not trained here)."""
    from thermal_action.data.hdf5 import read_recording

    cfg = tiny_config(*extra)
    torch.manual_seed(0)
    detector = build_model(cfg.model, num_classes=3)
    model = ContrastiveModel(detector, detector.head.dim_person, 8)
    frames = read_recording(sorted((synth_root / "frames").glob("*.h5"))[0]).frames
    samples = propose_people(frames, 10, 0.3, 0)[:3]
    assert len(samples) == 3
    batcher = TwoViewBatcher(cfg, [frames], detector.alpha)
    rng = np.random.default_rng(0)
    za = model(*batcher.view(samples, rng, False))
    zb = model(*batcher.view(samples, rng, True))
    assert za.shape == zb.shape == (3, 8)
    loss, _ = info_nce(za, zb, 0.2)
    loss.backward()
    trained = [*detector.backbone.named_parameters(), *model.projection.named_parameters()]
    for name, p in trained:
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert any(p.grad.abs().sum() > 0 for _, p in trained)


def test_pretrain_writes_weights_that_train_loads(tiny_config, synth_root, tmp_path):
    cfg = tiny_config(*TUBE, "seed=3")
    result = pretrain(cfg, [synth_root / "frames"], tmp_path / "pre")
    assert result.weights.is_file() and result.samples > 0 and result.epochs == 1
    assert math.isfinite(result.final_loss)
    log = [json.loads(line) for line in (tmp_path / "pre" / "pretrain_log.jsonl").read_text().splitlines()]
    assert len(log) == 1 and log[0]["steps"] == 2
    saved = yaml.safe_load((tmp_path / "pre" / "config.yaml").read_text())
    assert saved["pretrain"]["max_samples"] == 8 and saved["seed"] == 3

    from safetensors.torch import load_file

    tensors = load_file(str(result.weights))
    fine = tiny_config(*TUBE, f"model.pretrained={result.weights}")
    model = build_model(fine.model, num_classes=5)
    for key, value in model.backbone.state_dict().items():
        assert torch.equal(value, tensors[f"backbone.{key}"]), key
    fresh = build_model(tiny_config(*TUBE).model, num_classes=5)
    assert not torch.equal(fresh.backbone.body[0].weight, model.backbone.body[0].weight)

    # Same seed, same weights; an existing run is not overwritten.
    again = pretrain(cfg, [synth_root / "frames"], tmp_path / "pre2")
    for key, value in load_file(str(again.weights)).items():
        assert torch.equal(value, tensors[key]), key
    with pytest.raises(FileExistsError, match="already holds"):
        pretrain(cfg, [synth_root / "frames"], tmp_path / "pre")
    # An ensemble config (the CPU default) pretrains the one model its members are made of.
    ensemble = pretrain(tiny_config(*TUBE, "seed=3", "model.ensemble=2"), [synth_root / "frames"], tmp_path / "ens")
    for key, value in load_file(str(ensemble.weights)).items():
        assert torch.equal(value, tensors[key]), key


def test_pretrain_refuses_what_it_cannot_do(tiny_config, tmp_path):
    with pytest.raises(FileNotFoundError, match="no .h5 recordings"):
        pretrain(tiny_config(*TUBE), [tmp_path], tmp_path / "out")
    with pytest.raises(ValueError, match="batch_size"):
        pretrain(tiny_config(*TUBE, "pretrain.batch_size=1"), [tmp_path], tmp_path / "out")
    loaded = tiny_config(*TUBE)
    # Past the config loader (dataclasses.replace checks nothing): pretrain still checks the ranges.
    built_in_code = dataclasses.replace(loaded, pretrain=dataclasses.replace(loaded.pretrain, batch_size=1))
    with pytest.raises(ValueError, match=r"pretrain\.batch_size.*out of range"):
        pretrain(built_in_code, [tmp_path], tmp_path / "out")


def test_pretrain_command(synth_root, tmp_path, capsys):
    from thermal_action.cli import main

    out = tmp_path / "cli"
    args = ["pretrain", "--out", str(out), "--recordings", str(synth_root / "frames"),
            *TUBE, "data.num_frames=16", "trainer.accelerator=cpu"]
    assert main(args) == 0
    assert "model.pretrained=" in capsys.readouterr().out
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["model"]["tube_size"] == 8 and saved["data"]["num_frames"] == 16
