"""Pretrained-weight import: name mapping, safe loading, the published layouts, conversion.

The synthetic checkpoints are built independently of the loader: AlphAction ones from
the published key/shape lists (``checkpoint_layouts/*.json``: read from
``tests/models/data/checkpoint_layouts``, a copy of ``../shared/checkpoint_layouts``), PySlowFast / MMAction2 / PyTorchVideo ones by renaming our model's
tensors with the rules of NAMING.md, written out again here (not imported from the
loader). Full-size R50/R101 models are built once per module and run on a one-frame
32x32 clip.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from thermal_action.cli import main
from thermal_action.config import ModelConfig
from thermal_action.models.build import build_model
from thermal_action.models.detector import ActionDetector
from thermal_action.models.head import ActionHead
from thermal_action.models.variants import VARIANTS
from thermal_action.models.backbone import rgb_stem_to_thermal
from thermal_action.models.convert import convert_checkpoint
from thermal_action.errors import CheckpointError
from thermal_action.models.pretrained.formats import (
    FORMAT_ALPHACTION,
    FORMAT_MMACTION2,
    FORMAT_OURS,
    FORMAT_PYSLOWFAST,
    FORMAT_PYTORCHVIDEO,
)
from thermal_action.models.pretrained.loading import load_pretrained
from thermal_action.models.pretrained.naming import detect_format, map_key
from thermal_action.models.pretrained.reading import read_checkpoint

# A copy of ../shared/checkpoint_layouts/*.json lives beside the tests so CI never skips them.
LAYOUT_DIR = Path(__file__).parent / "data" / "checkpoint_layouts"
ALPHACTION_LAYOUTS = (
    "alphaction_r50_4x16_baseline_16cls",
    "alphaction_r50_4x16_denseserial",
    "alphaction_r101_8x8_baseline_16cls_bn",
    "alphaction_r101_8x8_denseserial",
)



# --------------------------------------------------------------------------------------
# Renaming rules of NAMING.md, written from our names to theirs (independent of the loader)
# --------------------------------------------------------------------------------------

_ABC = {"a": "1", "b": "2", "c": "3"}
_PATH = {"0": "slow", "1": "fast"}


def to_pyslowfast(key: str) -> str:
    assert key.startswith("backbone.")
    return key[len("backbone.") :]


def to_mmaction2(key: str) -> str:
    if m := re.fullmatch(r"backbone\.s1\.pathway(\d)_stem\.(conv|bn)\.(\w+)", key):
        return f"backbone.{_PATH[m[1]]}_path.conv1.{m[2]}.{m[3]}"
    if m := re.fullmatch(r"backbone\.s(\d)\.pathway(\d)_res(\d+)\.branch2\.([abc])(_bn)?\.(\w+)", key):
        kind = "bn" if m[5] else "conv"
        return f"backbone.{_PATH[m[2]]}_path.layer{int(m[1]) - 1}.{m[3]}.conv{_ABC[m[4]]}.{kind}.{m[6]}"
    if m := re.fullmatch(r"backbone\.s(\d)\.pathway(\d)_res(\d+)\.branch1(_bn)?\.(\w+)", key):
        return f"backbone.{_PATH[m[2]]}_path.layer{int(m[1]) - 1}.{m[3]}.downsample.{'bn' if m[4] else 'conv'}.{m[5]}"
    if m := re.fullmatch(r"backbone\.s(\d)_fuse\.(conv_f2s|bn)\.(\w+)", key):
        lateral = "conv1_lateral" if m[1] == "1" else f"layer{int(m[1]) - 1}_lateral"
        return f"backbone.slow_path.{lateral}.{'conv' if m[2] == 'conv_f2s' else 'bn'}.{m[3]}"
    raise AssertionError(key)


def to_pytorchvideo(key: str) -> str:
    if m := re.fullmatch(r"backbone\.s1\.pathway(\d)_stem\.(conv|bn)\.(\w+)", key):
        return f"model.blocks.0.multipathway_blocks.{m[1]}.{'conv' if m[2] == 'conv' else 'norm'}.{m[3]}"
    if m := re.fullmatch(r"backbone\.s(\d)\.pathway(\d)_res(\d+)\.branch2\.([abc])(_bn)?\.(\w+)", key):
        kind = "norm" if m[5] else "conv"
        return (
            f"model.blocks.{int(m[1]) - 1}.multipathway_blocks.{m[2]}.res_blocks.{m[3]}.branch2.{kind}_{m[4]}.{m[6]}"
        )
    if m := re.fullmatch(r"backbone\.s(\d)\.pathway(\d)_res(\d+)\.branch1(_bn)?\.(\w+)", key):
        kind = "branch1_norm" if m[4] else "branch1_conv"
        return f"model.blocks.{int(m[1]) - 1}.multipathway_blocks.{m[2]}.res_blocks.{m[3]}.{kind}.{m[5]}"
    if m := re.fullmatch(r"backbone\.s(\d)_fuse\.(conv_f2s|bn)\.(\w+)", key):
        kind = "conv_fast_to_slow" if m[2] == "conv_f2s" else "norm"
        return f"model.blocks.{int(m[1]) - 1}.multipathway_fusion.{kind}.{m[3]}"
    raise AssertionError(key)


def to_alphaction(key: str) -> str:
    if m := re.fullmatch(r"backbone\.s1\.pathway(\d)_stem\.conv\.(\w+)", key):
        return f"backbone.{_PATH[m[1]]}.conv1.{m[2]}"
    if m := re.fullmatch(r"backbone\.s1\.pathway(\d)_stem\.bn\.(\w+)", key):
        return f"backbone.{_PATH[m[1]]}.bn1.{m[2]}"
    if m := re.fullmatch(r"backbone\.s(\d)\.pathway(\d)_res(\d+)\.branch2\.([abc])(_bn)?\.(\w+)", key):
        kind = "bn" if m[5] else "conv"
        return f"backbone.{_PATH[m[2]]}.res_nl{int(m[1]) - 1}.res_{m[3]}.btnk.conv{_ABC[m[4]]}.{kind}.{m[6]}"
    if m := re.fullmatch(r"backbone\.s(\d)\.pathway(\d)_res(\d+)\.branch1(_bn)?\.(\w+)", key):
        kind = "bn" if m[4] else "conv"
        return f"backbone.{_PATH[m[2]]}.res_nl{int(m[1]) - 1}.res_{m[3]}.shortcut.{kind}.{m[5]}"
    if m := re.fullmatch(r"backbone\.s(\d)_fuse\.conv_f2s\.(\w+)", key):
        return f"backbone.fast.Tconv{m[1]}.conv.{m[2]}"
    if m := re.fullmatch(r"head\.(fc1|fc2)\.(\w+)", key):
        return f"roi_heads.action.feature_extractor.{m[1]}.{m[2]}"
    if m := re.fullmatch(r"head\.interaction\.(.+)", key):
        return f"roi_heads.action.feature_extractor.ia_structure.{m[1]}"
    if m := re.fullmatch(r"head\.classifier\.(\w+)", key):
        return f"roi_heads.action.predictor.cls_score.{m[1]}"
    raise AssertionError(key)


# --------------------------------------------------------------------------------------
# Name mapping and format detection (pure)
# --------------------------------------------------------------------------------------

# The rows of NAMING.md's side-by-side table: (our name, name in the file).
_SIDE_BY_SIDE = [
    "backbone.s1.pathway0_stem.conv.weight",
    "backbone.s1.pathway0_stem.bn.running_var",
    "backbone.s1.pathway1_stem.conv.weight",
    "backbone.s1_fuse.conv_f2s.weight",
    "backbone.s2_fuse.bn.bias",
    "backbone.s4_fuse.conv_f2s.weight",
    "backbone.s2.pathway0_res0.branch2.a.weight",
    "backbone.s2.pathway0_res0.branch2.a_bn.weight",
    "backbone.s2.pathway0_res0.branch2.b.weight",
    "backbone.s2.pathway0_res0.branch2.c_bn.num_batches_tracked",
    "backbone.s2.pathway0_res0.branch1.weight",
    "backbone.s2.pathway0_res0.branch1_bn.running_mean",
    "backbone.s4.pathway1_res2.branch2.a.weight",
    "backbone.s5.pathway0_res0.branch2.a.weight",
]


@pytest.mark.parametrize("ours", _SIDE_BY_SIDE)
def test_map_key_follows_naming_table(ours):
    assert map_key(FORMAT_PYSLOWFAST, to_pyslowfast(ours)).key == ours
    assert map_key(FORMAT_MMACTION2, to_mmaction2(ours)).key == ours
    assert map_key(FORMAT_PYTORCHVIDEO, to_pytorchvideo(ours)).key == ours
    # The hub model has no "model." prefix.
    assert map_key(FORMAT_PYTORCHVIDEO, to_pytorchvideo(ours)[len("model.") :]).key == ours
    assert map_key(FORMAT_OURS, "model." + ours).key == ours
    if "_fuse.bn" not in ours:  # AlphAction laterals have no BN
        assert map_key(FORMAT_ALPHACTION, to_alphaction(ours)).key == ours


def test_map_key_literal_examples():
    # Spelled out once by hand, so the helper renamers above are themselves checked.
    assert to_mmaction2("backbone.s5.pathway0_res0.branch2.a.weight") == "backbone.slow_path.layer4.0.conv1.conv.weight"
    assert to_alphaction("backbone.s4.pathway1_res2.branch2.a.weight") == (
        "backbone.fast.res_nl3.res_2.btnk.conv1.conv.weight"
    )
    assert to_pytorchvideo("backbone.s2.pathway0_res0.branch1_bn.weight") == (
        "model.blocks.1.multipathway_blocks.0.res_blocks.0.branch1_norm.weight"
    )
    assert map_key(FORMAT_ALPHACTION, "backbone.fast.Tconv3.conv.bias").key == "backbone.s3_fuse.conv_f2s.bias"
    assert map_key(FORMAT_MMACTION2, "backbone.slow_path.layer3_lateral.conv.weight").key == (
        "backbone.s4_fuse.conv_f2s.weight"
    )
    ia_key = "roi_heads.action.feature_extractor.ia_structure.M_block_2.shortcut.bias"
    assert map_key(FORMAT_ALPHACTION, ia_key).key == "head.interaction.M_block_2.shortcut.bias"


@pytest.mark.parametrize(
    ("fmt", "key", "reason_word"),
    [
        (FORMAT_PYSLOWFAST, "head.projection.weight", "projection"),
        (FORMAT_MMACTION2, "roi_head.bbox_head.fc_cls.weight", "background"),
        (FORMAT_MMACTION2, "cls_head.fc_cls.bias", "projection"),
        (FORMAT_PYTORCHVIDEO, "detection_head.proj.weight", "projection"),
        (FORMAT_PYTORCHVIDEO, "blocks.6.proj.weight", "projection"),
        (FORMAT_OURS, "criterion.class_weights", "training"),
    ],
)
def test_heads_without_counterpart_are_skipped_with_reason(fmt, key, reason_word):
    mapped = map_key(fmt, key)
    assert mapped.key is None
    assert reason_word in mapped.reason


@pytest.mark.parametrize(
    ("keys", "fmt"),
    [
        (["backbone.slow.conv1.weight", "roi_heads.action.predictor.cls_score.weight"], FORMAT_ALPHACTION),
        (["s1.pathway0_stem.conv.weight", "head.projection.weight"], FORMAT_PYSLOWFAST),
        (["backbone.slow_path.conv1.conv.weight", "roi_head.bbox_head.fc_cls.weight"], FORMAT_MMACTION2),
        (["model.blocks.0.multipathway_blocks.0.conv.weight", "detection_head.proj.weight"], FORMAT_PYTORCHVIDEO),
        (["blocks.0.multipathway_blocks.0.conv.weight", "blocks.6.proj.weight"], FORMAT_PYTORCHVIDEO),
        (["backbone.s1.pathway0_stem.conv.weight", "head.classifier.weight"], FORMAT_OURS),
        (["model.backbone.s1.pathway0_stem.conv.weight", "model.head.fc1.weight"], FORMAT_OURS),
    ],
)
def test_detect_format(keys, fmt):
    assert detect_format(keys) == fmt


def test_detect_format_unknown_names_the_keys():
    with pytest.raises(ValueError, match="conv1.weight"):
        detect_format(["conv1.weight", "fc.weight"])


# --------------------------------------------------------------------------------------
# Reading files safely
# --------------------------------------------------------------------------------------


class _Boom:
    """Unpickling this would run ``Path.touch`` (arbitrary code); weights_only must refuse it."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_pickled_object_is_refused_and_never_executed(tmp_path):
    marker = tmp_path / "executed"
    path = tmp_path / "evil.pth"
    torch.save({"model": {"backbone.slow.conv1.weight": torch.zeros(1)}, "payload": _Boom(marker)}, path)
    assert not marker.exists()
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(path)
    message = str(info.value)
    assert str(path) in message
    assert "weights_only=True" in message and "pickled Python objects" in message
    assert not marker.exists()  # the payload never ran


