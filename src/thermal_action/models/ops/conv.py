"""3D convolution that runs SlowFast's factorised kernels as 2D convolutions or matrix products on a CPU.

SlowFast's 3D ResNets almost never use a full ``kt x kh x kw`` kernel: the bottleneck's
``b`` conv is ``1 x 3 x 3`` (spatial only), its ``a`` conv ``kt x 1 x 1`` (temporal only)
or ``1 x 1 x 1``, and so are the shortcuts. PyTorch's CPU backends treat all of them as
general 3D convolutions, and at batch 1 some shapes run several times slower than the same
arithmetic as a 2D convolution over the ``N*T`` frames (the measurements behind every choice
below: docs/benchmarks.md, "Model cost" and "Behind the CPU code paths").

:func:`conv3d` computes exactly ``F.conv3d`` (same weight tensor, same result up to float
rounding) and on a CPU picks, by kernel shape and memory format:

- temporal ``kt x 1 x 1`` kernels (no spatial stride or padding) of any batch: a
  ``(N, C, T, H, W)`` tensor is ``(N, C, T, H*W)`` as it is, contiguous or channels-last,
  so the conv is a ``(kt x 1)`` 2D conv of a free view (faster than the 3D kernels at any
  batch); on tiny frames next to the channel count (``4 * N*T*H*W < C``, e.g.
  res5 of a 40x60 clip: 48 positions, 2048 channels) one matrix product over ``kt`` shifted
  copies (im2col) instead; channels-last ones with at least 256 input channels (the slow
  pathway's res3-5) as one pointwise 2D conv of ``kt`` time-shifted copies stacked as
  channels (faster than the ``(kt x 1)`` conv there, in a whole training step);
- channels-last-3d input (``trainer.channels_last``, the training default): a
  ``(N, C, T, H, W)`` tensor is byte for byte a channels-last ``(N*T, C, H, W)`` batch of
  frames, so a pointwise kernel (strided too) of any batch, and every ``1 x kh x kw``
  kernel of one clip (no temporal stride or padding, dilated ones too), is ``F.conv2d`` on
  a free view. Not a matrix product: where MKL's sgemm runs well below oneDNN's convolution
  rate (AMD CPUs), oneDNN's 1x1 2D conv trains faster than ``F.linear``, and faster than
  oneDNN's own 3D 1x1 conv; a strided pointwise conv subsamples its input first (oneDNN's
  backward of a strided 1x1 conv is slow);
- contiguous input of one clip: ``1 x kh x kw`` kernels on frames of at least 64 pixels as
  a 2D conv over transposed frames;
- weight-bound spatial convs of one clip on tiny frames (``4 * T*H*W < C``): im2col plus
  one matrix product;
- anything else: the 3D convolution, but through oneDNN (``torch.mkldnn_convolution``)
  where ``F.conv3d``'s heuristic would pick PyTorch's unvectorised native kernels
  (``Slow3d``, ``SlowDilated3d``: on one thread it does so for every kernel with
  ``kh = kw = 1`` and for small batch-1 convs, at a fraction of oneDNN's rate); float32 only.

``conv3d(..., relu=True, residual=r)`` is ``relu(conv + r)``. Where the path ends in a oneDNN
convolution of float32 CPU tensors, the bias, the residual add and the ReLU are post-ops of
that kernel (:func:`conv_relu`, ``mkldnn::_convolution_pointwise``; its backward is the ReLU
mask and ``aten::convolution_backward``), so a conv whose frozen BatchNorm is folded into its
weight and bias (:func:`thermal_action.models.ops.bn_fold.conv_bn`) costs no pass over its
output for BN, add or ReLU, forward or backward (what a frozen-BN training step gains so:
``benchmarks/bench_model.py --bn frozen``).

A channels-last-3d input always gives a channels-last-3d result (oneDNN returns some
convolutions, e.g. ``kt x 1 x 1`` ones, contiguous), so the whole network stays in one format.

``benchmarks/bench_model.py --native-conv off on`` measures them against plain
``F.conv3d`` side by side (docs/benchmarks.md, "Model cost"). CUDA tensors, one-channel inputs (the
stems), ONNX export, ``torch.compile`` and ``THERMAL_ACTION_NATIVE_CONV=1`` go to ``F.conv3d`` unchanged, so
full-size GPU configurations and exported graphs see ordinary 3D convolutions.

:class:`Conv3d` is an ``nn.Conv3d`` whose forward calls :func:`conv3d`: same parameters,
same state-dict keys, so checkpoints and ``isinstance(m, nn.Conv3d)`` checks are unaffected.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from thermal_action.models.ops.cpu_workarounds import cap_onednn_isa


#: Set this environment variable to ``1`` to run every convolution as plain ``F.conv3d``
#: (``benchmarks/bench_model.py --native-conv`` uses it).
NATIVE_CONV_ENV = "THERMAL_ACTION_NATIVE_CONV"


def native_conv() -> bool:
    """Whether :data:`NATIVE_CONV_ENV` asks for plain ``F.conv3d`` everywhere.

    Read at every call (a dictionary lookup), not at import, so that setting the
    variable after ``thermal_action`` is imported still counts.
    """
    return os.environ.get(NATIVE_CONV_ENV, "0") not in ("", "0")


@contextlib.contextmanager
def native_convolutions() -> Iterator[None]:
    """Every convolution as plain ``F.conv3d`` inside the block (sets :data:`NATIVE_CONV_ENV`
    to ``1``, then restores it as it was, unset included). The benchmarks count a model's
    FLOPs so: ``FlopCounterMode`` does not see ``torch.mkldnn_convolution``, which some of
    the fast paths call, and the plain convolutions have the same arithmetic."""
    before = os.environ.get(NATIVE_CONV_ENV)
    os.environ[NATIVE_CONV_ENV] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(NATIVE_CONV_ENV, None)
        else:
            os.environ[NATIVE_CONV_ENV] = before


def is_channels_last_3d(x: torch.Tensor) -> bool:
    """Whether ``x`` is laid out channels-last-3d and not also contiguous (so not ambiguous)."""
    return x.dim() == 5 and x.is_contiguous(memory_format=torch.channels_last_3d) and not x.is_contiguous()


def _plain_ops_only(x: torch.Tensor) -> bool:
    """Whether ``x`` must see plain PyTorch convolutions: not a CPU tensor, inside an ONNX
    export or a ``torch.compile`` trace, or ``THERMAL_ACTION_NATIVE_CONV=1``."""
    return (
        x.device.type != "cpu" or torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling() or native_conv()
    )


def _layout(x: torch.Tensor) -> str | None:
    """``"cl"`` (channels-last-3d), ``"c"`` (contiguous) or ``None`` (no fast path: one
    channel, another layout, or :func:`_plain_ops_only`)."""
    if x.dim() != 5 or x.shape[1] == 1 or _plain_ops_only(x):
        return None
    if x.is_contiguous():
        return "c"
    return "cl" if is_channels_last_3d(x) else None


#: Below this many pixels per frame a spatial (1 x k x k) conv on a contiguous input stays a
#: 3D convolution: on such small frames the two transposes cost more than they save.
MIN_FRAME_PIXELS_FOR_2D = 64


#: A temporal or spatial conv whose input positions (N*T*H*W) times this are fewer than
#: its input channels is computed as one matrix product (see :func:`_temporal_conv_matmul`,
#: :func:`_spatial_conv_matmul`): on such tiny frames the convolution kernels are slower.
MATMUL_COLUMNS_PER_CHANNEL = 4

#: From this many input channels a channels-last ``kt x 1 x 1`` conv runs as a pointwise conv
#: of ``kt`` time-shifted copies (:func:`_temporal_conv_channels_last_im2col`).
WIDE_TEMPORAL_CHANNELS = 256


def _weight_matmul(weight: torch.Tensor, cols: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``(C_out, C*k) @ (..., C*k, L)`` im2col columns, plus the bias: ``(..., C_out, L)``."""
    y = torch.matmul(weight.flatten(1), cols)
    return y if bias is None else y + bias[:, None]


