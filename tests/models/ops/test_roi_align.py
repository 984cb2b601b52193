"""RoIAlign against a loop-by-definition float64 reference, gradcheck, torchvision (if present)."""

from __future__ import annotations

import pytest
import torch

from thermal_action.models.ops.roi_align import roi_align


def _rois(gen: torch.Generator, n: int, batch: int, height: float, width: float) -> torch.Tensor:
    # Boxes partly outside the map, tiny and large, to exercise every branch.
    x1 = torch.rand(n, generator=gen, dtype=torch.float64) * (width + 8) - 6
    y1 = torch.rand(n, generator=gen, dtype=torch.float64) * (height + 8) - 6
    bw = torch.rand(n, generator=gen, dtype=torch.float64) * width * 0.8 + 0.2
    bh = torch.rand(n, generator=gen, dtype=torch.float64) * height * 0.8 + 0.2
    idx = torch.randint(0, batch, (n,), generator=gen).double()
    return torch.stack([idx, x1, y1, x1 + bw, y1 + bh], dim=1)


@pytest.mark.parametrize("sampling_ratio", [0, 1, 2])
@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("output_size", [(2, 3), (7, 7)])
def test_matches_loop_reference(sampling_ratio, aligned, output_size, roi_align_loop):
    gen = torch.Generator().manual_seed(sampling_ratio * 7 + int(aligned) + output_size[0])
    features = torch.randn(2, 3, 6, 9, generator=gen, dtype=torch.float64)
    scale = 0.25
    rois = _rois(gen, 6, 2, 6 / scale, 9 / scale)
    got = roi_align(features, rois, output_size, scale, sampling_ratio, aligned)
    ref = roi_align_loop(features, rois, *output_size, scale, sampling_ratio, aligned)
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)


def test_float32_and_bf16_autocast_keep_float32_arithmetic(roi_align_loop):
    gen = torch.Generator().manual_seed(0)
    features = torch.randn(1, 4, 10, 15, generator=gen)
    # A box edge at x = 37.3 pixels: bf16 would round it to 37.25 and shift the samples.
    rois = torch.tensor([[0.0, 37.3, 5.1, 52.9, 30.7]])
    ref = roi_align_loop(features.double(), rois.double(), 7, 7, 0.25, 2, True)
    torch.testing.assert_close(roi_align(features, rois, 7, 0.25, 2).double(), ref, rtol=1e-5, atol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = roi_align(features, rois, 7, 0.25, 2)
    # Autocast would run the matmuls in bf16 (errors ~1e-2); they must stay float32.
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.double(), ref, rtol=1e-5, atol=1e-5)


def test_zero_rois_gives_empty_output_and_gradient():
    features = torch.randn(2, 3, 5, 5, requires_grad=True)
    out = roi_align(features, torch.zeros(0, 5), 7, 0.5, 2)
    assert out.shape == (0, 3, 7, 7)
    out.sum().backward()
    assert features.grad is not None and torch.count_nonzero(features.grad) == 0


def test_bad_batch_index_is_a_clear_error():
    with pytest.raises(ValueError, match="batch indices"):
        roi_align(torch.randn(1, 2, 4, 4), torch.tensor([[1.0, 0, 0, 2, 2]]), 2)


def test_gradcheck_float64():
    gen = torch.Generator().manual_seed(3)
    features = torch.randn(2, 2, 4, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    rois = torch.tensor(
        [[0, 0.3, 0.7, 3.1, 2.9], [1, 1.2, -0.4, 4.6, 3.3], [1, 2.0, 1.0, 2.5, 1.2]], dtype=torch.float64
    )
    assert torch.autograd.gradcheck(lambda f: roi_align(f, rois, (2, 3), 1.0, 0, True), (features,))
    assert torch.autograd.gradcheck(lambda f: roi_align(f, rois, 2, 1.0, 2, False), (features,))


def test_agrees_with_torchvision_when_available():
    tv_ops = pytest.importorskip("torchvision.ops")
    gen = torch.Generator().manual_seed(5)
    features = torch.randn(2, 3, 8, 12, generator=gen)
    rois = _rois(gen, 10, 2, 32, 48).float()
    for aligned in (True, False):
        for sr in (0, 2):
            ref = tv_ops.roi_align(features, rois, (7, 7), 0.25, sr, aligned)
            torch.testing.assert_close(roi_align(features, rois, 7, 0.25, sr, aligned), ref, rtol=1e-5, atol=1e-5)
