"""Checkpoints load with weights_only=True and rebuild the trained detector on their own."""

from __future__ import annotations

import argparse

import pytest
import torch

from thermal_action.structures import DEFAULT_CLASS_NAMES, pack_pathways
from thermal_action.models.checkpoint import CHECKPOINT_KEY, load_checkpoint, read_checkpoint_info


@pytest.mark.parametrize("which", ["best_checkpoint", "last_checkpoint"])
def test_checkpoint_loads_with_weights_only(trained_run, which):
    ckpt = torch.load(getattr(trained_run, which), map_location="cpu", weights_only=True)
    extras = ckpt[CHECKPOINT_KEY]
    assert extras["class_names"] == list(DEFAULT_CLASS_NAMES)
    assert isinstance(extras["config"], dict) and extras["config"]["model"]["variant"] == "slowfast_tiny"
    assert extras["score_activation"] == "softmax"
    assert any(k.startswith("model.backbone.") for k in ckpt["state_dict"])


def test_load_checkpoint_gives_the_trained_model_and_its_info(trained_run):
    loaded = load_checkpoint(trained_run.best_checkpoint)
    model, cfg, names = loaded.model, loaded.config, loaded.class_names
    assert names == list(DEFAULT_CLASS_NAMES)
    assert cfg.data.num_frames == 16 and cfg.model.head_dim == 32
    assert not model.training
    state = torch.load(trained_run.best_checkpoint, weights_only=True)["state_dict"]
    for k, v in model.state_dict().items():
        assert torch.equal(v, state["model." + k]), k
    fast = torch.randn(1, 1, 8, 40, 60, generator=torch.Generator().manual_seed(0))
    slow, fast = pack_pathways(fast, model.alpha)
    logits = model(slow, fast, torch.tensor([[0.0, 10, 10, 20, 22]]))
    assert logits.shape == (1, len(names)) and torch.isfinite(logits).all()
    info = read_checkpoint_info(trained_run.last_checkpoint)
    assert info.global_step == trained_run.global_step


def test_a_foreign_or_missing_file_is_a_clear_error(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"model": {"w": torch.zeros(1)}}, path)
    with pytest.raises(ValueError, match="not a thermal-action training checkpoint"):
        load_checkpoint(path)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "nope.ckpt")

    # Any pickled Python object outside the weights-only allow-list is refused, not run.
    bad = tmp_path / "pickled.ckpt"
    torch.save({"state_dict": {}, CHECKPOINT_KEY: argparse.Namespace(code="x")}, bad)
    with pytest.raises(ValueError, match="weights_only"):
        load_checkpoint(bad)


def test_evaluate_predict_and_export_read_the_checkpoint_once(trained_run, synth_root, tmp_path, monkeypatch):
    import thermal_action.models.checkpoint as checkpoint_module
    from thermal_action.inference.export import export_onnx
    from thermal_action.inference.predictor import Predictor
    from thermal_action.training.evaluate import evaluate_checkpoint

    reads = []
    real_load = torch.load

    def counting_load(path, *args, **kwargs):
        reads.append(str(path))
        return real_load(path, *args, **kwargs)

    monkeypatch.setattr(checkpoint_module.torch, "load", counting_load)
    ckpt = str(trained_run.best_checkpoint)
    evaluate_checkpoint(ckpt, synth_root, "annotations/val.json", tmp_path / "ev", overrides=["eval.plots=false"])
    assert reads.count(ckpt) == 1
    reads.clear()
    predictor = Predictor.from_checkpoint(ckpt)
    assert reads.count(ckpt) == 1 and list(predictor.class_names) == list(DEFAULT_CLASS_NAMES)
    reads.clear()
    export_onnx(ckpt, tmp_path / "m.onnx")
    assert reads.count(ckpt) == 1