def _time_taps(
    x: torch.Tensor, dim: int, k: int, stride: tuple[int, ...], padding: tuple[int, ...], dilation: tuple[int, ...]
) -> list[torch.Tensor]:
    """The ``k`` taps of a temporal kernel: views of ``x``, zero-padded along ``dim`` (time),
    where tap ``j`` at output time ``t'`` is input time ``t' * stride + j * dilation - padding``."""
    p, s, d = padding[0], stride[0], dilation[0]
    if p:
        pad = [0, 0] * (x.dim() - 1 - dim) + [p, p]
        x = F.pad(x, pad)
    t_out = (x.shape[dim] - d * (k - 1) - 1) // s + 1
    span = (t_out - 1) * s + 1
    return [x.narrow(dim, j * d, span)[(slice(None),) * dim + (slice(None, None, s),)] for j in range(k)]


def _temporal_conv(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    dilation: tuple[int, ...],
    conv2d: Callable[..., torch.Tensor] = F.conv2d,
) -> torch.Tensor:
    """A ``kt x 1 x 1`` conv (no spatial stride or padding) of a contiguous input.

    A contiguous ``(N, C, T, H, W)`` tensor is ``(N, C, T, H*W)`` as it is, so the conv is
    a ``(kt x 1)`` 2D convolution.
    """
    n, c, t, h, w = x.shape
    y = conv2d(x.reshape(n, c, t, h * w), weight.flatten(3), bias, (stride[0], 1), (padding[0], 0), (dilation[0], 1))
    return y.reshape(n, -1, y.shape[2], h, w)


