"""One config source: typed defaults in code, YAML files and ``key=value`` overrides on top.

The defaults live in the dataclasses below, one per section, with a comment (and unit)
per field. A YAML file and command-line overrides can only change fields that exist:
an unknown key is an error that names the closest valid key. Values are checked
against the field's type. The resolved config is written next to every run and inside
every checkpoint (:func:`config_to_dict`), so a run can always be reproduced.

Modules never see this object: ``build_model`` / ``build_datamodule`` turn it into
explicit constructor arguments.

Example::

    cfg = load_config("configs/cpu_default.yaml", ["optim.lr=3e-4", "data.root=/data/rooms"])
    save_config(cfg, run_dir / "config.yaml")
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A config file or override that does not fit the typed defaults."""


@dataclass
class DataConfig:
    root: str = ""  # dataset directory (holds frames/ and annotations/)
    train_ann: str = "annotations/train.json"  # relative to root (or absolute)
    val_ann: str = "annotations/val.json"  # relative to root (or absolute)
    frames_dir: str = "frames"  # relative to root
    valid_range: tuple[float, float] = (-40.0, 200.0)  # °C; pixels outside (dropped packets, NaN) are repaired
    max_box_overhang: float = 2.0  # pixels a box may poke out of the frame and be clipped; further out is an error
    num_frames: int = 64  # raw frames in a clip window: num_frames//2 before the keyframe, the keyframe, the rest after
    frame_stride: int = 2  # fast pathway takes every frame_stride-th frame of the window
    scale: float = 1.0  # spatial resize factor applied to 40x60 frames (boxes scaled to match)
    normalization: str = "background"  # "background" (relative to the clip's background level) or "fixed"
    fixed_range: tuple[float, float] = (5.0, 45.0)  # °C window mapped to [0, 1] in "fixed" mode
    background_scale: float = 8.0  # °C; (T - background) / background_scale in "background" mode
    augment: bool = True  # training-time augmentation on/off
    flip: bool = True  # random horizontal and vertical flips
    rotate: bool = True  # random 90/180/270° rotations (overhead sensors have no "up"); 90/270° per batch for non-square frames
    temp_offset: float = 1.5  # °C, std of a global temperature offset
    temp_gain: float = 0.1  # relative std of a temperature gain around the background
    box_jitter: float = 0.5  # pixels (native resolution), std of box corner jitter
    temporal_jitter: int = 2  # frames, max shift of the window centre
    cache: bool = True  # keep decoded recordings in memory (a 500-frame file is ~5 MB)
    batch_size: int = 8  # clips per batch (per device)
    num_workers: int = 0  # DataLoader workers
    class_balanced_sampler: bool = False  # sample clips inversely to their rarest box class frequency


@dataclass
class ModelConfig:
    variant: str = "slowfast_tiny"  # a name in thermal_action.models.VARIANTS
    alpha: int = 0  # fast/slow frame-rate ratio; 0 = the variant's own
    dropout: float = 0.2  # dropout before the classifier
    head_dim: int = 1024  # width of the two-layer MLP of the RoI head
    roi_output_size: int = 7  # RoIAlign output size (cells)
    roi_sampling_ratio: int = 2  # RoIAlign samples per cell side (0 = adaptive)
    interaction: str = "none"  # "none", "parallel", "serial" or "denseserial"
    memory_window: int = 3  # keyframes on each side read from the feature bank (interaction only)
    pretrained: str = ""  # path to a checkpoint file (AlphAction, PySlowFast, MMAction2, or ours)
    frozen_bn: bool = False  # freeze BatchNorm statistics and affine parameters
    interaction_dim: int = 1024  # attention width of the interaction blocks (AlphAction: 1024)
    interaction_dropout: float = 0.2  # dropout inside the interaction structure
    tube_size: int = 0  # > 0: person tubes of this many pixels a side cut around each box (models/tubes.py); 0: whole frame
    tube_context: float = 1.5  # tube window side / the box's longer side
    tube_min_size: float = 12.0  # smallest tube window side, in input pixels
    ensemble: int = 1  # members of a deep ensemble trained side by side (logits averaged); 1 = one model
    test_time_augmentation: int = 1  # evaluation/prediction: average logits over 1, 2, 4 or 8 flips/transpositions


