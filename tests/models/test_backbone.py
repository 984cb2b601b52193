"""SlowFast backbone: shapes per variant, parameter names, laterals, stem conversion, freezing."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from thermal_action.models.backbone import rgb_stem_to_thermal
from thermal_action.models.variants import VARIANTS
from thermal_action.models.ops import bn_fold

LAYOUTS = Path(__file__).parent / "data" / "checkpoint_layouts"  # a copy of ../shared/checkpoint_layouts


@pytest.mark.parametrize("name", list(VARIANTS))
def test_variant_output_shapes(name, variant_clip):
    is_full = "_r50" in name or "_r101" in name
    backbone = VARIANTS[name]().eval()
    slow, fast = variant_clip(name, backbone.alpha)
    with torch.no_grad():
        out_slow, out_fast = backbone(slow, fast)
    # Padded convs round up: each stride-2 step maps c cells to ceil(c / 2).
    cells = list(slow.shape[-2:])
    steps = [backbone.s1.pathway0_stem.conv.stride[1]]
    steps += [getattr(backbone, f"s{k}").pathway0_res0.branch2.b.stride[1] for k in range(2, 6)]
    cells = [(c + steps[0] - 1) // steps[0] for c in cells]
    if backbone.s1.pathway0_stem.pool:
        pad = backbone.s1.pathway0_stem.pool_padding
        cells = [(c + 2 * pad - 3) // 2 + 1 for c in cells]
    for step in steps[1:]:
        cells = [(c + step - 1) // step for c in cells]
    stride = steps[0] * (2 if backbone.s1.pathway0_stem.pool else 1)
    for step in steps[1:]:
        stride *= step
    assert backbone.output_stride == stride == (16 if is_full else 4)
    assert out_slow.shape == (2, backbone.out_channels[0], slow.shape[2], *cells)
    assert out_fast.shape == (2, backbone.out_channels[1], fast.shape[2], *cells)
    assert torch.isfinite(out_slow).all() and torch.isfinite(out_fast).all()


@pytest.mark.parametrize("name", [n for n in VARIANTS if n.startswith("slowfast_r50") or n.startswith("slowfast_r101")])
def test_full_size_channel_arithmetic(name):
    sd = VARIANTS[name]().state_dict()
    # Slow stage inputs C + 2*C/8, fast widths 1/8, head input 2048 + 256.
    assert sd["s2.pathway0_res0.branch2.a.weight"].shape[1] == 80
    assert sd["s3.pathway0_res0.branch2.a.weight"].shape[1] == 320
    assert sd["s4.pathway0_res0.branch2.a.weight"].shape[1] == 640
    assert sd["s5.pathway0_res0.branch2.a.weight"].shape[1] == 1280
    assert sd["s1.pathway1_stem.conv.weight"].shape == (8, 1, 5, 7, 7)
    assert sd["s5.pathway1_res2.branch2.c.weight"].shape[0] == 256
    # Temporal kernels: slow 1 in res2-3, 3 in res4-5; fast 3 everywhere.
    assert sd["s3.pathway0_res1.branch2.a.weight"].shape[2] == 1
    assert sd["s4.pathway0_res1.branch2.a.weight"].shape[2] == 3
    assert sd["s2.pathway1_res1.branch2.a.weight"].shape[2] == 3
    depth4 = 23 if "r101" in name else 6
    assert f"s4.pathway0_res{depth4 - 1}.branch2.c_bn.running_var" in sd
    assert f"s4.pathway0_res{depth4}.branch2.c.weight" not in sd


def _alphaction_to_ours(key: str) -> str:
    """AlphAction backbone key -> our key (NAMING.md rules)."""
    key = key[len("backbone.") :]
    p = {"slow": 0, "fast": 1}
    if m := re.fullmatch(r"(slow|fast)\.(conv1|bn1)\.(.+)", key):
        return f"s1.pathway{p[m[1]]}_stem.{'conv' if m[2] == 'conv1' else 'bn'}.{m[3]}"
    if m := re.fullmatch(r"fast\.Tconv(\d)\.conv\.(.+)", key):
        return f"s{m[1]}_fuse.conv_f2s.{m[2]}"
    if m := re.fullmatch(r"(slow|fast)\.res_nl(\d)\.res_(\d+)\.btnk\.conv(\d)\.(conv|bn)\.(.+)", key):
        x = "abc"[int(m[4]) - 1]
        return f"s{int(m[2]) + 1}.pathway{p[m[1]]}_res{m[3]}.branch2.{x}{'' if m[5] == 'conv' else '_bn'}.{m[6]}"
    if m := re.fullmatch(r"(slow|fast)\.res_nl(\d)\.res_(\d+)\.shortcut\.(conv|bn)\.(.+)", key):
        return f"s{int(m[2]) + 1}.pathway{p[m[1]]}_res{m[3]}.branch1{'' if m[4] == 'conv' else '_bn'}.{m[5]}"
    raise KeyError(key)


@pytest.mark.parametrize(
    "layout, name",
    [
        ("alphaction_r50_4x16_denseserial.json", "slowfast_r50_4x16_alphaction"),
        ("alphaction_r101_8x8_denseserial.json", "slowfast_r101_8x8_alphaction"),
    ],
)
def test_alphaction_layout_matches_exactly(layout, name):
    path = LAYOUTS / layout
    if not path.is_file():
        pytest.skip(f"{path} not present")
    entries = [e for e in json.loads(path.read_text())["entries"] if e["key"].startswith("backbone.")]
    sd = VARIANTS[name](in_channels=3).state_dict()
    mapped = {_alphaction_to_ours(e["key"]): e["shape"] for e in entries}
    ours = {k: list(v.shape) for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    assert mapped == ours


@pytest.mark.parametrize(
    "style, has_bias, has_bn", [("conv_bn_relu", False, True), ("conv_bias", True, False), ("conv", False, False)]
)
def test_lateral_styles(style, has_bias, has_bn):
    backbone = VARIANTS["slowfast_tiny"](lateral=style, fusion_kernel=7).eval()
    sd = backbone.state_dict()
    for k in range(1, 5):
        assert (f"s{k}_fuse.conv_f2s.bias" in sd) == has_bias
        assert (f"s{k}_fuse.bn.weight" in sd) == has_bn
        assert sd[f"s{k}_fuse.conv_f2s.weight"].shape[2] == 7
    # The lateral is a time-strided conv: check s1_fuse against F.conv3d by hand.
    fuse = backbone.s1_fuse
    slow = torch.randn(1, 16, 2, 5, 6)
    fast = torch.randn(1, 4, 16, 5, 6)
    with torch.no_grad():
        lateral = F.conv3d(fast, fuse.conv_f2s.weight, fuse.conv_f2s.bias, stride=(8, 1, 1), padding=(3, 0, 0))
        if has_bn:
            lateral = F.relu(fuse.bn(lateral))
        got = fuse(slow, fast)
    torch.testing.assert_close(got, torch.cat([slow, lateral], dim=1))


def test_stem_pool_padding_variants():
    padded = VARIANTS["slowfast_r50_4x16"]().s1.pathway0_stem
    unpadded = VARIANTS["slowfast_r50_4x16_alphaction"]().s1.pathway0_stem
    x = torch.randn(1, 1, 1, 32, 32)
    with torch.no_grad():
        assert padded.eval()(x).shape[-2:] == (8, 8)
        assert unpadded.eval()(x).shape[-2:] == (7, 7)


def test_rgb_stem_to_thermal_equals_rgb_stem_on_repeated_grey():
    rgb = torch.nn.Conv3d(3, 8, (5, 7, 7), stride=(1, 2, 2), padding=(2, 3, 3), bias=False)
    grey = torch.randn(2, 1, 6, 20, 24)
    thermal_weight = rgb_stem_to_thermal(rgb.weight.detach())
    assert thermal_weight.shape == (8, 1, 5, 7, 7)
    got = F.conv3d(grey, thermal_weight, stride=(1, 2, 2), padding=(2, 3, 3))
    with torch.no_grad():
        ref = rgb(grey.repeat(1, 3, 1, 1, 1))
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="RGB"):
        rgb_stem_to_thermal(torch.randn(8, 1, 5, 7, 7))


def test_mismatched_pathways_are_a_clear_error(clip_pair):
    backbone = VARIANTS["slowfast_tiny"]()
    slow, fast = clip_pair(backbone.alpha, 1, 2, 16, 16)
    with pytest.raises(ValueError, match="alpha"):
        backbone(slow, fast[:, :, :-1])


def test_freeze_stages_and_frozen_bn(clip_pair):
    backbone = VARIANTS["slowfast_tiny"](zero_init_residual=False)
    backbone.freeze(2)
    backbone.train()
    frozen = [backbone.s1, backbone.s1_fuse, backbone.s2, backbone.s2_fuse]
    assert all(not p.requires_grad for m in frozen for p in m.parameters())
    assert all(p.requires_grad for p in backbone.s3.parameters())
    assert not backbone.s2.pathway0_res0.branch2.a_bn.training
    assert backbone.s3.pathway0_res0.branch2.a_bn.training
    before = backbone.s1.pathway0_stem.bn.running_mean.clone()
    before_s3 = backbone.s3.pathway0_res0.branch2.a_bn.running_mean.clone()
    slow, fast = clip_pair(backbone.alpha, 2, 2, 16, 24)
    out = backbone(slow, fast)
    (out[0].square().mean() + out[1].square().mean()).backward()
    torch.testing.assert_close(backbone.s1.pathway0_stem.bn.running_mean, before)
    assert not torch.equal(backbone.s3.pathway0_res0.branch2.a_bn.running_mean, before_s3)
    assert all(p.grad is None for m in frozen for p in m.parameters())
    assert all(p.grad is not None for p in backbone.s3.parameters())

    backbone.freeze(0, frozen_bn=True)
    backbone.train()
    bns = [m for m in backbone.modules() if isinstance(m, torch.nn.BatchNorm3d)]
    assert all(not m.training and not m.weight.requires_grad for m in bns)
    assert backbone.s1.pathway0_stem.conv.weight.requires_grad
    backbone.freeze(0, frozen_bn=False)
    backbone.train()
    assert all(m.training and m.weight.requires_grad for m in bns)


def test_lateral_under_bf16_autocast_matches_float32():
    # Kernel 5, stride 8, 128 -> 256 channels: oneDNN's bf16 conv for this shape corrupted
    # the heap (PyTorch 2.13 CPU); the lateral must take a safe path and stay accurate.
    from thermal_action.models.backbone import FuseFastToSlow

    fuse = FuseFastToSlow(128, 2, 5, 8, "conv_bias", 1e-5, 0.1)
    slow = torch.randn(1, 64, 4, 10, 15)
    fast = torch.randn(1, 128, 32, 10, 15, requires_grad=True)
    ref = fuse(slow, fast)[:, 64:]
    (grad_ref,) = torch.autograd.grad(ref.square().sum(), fast)
    for _ in range(2):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = fuse(slow, fast)[:, 64:]
        (grad,) = torch.autograd.grad(got.float().square().sum(), fast)
    assert (got.float() - ref).norm() <= 0.02 * ref.norm()
    assert (grad - grad_ref).norm() <= 0.03 * grad_ref.norm()


def _random_bn_statistics(model: torch.nn.Module, seed: int = 0) -> None:
    """Running statistics and affine parameters away from their init, so folding them matters."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm3d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=gen) * 0.4 - 0.2)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.data.copy_(torch.rand(m.num_features, generator=gen) * 0.4 - 0.2)