def _temporal_conv_matmul(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    dilation: tuple[int, ...],
) -> torch.Tensor:
    """A ``kt x 1 x 1`` conv of a contiguous input as one matrix product over ``kt`` shifted
    copies of it (im2col).

    For frames small next to the channel count (the slow pathway's res5 on a 40x60 clip:
    48 positions, 2048 channels), where the convolution kernels spend their time on the
    weights: faster than :func:`_temporal_conv` there.
    """
    n, c, t, h, w = x.shape
    k = weight.shape[2]
    taps = _time_taps(x.reshape(n, c, t, h * w), 2, k, stride, padding, dilation)
    t_out = taps[0].shape[2]
    cols = torch.stack(taps, dim=2)  # (N, C, kt, T', H*W): row c*kt + j matches weight.flatten(1)
    y = _weight_matmul(weight, cols.reshape(n, c * k, t_out * h * w), bias)
    return y.reshape(n, -1, t_out, h, w)


def _temporal_conv_channels_last(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    dilation: tuple[int, ...],
    conv2d: Callable[..., torch.Tensor] = F.conv2d,
) -> torch.Tensor:
    """A ``kt x 1 x 1`` conv (no spatial stride or padding) of a channels-last-3d input.

    Its ``(N, T, H, W, C)`` memory is a channels-last ``(N, C, T, H*W)`` tensor as it is, so
    the conv is a ``(kt x 1)`` 2D convolution of a free view, and the result a free view back.
    """
    n, c, t, h, w = x.shape
    x2 = x.permute(0, 2, 3, 4, 1).reshape(n, t, h * w, c).permute(0, 3, 1, 2)  # (N, C, T, H*W), no copy
    y = conv2d(x2, weight.flatten(3), bias, (stride[0], 1), (padding[0], 0), (dilation[0], 1))
    return y.reshape(n, -1, y.shape[2], h, w).contiguous(memory_format=torch.channels_last_3d)


def _temporal_conv_channels_last_im2col(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    dilation: tuple[int, ...],
    conv2d: Callable[..., torch.Tensor] = F.conv2d,
) -> torch.Tensor:
    """A wide ``kt x 1 x 1`` conv of a channels-last-3d input as one 1x1 ``F.conv2d`` over
    ``kt`` time-shifted copies of the input, stacked as channels (im2col along time).

    The ``(N, T, H, W, C)`` memory padded in time gives each tap a free view; concatenated
    along channels they are a channels-last ``(N*T', kt*C, H, W)`` batch of frames, and the
    conv a pointwise one, which oneDNN runs at close to its peak where its ``(kt x 1)`` 2D
    conv of thousands of channels on a few hundred positions does not (the slow pathway's
    res4-5, in a whole training step).
    """
    n, c, t, h, w = x.shape
    k = weight.shape[2]
    taps = _time_taps(x.permute(0, 2, 3, 4, 1), 1, k, stride, padding, dilation)  # of the (N, T, H, W, C) view
    t_out = taps[0].shape[1]
    cols = torch.cat(taps, dim=4)
    # column j*C + c is tap j of channel c: the weight's (C_out, kt, C) order
    w2 = weight.permute(0, 2, 1, 3, 4).reshape(weight.shape[0], k * c, 1, 1)
    frames = cols.reshape(n * t_out, h, w, k * c).permute(0, 3, 1, 2)  # channels-last (N*T', kt*C, H, W)
    y = conv2d(frames, w2, bias, (1, 1), (0, 0), (1, 1))
    return y.reshape(n, t_out, *y.shape[1:]).transpose(1, 2)


