"""SlowFast 3D-ResNet backbone (bottleneck pathways) in plain PyTorch.

Parameter names follow PySlowFast, so a PySlowFast checkpoint loads by prefixing
``backbone.`` and AlphAction / MMAction2 / PyTorchVideo checkpoints by a key rename
(see ``docs/checkpoint-naming.md``)::

    s1.pathway{0,1}_stem.{conv,bn}                      stem of slow (0) / fast (1)
    s1_fuse.{conv_f2s,bn}                               fast -> slow lateral after the stem
    s{2..5}.pathway{0,1}_res{i}.branch1[_bn]            projection shortcut (first block)
    s{2..5}.pathway{0,1}_res{i}.branch2.{a,b,c}[_bn]    bottleneck 1x1 (temporal k), 3x3, 1x1
    s{2..4}_fuse.{conv_f2s,bn}                          laterals after res2, res3, res4

Data flow (``+`` is channel concatenation)::

    slow (B,C,Ts,H,W) -> s1.pathway0_stem -+-> s2.pathway0 -+-> s3 ... -+-> s5.pathway0 -> slow feat
                                           |                |           |
                                       s1_fuse          s2_fuse      s4_fuse
                                           |                |           |
    fast (B,C,Tf,H,W) -> s1.pathway1_stem -+-> s2.pathway1 -+-> s3 ... -+-> s5.pathway1 -> fast feat

Each lateral is a time-strided conv (kernel ``[fusion_kernel, 1, 1]``, stride
``[alpha, 1, 1]``) from ``c`` fast channels to ``fusion_ratio * c`` channels, in one of
three published flavours (``lateral=``):

==================  ========================================  ==========================
``lateral``         maths                                     loads exactly
==================  ========================================  ==========================
``"conv_bn_relu"``  conv (no bias) -> BN -> ReLU              PySlowFast, PyTorchVideo,
                                                              MMAction2 ``lateral_norm``
``"conv_bias"``     conv with bias (AlphAction uses kernel 5)  AlphAction ``Tconv``
``"conv"``          conv (no bias), no norm, no activation    MMAction2 default
==================  ========================================  ==========================

Channel arithmetic (R50, ``width=64``, ``beta_inv=8``, ``fusion_ratio=2``): slow stage
inputs are ``C + 2*C/8`` = 80, 320, 640, 1280; fast widths 8, 32, 64, 128, 256; the
head sees 2048 + 256 = 2304 channels.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from thermal_action.models.ops.bn_fold import conv_bn
from thermal_action.models.ops.conv import Conv3d, conv3d, is_channels_last_3d

#: Lateral flavours, see the module docstring.
LATERAL_STYLES = ("conv_bn_relu", "conv_bias", "conv")


def rgb_stem_to_thermal(weight: torch.Tensor) -> torch.Tensor:
    """Turns an RGB stem kernel into a one-channel (thermal) kernel.

    Summing over the input channel gives a kernel whose response to a grey image
    ``x`` equals the RGB kernel's response to ``x`` repeated on all three channels,
    so a pretrained stem keeps its meaning on a single-channel input.

    Args:
        weight: ``(C_out, 3, kt, kh, kw)`` RGB stem kernel.

    Returns:
        ``(C_out, 1, kt, kh, kw)`` kernel.
    """
    if weight.dim() != 5 or weight.shape[1] != 3:
        raise ValueError(f"expected an RGB conv3d kernel (C_out, 3, kt, kh, kw), got {tuple(weight.shape)}")
    return weight.sum(dim=1, keepdim=True)


def _bn(channels: int, eps: float, momentum: float) -> nn.BatchNorm3d:
    return nn.BatchNorm3d(channels, eps=eps, momentum=momentum)


class Stem(nn.Module):
    """conv (kt x k x k) -> BN -> ReLU -> optional 1x3x3 max-pool.

    AlphAction's stem pool has no padding (``pool_padding=False``); PySlowFast, MMAction2
    and PyTorchVideo pad by one.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        temporal_kernel: int,
        spatial_kernel: int,
        spatial_stride: int,
        pool: bool,
        pool_padding: bool,
        bn_eps: float,
        bn_momentum: float,
    ) -> None:
        super().__init__()
        self.conv = Conv3d(
            in_channels,
            out_channels,
            kernel_size=(temporal_kernel, spatial_kernel, spatial_kernel),
            stride=(1, spatial_stride, spatial_stride),
            padding=(temporal_kernel // 2, spatial_kernel // 2, spatial_kernel // 2),
            bias=False,
        )
        self.bn = _bn(out_channels, bn_eps, bn_momentum)
        self.pool = pool
        self.pool_padding = 1 if pool_padding else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = conv_bn(self.conv, self.bn, x, relu=True)
        if self.pool:
            x = F.max_pool3d(x, (1, 3, 3), (1, 2, 2), (0, self.pool_padding, self.pool_padding))
        return x


class BottleneckTransform(nn.Module):
    """``a``: kt x 1 x 1, ``b``: 1 x 3 x 3 (spatial stride, dilation), ``c``: 1 x 1 x 1."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        inner_channels: int,
        temporal_kernel: int,
        spatial_stride: int,
        dilation: int,
        bn_eps: float,
        bn_momentum: float,
    ) -> None:
        super().__init__()
        self.a = Conv3d(
            in_channels, inner_channels, (temporal_kernel, 1, 1), padding=(temporal_kernel // 2, 0, 0), bias=False
        )
        self.a_bn = _bn(inner_channels, bn_eps, bn_momentum)
        self.b = Conv3d(
            inner_channels,
            inner_channels,
            (1, 3, 3),
            stride=(1, spatial_stride, spatial_stride),
            padding=(0, dilation, dilation),
            dilation=(1, dilation, dilation),
            bias=False,
        )
        self.b_bn = _bn(inner_channels, bn_eps, bn_momentum)
        self.c = Conv3d(inner_channels, out_channels, 1, bias=False)
        self.c_bn = _bn(out_channels, bn_eps, bn_momentum)

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        """``c_bn(c(...))``; with ``residual``, ``relu(c_bn(c(...)) + residual)`` (a ResBlock's end)."""
        x = conv_bn(self.a, self.a_bn, x, relu=True)
        x = conv_bn(self.b, self.b_bn, x, relu=True)
        return conv_bn(self.c, self.c_bn, x, relu=residual is not None, residual=residual)


class ResBlock(nn.Module):
    """``relu(branch1(x) + branch2(x))``; ``branch1`` is a 1x1x1 projection when shapes change.

    A block whose spatial dilation differs from 1 keeps a projection when it is the first
    of its stage (AlphAction/PySlowFast res5 was stride 2 in pre-training), which the
    channel change of every SlowFast stage implies anyway.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        inner_channels: int,
        temporal_kernel: int,
        spatial_stride: int,
        dilation: int,
        bn_eps: float,
        bn_momentum: float,
    ) -> None:
        super().__init__()
        if in_channels != out_channels or spatial_stride != 1:
            self.branch1 = Conv3d(
                in_channels, out_channels, 1, stride=(1, spatial_stride, spatial_stride), bias=False
            )
            self.branch1_bn = _bn(out_channels, bn_eps, bn_momentum)
        else:
            self.branch1 = None
            self.branch1_bn = None
        self.branch2 = BottleneckTransform(
            in_channels, out_channels, inner_channels, temporal_kernel, spatial_stride, dilation, bn_eps, bn_momentum
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.branch1 is None else conv_bn(self.branch1, self.branch1_bn, x)
        # The add and the ReLU in place on branch2's BatchNorm output, which no backward
        # reads (an add's backward reads neither input, a ReLU's only its own output), or
        # inside the last conv with a frozen BN (conv_bn). The shortcut, possibly ``x``, is unchanged.
        return self.branch2(x, residual=shortcut)


class FuseFastToSlow(nn.Module):
    """Time-strided conv from the fast to the slow pathway, concatenated to the slow features."""

    def __init__(
        self,
        fast_channels: int,
        fusion_ratio: int,
        fusion_kernel: int,
        alpha: int,
        style: str,
        bn_eps: float,
        bn_momentum: float,
    ) -> None:
        super().__init__()
        if style not in LATERAL_STYLES:
            raise ValueError(f"unknown lateral style {style!r}; expected one of {LATERAL_STYLES}")
        self.style = style
        self.conv_f2s = Conv3d(
            fast_channels,
            fast_channels * fusion_ratio,
            (fusion_kernel, 1, 1),
            stride=(alpha, 1, 1),
            padding=(fusion_kernel // 2, 0, 0),
            bias=style == "conv_bias",
        )
        self.bn = _bn(fast_channels * fusion_ratio, bn_eps, bn_momentum) if style == "conv_bn_relu" else None

    def _time_strided_conv(self, fast: torch.Tensor) -> torch.Tensor:
        """``conv_f2s(fast)``, computed as a frame gather followed by a 1x1x1 conv.

        Same maths as ``F.conv3d`` with kernel ``[k, 1, 1]``, stride ``[alpha, 1, 1]`` and
        zero padding ``k // 2``: output frame ``t`` sees input frames
        ``alpha * t - k // 2 + j``, ``j < k``. Written out because oneDNN's bf16 kernel for
        this conv (temporal stride larger than the kernel, e.g. kernel 5 / stride 8 with
        128 -> 256 channels) corrupted the heap (docs/benchmarks.md, "Behind the CPU code
        paths"); the gather plus a 1x1x1 conv is also no slower.
        """
        weight = self.conv_f2s.weight  # (Co, Cf, k, 1, 1)
        k = weight.shape[2]
        stride = self.conv_f2s.stride[0]
        pad = self.conv_f2s.padding[0]
        b, c, t, h, w = fast.shape
        ts = (t + 2 * pad - k) // stride + 1
        frames = (torch.arange(ts, device=fast.device) * stride - pad)[:, None] + torch.arange(k, device=fast.device)
        valid = (frames >= 0) & (frames < t)  # (Ts, k); out-of-range frames are the zero padding
        cols = fast.index_select(2, frames.clamp(0, t - 1).flatten())  # (B, Cf, Ts*k, H, W)
        if not bool(valid.all()):
            cols = cols * valid.flatten().to(cols.dtype).view(1, 1, -1, 1, 1)
        # (B, Cf, Ts, k, H, W) -> (B, Cf*k, Ts, H, W), channel index c*k + j as in weight.flatten(1)
        cols = cols.view(b, c, ts, k, h, w).transpose(2, 3).reshape(b, c * k, ts, h, w)
        if is_channels_last_3d(fast):
            cols = cols.contiguous(memory_format=torch.channels_last_3d)  # keep the network's format
        return conv3d(cols, weight.reshape(weight.shape[0], c * k, 1, 1, 1), self.conv_f2s.bias)

    def forward(self, slow: torch.Tensor, fast: torch.Tensor) -> torch.Tensor:
        lateral = self._time_strided_conv(fast)  # (B, ratio*Cf, Ts, H, W)
        if self.bn is not None:
            lateral = F.relu_(self.bn(lateral))
        if lateral.shape[2:] != slow.shape[2:]:
            raise ValueError(
                f"fast->slow lateral gives {tuple(lateral.shape[2:])} (T, H, W) but the slow pathway has "
                f"{tuple(slow.shape[2:])}; the fast clip must have alpha={self.conv_f2s.stride[0]} times the "
                "slow frames and both pathways the same H, W"
            )
        return torch.cat([slow, lateral], dim=1)


class SlowFastStage(nn.Module):
    """One residual stage of both pathways: ``pathway{p}_res{i}`` blocks."""

    def __init__(
        self,
        in_channels: Sequence[int],
        out_channels: Sequence[int],
        inner_channels: Sequence[int],
        temporal_kernels: Sequence[int],
        depth: int,
        spatial_stride: int,
        dilation: int,
        bn_eps: float,
        bn_momentum: float,
    ) -> None:
        super().__init__()
        self.depth = depth
        for p in range(2):
            for i in range(depth):
                block = ResBlock(
                    in_channels[p] if i == 0 else out_channels[p],
                    out_channels[p],
                    inner_channels[p],
                    temporal_kernels[p],
                    spatial_stride if i == 0 else 1,
                    dilation,
                    bn_eps,
                    bn_momentum,
                )
                self.add_module(f"pathway{p}_res{i}", block)

    def forward(self, slow: torch.Tensor, fast: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for i in range(self.depth):
            slow = getattr(self, f"pathway0_res{i}")(slow)
        for i in range(self.depth):
            fast = getattr(self, f"pathway1_res{i}")(fast)
        return slow, fast


class StemStage(nn.Module):
    """``s1``: the two pathway stems."""

    def __init__(self, pathway0_stem: Stem, pathway1_stem: Stem) -> None:
        super().__init__()
        self.pathway0_stem = pathway0_stem
        self.pathway1_stem = pathway1_stem

    def forward(self, slow: torch.Tensor, fast: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.pathway0_stem(slow), self.pathway1_stem(fast)


class SlowFastBackbone(nn.Module):
    """SlowFast 3D-ResNet with bottleneck blocks; returns the last slow and fast feature maps.

    Args:
        depths: residual blocks in res2..res5, (3, 4, 6, 3) for R50, (3, 4, 23, 3) for R101.
        width: slow stem channels; stage ``k`` (0-based) has ``width * 2**k`` inner and
            ``expansion`` times as many output channels.
        beta_inv: slow/fast channel ratio (8 published).
        alpha: fast/slow frame-rate ratio (lateral temporal stride).
        tau: slow pathway frame stride in raw frames; informational (the data pipeline
            samples the frames), kept so a variant carries its published name.
        fusion_kernel: temporal kernel of the laterals (7 PySlowFast, 5 AlphAction).
        fusion_ratio: lateral output channels / fast channels (2 published).
        lateral: one of :data:`LATERAL_STYLES`.
        in_channels: input channels (1 for thermal; 1 + Z with zone masks, ``models/room.py``).
        stem_spatial_kernel, stem_spatial_stride: stem conv spatial kernel and stride.
        stem_pool: whether the stem has the 1x3x3 stride-2 max-pool.
        stem_pool_padding: pad the stem pool by one (False for AlphAction).
        stem_temporal_kernels: (slow, fast) stem temporal kernels, (1, 5) published.
        slow_temporal_kernels, fast_temporal_kernels: conv ``a`` temporal kernel per stage.
        spatial_strides: spatial stride of res2..res5 (res5 stride 1 for detection).
        dilations: spatial dilation of res2..res5 (2 in res5 for detection).
        expansion: bottleneck output / inner channels.
        zero_init_residual: start every block's last BN at gamma 0 (the block is an
            identity at initialisation; helps from-scratch training).
        bn_eps, bn_momentum: BatchNorm settings.

    Shapes:
        slow ``(B, C, Ts, H, W)``, fast ``(B, C, alpha*Ts, H, W)`` ->
        ``[(B, Cs_out, Ts, H/s, W/s), (B, Cf_out, alpha*Ts, H/s, W/s)]`` with
        ``s = output_stride`` (sizes rounded up by the padded convs).
    """

    def __init__(
        self,
        depths: Sequence[int] = (3, 4, 6, 3),
        width: int = 64,
        beta_inv: int = 8,
        alpha: int = 8,
        tau: int = 16,
        fusion_kernel: int = 7,
        fusion_ratio: int = 2,
        lateral: str = "conv_bn_relu",
        in_channels: int = 1,
        stem_spatial_kernel: int = 7,
        stem_spatial_stride: int = 2,
        stem_pool: bool = True,
        stem_pool_padding: bool = True,
        stem_temporal_kernels: Sequence[int] = (1, 5),
        slow_temporal_kernels: Sequence[int] = (1, 1, 3, 3),
        fast_temporal_kernels: Sequence[int] = (3, 3, 3, 3),
        spatial_strides: Sequence[int] = (1, 2, 2, 1),
        dilations: Sequence[int] = (1, 1, 1, 2),
        expansion: int = 4,
        zero_init_residual: bool = False,
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
    ) -> None:
        super().__init__()
        if len(depths) != 4 or len(spatial_strides) != 4 or len(dilations) != 4:
            raise ValueError("depths, spatial_strides and dilations need one entry per stage res2..res5")
        if width % beta_inv:
            raise ValueError(f"width {width} is not divisible by beta_inv {beta_inv}")
        if alpha < 1:
            raise ValueError(f"alpha must be >= 1, got {alpha}")
        self.alpha = alpha
        self.tau = tau
        self.beta_inv = beta_inv
        self.in_channels = in_channels
        self.lateral = lateral
        self.depths = tuple(depths)

        fast_width = width // beta_inv
        bn = dict(bn_eps=bn_eps, bn_momentum=bn_momentum)
        self.s1 = StemStage(
            Stem(in_channels, width, stem_temporal_kernels[0], stem_spatial_kernel, stem_spatial_stride,
                 stem_pool, stem_pool_padding, **bn),
            Stem(in_channels, fast_width, stem_temporal_kernels[1], stem_spatial_kernel, stem_spatial_stride,
                 stem_pool, stem_pool_padding, **bn),
        )
        self.s1_fuse = FuseFastToSlow(fast_width, fusion_ratio, fusion_kernel, alpha, lateral, **bn)

        slow_in = width + fast_width * fusion_ratio
        fast_in = fast_width
        for k in range(4):
            inner = width * 2**k
            out = inner * expansion
            stage = SlowFastStage(
                (slow_in, fast_in),
                (out, out // beta_inv),
                (inner, inner // beta_inv),
                (slow_temporal_kernels[k], fast_temporal_kernels[k]),
                depths[k],
                spatial_strides[k],
                dilations[k],
                **bn,
            )
            self.add_module(f"s{k + 2}", stage)
            if k < 3:
                self.add_module(
                    f"s{k + 2}_fuse",
                    FuseFastToSlow(out // beta_inv, fusion_ratio, fusion_kernel, alpha, lateral, **bn),
                )
                slow_in = out + (out // beta_inv) * fusion_ratio
            fast_in = out // beta_inv
        #: Output channels of the (slow, fast) feature maps.
        self.out_channels: tuple[int, int] = (out, out // beta_inv)
        stride = stem_spatial_stride * (2 if stem_pool else 1)
        for s in spatial_strides:
            stride *= s
        #: Input pixels per feature-map cell.
        self.output_stride: int = stride

        self._frozen_stages = 0
        self._frozen_bn = False
        self._init_weights(zero_init_residual)

    def _init_weights(self, zero_init_residual: bool) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, BottleneckTransform):
                    nn.init.zeros_(m.c_bn.weight)

    # ------------------------------------------------------------------ freezing
    def stage_modules(self, stage: int) -> list[nn.Module]:
        """The modules of stage ``stage`` (1..5): ``s{stage}`` and its lateral ``s{stage}_fuse``."""
        mods = [getattr(self, f"s{stage}")]
        if hasattr(self, f"s{stage}_fuse"):
            mods.append(getattr(self, f"s{stage}_fuse"))
        return mods

    def freeze(self, num_stages: int = 5, frozen_bn: bool | None = None) -> None:
        """Freezes stages 1..``num_stages`` (0 unfreezes all, 5 freezes the whole backbone).

        A frozen stage has ``requires_grad=False`` and its BatchNorm layers stay in eval
        mode (running statistics untouched) even under ``train()``.

        Args:
            num_stages: how many stages, from the stem on, to freeze.
            frozen_bn: if given, also set whether *every* BatchNorm of the backbone is
                frozen (eval mode, affine parameters not trained), as with AlphAction's
                FrozenBN; ``None`` keeps the current setting.
        """
        if not 0 <= num_stages <= 5:
            raise ValueError(f"num_stages must be in 0..5, got {num_stages}")
        self._frozen_stages = num_stages
        if frozen_bn is not None:
            self._frozen_bn = frozen_bn
        for stage in range(1, 6):
            for mod in self.stage_modules(stage):
                for p in mod.parameters():
                    p.requires_grad_(stage > num_stages)
        if self._frozen_bn:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    for p in m.parameters():
                        p.requires_grad_(False)
        self.train(self.training)

    @property
    def frozen_stages(self) -> int:
        return self._frozen_stages

    @property
    def frozen_bn(self) -> bool:
        return self._frozen_bn

    def train(self, mode: bool = True) -> "SlowFastBackbone":
        super().train(mode)
        frozen: list[nn.Module] = []
        if self._frozen_bn:
            frozen = [self]
        else:
            for stage in range(1, self._frozen_stages + 1):
                frozen.extend(self.stage_modules(stage))
        for mod in frozen:
            for m in mod.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    # ------------------------------------------------------------------ forward
    @property
    def channels_last(self) -> bool:
        """Whether the model was put in channels-last-3d format (``.to(memory_format=...)``)."""
        return is_channels_last_3d(self.s2.pathway0_res0.branch2.b.weight)  # (C, C, 1, 3, 3): unambiguous

    def forward(self, slow: torch.Tensor, fast: torch.Tensor) -> list[torch.Tensor]:
        """Runs both pathways.

        Args:
            slow: ``(B, C, Ts, H, W)``.
            fast: ``(B, C, alpha * Ts, H, W)``.

        Returns:
            ``[slow_features (B, Cs, Ts, h, w), fast_features (B, Cf, Tf, h, w)]``.
        """
        if slow.dim() != 5 or fast.dim() != 5:
            raise ValueError(f"expected 5-D (B, C, T, H, W) inputs, got {tuple(slow.shape)} and {tuple(fast.shape)}")
        if fast.shape[2] != self.alpha * slow.shape[2]:
            raise ValueError(
                f"fast pathway has {fast.shape[2]} frames, slow {slow.shape[2]}; alpha={self.alpha} needs "
                f"fast = alpha * slow"
            )
        slow, fast = self.s1(slow, fast)
        if self.channels_last:
            # A one-channel input is contiguous in every format, so the stems' output format
            # is the backend's choice (oneDNN: channels-last; float64: contiguous). Fix it
            # here so that every later conv sees the format the model was put in.
            slow = slow.contiguous(memory_format=torch.channels_last_3d)
            fast = fast.contiguous(memory_format=torch.channels_last_3d)
        slow = self.s1_fuse(slow, fast)
        for k in range(2, 6):
            slow, fast = getattr(self, f"s{k}")(slow, fast)
            if k < 5:
                slow = getattr(self, f"s{k}_fuse")(slow, fast)
        return [slow, fast]