def _fused_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    from thermal_action.models.ops import conv

    calls: list[int] = []
    original = conv._ConvReLU.apply
    monkeypatch.setattr(conv._ConvReLU, "apply", lambda *a: calls.append(1) or original(*a))
    return calls


def _run_backbone(backbone, slow, fast, threads: int = 1):
    backbone.zero_grad(set_to_none=True)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)  # on one thread PyTorch sends the small 2D convs to its own kernels
    try:
        out = backbone(slow, fast)
        weights = [torch.linspace(-1, 1, o.numel(), dtype=o.dtype).view_as(o) for o in out]
        sum((o * w).sum() for o, w in zip(out, weights)).backward()
    finally:
        torch.set_num_threads(before)
    grads = {n: p.grad for n, p in backbone.named_parameters() if p.grad is not None}
    return [o.detach() for o in out], grads


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last_3d"])
def test_frozen_bn_folded_into_fused_convs_matches_float64(layout, batch, clip_pair, monkeypatch):
    """With frozen BN every conv -> BN (-> add) -> ReLU may run as one oneDNN kernel with the
    BN folded into the conv: outputs and every trainable gradient as the float64 modules give."""
    import copy

    monkeypatch.delenv("THERMAL_ACTION_NATIVE_CONV", raising=False)
    fmt = torch.channels_last_3d if layout == "channels_last_3d" else torch.contiguous_format
    backbone = VARIANTS["slowfast_tiny"](zero_init_residual=False)
    _random_bn_statistics(backbone)
    backbone.freeze(0, frozen_bn=True)
    backbone = backbone.to(memory_format=fmt).train()
    slow, fast = (t.contiguous(memory_format=fmt) for t in clip_pair(backbone.alpha, batch, 2, 40, 60))
    ref_out, ref_grads = _run_backbone(copy.deepcopy(backbone).double(), slow.double(), fast.double())
    calls = _fused_calls(monkeypatch)
    _run_backbone(backbone, slow, fast, threads=2)
    assert len(calls) <= 4  # on a 40x60 clip only the stems' outputs are large enough to gain from folding
    calls.clear()
    monkeypatch.setattr(bn_fold, "FOLD_MIN_OUTPUT", 0)  # fold wherever the output outnumbers the weights
    out, grads = _run_backbone(backbone, slow, fast, threads=2)
    assert len(calls) >= 20  # stems, bottleneck a/b/c convs, projections of both pathways
    assert [o.shape for o in out] == [o.shape for o in ref_out]
    for o, r in zip(out, ref_out, strict=True):
        torch.testing.assert_close(o.double(), r, rtol=1e-4, atol=1e-4 * r.abs().max().item())
    assert grads.keys() == ref_grads.keys() and len(grads) == 38  # the convs' weights, lateral biases none
    for name, g in grads.items():
        r = ref_grads[name]
        assert torch.isfinite(g).all(), name
        torch.testing.assert_close(g.double(), r, rtol=1e-3, atol=1e-3 * r.abs().max().item(), msg=name)

    # Training-mode BN needs the batch statistics: nothing is folded or fused then.
    calls.clear()
    backbone.freeze(0, frozen_bn=False)
    backbone.train()
    _run_backbone(backbone, slow, fast, threads=2)
    assert not calls


