"""The room inputs (models/room.py): every variant takes zone masks and zone features, the masks
are cropped and turned exactly like the frames, "none" is the model without a room, and the
furniture's position changes the scores."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from thermal_action.config import ModelConfig
from thermal_action.models.build import build_model
from thermal_action.models.variants import VARIANTS
from thermal_action.models.detector import TTA_TRANSFORMS, ActionDetector, transform_clip, transform_rois
from thermal_action.models.room import add_zone_channels
from thermal_action.structures import ROOM_INPUTS, RoomInputs
from thermal_action.models.tubes import TUBE_BACKBONES, PersonTubeDetector, crop_tubes, crop_zone_masks, tube_windows
from thermal_action.structures import NUM_ZONE_FEATURES, NUM_ZONE_KINDS

K = 5
#: Whole-frame variants and person-tube backbones, each with the zone masks and features.
ALL_VARIANTS = [(name, 0) for name in VARIANTS] + [(name, 16) for name in TUBE_BACKBONES] + [("slowfast_tiny", 16)]
ROIS = torch.tensor([[0, 2.0, 3.0, 14.0, 15.0], [0, 10.0, 8.0, 22.0, 20.0], [1, 5.0, 5.0, 15.0, 25.0]])


def _model(variant: str = "slowfast_tiny", tube_size: int = 0, room: str = "masks+features", **kw):
    torch.manual_seed(0)
    cfg = ModelConfig(variant=variant, tube_size=tube_size, head_dim=32, dropout=0.0, roi_output_size=3, room=room,
                      **kw)
    return build_model(cfg, K)


def _room_inputs(batch: int, rois: torch.Tensor, h: int, w: int, seed: int = 0):
    """Seeded ``(zone_masks (B, Z, H, W), zone_features (R, F))``: blocky masks, features in [0, 1]."""
    gen = torch.Generator().manual_seed(seed)
    masks = (torch.rand(batch, NUM_ZONE_KINDS, h // 4 + 1, w // 4 + 1, generator=gen) > 0.6).float()
    masks = masks.repeat_interleave(4, dim=2).repeat_interleave(4, dim=3)[:, :, :h, :w].contiguous()
    features = torch.rand(rois.shape[0], NUM_ZONE_FEATURES, generator=gen)
    return masks, features


def _check_grads(model: torch.nn.Module) -> None:
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None, f"{name} got no gradient"
            assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"


def test_room_settings():
    assert RoomInputs.from_setting("none") == RoomInputs(0, 0)
    assert RoomInputs.from_setting("masks") == RoomInputs(NUM_ZONE_KINDS, 0)
    assert RoomInputs.from_setting("features") == RoomInputs(0, NUM_ZONE_FEATURES)
    assert RoomInputs.from_setting("masks+features") == RoomInputs(NUM_ZONE_KINDS, NUM_ZONE_FEATURES)
    assert [RoomInputs.from_setting(r).setting for r in ROOM_INPUTS] == list(ROOM_INPUTS)
    with pytest.raises(ValueError, match="model.room 'bed'.*masks\\+features"):
        build_model(ModelConfig(variant="slowfast_tiny", room="bed"), K)


@pytest.mark.parametrize("variant, tube_size", ALL_VARIANTS)
def test_every_variant_takes_the_room_with_finite_gradients(variant, tube_size, variant_clip):
    model = _model(variant, tube_size).train()
    slow, fast = variant_clip(variant, model.alpha)
    masks, features = _room_inputs(2, ROIS, *fast.shape[-2:])
    stem = model.backbone.body[0] if variant in TUBE_BACKBONES else model.backbone.s1.pathway1_stem.conv
    assert stem.weight.shape[1] == 1 + NUM_ZONE_KINDS
    assert model.head.fc1.in_features == model.head.dim_person + (2 if tube_size else 0) + NUM_ZONE_FEATURES
    logits = model(slow, fast, ROIS, zone_masks=masks, zone_features=features)
    assert logits.shape == (3, K)
    F.cross_entropy(logits, torch.arange(3) % K).backward()
    _check_grads(model)
    # The zone-mask channels of the first convolution and the head's zone-feature columns learn.
    assert stem.weight.grad[:, 1:].abs().sum() > 0
    assert model.head.fc1.weight.grad[:, -NUM_ZONE_FEATURES:].abs().sum() > 0


@pytest.mark.parametrize("room", ROOM_INPUTS)
@pytest.mark.parametrize("variant, tube_size", [("slowfast_tiny", 0), ("crop_cnn", 16), ("slowfast_tiny", 16)])
def test_every_room_setting_trains_and_predicts_with_augmentation(room, variant, tube_size, variant_clip):
    model = _model(variant, tube_size, room)
    slow, fast = variant_clip(variant, model.alpha)
    masks, features = _room_inputs(2, ROIS, *fast.shape[-2:])
    F.cross_entropy(model(slow, fast, ROIS, zone_masks=masks, zone_features=features), torch.arange(3)).backward()
    _check_grads(model)
    model.eval().set_test_time_augmentation(8)
    with torch.no_grad():
        assert model(slow, fast, ROIS, zone_masks=masks, zone_features=features).shape == (3, K)
        assert model(slow, fast, ROIS[:0], zone_masks=masks, zone_features=features[:0]).shape == (0, K)


#: Row 0 of the logits of each model as built before model.room existed (commit 4c13039), seed
#: 0: a train-mode pass, then an eval-mode pass, on the inputs of the test below.
GOLDEN = {
    ("crop_cnn", 16): ([0.006885708, -0.02408117, 0.01121272, -0.02559408, -0.01103545],
                       [0.0008609609, -6.746291e-05, 0.001058948, 0.0007981988, 0.0006618697]),
    ("slowfast_tiny", 0): ([0.02476672, 0.02134426, 0.02583196, 0.01290114, 0.02344897],
                           [0.001585072, 0.001902804, 0.002014076, 0.001405579, 0.002229301]),
    ("slowfast_tiny", 16): ([0.01333218, -0.04142099, -0.003550222, -0.00167038, -0.04326398],
                            [0.0001676045, -0.0009783384, 3.333764e-05, 0.0003607826, -0.001470945]),
}


@pytest.mark.parametrize("variant, tube_size", list(GOLDEN))
def test_no_room_is_the_model_from_before_the_room(variant, tube_size):
    """``model.room=none`` builds the same layers with the same initialisation as before the
    room existed (golden logits from that commit), and ignores room inputs it is given."""
    g = torch.Generator().manual_seed(3)
    fast = torch.randn(2, 1, 8, 40, 60, generator=g)
    slow = fast[:, :, 4::8].contiguous()
    rois = torch.tensor([[0, 10.0, 10.0, 22.0, 18.0], [1, 30.0, 5.0, 48.0, 12.0]])
    model = _model(variant, tube_size, room="none")
    assert model.room == RoomInputs() and not model.reads_zone_masks and not model.reads_zone_features
    masks, features = _room_inputs(2, rois, 40, 60)
    with torch.no_grad():
        train = model(slow, fast, rois)
        model.eval()
        plain = model(slow, fast, rois)
        given = model(slow, fast, rois, zone_masks=masks, zone_features=features)
    want_train, want_eval = (torch.tensor(v) for v in GOLDEN[(variant, tube_size)])
    torch.testing.assert_close(train[0], want_train, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(plain[0], want_eval, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(given, plain, rtol=0, atol=0)


def test_a_model_that_reads_the_room_says_what_it_misses():
    model = _model("crop_cnn", 16)
    slow, fast = _clip_for(model)
    masks, features = _room_inputs(2, ROIS, 40, 60)
    with pytest.raises(ValueError, match="zone_masks of shape \\(2, 3, 40, 60\\).*got None"):
        model(slow, fast, ROIS, zone_features=features)
    with pytest.raises(ValueError, match="zone_features of shape \\(3, 7\\).*got \\(2, 7\\)"):
        model(slow, fast, ROIS, zone_masks=masks, zone_features=features[:2])
    with pytest.raises(ValueError, match="zone_masks"):
        model(slow, fast, ROIS, zone_masks=masks[:, :2], zone_features=features)


def test_the_tube_crops_the_masks_exactly_like_the_frames():
    # A clip whose every frame is the mask image gives tubes whose every frame is the mask tube.
    masks, _ = _room_inputs(2, ROIS, 40, 60, seed=4)
    masks = masks + torch.linspace(0, 0.3, 60)  # not piecewise constant: bilinear sampling shows
    windows = tube_windows(ROIS, 1.5, 12.0)
    for k in range(NUM_ZONE_KINDS):
        clip = masks[:, k, None, None].expand(-1, 1, 3, -1, -1).contiguous()  # (B, 1, T, H, W)
        frames_tubes = crop_tubes(clip, windows, 16)  # (R, 1, T, S, S)
        mask_tubes = crop_zone_masks(masks, windows, 16)[:, k]  # (R, S, S)
        for t in range(3):
            torch.testing.assert_close(mask_tubes, frames_tubes[:, 0, t], rtol=0, atol=0)


@pytest.mark.parametrize("variant", ["crop_cnn", "slowfast_tiny"])
def test_the_backbone_sees_each_tube_with_its_mask_crop_as_constant_channels(variant):
    model = _model(variant, 16).eval()
    assert isinstance(model, PersonTubeDetector)
    slow, fast = _clip_for(model)
    masks, features = _room_inputs(2, ROIS, 40, 60, seed=2)
    seen = {}
    model.backbone.register_forward_hook(lambda m, args, out: seen.update(fast=args[1]))
    with torch.no_grad():
        model(slow, fast, ROIS, zone_masks=masks, zone_features=features)
    tubes = seen["fast"]  # (R, 1 + Z, T, S, S)
    windows = tube_windows(ROIS, model.context, model.min_size)
    torch.testing.assert_close(tubes[:, :1], crop_tubes(fast, windows, 16))
    want = crop_zone_masks(masks, windows, 16)[:, :, None].expand(-1, -1, fast.shape[2], -1, -1)
    torch.testing.assert_close(tubes[:, 1:], want)


def _clip_for(model, batch: int = 2, frames: int = 8):
    gen = torch.Generator().manual_seed(0)
    fast = torch.randn(batch, 1, frames, 40, 60, generator=gen)
    return fast[:, :, model.alpha // 2:: model.alpha].contiguous(), fast


def test_the_whole_frame_backbone_sees_the_masks_as_constant_channels():
    model = _model("slowfast_tiny", 0).eval()
    slow, fast = _clip_for(model)
    masks, features = _room_inputs(2, ROIS, 40, 60)
    seen = {}
    model.backbone.register_forward_hook(lambda m, args, out: seen.update(slow=args[0], fast=args[1]))
    with torch.no_grad():
        model(slow, fast, ROIS, zone_masks=masks, zone_features=features)
    for name, clip in (("slow", slow), ("fast", fast)):
        x = seen[name]
        assert x.shape == (2, 1 + NUM_ZONE_KINDS, clip.shape[2], 40, 60)
        torch.testing.assert_close(x[:, :1], clip, rtol=0, atol=0)
        torch.testing.assert_close(x[:, 1:], masks[:, :, None].expand(-1, -1, clip.shape[2], -1, -1), rtol=0, atol=0)


def test_zone_channels_keep_the_channels_last_format():
    clip = torch.randn(2, 2, 4, 8, 10).contiguous(memory_format=torch.channels_last_3d)
    out = add_zone_channels(clip, torch.rand(2, 3, 8, 10))
    assert out.shape == (2, 5, 4, 8, 10) and out.is_contiguous(memory_format=torch.channels_last_3d)
    # One channel is both formats at once: the caller says which (the model: its first convolution's).
    one = torch.randn(2, 1, 4, 8, 10)
    assert add_zone_channels(one, torch.rand(2, 3, 8, 10), channels_last=True).is_contiguous(
        memory_format=torch.channels_last_3d)
    assert add_zone_channels(one, torch.rand(2, 3, 8, 10)).is_contiguous()
    model = _model("slowfast_tiny", 0).eval().to(memory_format=torch.channels_last_3d)
    seen = {}
    model.backbone.register_forward_hook(lambda m, args, out: seen.update(fast=args[1]))
    slow, fast = _clip_for(model)
    masks, features = _room_inputs(2, ROIS, 40, 60)
    with torch.no_grad():
        model(slow, fast, ROIS, zone_masks=masks, zone_features=features)
    assert seen["fast"].is_contiguous(memory_format=torch.channels_last_3d) and not seen["fast"].is_contiguous()
    model = _model("crop_cnn", 16).eval()
    slow, fast = _clip_for(model)
    masks, features = _room_inputs(2, ROIS, 40, 60)
    with torch.no_grad():
        a = model(slow, fast, ROIS, zone_masks=masks, zone_features=features)
        cl = fast.contiguous(memory_format=torch.channels_last_3d)
        b = model(cl, cl, ROIS, zone_masks=masks, zone_features=features)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("tube_size", [0, 16])
def test_test_time_augmentation_turns_the_masks_with_the_clip(tube_size):
    # Averaged over the dihedral group, turning clip, boxes and masks together changes nothing;
    # masks left unturned would (their position relative to the person matters).
    model = _model("slowfast_tiny", tube_size).eval()
    slow, fast = _clip_for(model)
    masks, features = _room_inputs(2, ROIS, 40, 60, seed=5)
    model.set_test_time_augmentation(8)
    with torch.no_grad():
        base = model(slow, fast, ROIS, zone_masks=masks, zone_features=features)
        for t in TTA_TRANSFORMS[1:]:
            moved = model(transform_clip(slow, *t), transform_clip(fast, *t), transform_rois(ROIS, 40, 60, *t),
                          zone_masks=transform_clip(masks, *t), zone_features=features)
            torch.testing.assert_close(moved, base, atol=1e-4, rtol=1e-4)
        unturned = model(transform_clip(slow, *TTA_TRANSFORMS[1]), transform_clip(fast, *TTA_TRANSFORMS[1]),
                         transform_rois(ROIS, 40, 60, *TTA_TRANSFORMS[1]), zone_masks=masks, zone_features=features)
    assert not torch.allclose(unturned, base, atol=1e-4)


@pytest.mark.parametrize("variant", ["crop_cnn", "slowfast_tiny"])
def test_batched_tube_augmentation_with_the_room_equals_one_pass_per_view(variant):
    model = _model(variant, 16).double().eval()
    gen = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm3d):
            m.running_mean.uniform_(-0.3, 0.3, generator=gen)
            m.running_var.uniform_(0.5, 2.0, generator=gen)
    torch.nn.init.normal_(model.head.classifier.weight, std=1.0, generator=gen)
    slow, fast = (x.double() for x in _clip_for(model))
    masks, features = (x.double() for x in _room_inputs(2, ROIS, 40, 60, seed=3))
    for n in (2, 8):
        model.set_test_time_augmentation(n)
        with torch.no_grad():
            batched = model(slow, fast, ROIS, zone_masks=masks, zone_features=features)
            per_view = ActionDetector._forward_augmented(model, slow, fast, ROIS, None, None, masks, features, n)
        torch.testing.assert_close(batched, per_view, atol=1e-9, rtol=1e-9)


@pytest.mark.parametrize("room", ["features", "masks", "masks+features"])
@pytest.mark.parametrize("tube_size", [0, 16])
def test_moving_the_bed_changes_the_scores(room, tube_size):
    """Two inputs that differ only in where the bed is (masks and the features they give) get
    different scores: the model reads the room."""
    from thermal_action.data.rooms import RoomLayout, Zone, person_zone_features, zone_masks

    model = _model("slowfast_tiny", tube_size, room).eval()
    slow, fast = _clip_for(model, batch=1)
    rois = torch.tensor([[0, 20.0, 10.0, 32.0, 30.0]])
    scores = []
    for bed in ((0.3, 0.2, 0.6, 0.8), (0.7, 0.1, 0.95, 0.5)):  # under the person, then beside it
        layout = RoomLayout((Zone.from_box("bed", bed),), "rooms file")
        masks = torch.from_numpy(zone_masks(layout, 40, 60))[None]
        features = torch.from_numpy(person_zone_features(rois[:, 1:].numpy(), layout, 40, 60))
        with torch.no_grad():
            scores.append(torch.softmax(model(slow, fast, rois, zone_masks=masks, zone_features=features), -1))
    assert (scores[0] - scores[1]).abs().max() > 1e-4


def test_ensemble_members_share_the_room_inputs():
    model = _model("crop_cnn", 16, ensemble=2)
    assert model.reads_zone_masks and model.reads_zone_features and model.room == RoomInputs(3, 7)
    slow, fast = _clip_for(model)
    masks, features = _room_inputs(2, ROIS, 40, 60)
    assert model(slow, fast, ROIS, zone_masks=masks, zone_features=features).shape == (3, K)
    assert model.member_logits(slow, fast, ROIS, zone_masks=masks, zone_features=features).shape == (2, 3, K)
    model.eval()
    assert model(slow, fast, ROIS, zone_masks=masks, zone_features=features).shape == (3, K)
    with pytest.raises(ValueError, match="zone_masks"):
        model(slow, fast, ROIS)


def test_embed_reads_the_masks():
    model = _model("crop_cnn", 16).eval()
    slow, fast = _clip_for(model)
    masks, _ = _room_inputs(2, ROIS, 40, 60)
    with torch.no_grad():
        a = model.embed(slow, fast, ROIS, masks)
        b = model.embed(slow, fast, ROIS, torch.zeros_like(masks))
    assert a.shape == (3, model.head.dim_person) and not torch.allclose(a, b)
    with pytest.raises(ValueError, match="zone_masks"):
        model.embed(slow, fast, ROIS)
