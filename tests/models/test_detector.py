"""ActionDetector: every variant trains (the seed's backward crash), zero boxes, interaction, memory."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from thermal_action.config import ModelConfig
from thermal_action.models.build import build_model
from thermal_action.models.detector import ActionDetector
from thermal_action.models.head import ActionHead
from thermal_action.models.interaction import InteractionStructure
from thermal_action.models.variants import VARIANTS

K = 5


def _detector(
    name: str,
    interaction: str = "none",
    dropout: float = 0.5,
    zero_init: bool = False,
    head_dim: int = 32,
    interaction_dim: int = 16,
) -> ActionDetector:
    """A detector whose every parameter influences the loss at init (no zero-init gates)."""
    backbone = VARIANTS[name](zero_init_residual=zero_init)
    structure = None
    if interaction != "none":
        structure = InteractionStructure(
            sum(backbone.out_channels), mode=interaction, dim_inner=interaction_dim, dropout=0.1,
            init_std=0.1, zero_init_out=zero_init,
        )
    head = ActionHead(
        backbone.out_channels, K, 1.0 / backbone.output_stride, head_dim=head_dim, dropout=dropout,
        roi_output_size=3, roi_sampling_ratio=2, interaction=structure,
    )
    return ActionDetector(backbone, head, memory_window=2)


@pytest.fixture(name="inputs")
def _inputs_fixture(variant_clip):
    """``fn(name, alpha, batch=2) -> (slow, fast, rois)``: two boxes in clip 0, one in clip 1."""

    def make(name: str, alpha: int, batch: int = 2):
        slow, fast = variant_clip(name, alpha, batch)
        rois = torch.tensor([[0, 2.0, 3.0, 14.0, 15.0], [0, 10.0, 8.0, 22.0, 20.0], [1, 5.0, 5.0, 15.0, 25.0]])
        return slow, fast, rois

    return make


def _loss(logits: torch.Tensor) -> torch.Tensor:
    labels = torch.arange(logits.shape[0]) % K
    return F.cross_entropy(logits, labels, reduction="sum") + 0.0 * logits.sum()


def _check_grads(model: torch.nn.Module, skip: tuple[str, ...] = (), nonzero: bool = True) -> None:
    for name, p in model.named_parameters():
        if not p.requires_grad or name.startswith(skip):
            continue
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"
        if nonzero:
            assert p.grad.abs().sum() > 0, f"{name} got an all-zero gradient"


@pytest.mark.parametrize("name", list(VARIANTS))
def test_every_variant_trains_with_dropout_under_anomaly_detection(name, inputs):
    model = _detector(name).train()
    slow, fast, rois = inputs(name, model.alpha)
    with torch.autograd.set_detect_anomaly(True):
        logits = model(slow, fast, rois)
        assert logits.shape == (3, K)
        _loss(logits).backward()
    _check_grads(model)


@pytest.mark.parametrize("name", ["slowfast_tiny", "slowfast_small"])
def test_default_init_gives_finite_gradients(name, inputs):
    # Zero-init residual BN and interaction out-convs: gradients exist and are finite
    # (some are exactly zero at the first step by construction).
    model = build_model(ModelConfig(variant=name, interaction="denseserial", head_dim=64, interaction_dim=32), K)
    slow, fast, rois = inputs(name, model.alpha)
    with torch.autograd.set_detect_anomaly(True):
        _loss(model(slow, fast, rois, clip_keys=[("a", 1), ("a", 2)])).backward()
    _check_grads(model, skip=("head.interaction.O_block", "head.interaction.object_dim_reduce"), nonzero=False)


@pytest.mark.parametrize(
    "name, interaction", [("slowfast_tiny", "none"), ("slowfast_r50_4x16", "none"), ("slowfast_tiny", "denseserial")]
)
def test_zero_boxes(name, interaction, inputs):
    model = _detector(name, interaction=interaction).train()
    slow, fast, rois = inputs(name, model.alpha)
    keys = [("s", 1), ("s", 3)] if interaction != "none" else None
    model(slow, fast, rois, clip_keys=keys)  # fills the memory, if any
    keys = [("s", 2), ("s", 4)] if interaction != "none" else None
    logits = model(slow, fast, torch.zeros(0, 5), clip_keys=keys, object_rois=torch.zeros(0, 5))
    assert logits.shape == (0, K)
    model.zero_grad(set_to_none=True)
    _loss(logits).backward()
    _check_grads(model, nonzero=False)


def test_clip_without_boxes_next_to_clip_with_boxes(inputs):
    model = _detector("slowfast_tiny", interaction="denseserial").train()
    slow, fast, rois = inputs("slowfast_tiny", model.alpha, batch=3)  # clip 2 has no box
    logits = model(slow, fast, rois, clip_keys=[("s", 1), ("s", 2), ("s", 3)])
    assert logits.shape == (3, K)
    _loss(logits).backward()
    assert model.feature_bank.get(("s", 3)).shape == (0, model.head.dim_person)


@pytest.mark.parametrize("mode", ["parallel", "serial", "denseserial"])
def test_interaction_modes_train_with_memory_filled_over_two_steps(mode, inputs):
    model = _detector("slowfast_tiny", interaction=mode).train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    slow, fast, rois = inputs("slowfast_tiny", model.alpha)
    # Two objects per clip: with a single key the softmax is constant and "query" gets no gradient.
    n_obj = torch.tensor(
        [[0, 1.0, 1.0, 9.0, 9.0], [0, 30.0, 2.0, 40.0, 12.0], [1, 20.0, 10.0, 30.0, 20.0], [1, 0.0, 20.0, 8.0, 30.0]]
    )

    # Step 1: empty bank (first epoch); it fills with the two keyframes.
    logits = model(slow, fast, rois, clip_keys=[("room1", 10), ("room1", 20)], object_rois=n_obj)
    _loss(logits).backward()
    assert len(model.feature_bank) == 2
    opt.step()
    opt.zero_grad(set_to_none=True)

    # Step 2: keyframe 15 sits between 10 and 20, so the M blocks read both.
    memory = model.feature_bank.read(
        [("room1", 15), ("other", 1)], model.head.dim_person, torch.device("cpu"), torch.float32
    )
    assert memory.offsets.tolist() == [-1, -1, 1] and memory.clip_index.tolist() == [0, 0, 0]
    with torch.autograd.set_detect_anomaly(True):
        logits = model(slow, fast, rois, clip_keys=[("room1", 15), ("other", 1)], object_rois=n_obj)
        assert logits.shape == (3, K)
        _loss(logits).backward()
    _check_grads(model)
    bank_feat = model.feature_bank.get(("room1", 15))
    assert bank_feat.shape == (2, model.head.dim_person) and not bank_feat.requires_grad


def test_without_object_boxes_the_o_blocks_are_intentionally_unused(inputs):
    model = _detector("slowfast_tiny", interaction="denseserial").train()
    slow, fast, rois = inputs("slowfast_tiny", model.alpha)
    model(slow, fast, rois, clip_keys=[("r", 1), ("r", 3)])
    _loss(model(slow, fast, rois, clip_keys=[("r", 2), ("r", 4)])).backward()
    unused = ("head.interaction.O_block", "head.interaction.object_dim_reduce")
    for name, p in model.named_parameters():
        if name.startswith(unused):
            assert p.grad is None, name
    # A skipped O block passes the P output through, so the first dense mix averages two
    # equal vectors and its weights get an exactly zero (finite) gradient.
    _check_grads(model, skip=unused + ("head.interaction.dense_params.2",))
    _check_grads(model.head.interaction.dense_params, nonzero=False)


def test_frozen_backbone_gets_no_gradient_and_unfreezes(inputs):
    model = _detector("slowfast_tiny").train()
    model.freeze_backbone()
    slow, fast, rois = inputs("slowfast_tiny", model.alpha)
    bn = model.backbone.s3.pathway0_res0.branch2.a_bn
    before = bn.running_mean.clone()
    _loss(model(slow, fast, rois)).backward()
    assert all(p.grad is None for p in model.backbone.parameters())
    _check_grads(model.head)
    torch.testing.assert_close(bn.running_mean, before)
    model.unfreeze_backbone()
    model.train()
    model.zero_grad(set_to_none=True)
    _loss(model(slow, fast, rois)).backward()
    _check_grads(model)


def test_head_equals_roi_align_and_mlp_by_hand(inputs, roi_align_loop):
    """Numerical reference: logits of two boxes from loop RoIAlign + max + MLP in float64."""
    model = _detector("slowfast_tiny", dropout=0.3).eval()
    head = model.head
    slow, fast, _ = inputs("slowfast_tiny", model.alpha)
    rois = torch.tensor([[0, 3.3, 4.1, 17.6, 21.9], [1, 30.2, 0.0, 47.5, 11.4]])
    with torch.no_grad():
        feats = model.backbone(slow, fast)
        logits = model(slow, fast, rois)
    pooled = []
    for fmap in feats:
        cells = roi_align_loop(fmap.double().mean(2), rois, 3, 3, 1.0 / model.backbone.output_stride, 2, True)
        pooled.append(cells.amax(dim=(2, 3)))
    x = torch.cat(pooled, dim=1)
    w = {k: v.double() for k, v in head.state_dict().items()}
    x = torch.relu(x @ w["fc1.weight"].T + w["fc1.bias"])
    x = torch.relu(x @ w["fc2.weight"].T + w["fc2.bias"])
    ref = x @ w["classifier.weight"].T + w["classifier.bias"]
    torch.testing.assert_close(logits.double(), ref, rtol=1e-4, atol=1e-5)


def test_channels_last_and_bf16_autocast(inputs):
    model = _detector("slowfast_tiny", interaction="serial").eval()
    slow, fast, rois = inputs("slowfast_tiny", model.alpha)
    with torch.no_grad():
        ref = model(slow, fast, rois)
        cl = model.to(memory_format=torch.channels_last_3d)
        got = cl(slow.to(memory_format=torch.channels_last_3d), fast.to(memory_format=torch.channels_last_3d), rois)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = cl(slow, fast, rois)
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4)
    assert (low.float() - ref).abs().max() <= 0.1 * ref.abs().max()

    model.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(slow, fast, rois, clip_keys=[("x", 1), ("x", 2)])
    assert torch.isfinite(logits).all()
    _loss(logits.float()).backward()
    _check_grads(model, skip=("head.interaction.O_block", "head.interaction.object_dim_reduce"), nonzero=False)


def test_persons_attend_only_within_their_clip():
    model = _detector("slowfast_tiny", interaction="parallel").eval()
    structure = model.head.interaction
    person = torch.randn(4, structure.dim_person)
    clip = torch.tensor([0, 0, 1, 1])
    with torch.no_grad():
        ref = structure(person, clip)
        changed = person.clone()
        changed[2:] += 5.0
        got = structure(changed, clip)
    torch.testing.assert_close(got[:2], ref[:2])
    assert not torch.allclose(got[2:], ref[2:])


def test_build_model_from_config(monkeypatch):
    model = build_model(ModelConfig(variant="slowfast_tiny", alpha=4, head_dim=64, dropout=0.1), 14)
    assert model.alpha == 4 and model.num_classes == 14
    assert model.head.fc1.weight.shape == (64, sum(model.backbone.out_channels))
    assert model.feature_bank is None
    # No in-place module anywhere (the earlier model's in-place dropout broke backward).
    assert not any(getattr(m, "inplace", False) for m in model.modules())

    frozen = build_model(ModelConfig(variant="slowfast_tiny", frozen_bn=True), 3).train()
    bns = [m for m in frozen.modules() if isinstance(m, torch.nn.BatchNorm3d)]
    assert bns and all(not m.training and not m.weight.requires_grad for m in bns)

    with pytest.raises(ValueError, match="slowfast_tiny"):
        build_model(ModelConfig(variant="slowfast_tiney"), 3)
    with pytest.raises(ValueError, match="interaction"):
        build_model(ModelConfig(interaction="dense"), 3)

    import thermal_action.models.pretrained.loading as pretrained_loading

    calls = []
    monkeypatch.setattr(pretrained_loading, "load_pretrained", lambda m, path: calls.append((m, path)))
    loaded = build_model(ModelConfig(variant="slowfast_tiny", pretrained="weights.pt"), 3)
    assert calls == [(loaded, "weights.pt")]


def test_alphaction_interaction_shapes_and_names():
    structure = InteractionStructure(2304, mode="denseserial")
    shapes = {k: tuple(v.shape) for k, v in structure.state_dict().items()}
    assert shapes["person_dim_reduce.weight"] == (1024, 2304, 1, 1, 1)
    assert shapes["M_block_1.temporal_position_k"] == (61, 1, 1024, 1, 1, 1)
    assert shapes["M_block_2.out.weight"] == (2304, 1024, 1, 1, 1)
    assert shapes["M_block_2.shortcut.bias"] == (2304,)
    assert "M_block_1.shortcut.weight" not in shapes
    assert [shapes[f"dense_params.{i}"] for i in range(2, 6)] == [(i, 1024, 1, 1, 1) for i in range(2, 6)]
    assert len(shapes) == 4 * 2 + 6 * 8 + 2 * 2 + 2 + 4
