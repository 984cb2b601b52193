"""Person tubes: window geometry, the crop against an exact reference, training, invariances."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from thermal_action.config import ModelConfig
from thermal_action.models.build import build_model
from thermal_action.models.tubes import (
    CropCNN,
    PersonTubeDetector,
    box_size_features,
    boxes_in_tubes,
    crop_tubes,
    tube_windows,
)

K = 5


def _model(variant: str = "slowfast_tiny", size: int = 16, **kw) -> PersonTubeDetector:
    torch.manual_seed(0)
    cfg = ModelConfig(variant=variant, tube_size=size, head_dim=32, dropout=0.0, roi_output_size=3, **kw)
    model = build_model(cfg, K)
    assert isinstance(model, PersonTubeDetector)
    return model


def _clip(batch: int = 2, frames: int = 8, alpha: int = 8, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    fast = torch.randn(batch, 1, frames, 40, 60, generator=gen)
    slow = fast[:, :, alpha // 2 :: alpha].contiguous()
    return slow, fast


ROIS = torch.tensor([[0, 10.0, 10.0, 22.0, 18.0], [0, 30.0, 5.0, 48.0, 12.0], [1, 40.0, 20.0, 46.0, 26.0]])


def test_windows_are_squares_around_the_box():
    w = tube_windows(ROIS, context=1.5, min_size=12.0)
    # Box 0: 12 x 8 px, centre (16, 14): side 18. Box 1: 18 x 7, side 27. Box 2: 6 x 6, side min_size 12.
    expected = torch.tensor([[0, 7.0, 5.0, 25.0, 23.0], [0, 25.5, -5.0, 52.5, 22.0], [1, 37.0, 17.0, 49.0, 29.0]])
    torch.testing.assert_close(w, expected)
    inner = boxes_in_tubes(ROIS, w, 36)
    # 36 px tube over an 18 px window: scale 2; box 0 sits at (3, 5)-(15, 13) of the window.
    torch.testing.assert_close(inner[0], torch.tensor([0, 6.0, 10.0, 30.0, 26.0]))
    assert inner[:, 0].tolist() == [0, 1, 2]


def test_crop_matches_an_exact_reference_on_a_linear_ramp():
    # Bilinear sampling reproduces a linear function exactly, so every tube pixel must equal
    # the ramp at that pixel's sample centres (averaged: the centre of the cell).
    t, h, w = 3, 40, 60
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    frames = torch.stack([0.3 * xs - 0.7 * ys + k for k in range(t)])  # (T, H, W)
    clip = frames[None, None].repeat(2, 1, 1, 1, 1)  # (2, 1, T, H, W)
    rois = torch.tensor([[0, 12.3, 9.1, 20.2, 21.7], [1, 25.0, 14.0, 33.0, 20.0]], dtype=torch.float64)
    windows = tube_windows(rois, 1.25, 6.0)
    size = 10
    tubes = crop_tubes(clip, windows, size)
    assert tubes.shape == (2, 1, t, size, size) and tubes.dtype == torch.float64
    for r in range(2):
        x1, y1, x2, y2 = windows[r, 1:].tolist()
        cell = (x2 - x1) / size
        centres = torch.arange(size, dtype=torch.float64) + 0.5
        cx = x1 + centres * cell - 0.5  # pixel-centre coordinates (aligned RoIAlign)
        cy = y1 + centres * cell - 0.5
        for k in range(t):
            ref = 0.3 * cx[None, :] - 0.7 * cy[:, None] + k
            torch.testing.assert_close(tubes[r, 0, k], ref, atol=1e-10, rtol=0)


def test_box_size_features():
    feats = box_size_features(ROIS)
    torch.testing.assert_close(feats[0], torch.log(torch.tensor([1.2, 0.8])))
    assert feats.shape == (3, 2)


@pytest.mark.parametrize("variant,size", [("slowfast_tiny", 16), ("crop_cnn", 16)])
def test_tube_models_train_with_finite_gradients(variant, size):
    model = _model(variant, size)
    model.train()
    slow, fast = _clip(alpha=model.alpha)
    logits = model(slow, fast, ROIS)
    assert logits.shape == (3, K)
    F.cross_entropy(logits, torch.tensor([0, 1, 2])).backward()
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None, f"{name} got no gradient"
            assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"
    # The box-size features reach the head: fc1's last two input columns get a gradient.
    assert model.head.fc1.weight.grad[:, -2:].abs().sum() > 0


def test_zero_boxes_give_zero_rows_and_a_gradient_path():
    model = _model()
    model.train()
    slow, fast = _clip(alpha=model.alpha)
    logits = model(slow, fast, ROIS[:0])
    assert logits.shape == (0, K)
    logits.sum().backward()  # no error: the loss of an empty batch is still differentiable


def test_shifting_clip_and_box_together_changes_nothing():
    # The model sees only the tube: moving the person and the box by whole pixels (away from
    # the frame edges) gives the same scores, where a whole-frame model would differ.
    model = _model().eval()
    slow, fast = _clip(batch=1, alpha=model.alpha)
    rois = torch.tensor([[0, 15.0, 12.0, 27.0, 20.0]])
    shift = (3, 5)  # rows, columns
    fast2 = torch.roll(fast, shifts=shift, dims=(3, 4))
    slow2 = torch.roll(slow, shifts=shift, dims=(3, 4))
    rois2 = rois + torch.tensor([[0, shift[1], shift[0], shift[1], shift[0]]])
    with torch.no_grad():
        a = model(slow, fast, rois)
        b = model(slow2, fast2, rois2)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_channels_last_input_gives_the_same_scores():
    model = _model().eval()
    slow, fast = _clip(alpha=model.alpha)
    with torch.no_grad():
        a = model(slow, fast, ROIS)
        b = model(slow.contiguous(memory_format=torch.channels_last_3d),
                  fast.contiguous(memory_format=torch.channels_last_3d), ROIS)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_crop_cnn_is_small():
    n = sum(p.numel() for p in CropCNN().parameters())
    assert 50_000 < n < 80_000


def test_bad_tube_configs_are_clear_errors():
    with pytest.raises(ValueError, match="tube_size > 0"):
        build_model(ModelConfig(variant="crop_cnn"), K)
    with pytest.raises(ValueError, match="interaction"):
        build_model(ModelConfig(variant="slowfast_tiny", tube_size=16, interaction="parallel",
                                interaction_dim=16), K)
    with pytest.raises(ValueError, match="tube_size must be >= 0"):
        build_model(ModelConfig(variant="slowfast_tiny", tube_size=-1), K)


@pytest.mark.parametrize("tube_size", [0, 16])
def test_test_time_augmentation_makes_scores_invariant_to_the_view(tube_size):
    # Averaged over the whole dihedral group, rotating or flipping the input (clip and boxes
    # together) cannot change the scores; a wrong box transform would break this.
    from thermal_action.models.detector import TTA_TRANSFORMS, transform_clip, transform_rois

    torch.manual_seed(0)
    cfg = ModelConfig(variant="slowfast_tiny", tube_size=tube_size, head_dim=32, roi_output_size=3)
    model = build_model(cfg, K).eval()
    slow, fast = _clip(batch=2, alpha=model.alpha)
    with torch.no_grad():
        plain = model(slow, fast, ROIS)
        model.set_test_time_augmentation(8)
        base = model(slow, fast, ROIS)
        for t in TTA_TRANSFORMS[1:]:
            moved = model(transform_clip(slow, *t), transform_clip(fast, *t), transform_rois(ROIS, 40, 60, *t))
            torch.testing.assert_close(moved, base, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(plain, base, atol=1e-4)  # the augmentation does something
    model.train()
    assert model(slow, fast, ROIS).shape == (3, K)  # training is never augmented
    with pytest.raises(ValueError, match="one of"):
        model.set_test_time_augmentation(3)


def test_roi_transform_moves_a_box_with_its_pixels():
    from thermal_action.models.detector import TTA_TRANSFORMS, transform_clip, transform_rois

    clip = torch.zeros(1, 1, 1, 40, 60)
    clip[..., 5:9, 10:20] = 1.0  # rows 5-8, columns 10-19: box (10, 5)-(20, 9)
    box = torch.tensor([[0, 10.0, 5.0, 20.0, 9.0]])
    for t in TTA_TRANSFORMS:
        moved = transform_clip(clip, *t)[0, 0, 0]
        _, x1, y1, x2, y2 = transform_rois(box, 40, 60, *t)[0].tolist()
        rows, cols = moved.nonzero(as_tuple=True)
        assert (rows.min().item(), rows.max().item() + 1, cols.min().item(), cols.max().item() + 1) == \
            (y1, y2, x1, x2), t


@pytest.mark.parametrize("variant", ["crop_cnn", "slowfast_tiny"])
def test_batched_test_time_augmentation_equals_one_pass_per_view(variant):
    # The tube model cuts the tubes once and classifies all views in one batch; the generic
    # path transforms the clip and the boxes and runs one full pass per view. Float64, eval
    # BatchNorm with non-trivial statistics, boxes at the frame's edges (zero padding).
    from thermal_action.models.detector import ActionDetector

    model = _model(variant).double()
    gen = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm3d):
            m.running_mean.uniform_(-0.3, 0.3, generator=gen)
            m.running_var.uniform_(0.5, 2.0, generator=gen)
    torch.nn.init.normal_(model.head.classifier.weight, std=1.0, generator=gen)
    slow, fast = _clip(alpha=model.alpha)
    slow, fast = slow.double(), fast.double()
    rois = torch.tensor([[0, 10.0, 10.0, 22.0, 18.0], [0, 0.5, 5.0, 18.0, 12.0], [1, 40.0, 20.0, 59.5, 39.5]],
                        dtype=torch.float64)
    model.eval()
    for n in (2, 4, 8):
        model.set_test_time_augmentation(n)
        with torch.no_grad():
            batched = model(slow, fast, rois)
            per_view = ActionDetector._forward_augmented(model, slow, fast, rois, None, None, None, None, n)
        assert batched.shape == (3, K)
        assert batched.abs().max() > 1e-2
        torch.testing.assert_close(batched, per_view, atol=1e-10, rtol=1e-10)
    with torch.no_grad():
        assert model(slow, fast, rois[:0]).shape == (0, K)
