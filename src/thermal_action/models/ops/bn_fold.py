"""Frozen BatchNorm folded into the convolution before it.

A BatchNorm that normalises with its running statistics (frozen BN, frozen stages,
inference) is a per-channel affine map, so ``bn(conv(x))`` is one conv with the weight
times the scale and the shift as bias; where oneDNN runs the conv, the residual add and
the ReLU after it become post-ops of the same kernel (:func:`conv_bn`). What folding
costs and saves at each input size is measured by ``benchmarks/bench_model.py --bn``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from thermal_action.models.ops.conv import can_fuse_relu, conv3d


def _frozen_bn_affine(bn: nn.BatchNorm3d) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(scale, shift)`` with ``bn(y) == y * scale + shift`` per channel, for a BatchNorm that
    normalises with its running statistics (eval mode: frozen BN, frozen stages, inference);
    ``None`` in training mode, where the batch statistics are needed."""
    if bn.training or not bn.track_running_stats or bn.running_mean is None or bn.running_var is None:
        return None
    scale = torch.rsqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight
    shift = -bn.running_mean * scale
    if bn.bias is not None:
        shift = shift + bn.bias
    return scale, shift


#: :func:`conv_bn` folds a frozen BatchNorm into convs with at least this many output
#: elements per forward (and at least as many as the conv has weights).
FOLD_MIN_OUTPUT = 2**18


def conv_bn(
    conv: nn.Conv3d,
    bn: nn.BatchNorm3d,
    x: torch.Tensor,
    relu: bool = False,
    residual: torch.Tensor | None = None,
) -> torch.Tensor:
    """``bn(conv(x))``, plus ``residual`` and ReLU'd if asked (``residual`` only with ``relu``).

    A BatchNorm with running statistics is a per-channel affine map, so where oneDNN runs
    the conv (:func:`~thermal_action.models.ops.conv.can_fuse_relu`) and its output is large
    (:data:`FOLD_MIN_OUTPUT` elements, and no fewer than its weights) it is folded into the conv
    (weight times scale, shift as bias) and the residual add and ReLU go into the same
    kernel: no pass over the activation for BN, add or ReLU, forward or backward (the frozen
    BN of the shipped ``slowfast_r50_4x16`` config; inference). Gradients reach the conv weight
    (and BN affine parameters that require them) through the folding. Otherwise, and in
    training-mode BN, the plain modules, ReLU and add in place on BatchNorm's output (its
    backward reads its input, not its output).
    """
    # Fusing saves passes over the output, so it pays on large outputs only: on small ones
    # oneDNN's fused kernel is no faster than the plain conv, and folding costs passes over
    # the weight (its product with the scale and, training, that product's backward), so
    # folding every conv made small-frame models slower (docs/benchmarks.md, "Model cost").
    positions = x.numel() // max(x.shape[1], 1) // (conv.stride[1] * conv.stride[2])
    folded = None
    if (
        not bn.training
        and positions * conv.out_channels >= max(FOLD_MIN_OUTPUT, conv.weight.numel())
        and conv.padding_mode == "zeros"
        and can_fuse_relu(x, conv.weight)
    ):
        folded = _folded_parameters(conv, bn)
    if folded is None:
        y = bn(conv(x))
        if residual is not None:
            y += residual
        return F.relu_(y) if relu else y
    weight, bias = folded
    return conv3d(x, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups, relu=relu, residual=residual)


def _folded_parameters(conv: nn.Conv3d, bn: nn.BatchNorm3d) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(conv.weight * scale, conv.bias * scale + shift)`` of ``bn``'s affine map
    (:func:`_frozen_bn_affine`; ``shift`` alone without a conv bias), ``None`` where ``bn``
    has none.

    Without autograd (inference) both are kept on the conv and reused until the conv's or
    the BN's tensors change (their in-place version counters: optimiser steps,
    ``load_state_dict``, running statistics) or move, or the BN's ``eps`` changes, so
    repeated inference pays no pass over the weights.
    """
    cache = not torch.is_grad_enabled()
    if cache:
        tensors = [conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.weight, bn.bias]
        key = (bn.eps, *((t.data_ptr(), t._version) if t is not None else None for t in tensors))
        cached = getattr(conv, "_folded", None)
        if cached is not None and cached[0] == key:
            return cached[1]
    affine = _frozen_bn_affine(bn)
    if affine is None:
        return None
    scale, shift = affine
    folded = (
        conv.weight * scale.view(-1, 1, 1, 1, 1),
        shift if conv.bias is None else conv.bias * scale + shift,
    )
    if cache:
        conv._folded = (key, folded)  # a plain attribute: not a parameter, buffer or state-dict entry
    return folded
