"""Named SlowFast backbone variants, all in one dict :data:`VARIANTS`.

Every variant is a few-line function returning a :class:`SlowFastBackbone`; keyword
arguments override its defaults (e.g. ``alpha=4``), so tests parametrised over
``VARIANTS`` cover a new variant for free.

Output stride and what a 10-pixel-wide person (native 40x60 thermal frame) covers on
the last feature map, at the native size and upsampled 2x / 4x (``data.scale``):

=====================  =======  ===================  ===================  ===================
variant                stride   40x60 (1x)           80x120 (2x)          160x240 (4x)
=====================  =======  ===================  ===================  ===================
slowfast_tiny          4        10x15, 2.5 cells     20x30, 5 cells       40x60, 10 cells
slowfast_small         4        10x15, 2.5 cells     20x30, 5 cells       40x60, 10 cells
slowfast_r50_*         16       3x4, 0.6 cells       5x8, 1.25 cells      10x15, 2.5 cells
slowfast_r101_8x8      16       3x4, 0.6 cells       5x8, 1.25 cells      10x15, 2.5 cells
=====================  =======  ===================  ===================  ===================

So the compact variants are meant for native or 2x frames; the published full-size
ones need 4x upsampling (160x240) before a person spans more than one cell. The
compact ones reach stride 4 as stem conv (5x5, stride 2, no max-pool) x res3 (stride
2); res4 and res5 keep stride 1 with dilation 2, the published detectors' trick for
res5. Putting the first stride in the stem rather than in res3/res4 keeps the thin
full-resolution layers (4-16 channels over 32 frames) out of the network, which more
than halves a 40x60 training step of ``slowfast_tiny`` against a stride-1 stem with
strides in res3/res4, for the same output stride (docs/model.md). Slow/fast
channel ratio 4 (not 8) so the fast pathway keeps 4-6 stem channels; alpha 8 as the
4x16 models (32 fast frames -> 4 slow frames).

Cost per clip (32 fast frames, forward, FLOPs = 2 x multiply-adds, backbone only; see
``benchmarks/bench_model.py`` for the head and timings):

=================  ======  ===========  ===========  ==========
variant            params  40x60        80x120       160x240
=================  ======  ===========  ===========  ==========
slowfast_tiny      0.83 M  1.4 GFLOPs   5.5 GFLOPs   22 GFLOPs
slowfast_small     3.1 M   5.3 GFLOPs   21 GFLOPs    85 GFLOPs
slowfast_r50_4x16  33.6 M  4.5 GFLOPs   15 GFLOPs    59 GFLOPs
=================  ======  ===========  ===========  ==========

The 40x60 input of the stride-16 variants rounds up to a 3x4 map (padded convs).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from thermal_action.models.backbone import SlowFastBackbone

R50_DEPTHS = (3, 4, 6, 3)
R101_DEPTHS = (3, 4, 23, 3)


def _build(defaults: dict[str, Any], overrides: dict[str, Any]) -> SlowFastBackbone:
    return SlowFastBackbone(**{**defaults, **overrides})


def slowfast_r50_4x16(**kwargs: Any) -> SlowFastBackbone:
    """SlowFast-R50 4x16 (alpha 8, tau 16), PySlowFast laterals (kernel 5, as SLOWFAST_4x16_R50)."""
    return _build(dict(depths=R50_DEPTHS, alpha=8, tau=16, fusion_kernel=5), kwargs)


def slowfast_r50_8x8(**kwargs: Any) -> SlowFastBackbone:
    """SlowFast-R50 8x8 (alpha 4, tau 8), PySlowFast laterals."""
    return _build(dict(depths=R50_DEPTHS, alpha=4, tau=8, fusion_kernel=7), kwargs)


def slowfast_r101_8x8(**kwargs: Any) -> SlowFastBackbone:
    """SlowFast-R101 8x8 (alpha 4, tau 8), PySlowFast laterals."""
    return _build(dict(depths=R101_DEPTHS, alpha=4, tau=8, fusion_kernel=7), kwargs)


def slowfast_r50_4x16_mmaction2(**kwargs: Any) -> SlowFastBackbone:
    """SlowFast-R50 4x16 with MMAction2's default laterals (plain conv, no norm; loads its checkpoints)."""
    return _build(dict(depths=R50_DEPTHS, alpha=8, tau=16, fusion_kernel=5, lateral="conv"), kwargs)


_ALPHACTION = dict(lateral="conv_bias", fusion_kernel=5, stem_pool_padding=False)


def slowfast_r50_4x16_alphaction(**kwargs: Any) -> SlowFastBackbone:
    """SlowFast-R50 4x16 with AlphAction's laterals and stem pool (loads its checkpoints)."""
    return _build(dict(depths=R50_DEPTHS, alpha=8, tau=16, **_ALPHACTION), kwargs)


def slowfast_r101_8x8_alphaction(**kwargs: Any) -> SlowFastBackbone:
    """SlowFast-R101 8x8 with AlphAction's laterals and stem pool (loads its checkpoints)."""
    return _build(dict(depths=R101_DEPTHS, alpha=4, tau=8, **_ALPHACTION), kwargs)


_COMPACT = dict(
    stem_spatial_kernel=5,
    stem_spatial_stride=2,
    stem_pool=False,
    spatial_strides=(1, 2, 1, 1),
    dilations=(1, 1, 2, 2),
    fusion_kernel=5,
    alpha=8,
    tau=16,
    beta_inv=4,
    zero_init_residual=True,
)


def slowfast_tiny(**kwargs: Any) -> SlowFastBackbone:
    """Compact 4x16-style SlowFast for CPUs at native 40x60: one block per stage, width 16."""
    return _build(dict(depths=(1, 1, 1, 1), width=16, **_COMPACT), kwargs)


def slowfast_small(**kwargs: Any) -> SlowFastBackbone:
    """Compact 4x16-style SlowFast, two blocks per stage, width 24."""
    return _build(dict(depths=(2, 2, 2, 2), width=24, **_COMPACT), kwargs)


#: name -> builder(**overrides) -> SlowFastBackbone.
VARIANTS: dict[str, Callable[..., SlowFastBackbone]] = {
    fn.__name__: fn
    for fn in (
        slowfast_tiny,
        slowfast_small,
        slowfast_r50_4x16,
        slowfast_r50_8x8,
        slowfast_r101_8x8,
        slowfast_r50_4x16_alphaction,
        slowfast_r101_8x8_alphaction,
        slowfast_r50_4x16_mmaction2,
    )
}