def _spatial_conv_matmul(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    dilation: tuple[int, ...],
) -> torch.Tensor:
    """A ``1 x kh x kw`` conv as im2col (``F.unfold`` over the frames) and one matrix product.

    For weight-bound convs on tiny frames: the dilated ``3 x 3`` convs of res5 on a 40x60
    clip (3x4 positions, 512 channels) run faster so.
    """
    n, c, t, h, w = x.shape
    frames = x.transpose(1, 2).reshape(n * t, c, h, w)
    cols = F.unfold(frames, weight.shape[3:], dilation[1:], padding[1:], stride[1:])  # (N*T, C*kh*kw, L)
    y = _weight_matmul(weight, cols, bias)
    ho = (h + 2 * padding[1] - dilation[1] * (weight.shape[3] - 1) - 1) // stride[1] + 1
    wo = (w + 2 * padding[2] - dilation[2] * (weight.shape[4] - 1) - 1) // stride[2] + 1
    return y.reshape(n, t, -1, ho, wo).transpose(1, 2)


#: The backends of ``F.conv3d`` that are PyTorch's own unvectorised loops (im2col plus a
#: matrix product per clip). Its CPU heuristic picks them for ``kt x 1 x 1`` and ``1 x 1 x 1``
#: kernels on one thread (even for batches of clips) and for some dilated ones, where they
#: run at a fraction of oneDNN's rate (``benchmarks/bench_peak.py``).
_SLOW_BACKENDS = frozenset(
    getattr(torch._C._ConvBackend, name)
    for name in ("Slow3d", "SlowDilated3d")
    if hasattr(torch._C, "_ConvBackend") and hasattr(torch._C._ConvBackend, name)
)


def _plain_conv3d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    dilation: tuple[int, ...],
) -> torch.Tensor:
    """``F.conv3d``, but through oneDNN where PyTorch would run its slow native kernels.

    ``torch.mkldnn_convolution`` is the op ``F.conv3d`` itself calls when its heuristic
    chooses oneDNN (same autograd formula, same results up to float rounding); float32 CPU
    only, since oneDNN has no float64 convolutions.
    """
    if (
        x.dtype == torch.float32
        and weight.dtype == torch.float32
        and _SLOW_BACKENDS
        and torch.backends.mkldnn.is_available()
        and torch._C._select_conv_backend(x, weight, bias, stride, padding, dilation, False, (0, 0, 0), 1, None)
        in _SLOW_BACKENDS
    ):
        return torch.mkldnn_convolution(x, weight, bias, padding, stride, dilation, 1)
    return F.conv3d(x, weight, bias, stride, padding, dilation)


