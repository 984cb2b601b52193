"""The CPU convolution paths of ``thermal_action.models.ops.conv`` equal ``F.conv3d``."""

from __future__ import annotations

import os

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from thermal_action.config import ModelConfig
from thermal_action.models.build import build_model
from thermal_action.models.ops import conv
from thermal_action.models.ops.conv import Conv3d, conv3d

CL = torch.channels_last_3d

# (input shape, weight shape, stride, padding, dilation, path the CPU takes for a contiguous /
# channels-last-3d input). Kernels are those of SlowFast: pointwise, temporal, spatial, stems;
# batches of two or more clips take F.conv3d, but for a channels-last pointwise conv (a 1x1
# conv2d over the frames, strided too).
CASES = {
    "pointwise": ((1, 8, 4, 9, 10), (6, 8, 1, 1, 1), (1, 1, 1), (0, 0, 0), (1, 1, 1), "conv3d", "conv2d"),
    "pointwise_stride2": ((1, 8, 4, 9, 10), (6, 8, 1, 1, 1), (1, 2, 2), (0, 0, 0), (1, 1, 1), "conv3d", "conv2d"),
    "temporal_k3": ((1, 8, 6, 9, 10), (6, 8, 3, 1, 1), (1, 1, 1), (1, 0, 0), (1, 1, 1), "conv2d", "conv2d"),
    "temporal_k5_stride8": ((1, 8, 16, 5, 6), (6, 8, 5, 1, 1), (8, 1, 1), (2, 0, 0), (1, 1, 1), "conv2d", "conv2d"),
    "temporal_wide": ((2, 256, 6, 5, 6), (6, 256, 3, 1, 1), (1, 1, 1), (1, 0, 0), (1, 1, 1), "conv2d", "conv2d"),
    "temporal_wide_k5_stride8": ((1, 256, 16, 3, 4), (6, 256, 5, 1, 1), (8, 1, 1), (2, 0, 0), (1, 1, 1),
                                 "conv2d", "conv2d"),
    "temporal_wide_tiny_frames": ((1, 600, 4, 2, 3), (6, 600, 3, 1, 1), (1, 1, 1), (1, 0, 0), (1, 1, 1),
                                  "matmul", "matmul"),
    "spatial_3x3": ((1, 8, 3, 9, 10), (6, 8, 1, 3, 3), (1, 1, 1), (0, 1, 1), (1, 1, 1), "conv2d", "conv2d"),
    "spatial_3x3_two_clips": ((2, 8, 3, 9, 10), (6, 8, 1, 3, 3), (1, 1, 1), (0, 1, 1), (1, 1, 1), "conv3d", "conv3d"),
    "pointwise_two_clips": ((2, 8, 4, 9, 10), (6, 8, 1, 1, 1), (1, 1, 1), (0, 0, 0), (1, 1, 1), "conv3d", "conv2d"),
    "pointwise_stride2_two_clips": ((2, 8, 4, 9, 10), (6, 8, 1, 1, 1), (1, 2, 2), (0, 0, 0), (1, 1, 1),
                                    "conv3d", "conv2d"),
    "temporal_k3_two_clips": ((2, 8, 6, 9, 10), (6, 8, 3, 1, 1), (1, 1, 1), (1, 0, 0), (1, 1, 1), "conv2d", "conv2d"),
    "spatial_3x3_stride2": ((1, 8, 3, 9, 10), (6, 8, 1, 3, 3), (1, 2, 2), (0, 1, 1), (1, 1, 1), "conv2d", "conv2d"),
    "spatial_dilated": ((2, 8, 3, 9, 10), (6, 8, 1, 3, 3), (1, 1, 1), (0, 2, 2), (1, 2, 2), "conv3d", "conv3d"),
    "spatial_small_frames": ((1, 8, 3, 4, 5), (6, 8, 1, 3, 3), (1, 1, 1), (0, 1, 1), (1, 1, 1), "conv3d", "conv2d"),
    "spatial_dilated_tiny_frames": ((1, 600, 2, 3, 4), (6, 600, 1, 3, 3), (1, 1, 1), (0, 2, 2), (1, 2, 2),
                                    "unfold", "unfold"),
    "full_kernel": ((2, 8, 6, 9, 10), (6, 8, 3, 3, 3), (1, 2, 2), (1, 1, 1), (1, 1, 1), "conv3d", "conv3d"),
    "stem_rgb_to_one_channel": ((1, 1, 8, 12, 14), (6, 1, 5, 7, 7), (1, 2, 2), (2, 3, 3), (1, 1, 1),
                                "conv3d", "conv3d"),
}