def test_eval_bn_with_trainable_affine_gets_its_gradients_through_the_folding(monkeypatch):
    """A BN in eval mode whose weight and bias still train (fine-tuning the affine part only):
    folded, its gradients equal the plain modules' in float64."""
    from thermal_action.models.ops.bn_fold import conv_bn
    from thermal_action.models.ops.conv import Conv3d

    monkeypatch.delenv("THERMAL_ACTION_NATIVE_CONV", raising=False)
    conv = Conv3d(16, 24, (1, 1, 1), bias=False)
    bn = torch.nn.BatchNorm3d(24)
    _random_bn_statistics(bn)
    bn.eval()
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(1, 16, 4, 12, 14, generator=gen).contiguous(memory_format=torch.channels_last_3d)
    residual = torch.randn(1, 24, 4, 12, 14, generator=gen).contiguous(memory_format=torch.channels_last_3d)
    params = [conv.weight, bn.weight, bn.bias]
    calls = _fused_calls(monkeypatch)
    monkeypatch.setattr(bn_fold, "FOLD_MIN_OUTPUT", 0)  # a conv this small is not folded otherwise
    torch.set_num_threads(2)  # oneDNN's, not PyTorch's own kernel, for a conv this small (the fixture restores it)
    y = conv_bn(conv, bn, x.requires_grad_(), relu=True, residual=residual.requires_grad_())
    assert len(calls) == 1
    got = torch.autograd.grad(y.square().sum(), [x, residual, *params])

    conv64, bn64 = conv.double(), bn.double()
    x64, r64 = x.detach().double().requires_grad_(), residual.detach().double().requires_grad_()
    y64 = F.relu(bn64(F.conv3d(x64, conv64.weight)) + r64)
    want = torch.autograd.grad(y64.square().sum(), [x64, r64, conv64.weight, bn64.weight, bn64.bias])
    torch.testing.assert_close(y.double(), y64, rtol=1e-5, atol=1e-5)
    for g, r in zip(got, want, strict=True):
        torch.testing.assert_close(g.double(), r, rtol=1e-4, atol=1e-4 * r.abs().max().item())