def test_read_checkpoint_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        read_checkpoint(tmp_path / "nope.pth")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="garbage.pth.*not a readable PyTorch checkpoint"):
        read_checkpoint(garbage)
    no_weights = tmp_path / "no_weights.pth"
    torch.save({"epoch": 3, "cfg": "text"}, no_weights)
    with pytest.raises(CheckpointError, match="no_weights.pth.*no weights found"):
        read_checkpoint(no_weights)


def test_read_checkpoint_unwraps_containers_and_safetensors(tmp_path):
    from safetensors.torch import save_file

    tensors = {"s1.pathway0_stem.conv.weight": torch.randn(2, 3, 1, 3, 3), "head.projection.bias": torch.randn(4)}
    for top in ("model_state", "state_dict", "model"):
        torch.save({top: tensors, "epoch": 1}, tmp_path / f"{top}.pth")
        raw = read_checkpoint(tmp_path / f"{top}.pth")
        assert raw.top_level_key == top and raw.extra_keys == ["epoch"]
        assert all(torch.equal(raw.tensors[k], v) for k, v in tensors.items())
    save_file(tensors, tmp_path / "flat.safetensors")
    raw = read_checkpoint(tmp_path / "flat.safetensors")
    assert raw.top_level_key is None and set(raw.tensors) == set(tensors)
    assert torch.equal(raw.tensors["head.projection.bias"], tensors["head.projection.bias"])


