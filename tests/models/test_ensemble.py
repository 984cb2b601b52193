"""EnsembleDetector: the mean of its members' logits in every mode; member logits for one loss per member."""

from __future__ import annotations

import pytest
import torch

from thermal_action.config import ModelConfig
from thermal_action.models.build import build_model
from thermal_action.models.ensemble import EnsembleDetector
from thermal_action.training.losses import ActionLoss

K = 4
ROIS = torch.tensor([[0, 10.0, 10.0, 22.0, 18.0], [1, 40.0, 20.0, 46.0, 26.0]])


def _ensemble(n: int = 3) -> EnsembleDetector:
    torch.manual_seed(0)
    cfg = ModelConfig(variant="crop_cnn", tube_size=16, head_dim=16, dropout=0.0, roi_output_size=3, ensemble=n)
    model = build_model(cfg, K)
    assert isinstance(model, EnsembleDetector) and len(model.members) == n
    return model


def _clip():
    gen = torch.Generator().manual_seed(1)
    fast = torch.randn(2, 1, 8, 40, 60, generator=gen)
    return fast[:, :, ::1], fast


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_members_differ_and_the_output_is_their_mean_in_both_modes(mode):
    model = _ensemble()
    slow, fast = _clip()
    model.train(mode == "train")
    with torch.no_grad():
        each = torch.stack([m(slow, fast, ROIS) for m in model.members])
        mean = model(slow, fast, ROIS)
        members = model.member_logits(slow, fast, ROIS)
    assert mean.shape == (2, K) and members.shape == (3, 2, K)
    torch.testing.assert_close(mean, each.mean(dim=0))
    torch.testing.assert_close(members, each)
    assert not torch.allclose(each[0], each[1])  # independent initialisations


def test_training_gives_each_member_its_own_loss_and_finite_gradients():
    model = _ensemble()
    model.train()
    slow, fast = _clip()
    logits = model.member_logits(slow, fast, ROIS)
    assert logits.shape == (3, 2, K)
    labels = torch.tensor([0, 3])
    loss_fn = ActionLoss("softmax", K)
    loss = loss_fn(logits, labels)
    torch.testing.assert_close(loss, torch.stack([loss_fn(x, labels) for x in logits]).mean())
    loss.backward()
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_ensemble_settings_reach_every_member():
    model = _ensemble(2)
    model.set_test_time_augmentation(4)
    assert all(m.test_time_augmentation == 4 for m in model.members) and model.test_time_augmentation == 4
    assert model.alpha == 1 and model.num_classes == K
    with pytest.raises(ValueError, match="ensemble must be >= 1"):
        build_model(ModelConfig(ensemble=0), K)
    with pytest.raises(ValueError, match="at least 2"):
        EnsembleDetector([model.members[0]])