class _Spy:
    """Counts calls of the functions the conv paths end in."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[str] = []
        for mod, name, label in (
            (F, "conv3d", "conv3d"),
            (F, "conv2d", "conv2d"),
            (F, "linear", "linear"),
            (F, "unfold", "unfold"),
            (torch, "matmul", "matmul"),
        ):
            original = getattr(mod, name)

            def wrapper(*args, _original=original, _label=label, **kwargs):
                self.calls.append(_label)
                return _original(*args, **kwargs)

            monkeypatch.setattr(mod, name, wrapper)

    def path(self) -> str:
        for label in ("unfold", "linear", "matmul", "conv2d", "conv3d"):  # the most specific wins
            if label in self.calls:
                return label
        raise AssertionError(f"no convolution was called: {self.calls}")


@pytest.mark.parametrize("layout", ["contiguous", "channels_last_3d"])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("case", list(CASES))
def test_conv3d_equals_f_conv3d_in_float64(case, bias, layout, monkeypatch):
    shape, wshape, stride, padding, dilation, path_c, path_cl = CASES[case]
    fmt = CL if layout == "channels_last_3d" else torch.contiguous_format
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=gen, dtype=torch.float64).contiguous(memory_format=fmt).requires_grad_()
    w = torch.randn(wshape, generator=gen, dtype=torch.float64, requires_grad=True)
    b = torch.randn(wshape[0], generator=gen, dtype=torch.float64, requires_grad=True) if bias else None

    spy = _Spy(monkeypatch)
    y = conv3d(x, w, b, stride, padding, dilation)
    taken = spy.path()
    monkeypatch.undo()

    x_ref = x.detach().contiguous().requires_grad_()
    y_ref = F.conv3d(x_ref, w, b, stride, padding, dilation)
    assert y.shape == y_ref.shape
    torch.testing.assert_close(y, y_ref, rtol=0, atol=1e-11)
    grad = torch.randn(y_ref.shape, generator=gen, dtype=torch.float64)
    params = [w] + ([b] if bias else [])
    got = torch.autograd.grad(y, [x, *params], grad.contiguous(memory_format=fmt))
    want = torch.autograd.grad(y_ref, [x_ref, *params], grad)
    for g, r in zip(got, want, strict=True):
        assert torch.isfinite(g).all()
        torch.testing.assert_close(g, r, rtol=0, atol=1e-10)
    # the result keeps the input's memory format (one channel: every layout is contiguous)
    if shape[1] > 1:
        assert y.is_contiguous(memory_format=fmt)
        assert taken == (path_cl if layout == "channels_last_3d" else path_c), taken


def test_native_switch_meta_device_onnx_export_and_compile_use_f_conv3d(monkeypatch):
    x = torch.randn(1, 8, 4, 9, 10).contiguous(memory_format=CL)
    w = torch.randn(6, 8, 1, 3, 3)
    spy = _Spy(monkeypatch)
    monkeypatch.setenv(conv.NATIVE_CONV_ENV, "1")
    conv3d(x, w, None, (1, 1, 1), (0, 1, 1))
    assert spy.calls == ["conv3d"]

    monkeypatch.delenv(conv.NATIVE_CONV_ENV)
    spy.calls.clear()
    y = conv3d(torch.empty(1, 8, 4, 9, 10, device="meta").contiguous(memory_format=CL), w.to("meta"), None,
               (1, 1, 1), (0, 1, 1))
    assert spy.calls == ["conv3d"] and y.shape == (1, 6, 4, 9, 10)  # CUDA goes this way too

    spy.calls.clear()
    monkeypatch.setattr(torch.onnx, "is_in_onnx_export", lambda: True)
    conv3d(x, w, None, (1, 1, 1), (0, 1, 1))
    assert spy.calls == ["conv3d"]

    # Under torch.compile the graph gets plain convolutions (its fake tensors cannot run
    # torch.mkldnn_convolution; inductor picks its own kernels).
    monkeypatch.setattr(torch.onnx, "is_in_onnx_export", lambda: False)
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    spy.calls.clear()
    conv3d(x, w, None, (1, 1, 1), (0, 1, 1))
    assert spy.calls == ["conv3d"]


def test_native_flag_set_after_import_is_honoured(monkeypatch):
    """The flag is read when a convolution runs, not when the module is imported."""
    x = torch.randn(1, 8, 3, 9, 10)
    layer = Conv3d(8, 6, (1, 3, 3), padding=(0, 1, 1), bias=False)
    spy = _Spy(monkeypatch)
    for value, path in (("0", "conv2d"), ("1", "conv3d"), ("", "conv2d")):
        monkeypatch.setenv(conv.NATIVE_CONV_ENV, value)
        spy.calls.clear()
        layer(x)
        assert spy.calls == [path], value
    monkeypatch.delenv(conv.NATIVE_CONV_ENV)
    spy.calls.clear()
    layer(x)
    assert spy.calls == ["conv2d"]


def test_conv3d_module_is_a_drop_in_nn_conv3d():
    torch.manual_seed(0)
    ours = Conv3d(4, 6, (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1), bias=True)
    ref = nn.Conv3d(4, 6, (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1), bias=True)
    assert isinstance(ours, nn.Conv3d)
    assert ours.state_dict().keys() == ref.state_dict().keys()
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(2, 4, 3, 11, 12).contiguous(memory_format=CL)
    torch.testing.assert_close(ours(x), ref(x), rtol=1e-5, atol=1e-5)
    circular = Conv3d(4, 6, 3, padding=1, padding_mode="circular")
    ref_circular = nn.Conv3d(4, 6, 3, padding=1, padding_mode="circular")
    ref_circular.load_state_dict(circular.state_dict())
    torch.testing.assert_close(circular(x), ref_circular(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("layout", ["contiguous", "channels_last_3d"])
def test_whole_detector_matches_native_convolutions_in_float64(layout, monkeypatch):
    """Every conv of a SlowFast detector (stems, laterals, all bottleneck kernels, res5
    dilation) through the fast paths gives the native output and gradients."""
    fmt = CL if layout == "channels_last_3d" else torch.contiguous_format
    monkeypatch.delenv(conv.NATIVE_CONV_ENV, raising=False)
    torch.manual_seed(0)
    model = build_model(ModelConfig(variant="slowfast_tiny", dropout=0.0, frozen_bn=True), num_classes=5)
    model = model.double().to(memory_format=fmt).train()
    clips = 1  # the fast paths are for one clip
    fast = torch.randn(clips, 1, 16, 40, 60, dtype=torch.float64).contiguous(memory_format=fmt)
    slow = fast[:, :, model.alpha // 2 :: model.alpha].contiguous(memory_format=fmt)
    rois = torch.tensor([[0, 5.0, 5, 18, 20], [clips - 1, 20, 10, 40, 30], [clips - 1, 2, 3, 12, 14]],
                        dtype=torch.float64)
    calls = []
    for name in ("conv2d", "linear"):
        original = getattr(F, name)
        monkeypatch.setattr(F, name, lambda *a, _o=original, _n=name, **k: calls.append(_n) or _o(*a, **k))

    def run() -> tuple[torch.Tensor, list[torch.Tensor]]:
        model.zero_grad(set_to_none=True)
        out = model(slow, fast, rois, None)
        out.square().sum().backward()
        return out.detach(), [p.grad.clone() for p in model.parameters() if p.requires_grad]

    fast_out, fast_grads = run()
    assert "conv2d" in calls  # the fast paths were taken
    monkeypatch.setenv(conv.NATIVE_CONV_ENV, "1")
    ref_out, ref_grads = run()
    assert fast_out.shape == (3, 5)
    torch.testing.assert_close(fast_out, ref_out, rtol=1e-9, atol=1e-11)
    assert len(fast_grads) == len(ref_grads) > 0
    for g, r in zip(fast_grads, ref_grads, strict=True):
        assert torch.isfinite(g).all()
        torch.testing.assert_close(g, r, rtol=1e-8, atol=1e-10)


def test_bf16_autocast_runs_the_fast_paths_close_to_float32():
    torch.manual_seed(0)
    x = torch.randn(1, 16, 4, 12, 14).contiguous(memory_format=CL)
    w = torch.randn(8, 16, 1, 3, 3) * 0.1
    ref = F.conv3d(x, w, None, 1, (0, 1, 1))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = conv3d(x, w, None, (1, 1, 1), (0, 1, 1))
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), ref, rtol=0.05, atol=0.05)


# Kernels for which PyTorch's heuristic picks its slow native loops on one thread (pointwise,
# dilated spatial and full kernels of one clip, where no 2D path applies): in float32 our
# conv3d sends them to oneDNN (torch.mkldnn_convolution) instead.
# name -> (case, whether oneDNN runs it for a contiguous / a channels-last-3d input; the
# others take the 2D or matmul paths above).
ONEDNN_CASES = {
    "pointwise_one_clip": (CASES["pointwise"][:5], True, False),
    "spatial_dilated_two_clips": (CASES["spatial_dilated"][:5], False, False),  # PyTorch picks oneDNN itself
    "spatial_dilated_one_clip": (((1, 8, 3, 9, 10), *CASES["spatial_dilated"][1:5]), True, False),
    "full_kernel_one_clip": (((1, 8, 6, 9, 10), *CASES["full_kernel"][1:5]), True, True),
    "pointwise_two_clips": (CASES["pointwise_two_clips"][:5], True, False),  # channels-last: a matmul
}


@pytest.mark.parametrize("layout", ["contiguous", "channels_last_3d"])
@pytest.mark.parametrize("case", list(ONEDNN_CASES))
def test_float32_convs_that_pytorch_runs_slowly_go_to_onednn_with_the_same_result(case, layout):
    (shape, wshape, stride, padding, dilation), onednn_c, onednn_cl = ONEDNN_CASES[case]
    fmt = CL if layout == "channels_last_3d" else torch.contiguous_format
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=gen).contiguous(memory_format=fmt).requires_grad_()
    w = torch.randn(wshape, generator=gen, requires_grad=True)
    b = torch.randn(wshape[0], generator=gen, requires_grad=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # PyTorch's heuristic depends on the thread count; one thread is the slow case
    calls = []
    original = torch.mkldnn_convolution
    try:
        torch.mkldnn_convolution = lambda *a, **k: calls.append(1) or original(*a, **k)
        y = conv3d(x, w, b, stride, padding, dilation)
    finally:
        torch.mkldnn_convolution = original
        torch.set_num_threads(threads)
    x64, w64, b64 = (t.detach().double().requires_grad_() for t in (x, w, b))
    y_ref = F.conv3d(x64, w64, b64, stride, padding, dilation)
    torch.testing.assert_close(y.double(), y_ref, rtol=1e-5, atol=1e-4)
    grad = torch.randn(y_ref.shape, generator=gen, dtype=torch.float64)
    got = torch.autograd.grad(y, [x, w, b], grad.float().contiguous(memory_format=fmt))
    want = torch.autograd.grad(y_ref, [x64, w64, b64], grad)
    for g, r in zip(got, want, strict=True):
        assert torch.isfinite(g).all()
        torch.testing.assert_close(g.double(), r, rtol=1e-5, atol=1e-3)
    assert y.is_contiguous(memory_format=fmt)
    assert bool(calls) == (onednn_cl if layout == "channels_last_3d" else onednn_c), case


class _FusedSpy:
    """Counts the convolutions that ran as one oneDNN kernel with their ReLU (``_ConvReLU``)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        original = conv._ConvReLU.apply

        def apply(*args):
            self.calls += 1
            return original(*args)

        monkeypatch.setattr(conv._ConvReLU, "apply", apply)