def can_fuse_relu(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether a conv of ``x`` with ``weight`` may run with its bias, residual add and ReLU
    inside oneDNN's kernel (:func:`conv_relu`): a float32 CPU tensor outside autocast, an
    ONNX export, a ``torch.compile`` trace and ``THERMAL_ACTION_NATIVE_CONV=1``."""
    return (
        x.dtype == torch.float32
        and weight.dtype == torch.float32
        and torch.backends.mkldnn.is_available()
        and not torch.is_autocast_enabled("cpu")
        and not _plain_ops_only(x)
    )


#: Backends whose convolutions :func:`conv_relu` runs fused: oneDNN, and the 3D ones that
#: :func:`_plain_conv3d` replaces by oneDNN's forward anyway (the backward is PyTorch's choice
#: either way: ``aten::convolution_backward``).
_FUSABLE_BACKENDS = _SLOW_BACKENDS | {torch._C._ConvBackend.Mkldnn} if hasattr(torch._C, "_ConvBackend") else frozenset()


class _ConvReLU(torch.autograd.Function):
    """``relu(conv(x, weight, bias) [+ residual])`` as one oneDNN convolution with post-ops.

    Forward: ``mkldnn::_convolution_pointwise`` (the fused kernel inductor uses for
    inference), so the bias, the residual add and the ReLU cost no pass over the output.
    Backward: the ReLU's mask from the saved output, then ``aten::convolution_backward``
    (what ``F.conv2d`` / ``F.conv3d`` run); the residual's gradient is the masked one.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, residual, stride, padding, dilation):  # type: ignore[override]
        if residual is None:
            y = torch.ops.mkldnn._convolution_pointwise(
                x, weight, bias, padding, stride, dilation, 1, "relu", [None], ""
            )
        else:
            y = torch.ops.mkldnn._convolution_pointwise.binary(
                x, residual, weight, bias, padding, stride, dilation, 1, "add", 1.0, "relu", [None], ""
            )
        ctx.save_for_backward(x, weight, y)
        ctx.conv = (stride, padding, dilation, None if bias is None else list(bias.shape))
        return y

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        x, weight, y = ctx.saved_tensors
        stride, padding, dilation, bias_sizes = ctx.conv
        grad = torch.ops.aten.threshold_backward(grad, y, 0)
        need = ctx.needs_input_grad
        gx, gw, gb = torch.ops.aten.convolution_backward(
            grad, x, weight, bias_sizes, stride, padding, dilation, False, [0] * len(stride), 1,
            [need[0], need[1], need[2] and bias_sizes is not None],
        )
        return gx, gw, gb, grad if need[3] else None, None, None, None


def conv_relu(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
    residual: torch.Tensor | None = None,
) -> torch.Tensor:
    """``relu(F.conv{2,3}d(x, weight, bias, stride, padding, dilation) + residual)``.

    One fused oneDNN kernel (:class:`_ConvReLU`) where :func:`can_fuse_relu` allows it and
    PyTorch would run this conv through oneDNN anyway (its backward is then oneDNN's too);
    otherwise the plain ops. ``residual``, if given, has the conv output's shape.
    """
    stride, padding, dilation = tuple(stride), tuple(padding), tuple(dilation)
    if (
        can_fuse_relu(x, weight)
        and (bias is None or bias.dtype == torch.float32)
        and (residual is None or (residual.dtype == torch.float32 and residual.device.type == "cpu"))
        and torch._C._select_conv_backend(x, weight, bias, stride, padding, dilation, False, (0,) * len(stride), 1, None)
        in _FUSABLE_BACKENDS
    ):
        return _ConvReLU.apply(x, weight, bias, residual, list(stride), list(padding), list(dilation))
    if x.dim() == 4:
        y = F.conv2d(x, weight, bias, stride, padding, dilation)
    else:
        y = _plain_conv3d(x, weight, bias, stride, padding, dilation)
    return _add_relu(y, residual)


def _add_relu(y: torch.Tensor, residual: torch.Tensor | None) -> torch.Tensor:
    """``relu(y + residual)`` by plain ops (out of place add, in-place ReLU on its result)."""
    if residual is not None:
        y = y + residual
    return F.relu_(y)


def _frames_conv2d_channels_last(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    dilation: tuple[int, ...],
    conv2d: Callable[..., torch.Tensor] = F.conv2d,
    residual: torch.Tensor | None = None,
) -> torch.Tensor:
    """A ``1 x kh x kw`` conv (no temporal stride or padding) of a channels-last-3d input as
    one ``F.conv2d`` over its frames.

    A channels-last-3d ``(N, C, T, H, W)`` tensor is byte for byte a channels-last
    ``(N*T, C, H, W)`` batch of frames, so both the input and the result are free views.
    A ``residual`` (only with ``conv2d=conv_relu``), shaped as the result, is viewed so too.
    """
    n, c, t, h, w = x.shape
    frames = x.transpose(1, 2).reshape(n * t, c, h, w)
    args = (frames, weight.squeeze(2), bias, stride[1:], padding[1:], dilation[1:])
    if residual is None:
        y = conv2d(*args)
    else:
        y = conv2d(*args, residual.transpose(1, 2).reshape(n * t, *residual.shape[1:2], *residual.shape[3:]))
    return y.reshape(n, t, *y.shape[1:]).transpose(1, 2)


def conv3d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: Sequence[int] = (1, 1, 1),
    padding: Sequence[int] = (0, 0, 0),
    dilation: Sequence[int] = (1, 1, 1),
    groups: int = 1,
    *,
    relu: bool = False,
    residual: torch.Tensor | None = None,
) -> torch.Tensor:
    """``F.conv3d`` with the CPU fast paths described in the module docstring.

    Args:
        x: ``(N, C, T, H, W)`` input.
        weight: ``(C_out, C / groups, kt, kh, kw)`` kernel.
        bias: optional ``(C_out,)`` bias.
        stride, padding, dilation: three ints each, as for ``F.conv3d`` (string padding
            is not supported).
        groups: as for ``F.conv3d``.
        relu: return ``relu(conv + residual)``, computed inside oneDNN's convolution kernel
            (:func:`conv_relu`) where the path ends in one; else by the plain ops after it.
        residual: optional tensor shaped as the result, added before the ReLU (only with
            ``relu``); fused into channels-last pointwise and 3D convolutions.

    Returns:
        ``(N, C_out, T', H', W')``, equal to ``F.conv3d(x, weight, bias, stride, padding,
        dilation, groups)`` (plus ``residual``, then ReLU, if asked) up to float rounding, in
        the memory format of ``x``.
    """
    if residual is not None and not relu:
        raise ValueError("conv3d: a residual is only added together with relu=True")
    stride, padding, dilation = tuple(stride), tuple(padding), tuple(dilation)
    fuse = relu and groups == 1 and can_fuse_relu(x, weight)
    y, done = _conv3d_paths(x, weight, bias, stride, padding, dilation, groups, fuse, residual)
    return _add_relu(y, residual) if relu and not done else y