def test_rgb_stem_to_thermal_matches_grey_input_on_three_channels():
    g = torch.Generator().manual_seed(0)
    rgb = torch.randn(4, 3, 5, 7, 7, generator=g)
    thermal = rgb_stem_to_thermal(rgb)
    assert thermal.shape == (4, 1, 5, 7, 7)
    assert torch.allclose(thermal[:, 0], rgb[:, 0] + rgb[:, 1] + rgb[:, 2])
    grey = torch.randn(1, 1, 6, 12, 12, generator=g)
    expected = F.conv3d(grey.expand(-1, 3, -1, -1, -1), rgb, padding=(2, 3, 3))
    torch.testing.assert_close(F.conv3d(grey, thermal, padding=(2, 3, 3)), expected, rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------------------------------
# Synthetic checkpoints and full-size models (built once per module)
# --------------------------------------------------------------------------------------


def synthetic_tensor(key: str, shape: list[int], g: torch.Generator) -> torch.Tensor:
    """A seeded random tensor whose scale keeps a deep random network finite."""
    if key.endswith("num_batches_tracked"):
        return torch.tensor(7, dtype=torch.long)
    if key.endswith("running_var"):
        return torch.rand(shape, generator=g) + 0.5
    if len(shape) == 1:
        base = 1.0 if key.endswith("weight") and "fc" not in key and "cls_score" not in key else 0.0
        return base + 0.05 * torch.randn(shape, generator=g)
    fan_in = math.prod(shape[1:])
    return torch.randn(shape, generator=g) / math.sqrt(fan_in)


def load_layout(name: str) -> list[dict]:
    return json.loads((LAYOUT_DIR / f"{name}.json").read_text())["entries"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Lazily written synthetic checkpoint files, each written once per module."""
    root = tmp_path_factory.mktemp("checkpoints")
    cache: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in cache:
            g = torch.Generator().manual_seed(sum(map(ord, name)))
            tensors = {e["key"]: synthetic_tensor(e["key"], e["shape"], g) for e in load_layout(name)}
            path = root / f"{name}.pth"
            torch.save({"model": tensors, "iteration": 90000}, path)
            cache[name] = path
        return cache[name]

    yield get
    for path in cache.values():
        path.unlink(missing_ok=True)


def _eval(model):
    return model.eval()


@pytest.fixture(scope="module")
def r50_alphaction():
    """AlphAction-compatible R50 4x16 with the dense-serial IA, K=14."""
    torch.manual_seed(0)
    return _eval(build_model(ModelConfig(variant="slowfast_r50_4x16_alphaction", interaction="denseserial"), 14))


@pytest.fixture(scope="module")
def r101_alphaction():
    """AlphAction-compatible R101 8x8 with the dense-serial IA, K=16 (the baseline files' K)."""
    torch.manual_seed(0)
    return _eval(build_model(ModelConfig(variant="slowfast_r101_8x8_alphaction", interaction="denseserial"), 16))


@pytest.fixture(scope="module")
def r50_pyslowfast():
    """PySlowFast-style R50 4x16 (BN+ReLU laterals, padded pool), no interaction, K=14."""
    torch.manual_seed(0)
    return _eval(build_model(ModelConfig(variant="slowfast_r50_4x16"), 14))


def _file_tensors(path: Path, top: str) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True, mmap=True)[top]


def _expected(key: str, tensor: torch.Tensor) -> torch.Tensor:
    """What our model must hold for a file tensor (RGB stems summed over channels)."""
    if key.endswith("_stem.conv.weight") and tensor.shape[1] == 3:
        return tensor.sum(dim=1, keepdim=True)
    return tensor


def _clip(alpha: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    slow = torch.randn(1, 1, 1, 32, 32, generator=g)  # (B, C, Ts, H, W): the smallest valid clip
    fast = torch.randn(1, 1, alpha, 32, 32, generator=g)  # (B, C, alpha*Ts, H, W)
    rois = torch.tensor([[0.0, 2.0, 3.0, 20.0, 28.0], [0.0, 10.0, 4.0, 30.0, 30.0]])  # (R, 5)
    return slow, fast, rois


# --------------------------------------------------------------------------------------
# AlphAction: the four published layouts
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ALPHACTION_LAYOUTS)
def test_alphaction_layout_loads_completely(layout, store, request):
    model = request.getfixturevalue("r50_alphaction" if "r50" in layout else "r101_alphaction")
    path = store(layout)
    entries = load_layout(layout)
    file_keys = {e["key"] for e in entries}
    frozen_bn = not any(k.endswith("num_batches_tracked") for k in file_keys)
    has_ia = any(".ia_structure." in k for k in file_keys)
    file_k = next(e["shape"][0] for e in entries if e["key"].endswith("cls_score.weight"))

    report = load_pretrained(model, path)

    assert report.format == FORMAT_ALPHACTION and report.top_level_key == "model"
    assert report.shape_mismatched == []
    assert report.missing_backbone == []  # no backbone tensor of ours left without a file tensor
    assert not [s for s in report.skipped if s.key.startswith("backbone.")]  # no file backbone tensor left over
    # Every file tensor is either loaded (under its NAMING.md name) or skipped with a reason.
    accounted = {to_alphaction(k) for k in report.loaded} | {s.key for s in report.skipped}
    assert accounted == file_keys
    classifier = {"roi_heads.action.predictor.cls_score.weight", "roi_heads.action.predictor.cls_score.bias"}
    assert {s.key for s in report.skipped} == (set() if file_k == model.num_classes else classifier)
    assert all(str(file_k) in s.reason for s in report.skipped)
    model_keys = model.state_dict().keys()
    interaction_keys = {k for k in model_keys if k.startswith("head.interaction.")}
    assert set(report.missing) == (set() if has_ia else interaction_keys)
    counters = {k for k in model_keys if k.endswith("num_batches_tracked")}
    assert set(report.absent_bn_counters) == (counters if frozen_bn else set())
    assert [c.key for c in report.converted] == [
        "backbone.s1.pathway0_stem.conv.weight",
        "backbone.s1.pathway1_stem.conv.weight",
    ]
    text = report.format_text()
    assert "AlphAction layout" in text and f"loaded: {len(report.loaded)} tensors" in text

    # The values arrived where NAMING.md says.
    theirs = _file_tensors(path, "model")
    state = model.state_dict()
    for key in report.loaded:
        assert torch.equal(state[key], _expected(key, theirs[to_alphaction(key)])), key


def test_alphaction_file_into_pyslowfast_variant_fails_strictly_and_names_the_fix(store, r50_pyslowfast):
    path = store("alphaction_r50_4x16_baseline_16cls")
    before = r50_pyslowfast.backbone.s2.pathway0_res0.branch2.a.weight.detach().clone()
    with pytest.raises(CheckpointError) as info:
        load_pretrained(r50_pyslowfast, path)
    message = str(info.value)
    assert str(path) in message
    assert "slowfast_r50_4x16_alphaction" in message and "conv_bias" in message
    # A failed load leaves the model untouched.
    assert torch.equal(r50_pyslowfast.backbone.s2.pathway0_res0.branch2.a.weight, before)

    report = load_pretrained(r50_pyslowfast, path, strict_backbone=False)
    # Both 4x16 models use kernel-5 laterals: the weights fit, but the maths differ (bias vs BN+ReLU).
    laterals = [f"backbone.s{k}_fuse.conv_f2s.weight" for k in range(1, 5)]
    assert report.shape_mismatched == [] and set(laterals) <= set(report.loaded_backbone)
    assert {s.key for s in report.skipped if s.key.startswith("backbone.")} == {
        f"backbone.fast.Tconv{k}.conv.bias" for k in range(1, 5)
    }
    bn_leaves = ("weight", "bias", "running_mean", "running_var")
    assert set(report.missing_backbone) == {f"backbone.s{k}_fuse.bn.{leaf}" for k in range(1, 5) for leaf in bn_leaves}
    assert not torch.equal(r50_pyslowfast.backbone.s2.pathway0_res0.branch2.a.weight, before)


def test_converted_model_equals_model_given_the_weights_by_hand(store, tmp_path):
    # The 16-class baseline: K matches, so even the classifier comes from the file.
    path = store("alphaction_r50_4x16_baseline_16cls")
    out = tmp_path / "converted" / "r50.pt"
    report = convert_checkpoint(path, out, variant="slowfast_r50_4x16", num_classes=16, interaction="none")
    # The PySlowFast-style name was resolved to the AlphAction-compatible variant.
    assert any("slowfast_r50_4x16_alphaction" in n for n in report.notes)
    assert report.skipped == [] and report.missing == []

    saved = torch.load(out, map_location="cpu", weights_only=True)  # only tensors and plain data
    assert saved["model_config"]["variant"] == "slowfast_r50_4x16_alphaction"
    assert saved["num_classes"] == 16 and saved["format"] == FORMAT_ALPHACTION and saved["source"] == str(path)
    assert saved["report"]["converted"][0]["key"] == "backbone.s1.pathway0_stem.conv.weight"
    converted = build_model(ModelConfig(**saved["model_config"]), saved["num_classes"]).eval()
    ours = load_pretrained(converted, out)
    assert ours.format == FORMAT_OURS
    assert ours.missing == [] and ours.skipped == [] and ours.shape_mismatched == []

    torch.manual_seed(123)
    by_hand = build_model(ModelConfig(variant="slowfast_r50_4x16_alphaction"), 16).eval()
    slow, fast, rois = _clip(alpha=8)
    with torch.no_grad():
        expected = converted(slow, fast, rois)
        assert not torch.allclose(by_hand(slow, fast, rois), expected)  # different weights, different logits

    theirs = _file_tensors(path, "model")
    assignments = {
        "backbone.s1.pathway0_stem.conv.weight": theirs["backbone.slow.conv1.weight"].sum(dim=1, keepdim=True),
        "backbone.s1.pathway1_stem.conv.weight": theirs["backbone.fast.conv1.weight"].sum(dim=1, keepdim=True),
        "backbone.s1_fuse.conv_f2s.weight": theirs["backbone.fast.Tconv1.conv.weight"],
        "backbone.s1_fuse.conv_f2s.bias": theirs["backbone.fast.Tconv1.conv.bias"],
        "backbone.s5.pathway1_res2.branch2.c_bn.running_var": theirs[
            "backbone.fast.res_nl4.res_2.btnk.conv3.bn.running_var"
        ],
        "head.fc1.weight": theirs["roi_heads.action.feature_extractor.fc1.weight"],
        "head.classifier.weight": theirs["roi_heads.action.predictor.cls_score.weight"],
        "head.classifier.bias": theirs["roi_heads.action.predictor.cls_score.bias"],
    }
    for key in by_hand.state_dict():  # the remaining ~530 by the same rules (the helpers above)
        if key not in assignments and not key.endswith("num_batches_tracked"):
            assignments[key] = theirs[to_alphaction(key)]
    state = by_hand.state_dict()
    with torch.no_grad():
        for key, value in assignments.items():
            state[key].copy_(value)
        got = by_hand(slow, fast, rois)
    assert got.shape == (2, 16) and torch.isfinite(got).all()
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


# --------------------------------------------------------------------------------------
# PySlowFast, MMAction2, PyTorchVideo (renamed from our names per NAMING.md)
# --------------------------------------------------------------------------------------


def _our_backbone_tensors(model, seed: int) -> dict[str, torch.Tensor]:
    """Seeded random tensors for every backbone tensor of ``model``, with 3-channel RGB stems."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key, value in model.state_dict().items():
        if not key.startswith("backbone."):
            continue
        shape = list(value.shape)
        if key.endswith("_stem.conv.weight"):
            shape[1] = 3
        out[key] = synthetic_tensor(key, shape, g)
    return out


@pytest.mark.parametrize(
    ("fmt", "rename", "top", "head_keys"),
    [
        (FORMAT_PYSLOWFAST, to_pyslowfast, "model_state",
         {"head.projection.weight": [80, 2304], "head.projection.bias": [80]}),
        # lateral_norm=True: the MMAction2 lateral with BN, the same maths as PySlowFast's.
        (FORMAT_MMACTION2, to_mmaction2, "state_dict",
         {"roi_head.bbox_head.fc_cls.weight": [81, 2304], "roi_head.bbox_head.fc_cls.bias": [81]}),
        (FORMAT_PYTORCHVIDEO, to_pytorchvideo, "model_state",
         {"detection_head.proj.weight": [80, 2304], "detection_head.proj.bias": [80]}),
    ],
)
def test_other_layouts_load_completely(fmt, rename, top, head_keys, r50_pyslowfast, tmp_path):
    ours = _our_backbone_tensors(r50_pyslowfast, seed=len(fmt))
    g = torch.Generator().manual_seed(1)
    tensors = {rename(k): v for k, v in ours.items()}
    tensors.update({k: torch.randn(shape, generator=g) for k, shape in head_keys.items()})
    path = tmp_path / f"{fmt}.pth"
    torch.save({top: tensors, "epoch": 20, "cfg": "TRAIN: {...}"}, path)

    report = load_pretrained(r50_pyslowfast, path)

    assert report.format == fmt and report.top_level_key == top
    assert report.missing_backbone == [] and report.shape_mismatched == []
    assert sorted(report.loaded_backbone) == sorted(ours)
    assert {s.key for s in report.skipped} == set(head_keys)
    assert all("projection" in s.reason for s in report.skipped)
    if fmt == FORMAT_MMACTION2:
        assert all("background" in s.reason for s in report.skipped)
    assert set(report.missing) == {f"head.{m}.{p}" for m in ("fc1", "fc2", "classifier") for p in ("weight", "bias")}
    state = r50_pyslowfast.state_dict()
    for key, value in ours.items():
        assert torch.equal(state[key], _expected(key, value)), key
    path.unlink()


def _tiny_detector(lateral: str = "conv_bn_relu", num_classes: int = 14) -> ActionDetector:
    backbone = VARIANTS["slowfast_tiny"](lateral=lateral)
    head = ActionHead(backbone.out_channels, num_classes, 1.0 / backbone.output_stride, head_dim=32)
    return ActionDetector(backbone, head).eval()


def test_mmaction2_without_lateral_norm_loads_but_has_no_named_variant(tmp_path):
    model = _tiny_detector(lateral="conv")
    ours = _our_backbone_tensors(model, seed=5)
    assert not any("_fuse.bn" in k for k in ours)
    path = tmp_path / "mmaction2_plain_lateral.pth"
    torch.save({"state_dict": {to_mmaction2(k): v for k, v in ours.items()}, "meta": {"epoch": 3}}, path)

    report = load_pretrained(model, path)
    assert report.format == FORMAT_MMACTION2 and sorted(report.loaded_backbone) == sorted(ours)
    # No registered variant has plain-conv laterals, so conversion says so instead of guessing.
    with pytest.raises(CheckpointError, match=f"no model variant with alpha={model.alpha} .*'lateral': 'conv'"):
        convert_checkpoint(path, tmp_path / "out.pt", variant="slowfast_tiny", num_classes=14)


def test_safetensors_and_lightning_checkpoints(tmp_path):
    from safetensors.torch import save_file

    model = _tiny_detector()
    ours = _our_backbone_tensors(model, seed=9)
    save_file({to_pyslowfast(k): v.contiguous() for k, v in ours.items()}, tmp_path / "pyslowfast.safetensors")
    report = load_pretrained(model, tmp_path / "pyslowfast.safetensors")
    assert report.format == FORMAT_PYSLOWFAST and report.top_level_key is None
    assert sorted(report.loaded_backbone) == sorted(ours)
    # DataParallel/DDP saves put "module." before every name.
    torch.save({"model_state": {f"module.{to_pyslowfast(k)}": v for k, v in ours.items()}}, tmp_path / "ddp.pth")
    assert sorted(load_pretrained(model, tmp_path / "ddp.pth").loaded_backbone) == sorted(ours)

    # A Lightning checkpoint of our training system: the detector under "model.", plus training state.
    trained = _tiny_detector()
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(0.5)
    lightning = {
        "state_dict": {
            **{f"model.{k}": v for k, v in trained.state_dict().items()},
            "criterion.pos_weight": torch.ones(14),
        },
        "epoch": 4,
        "global_step": 100,
        "pytorch-lightning_version": "2.6.0",
        "hyper_parameters": {"lr": 1e-3, "class_names": ["a", "b"]},
    }
    torch.save(lightning, tmp_path / "last.ckpt")
    report = load_pretrained(model, tmp_path / "last.ckpt")
    assert report.format == FORMAT_OURS
    assert sorted(report.loaded) == sorted(trained.state_dict())
    assert [s.key for s in report.skipped] == ["criterion.pos_weight"]
    for key, value in trained.state_dict().items():
        assert torch.equal(model.state_dict()[key], value)

    # Another K: the classifier is reported, not loaded, and keeps its own initialisation.
    other = _tiny_detector(num_classes=5)
    head_before = other.head.classifier.weight.detach().clone()
    report = load_pretrained(other, tmp_path / "last.ckpt")
    assert {s.key for s in report.skipped} == {
        "criterion.pos_weight",
        "model.head.classifier.weight",
        "model.head.classifier.bias",
    }
    assert torch.equal(other.head.classifier.weight, head_before)


def test_convert_checkpoint_cli_end_to_end(tmp_path, capsys):
    model = _tiny_detector()
    ours = _our_backbone_tensors(model, seed=3)
    tensors = {to_pyslowfast(k): v for k, v in ours.items()}
    tensors["head.projection.weight"] = torch.randn(80, sum(model.backbone.out_channels))
    tensors["head.projection.bias"] = torch.zeros(80)
    src = tmp_path / "SLOWFAST_TINY.pyth"
    torch.save({"model_state": tensors, "epoch": 10}, src)
    out = tmp_path / "out" / "tiny_thermal.pt"

    rc = main(["convert-checkpoint", str(src), str(out), "--variant", "slowfast_tiny", "--num-classes", "14"])
    printed = capsys.readouterr().out
    assert rc == 0
    assert "PySlowFast layout" in printed and f"loaded: {len(ours)} tensors" in printed
    assert "head.projection.weight" in printed and "RGB stem" in printed

    saved = torch.load(out, map_location="cpu", weights_only=True)
    assert saved["model_config"]["variant"] == "slowfast_tiny" and saved["num_classes"] == 14
    for key, value in ours.items():
        assert torch.equal(saved["state_dict"][key], _expected(key, value)), key
    rebuilt = build_model(ModelConfig(**saved["model_config"]), saved["num_classes"])
    rebuilt.load_state_dict(saved["state_dict"])  # strict: the saved names are exactly the model's

    # A variant the file does not fit: exit code 2 and a message naming the file.
    rc = main(["convert-checkpoint", str(src), str(tmp_path / "bad.pt"), "--variant", "slowfast_small"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "SLOWFAST_TINY.pyth" in err and "no model variant" in err and "fit it: ['slowfast_tiny']" in err
    assert not (tmp_path / "bad.pt").exists()


def test_memory_position_table_is_centre_cropped(tmp_path):
    """AlphAction's 61 memory offsets (-30..30) load into a model with a shorter window."""
    from thermal_action.models.interaction import InteractionStructure

    backbone = VARIANTS["slowfast_tiny"](lateral="conv_bias")
    interaction = InteractionStructure(sum(backbone.out_channels), mode="serial", dim_inner=16, max_offset=2)
    head = ActionHead(backbone.out_channels, 14, 1.0 / backbone.output_stride, head_dim=32, interaction=interaction)
    model = ActionDetector(backbone, head).eval()
    g = torch.Generator().manual_seed(4)
    tensors = {}
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked"):
            continue
        shape = list(value.shape)
        if key.endswith("temporal_position_k") or key.endswith("temporal_position_v"):
            shape[0] = 61
        tensors[to_alphaction(key)] = synthetic_tensor(key, shape, g)
    path = tmp_path / "alphaction_tiny.pth"
    torch.save({"model": tensors}, path)

    report = load_pretrained(model, path)
    assert report.missing == [] and report.skipped == [] and report.shape_mismatched == []
    cropped = sorted(c.key for c in report.converted if "temporal_position" in c.key)
    assert cropped == [f"head.interaction.M_block_{i}.temporal_position_{kv}" for i in (1, 2) for kv in "kv"]
    ia = "roi_heads.action.feature_extractor.ia_structure."
    # Offsets -2..2 are rows 28..32 of the -30..30 table.
    table = tensors[ia + "M_block_1.temporal_position_k"]
    assert torch.equal(model.head.interaction.M_block_1.temporal_position_k, table[28:33])


def test_mmaction2_r50_4x16_default_layout_converts_to_its_variant(tmp_path):
    # MMAction2's default SlowFast (no lateral_norm): kernel-5 plain-conv laterals, no BN.
    plain = build_model(ModelConfig(variant="slowfast_r50_4x16_mmaction2"), 14)
    ours = _our_backbone_tensors(plain, seed=11)
    assert not any("_fuse.bn" in k or "conv_f2s.bias" in k for k in ours)
    assert ours["backbone.s1_fuse.conv_f2s.weight"].shape[2] == 5
    path = tmp_path / "mmaction2_r50_4x16.pth"
    torch.save({"state_dict": {to_mmaction2(k): v for k, v in ours.items()}}, path)
    # Asked for the PySlowFast-style name, conversion resolves the variant that loads it exactly.
    report = convert_checkpoint(path, tmp_path / "out.pt", variant="slowfast_r50_4x16", num_classes=14)
    assert any("slowfast_r50_4x16_mmaction2" in n for n in report.notes)
    assert sorted(report.loaded_backbone) == sorted(ours) and report.missing_backbone == []


@pytest.mark.parametrize("layout, variant", [("alphaction_r50_4x16_denseserial", "slowfast_r50_4x16_alphaction"),
                                             ("alphaction_r101_8x8_denseserial", "slowfast_r101_8x8_alphaction")])
def test_convert_without_variant_uses_the_only_one_that_fits(layout, variant, store, tmp_path, capsys):
    from thermal_action.cli import main

    out = tmp_path / "out.pt"
    assert main(["convert-checkpoint", str(store(layout)), str(out), "--interaction", "denseserial"]) == 0
    assert f"variant '{variant}'" in capsys.readouterr().out
    assert torch.load(out, weights_only=True)["model_config"]["variant"] == variant


def test_convert_without_variant_pyslowfast_and_ambiguity(r50_pyslowfast, tmp_path, monkeypatch):
    import thermal_action.models.pretrained.fitting as fitting

    ours = _our_backbone_tensors(r50_pyslowfast, seed=5)
    path = tmp_path / "pyslowfast_r50.pyth"
    torch.save({"model_state": {to_pyslowfast(k): v for k, v in ours.items()}}, path)
    report = convert_checkpoint(path, tmp_path / "out.pt", num_classes=14)
    assert any("'slowfast_r50_4x16'" in n for n in report.notes)
    # Were two variants to reproduce a file, it must not guess.
    monkeypatch.setattr(fitting, "fitting_variants", lambda mapped: ["slowfast_r50_4x16", "slowfast_r50_8x8"])
    with pytest.raises(CheckpointError, match=r"slowfast_r50_4x16.*slowfast_r50_8x8.*pass --variant"):
        convert_checkpoint(path, tmp_path / "out2.pt", num_classes=14)


@pytest.mark.parametrize("variant, tube_size", [("slowfast_tiny", 0), ("crop_cnn", 16)])
def test_a_room_model_starts_from_weights_without_the_room_computing_what_they_did(variant, tube_size, tmp_path):
    """A one-channel stem (or crop-CNN first layer) gets zero weights for the zone-mask channels,
    and fc1 zero weights for the zone features: the loaded model scores as the file's model,
    whatever room it is shown, until training uses the room."""
    from safetensors.torch import save_file

    from thermal_action.structures import RoomInputs

    torch.manual_seed(3)
    plain = build_model(ModelConfig(variant=variant, tube_size=tube_size, head_dim=32, roi_output_size=3), 14).eval()
    save_file({k: v.contiguous() for k, v in plain.state_dict().items()}, tmp_path / "plain.safetensors")
    torch.manual_seed(4)
    room = build_model(ModelConfig(variant=variant, tube_size=tube_size, head_dim=32, roi_output_size=3,
                                   room="masks+features"), 14).eval()
    assert room.room == RoomInputs(3, 7)
    report = load_pretrained(room, tmp_path / "plain.safetensors")
    converted = {c.key: c.how for c in report.converted}
    first = "backbone.body.0.weight" if variant == "crop_cnn" else "backbone.s1.pathway0_stem.conv.weight"
    assert "3 zone-mask input channels added at zero" in converted[first]
    assert "7 new head inputs" in converted["head.fc1.weight"]
    assert report.shape_mismatched == [] and report.missing == []
    weight = room.state_dict()[first]
    assert weight.shape[1] == 4 and weight[:, 1:].abs().sum() == 0
    torch.testing.assert_close(weight[:, :1], plain.state_dict()[first])
    gen = torch.Generator().manual_seed(0)
    fast = torch.randn(2, 1, 8, 40, 60, generator=gen)
    slow = fast[:, :, plain.alpha // 2:: plain.alpha].contiguous()
    rois = torch.tensor([[0, 10.0, 10.0, 22.0, 18.0], [1, 30.0, 5.0, 48.0, 12.0]])
    masks = (torch.rand(2, 3, 40, 60, generator=gen) > 0.5).float()
    with torch.no_grad():
        torch.testing.assert_close(room(slow, fast, rois, zone_masks=masks, zone_features=torch.rand(2, 7)),
                                   plain(slow, fast, rois), rtol=1e-5, atol=1e-6)


def test_an_rgb_stem_loads_into_a_room_model_summed_then_padded(tmp_path):
    model = build_model(ModelConfig(variant="slowfast_tiny", room="masks"), 14)
    key = "backbone.s1.pathway0_stem.conv.weight"
    state = {k: v.clone() for k, v in model.state_dict().items()}
    rgb = torch.randn(state[key].shape[0], 3, *state[key].shape[2:])
    state[key] = rgb
    torch.save({"state_dict": state}, tmp_path / "rgb.pth")
    report = load_pretrained(model, tmp_path / "rgb.pth")
    how = {c.key: c.how for c in report.converted}[key]
    assert "RGB stem" in how and "3 zone-mask input channels added at zero" in how
    torch.testing.assert_close(model.state_dict()[key][:, :1], rgb_stem_to_thermal(rgb))
    assert model.state_dict()[key][:, 1:].abs().sum() == 0
