"""The training system's pieces that run without a Trainer: zero-box batches, prediction records."""

from __future__ import annotations

import pytest
import torch

from thermal_action.data.rooms import NO_LAYOUT, person_zone_features, zone_masks
from thermal_action.structures import Batch, pack_pathways
from thermal_action.training.records import batch_prediction_records, merge_records_by_image
from thermal_action.training.train import build_system


def _batch(rois: torch.Tensor, labels: torch.Tensor, b: int = 2) -> Batch:
    fast = torch.randn(b, 1, 8, 40, 60, generator=torch.Generator().manual_seed(0))
    slow, fast = pack_pathways(fast, 8)
    r = rois.shape[0]
    return Batch(slow=slow, fast=fast, rois=rois, labels=labels, boxes_cxcywh_norm=torch.full((r, 4), 0.2),
                 track_ids=torch.zeros(r, dtype=torch.long), annotation_ids=torch.arange(r),
                 image_ids=[f"S_{i}" for i in range(b)], sensor_ids=["S"] * b,
                 frame_idxs=torch.arange(b) * 10, timestamps=torch.arange(b),
                 zone_masks=torch.from_numpy(zone_masks(NO_LAYOUT, 40, 60))[None].repeat(b, 1, 1, 1),
                 zone_features=torch.from_numpy(person_zone_features(rois[:, 1:].numpy(), NO_LAYOUT, 40, 60)),
                 room_sources=["none"] * b)


def test_zero_box_batch_gives_a_zero_loss_that_backprops(tiny_config):
    system = build_system(tiny_config(), [f"c{i}" for i in range(14)], [1] * 14, ground_truth=None)
    system.model.train()
    batch = _batch(torch.zeros(0, 5), torch.zeros(0, dtype=torch.long))
    loss = system.loss(system(batch), batch.labels)
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    grads = [p.grad for p in system.model.head.parameters() if p.grad is not None]
    assert grads and all(torch.count_nonzero(g) == 0 for g in grads)
    assert batch_prediction_records(batch, torch.zeros(0, 14)) == []


def test_prediction_records_and_rank_merge():
    rois = torch.tensor([[0, 1, 1, 5, 5], [1, 2, 2, 6, 6], [1, 3, 3, 9, 9]], dtype=torch.float32)
    batch = _batch(rois, torch.tensor([2, -1, 0]))
    scores = torch.softmax(torch.randn(3, 14), -1)
    records = batch_prediction_records(batch, scores)
    assert [r["image_id"] for r in records] == ["S_0", "S_1", "S_1"]
    assert records[0]["label"] == 2 and records[1]["label"] is None
    assert len(records[2]["scores"]) == 14
    # A keyframe padded onto two ranks counts once.
    part0 = {"S_0": records[:1], "S_1": records[1:]}
    part1 = {"S_1": records[1:]}
    merged = merge_records_by_image([part0, part1])
    assert len(merged) == 3


def test_the_system_makes_the_alert_rule_from_the_calibration_unless_the_user_fixed_one(tiny_config):
    from thermal_action.alert_rule import AlertRule
    from thermal_action.models.checkpoint import CHECKPOINT_KEY
    from thermal_action.structures import DEFAULT_CLASS_NAMES

    names = list(DEFAULT_CLASS_NAMES)
    system = build_system(tiny_config(), names, [1] * 14, ground_truth=None)
    assert system.alert_rule == AlertRule()  # before any validation: the default rule
    assert system._alert_rule({"threshold": 0.23}) == AlertRule(threshold=0.23)
    assert system._alert_rule({"threshold": 0.0}).threshold == pytest.approx(1e-6)  # an underflowed score
    assert system._alert_rule(None) == AlertRule()
    system.fall_calibration, system.alert_rule = {"threshold": 0.23}, AlertRule(threshold=0.23)
    saved: dict = {}
    system.on_save_checkpoint(saved)
    assert saved[CHECKPOINT_KEY]["alert_rule"] == AlertRule(threshold=0.23).to_dict()
    resumed = build_system(tiny_config(), names, [1] * 14, ground_truth=None)
    resumed.on_load_checkpoint(saved)
    assert resumed.alert_rule == AlertRule(threshold=0.23)
    fixed = build_system(tiny_config("eval.fall_threshold=0.7"), names, [1] * 14, ground_truth=None)
    assert fixed.alert_rule.threshold == 0.7 and fixed._alert_rule({"threshold": 0.23}).threshold == 0.7


def test_an_ensemble_system_returns_mean_logits_and_trains_each_member_on_its_own_loss(tiny_config):
    """The model answers ``(R, K)`` in train and eval mode; the training step alone takes the
    ``(n, R, K)`` member logits, so its loss is the mean of the members' losses, not the loss
    of their mean."""
    names = [f"c{i}" for i in range(14)]
    system = build_system(tiny_config("model.ensemble=3", "model.dropout=0"), names, [1] * 14, ground_truth=None)
    rois = torch.tensor([[0, 1, 1, 9, 9], [1, 20, 10, 30, 22]], dtype=torch.float32)
    batch = _batch(rois, torch.tensor([2, 5]))
    system.model.train()
    mean, members = system(batch), system.training_logits(batch)
    assert mean.shape == (2, 14) and members.shape == (3, 2, 14)
    torch.testing.assert_close(mean, members.mean(dim=0))
    per_member = torch.stack([system.loss(m, batch.labels) for m in members]).mean()
    torch.testing.assert_close(system.training_step(batch, 0), per_member)
    assert not torch.isclose(per_member, system.loss(mean, batch.labels))
    system.model.eval()
    assert system(batch).shape == (2, 14)