@pytest.mark.parametrize("layout", ["contiguous", "channels_last_3d"])
@pytest.mark.parametrize("with_residual", [False, True])
@pytest.mark.parametrize("case", list(CASES))
def test_conv3d_relu_and_residual_in_float32_match_float64(case, with_residual, layout, monkeypatch):
    """``conv3d(relu=True, residual=r)`` is ``relu(F.conv3d(...) + r)`` with every gradient,
    fused into oneDNN's kernel (float32) or by plain ops after the path."""
    shape, wshape, stride, padding, dilation, _, _ = CASES[case]
    fmt = CL if layout == "channels_last_3d" else torch.contiguous_format
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=gen).contiguous(memory_format=fmt).requires_grad_()
    w = torch.randn(wshape, generator=gen, requires_grad=True)
    b = torch.randn(wshape[0], generator=gen, requires_grad=True)
    x64, w64, b64 = (t.detach().double().requires_grad_() for t in (x, w, b))
    ref = F.conv3d(x64, w64, b64, stride, padding, dilation)
    r = torch.randn(ref.shape, generator=gen).contiguous(memory_format=fmt).requires_grad_() if with_residual else None
    r64 = r.detach().double().requires_grad_() if with_residual else None
    if with_residual:
        ref = ref + r64
    ref = F.relu(ref)

    monkeypatch.delenv(conv.NATIVE_CONV_ENV, raising=False)
    spy = _FusedSpy(monkeypatch)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # on one thread PyTorch sends small 2D convs to its own kernels, not oneDNN
    try:
        y = conv3d(x, w, b, stride, padding, dilation, relu=True, residual=r)
    finally:
        torch.set_num_threads(threads)
    assert y.shape == ref.shape and y.dtype == torch.float32
    if shape[1] > 1:
        assert y.is_contiguous(memory_format=fmt)
    # The fused kernel runs for every 3D conv and every channels-last pointwise conv, with
    # or without a residual. (The 2D paths fuse the ReLU where PyTorch itself would pick
    # oneDNN, which it does not for convs as small as these: the backbone test covers them.)
    path = CASES[case][6] if layout == "channels_last_3d" else CASES[case][5]
    if path == "conv3d" or (case.startswith("pointwise") and layout == "channels_last_3d"):
        assert spy.calls == 1, case
    elif path in ("matmul", "unfold"):
        assert spy.calls == 0, case
    scale = ref.abs().max().item()
    torch.testing.assert_close(y.double(), ref, rtol=1e-5, atol=1e-5 * scale)
    grad = torch.randn(ref.shape, generator=gen, dtype=torch.float64)
    inputs = [x, w, b] + ([r] if with_residual else [])
    got = torch.autograd.grad(y, inputs, grad.float().contiguous(memory_format=fmt))
    want = torch.autograd.grad(ref, [x64, w64, b64] + ([r64] if with_residual else []), grad)
    for g, ref_g in zip(got, want, strict=True):
        assert torch.isfinite(g).all()
        torch.testing.assert_close(g.double(), ref_g, rtol=1e-4, atol=1e-4 * ref_g.abs().max().item())