@dataclass
class OptimConfig:
    optimizer: str = "adamw"  # "adamw" or "sgd"
    lr: float = 1e-3  # peak learning rate (per optimiser step, not scaled by the number of devices)
    weight_decay: float = 1e-4  # decoupled (AdamW) or L2 (SGD); never applied to norm weights and biases
    momentum: float = 0.9  # SGD only
    epochs: int = 10
    warmup_epochs: float = 1.0  # linear warm-up length (epochs, fractional allowed)
    warmup_start_factor: float = 0.01  # warm-up starts at this fraction of lr
    schedule: str = "cosine"  # "cosine", "step" or "constant" (applied per optimiser step)
    min_lr_factor: float = 0.0  # cosine floor as a fraction of lr
    step_milestones: tuple[int, ...] = (6, 8)  # epochs, "step" schedule
    step_gamma: float = 0.1  # lr factor at each step milestone
    grad_clip: float = 5.0  # max gradient norm; 0 disables
    freeze_backbone_epochs: int = 0  # keep the backbone frozen for the first epochs (only with model.pretrained)
    loss: str = "softmax"  # "softmax" (one class per box), "sigmoid" (multi-label) or "focal"
    focal_gamma: float = 2.0  # focusing exponent of the focal loss (0 = cross-entropy)
    class_weights: str = "none"  # "none", "inverse" or "inverse_sqrt" (of training box frequency)
    class_weight_max: float = 10.0  # upper clip of a class weight (weights are normalised to mean 1 per box)
    label_smoothing: float = 0.0  # softmax/focal: target mass spread uniformly over the K classes
    group_smoothing: float = 0.0  # softmax: target mass moved to the other classes of the label's taxonomy group (name before "-")


@dataclass
class TrainerConfig:
    accelerator: str = "auto"  # "cpu", "gpu", "auto"
    devices: Any = 1  # int, list of device ids or "auto" (per node)
    num_nodes: int = 1  # machines; torchrun / SLURM set ranks, Lightning reads them from the environment
    strategy: str = "auto"  # "auto", "ddp", ... ("auto" picks DDP when devices * num_nodes > 1)
    precision: str = "auto"  # "auto" (bf16-mixed on a GPU that has bf16, else 32-true), "32-true", "bf16-mixed", "16-mixed"
    channels_last: bool = True  # channels-last-3d memory format for the 3D convolutions
    log_every_n_steps: int = 10  # optimiser steps between logged training scalars
    limit_train_batches: Any = 1.0  # training batches per epoch: a float is a fraction (1.0 = all), an int a count
    limit_val_batches: Any = 1.0  # validation batches per epoch: a float is a fraction (1.0 = all), an int a count
    check_val_every_n_epoch: int = 1  # epochs between validation runs (and best/last checkpoints)
    num_sanity_val_steps: int = 1  # validation batches run before training, to fail early on val bugs
    accumulate_grad_batches: int = 1  # batches per optimiser step
    max_time_minutes: float = 0.0  # stop training after this wall-clock time (minutes); 0 = no limit
    min_epochs: int = 1  # epochs trained even when max_time_minutes runs out first
    deterministic: bool = False  # torch deterministic algorithms (CPU results repeat exactly with the seed)
    progress_bar: bool = True  # tqdm bar with loss and clips/s


@dataclass
class EvalConfig:
    iou_threshold: float = 0.5  # frame-mAP matching threshold
    fall_class: str = "lying down-lying with risk"  # class whose precision/recall is reported
    fall_threshold: float | None = None  # operating threshold on the fall-class score; null: the one train calibrated (stored in the checkpoint)
    fall_target_recall: float = 0.95  # train calibrates the fall threshold for this recall on the validation set
    detections: str = ""  # JSON detections file: classify its boxes instead of the annotated ones ("" = annotated)
    detection_min_score: float = 0.0  # detections with a lower box score are dropped (count logged)
    restrict_to_predicted_images: bool = False  # score only keyframes that got a prediction (partial validation runs)
    plots: bool = True  # write confusion_matrix.png and pr_curves.png beside metrics.json