def _conv3d_paths(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    dilation: tuple[int, ...],
    groups: int,
    fuse: bool,
    residual: torch.Tensor | None,
) -> tuple[torch.Tensor, bool]:
    """:func:`conv3d`'s choice of path; returns the result and whether the ReLU (and the
    residual) are in it already (``fuse`` and the path ends in a fusable convolution)."""
    # 2D paths take the ReLU into their convolution; the residual only where the path
    # views it as its 2D result (channels-last pointwise convs).
    conv2d = conv_relu if fuse and residual is None else F.conv2d
    fused_2d = conv2d is conv_relu
    layout = _layout(x) if groups == 1 else None
    if layout is None:
        if fuse:  # the one-channel stems: a fused 3D conv (conv_relu falls back by itself)
            return conv_relu(x, weight, bias, stride, padding, dilation, residual), True
        return F.conv3d(x, weight, bias, stride, padding, dilation, groups), False
    n, c, t, h, w = x.shape
    kt, kh, kw = weight.shape[2:]
    spatial_only = kt == 1 and stride[0] == 1 and padding[0] == 0
    temporal_only = (kh, kw) == (1, 1) and stride[1:] == (1, 1) and padding[1:] == (0, 0)
    if temporal_only and kt > 1:
        # Any batch: the (kt x 1) 2D conv of the (N, C, T, H*W) view beats oneDNN's and
        # PyTorch's 3D kernels, in both layouts.
        if MATMUL_COLUMNS_PER_CHANNEL * n * t * h * w < c:
            # Tiny frames: one matrix product (of a contiguous copy: the copies are small).
            y = _temporal_conv_matmul(x.contiguous(), weight, bias, stride, padding, dilation)
            return (y.contiguous(memory_format=torch.channels_last_3d) if layout == "cl" else y), False
        if layout == "c":
            return _temporal_conv(x, weight, bias, stride, padding, dilation, conv2d), fused_2d
        if c >= WIDE_TEMPORAL_CHANNELS:
            y = _temporal_conv_channels_last_im2col(x, weight, bias, stride, padding, dilation, conv2d)
            return y.contiguous(memory_format=torch.channels_last_3d), fused_2d
        return _temporal_conv_channels_last(x, weight, bias, stride, padding, dilation, conv2d), fused_2d
    if layout == "cl" and spatial_only and (kh, kw) == (1, 1):
        # Pointwise (strided too), any batch: oneDNN's 2D 1x1 conv of the frames beats its 3D
        # conv, and one matrix product too where MKL's sgemm lags oneDNN (AMD CPUs).
        if stride[1:] != (1, 1) and padding[1:] == (0, 0):
            # Subsample first (a copy of 1/(sh*sw) of the input), then the unstrided conv:
            # oneDNN's backward of a strided 1x1 conv is slower than that.
            x = x[:, :, :, :: stride[1], :: stride[2]].contiguous(memory_format=torch.channels_last_3d)
            stride = (1, 1, 1)
        if fuse and residual is not None:
            y = _frames_conv2d_channels_last(x, weight, bias, stride, padding, dilation, conv_relu, residual)
            done = True
        else:
            y = _frames_conv2d_channels_last(x, weight, bias, stride, padding, dilation, conv2d)
            done = fused_2d
        return y.contiguous(memory_format=torch.channels_last_3d), done  # a no-op where conv2d kept the format
    if n > 1:
        # From two clips on, oneDNN's 3D convolutions are as fast as the 2D paths below.
        if fuse:
            y = conv_relu(x, weight, bias, stride, padding, dilation, residual)
        else:
            y = _plain_conv3d(x, weight, bias, stride, padding, dilation)
        return (y.contiguous(memory_format=torch.channels_last_3d) if layout == "cl" else y), fuse
    if spatial_only and (kh, kw) != (1, 1) and MATMUL_COLUMNS_PER_CHANNEL * n * t * h * w < c:
        y = _spatial_conv_matmul(x, weight, bias, stride, padding, dilation)
        fmt = torch.channels_last_3d if layout == "cl" else torch.contiguous_format
        return y.contiguous(memory_format=fmt), False
    if layout == "cl":
        if spatial_only:
            # Dilated kernels too (res4-5 of the compact variants), faster than in 3D.
            y = _frames_conv2d_channels_last(x, weight, bias, stride, padding, dilation, conv2d)
            done = fused_2d
        elif fuse:
            y, done = conv_relu(x, weight, bias, stride, padding, dilation, residual), True
        else:
            y, done = _plain_conv3d(x, weight, bias, stride, padding, dilation), False
        # oneDNN returns some of these in the contiguous format (kt x 1 x 1 kernels, for one);
        # a copy keeps the whole network in one format, which the BatchNorm, ReLU and
        # residual adds that follow repay many times over. A no-op when already so.
        return y.contiguous(memory_format=torch.channels_last_3d), done
    if spatial_only and dilation == (1, 1, 1) and (kh, kw) != (1, 1) and h * w >= MIN_FRAME_PIXELS_FOR_2D:
        frames = x.transpose(1, 2).reshape(t, c, h, w)  # one copy
        y = conv2d(frames, weight.squeeze(2), bias, stride[1:], padding[1:], dilation[1:])
        return y.reshape(n, t, *y.shape[1:]).transpose(1, 2).contiguous(), fused_2d
    if fuse:
        return conv_relu(x, weight, bias, stride, padding, dilation, residual), True
    return _plain_conv3d(x, weight, bias, stride, padding, dilation), False


class Conv3d(nn.Conv3d):
    """``nn.Conv3d`` computed by :func:`conv3d` (same parameters and state-dict keys).

    Constructing one applies :func:`~thermal_action.models.ops.cpu_workarounds.cap_onednn_isa`
    (a no-op after the first time), so a model built from these modules, by
    ``build_model`` or by hand, has the oneDNN ISA capped before its first convolution.
    """

    def __init__(self, *args, **kwargs) -> None:
        cap_onednn_isa()
        super().__init__(*args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.padding_mode != "zeros" or isinstance(self.padding, str):
            return super().forward(x)
        return conv3d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