def test_inference_reuses_the_folded_weight_until_the_weight_or_bn_changes(monkeypatch):
    from thermal_action.models.ops.bn_fold import conv_bn
    from thermal_action.models.ops.conv import Conv3d

    monkeypatch.delenv("THERMAL_ACTION_NATIVE_CONV", raising=False)
    monkeypatch.setattr(bn_fold, "FOLD_MIN_OUTPUT", 0)
    torch.set_num_threads(2)  # oneDNN's kernel for a conv this small (the fixture restores the threads)
    conv = Conv3d(16, 24, (1, 3, 3), padding=(0, 1, 1), bias=False)
    bn = torch.nn.BatchNorm3d(24)
    _random_bn_statistics(bn)
    bn.eval()
    x = torch.randn(1, 16, 4, 12, 14).contiguous(memory_format=torch.channels_last_3d)

    def check() -> None:
        with torch.inference_mode():
            got = conv_bn(conv, bn, x, relu=True)
        want = F.relu(bn(F.conv3d(x, conv.weight, None, 1, (0, 1, 1))))
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)

    check()
    first = conv._folded[1]
    check()
    assert conv._folded[1] is first  # reused
    with torch.no_grad():
        conv.weight.mul_(2)  # an optimiser step
    check()
    bn.running_var.mul_(3)  # statistics updated in training mode
    check()
    assert not any("_folded" in k for k in conv.state_dict())