@dataclass
class PretrainConfig:
    """``thermal-action pretrain``: contrastive self-supervised pretraining on unlabelled recordings."""

    epochs: int = 6  # passes over the unlabelled person tubes
    batch_size: int = 32  # tubes per step; each is seen in two views, the rest of the batch are its negatives
    lr: float = 2.0e-3  # AdamW peak learning rate (cosine decay, 5% warmup)
    weight_decay: float = 1.0e-2
    temperature: float = 0.2  # InfoNCE softmax temperature
    projection_dim: int = 64  # output width of the projection MLP (dropped after pretraining)
    frame_step: int = 2  # every frame_step-th frame's detected people become samples
    max_samples: int = 0  # tubes per epoch (a seeded random subset); 0 = all
    min_score: float = 0.3  # person detections with a lower score are not used
    temporal_jitter: int = 6  # frames each view's window centre moves (uniform in [-j, j])
    box_jitter: float = 1.0  # pixels, std of each view's box corner noise
    temp_offset: float = 1.5  # °C, std of each view's global temperature offset
    temp_gain: float = 0.2  # relative std of each view's gain around the background


@dataclass
class Config:
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)


def _field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _all_keys(cls: type, prefix: str = "") -> list[str]:
    keys = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            keys.extend(_all_keys(tp, prefix + f.name + "."))
        else:
            keys.append(prefix + f.name)
    return keys


def _unknown_key(key: str) -> ConfigError:
    close = difflib.get_close_matches(key, _all_keys(Config), n=1, cutoff=0.5)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return ConfigError(f"unknown config key '{key}'{hint}")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Checks ``value`` against the annotation ``tp`` and converts lists to tuples."""
    if tp is Any:
        return value
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        errors = []
        for arg in typing.get_args(tp):
            if arg is type(None) and value is None:
                return None
            try:
                return _coerce(value, arg, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"config key '{key}': {value!r} does not fit {tp}")
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key '{key}' expects a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], key) for v in value)
        if len(value) != len(args):
            raise ConfigError(f"config key '{key}' expects {len(args)} values, got {list(value)!r}")
        return tuple(_coerce(v, a, key) for v, a in zip(value, args))
    if tp is float:
        if isinstance(value, str):
            # YAML 1.1 reads "3e-4" (no dot) as a string; accept any float literal.
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key '{key}' expects a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"config key '{key}' expects an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config key '{key}' expects true/false, got {value!r}")
        return value
    if tp is str:
        if value is None:
            return ""
        if not isinstance(value, str):
            return str(value)
        return value
    return value


def _apply(obj: Any, updates: dict[str, Any], prefix: str = "") -> None:
    hints = typing.get_type_hints(type(obj))
    for name, value in updates.items():
        key = prefix + str(name)
        if name not in hints:
            raise _unknown_key(key)
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, dict):
                raise ConfigError(f"config key '{key}' is a section; give a mapping, got {value!r}")
            _apply(getattr(obj, name), value, key + ".")
        else:
            setattr(obj, name, _coerce(value, tp, key))


def _nest(key: str, value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    cur = out
    parts = key.split(".")
    for p in parts[:-1]:
        cur = cur.setdefault(p, {})
    cur[parts[-1]] = value
    return out


def parse_override(text: str) -> tuple[str, Any]:
    """Parses ``section.key=value``; the value is read as YAML (numbers, lists, booleans)."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' is not of the form key=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override '{text}' has no key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key, value


def config_from_dict(data: dict[str, Any] | None, overrides: list[str] | None = None) -> Config:
    """Builds a :class:`Config` from defaults, a nested mapping and ``key=value`` strings."""
    cfg = Config()
    if data:
        if not isinstance(data, dict):
            raise ConfigError(f"a config must be a mapping, got {type(data).__name__}")
        _apply(cfg, data)
    for text in overrides or []:
        key, value = parse_override(text)
        _apply(cfg, _nest(key, value))
    return cfg


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Loads defaults, then the YAML file at ``path`` (if given), then ``overrides``.

    Raises:
        ConfigError: naming the file or override that does not fit.
    """
    data: dict[str, Any] | None = None
    if path:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML: {e}") from e
        try:
            return config_from_dict(data, overrides)
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from e
    return config_from_dict(data, overrides)


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """The resolved config as plain YAML/JSON-able data (tuples become lists)."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return v

    return plain(cfg)


def save_config(cfg: Config, path: str | Path) -> Path:
    """Writes the resolved config as YAML and returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
    return path