def test_conv3d_relu_is_not_fused_outside_plain_float32_cpu(monkeypatch):
    """float64, bf16 autocast and the native switch compute relu(conv + residual) with plain
    ops (oneDNN's fused kernel is float32 only; ONNX and compile traces see plain ops)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 8, 4, 9, 10, generator=gen).contiguous(memory_format=CL)
    w = torch.randn(6, 8, 1, 1, 1, generator=gen)
    r = torch.randn(1, 6, 4, 9, 10, generator=gen).contiguous(memory_format=CL)
    want = F.relu(F.conv3d(x.double(), w.double()) + r.double())
    spy = _FusedSpy(monkeypatch)
    got = conv3d(x.double(), w.double(), relu=True, residual=r.double())
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = conv3d(x, w, relu=True, residual=r)
    torch.testing.assert_close(got.double(), want, rtol=0.05, atol=0.05)
    monkeypatch.setenv(conv.NATIVE_CONV_ENV, "1")
    got = conv3d(x, w, relu=True, residual=r)
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-5)
    assert spy.calls == 0
    monkeypatch.delenv(conv.NATIVE_CONV_ENV)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # on one thread PyTorch sends small 2D convs to its own kernels, not oneDNN
    try:
        conv3d(x, w, relu=True, residual=r)
    finally:
        torch.set_num_threads(threads)
    assert spy.calls == 1
    with pytest.raises(ValueError, match="relu=True"):
        conv3d(x, w, residual=r)


def test_native_convolutions_block_runs_plain_conv3d_and_restores_the_switch(monkeypatch):
    x = torch.randn(1, 8, 4, 9, 10).contiguous(memory_format=CL)
    w = torch.randn(6, 8, 1, 3, 3)
    spy = _Spy(monkeypatch)
    for before in (None, "0"):
        if before is None:
            monkeypatch.delenv(conv.NATIVE_CONV_ENV, raising=False)
        else:
            monkeypatch.setenv(conv.NATIVE_CONV_ENV, before)
        spy.calls.clear()
        with conv.native_convolutions():
            conv3d(x, w, None, (1, 1, 1), (0, 1, 1))
        assert spy.calls == ["conv3d"]
        assert os.environ.get(conv.NATIVE_CONV_ENV) == before
        spy.calls.clear()
        conv3d(x, w, None, (1, 1, 1), (0, 1, 1))
        assert spy.calls == ["conv2d"]
    with pytest.raises(RuntimeError), conv.native_convolutions():
        raise RuntimeError("restored on errors too")
    assert os.environ.get(conv.NATIVE_CONV_ENV) == "0"
