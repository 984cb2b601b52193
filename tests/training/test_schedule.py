"""Learning-rate schedule values at given steps; optimiser parameter groups."""

import math

import pytest
import torch
from torch import nn

from thermal_action.training.schedule import LrSchedule, build_optimizer, build_schedule, parameter_groups


def test_warmup_then_cosine_values():
    s = LrSchedule(total_steps=110, warmup_steps=10, kind="cosine", warmup_start_factor=0.0, min_factor=0.0)
    assert s(0) == 0.0
    assert s(5) == pytest.approx(0.5)
    assert s(10) == pytest.approx(1.0)
    assert s(60) == pytest.approx(0.5)  # half-way through the decay
    assert s(35) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.25)))
    assert s(110) == pytest.approx(0.0, abs=1e-12)
    assert s(500) == pytest.approx(0.0, abs=1e-12)  # past the end stays at the floor


def test_cosine_floor_and_warmup_start():
    s = LrSchedule(total_steps=20, warmup_steps=4, warmup_start_factor=0.1, min_factor=0.05)
    assert s(0) == pytest.approx(0.1)
    assert s(2) == pytest.approx(0.55)
    assert s(20) == pytest.approx(0.05)


def test_step_schedule_from_epochs():
    # 10 epochs of 5 steps; warm-up of half an epoch; decay at epochs 6 and 8.
    s = build_schedule(50, 10, "step", warmup_epochs=0.5, warmup_start_factor=0.0, milestone_epochs=(6, 8), gamma=0.1)
    assert s.warmup_steps == 2 and s.milestones == (30, 40)
    assert s(1) == pytest.approx(0.5)
    assert s(29) == pytest.approx(1.0)
    assert s(30) == pytest.approx(0.1)
    assert s(45) == pytest.approx(0.01)


def test_constant_and_bad_kind():
    assert build_schedule(10, 1, "constant", warmup_epochs=0)(7) == 1.0
    with pytest.raises(ValueError, match="optim.schedule"):
        build_schedule(10, 1, "linear", warmup_epochs=0)
    # A warm-up longer than the run is capped to the run.
    assert build_schedule(10, 1, "cosine", warmup_epochs=5).warmup_steps == 10


def test_lambda_lr_follows_the_schedule():
    model = nn.Linear(3, 2)
    opt = build_optimizer(model, "sgd", lr=0.1, weight_decay=0.0)
    s = LrSchedule(total_steps=10, warmup_steps=2, warmup_start_factor=0.5)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, s)
    lrs = []
    for _ in range(4):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[:3] == pytest.approx([0.05, 0.075, 0.1])


def test_no_weight_decay_on_norms_and_biases():
    model = nn.Sequential(nn.Conv3d(1, 4, 3), nn.BatchNorm3d(4), nn.Flatten(), nn.LazyLinear(2))
    model(torch.zeros(2, 1, 3, 3, 3))
    model[1].weight.requires_grad_(False)  # frozen parameters are left out
    groups = parameter_groups(model, 0.05)
    decayed = {id(p) for p in groups[0]["params"]}
    plain = {id(p) for p in groups[1]["params"]}
    assert groups[0]["weight_decay"] == 0.05 and groups[1]["weight_decay"] == 0.0
    assert decayed == {id(model[0].weight), id(model[3].weight)}
    assert plain == {id(model[0].bias), id(model[1].bias), id(model[3].bias)}
    opt = build_optimizer(model, "adamw", 1e-3, 0.05)
    assert isinstance(opt, torch.optim.AdamW)
    with pytest.raises(ValueError, match="optim.optimizer"):
        build_optimizer(model, "lamb", 1e-3, 0.05)
