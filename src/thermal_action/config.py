"""One config source: typed defaults in code, YAML files and ``key=value`` overrides on top.

The defaults live in the dataclasses below, one per section, with a comment (and unit)
per field. A YAML file and command-line overrides can only change fields that exist:
an unknown key is an error that names the closest valid key. Values are checked
against the field's type. The resolved config is written next to every run and inside
every checkpoint (:func:`config_to_dict`), so a run can always be reproduced.

Modules never see this object: ``build_model`` / ``build_datamodule`` turn it into
explicit constructor arguments.

Every number has its allowed range next to its default (``ranged(default, low, high)``,
kept in the field's metadata under ``"range"``): a value outside it is an error naming
the key, where it came from (the YAML file or the command-line override) and the range.

A loaded config is frozen (every section is a frozen dataclass): code that needs other
values makes a changed copy with :func:`replace_values`, checked like an override, so
a config seen in one place cannot change under another.

Example::

    cfg = load_config("cpu_default", ["optim.lr=3e-4", "data.root=/data/rooms"])  # or a YAML file's path
    cfg = replace_values(cfg, {"optim.epochs": 2})  # a changed copy; cfg.optim.epochs = 2 raises
    save_config(cfg, run_dir / "config.yaml")
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from thermal_action.errors import ConfigError
from thermal_action.structures import DEFAULT_VALID_RANGE


_INF = float("inf")


def _fmt(v: float) -> str:
    """A bound as a person writes it: 4294967295, 0.5, 1e-08."""
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e16 else f"{v:g}"


@dataclass(frozen=True)
class Range:
    """The values a numeric config field accepts.

    Attributes:
        low, high: bounds (None: unbounded on that side).
        low_open, high_open: exclude the bound itself.
        increasing: a tuple field's values must strictly increase.
        choices: only these values (within the bounds).
        also: extra values accepted outside the bounds (e.g. ``devices=-1``: all).
        int_range: for ``Any`` fields holding an int or a float: the range of an int
            (``self`` then applies to floats, e.g. a fraction of batches).
    """

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    increasing: bool = False
    choices: tuple[float, ...] | None = None
    also: tuple[float, ...] = ()
    int_range: "Range | None" = None

    def contains(self, v: float) -> bool:
        if v in self.also:
            return True
        if v != v:  # NaN
            return False
        if self.choices is not None and v not in self.choices:
            return False
        if self.low is not None and (v < self.low or (self.low_open and v == self.low)):
            return False
        if self.high is not None and (v > self.high or (self.high_open and v == self.high)):
            return False
        return True

    def __str__(self) -> str:
        if self.choices is not None:
            text = "one of " + ", ".join(_fmt(c) for c in self.choices)
        elif self.low is not None and self.high is not None:
            text = f"{'(' if self.low_open else '['}{_fmt(self.low)}, {_fmt(self.high)}{')' if self.high_open else ']'}"
        elif self.low is not None:
            text = f"{'>' if self.low_open else '>='} {_fmt(self.low)}"
        elif self.high is not None:
            text = f"{'<' if self.high_open else '<='} {_fmt(self.high)}"
        else:
            text = "any finite number"
        if self.also:
            text += " or " + ", ".join(_fmt(a) for a in self.also)
        return text


def ranged(default: Any, low: float | None = None, high: float | None = None, **kw: Any) -> Any:
    """A dataclass field with its default and its allowed :class:`Range` (see :class:`Range`)."""
    return field(default=default, metadata={"range": Range(low, high, **kw)})



def check_range(value: Any, rng: Range | None, key: str) -> None:
    """Raises :class:`ConfigError` when a number in ``value`` lies outside ``rng``."""
    if rng is None or value is None:
        return
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue  # e.g. devices="auto" or a list of device ids: Lightning checks those
        if not math.isfinite(v):
            raise ConfigError(f"config key '{key}' = {v!r} must be a finite number")
        r = rng.int_range if (rng.int_range is not None and isinstance(v, int)) else rng
        if not r.contains(v):
            kind = " (an integer count)" if r is rng.int_range else (
                " (a fraction)" if rng.int_range is not None else "")
            allowed = str(r) + (f"; or an integer count {rng.int_range}" if rng.int_range is not None
                                and r is not rng.int_range else "")
            raise ConfigError(f"config key '{key}' = {v!r}{kind} is out of range: allowed {allowed}")
    if rng.increasing and any(b <= a for a, b in zip(values, values[1:])):
        raise ConfigError(f"config key '{key}' = {list(values)!r}: the values must strictly increase")


@dataclass(frozen=True)
class DataConfig:
    root: str = ""  # dataset directory (holds frames/ and annotations/)
    train_ann: str = "annotations/train.json"  # relative to root (or absolute)
    val_ann: str = "annotations/val.json"  # relative to root (or absolute)
    frames_dir: str = "frames"  # relative to root
    valid_range: tuple[float, float] = ranged(DEFAULT_VALID_RANGE, -273.15, increasing=True)  # °C; pixels outside (dropped packets, NaN) are repaired
    max_box_overhang: float = ranged(2.0, 0.0)  # pixels a box may poke out of the frame and be clipped; further out is an error
    num_frames: int = ranged(64, 1, 1024)  # raw frames in a clip window: num_frames//2 before the keyframe, the keyframe, the rest after
    frame_stride: int = ranged(2, 1, 64)  # fast pathway takes every frame_stride-th frame of the window
    scale: float = ranged(1.0, 0.25, 8.0)  # spatial resize factor applied to 40x60 frames (boxes scaled to match); below 0.25 a person is under 2 px
    normalization: str = "background"  # "background" (relative to the clip's background level) or "fixed"
    fixed_range: tuple[float, float] = ranged((5.0, 45.0), -273.15, increasing=True)  # °C window mapped to [0, 1] in "fixed" mode
    background_scale: float = ranged(8.0, 0.0, low_open=True)  # °C; (T - background) / background_scale in "background" mode
    augment: bool = True  # training-time augmentation on/off
    flip: bool = True  # random horizontal and vertical flips
    rotate: bool = True  # random 90/180/270° rotations (overhead sensors have no "up"); 90/270° per batch for non-square frames
    temp_offset: float = ranged(1.5, 0.0)  # °C, std of a global temperature offset
    temp_gain: float = ranged(0.1, 0.0)  # relative std of a temperature gain around the background
    box_jitter: float = ranged(0.5, 0.0)  # pixels (native resolution), std of box corner jitter
    temporal_jitter: int = ranged(2, 0)  # frames, max shift of the window centre
    room_dropout: float = ranged(0.0, 0.0, 1.0, high_open=True)  # probability that a training clip is shown without its room (empty zone masks, has_layout 0), so a model with model.room still learns the people and predicts where no layout is known
    cache: bool = True  # keep decoded recordings in memory (a 500-frame file is ~5 MB)
    batch_size: int = ranged(8, 1)  # clips per batch (per device)
    num_workers: int = ranged(0, 0)  # DataLoader workers
    class_balanced_sampler: bool = False  # sample clips inversely to their rarest box class frequency
    extra_train_root: str = ""  # a second dataset (e.g. `thermal-action synth` rooms) mixed into training batches; "" = none
    extra_train_ann: str = "annotations/train.json"  # relative to extra_train_root (or absolute); never used for validation
    extra_train_share: float = ranged(0.5, 0.0, 1.0, high_open=True)  # expected fraction of extra clips per batch; every train_ann clip is still seen once per epoch
    synthetic_recordings: int = ranged(0, 0)  # > 0: train generates this many `thermal-action synth` rooms into <run>/synthetic and mixes them in at extra_train_share; 0 = none
    synthetic_frames: int = ranged(400, 2)  # frames per generated synthetic recording (~68 s at ~6 Hz)
    synthetic_seed: int = ranged(7, 0, 2**32 - 1)  # seed of the generated synthetic rooms (fixed, so every run seed mixes in the same rooms)
    rooms: str = ""  # room layout file (rooms.json: sensor id or MAC -> furniture zones), relative to root (or absolute), for keyframes whose annotations list no furniture (context_objects); "" = none (such keyframes get no room)
    carry_labels: int = ranged(0, 0)  # > 0: extra training clips between two consecutive labelled keyframes of a recording (at most carry_max_gap frames apart) where a person (same track id) has the same label at both ends: that many evenly spaced frames, the person's box interpolated, the label carried (people whose labels differ come along unlabelled); 0 = off (docs/active-learning.md)
    carry_max_gap: int = ranged(36, 2)  # frames (~6 s at 6 fps); keyframe pairs further apart carry nothing
    pseudo_label_checkpoint: str = ""  # a trained model (.ckpt) whose confident scores on unlabelled frames of the training recordings become extra training labels: every pseudo_label_step-th frame not next to a labelled keyframe, people from the built-in detector and tracker; "" = off (docs/active-learning.md)
    pseudo_label_threshold: float = ranged(0.8, 0.0, 1.0, low_open=True)  # a person's top class score must reach this to become a pseudo-label (the others on the frame come along unlabelled)
    pseudo_label_step: int = ranged(6, 1)  # frames between the unlabelled frames scored (the labelling cadence)


@dataclass(frozen=True)
class ModelConfig:
    variant: str = "slowfast_tiny"  # a name in thermal_action.models.variants.VARIANTS
    alpha: int = ranged(0, 0)  # fast/slow frame-rate ratio; 0 = the variant's own
    dropout: float = ranged(0.2, 0.0, 1.0, high_open=True)  # dropout before the classifier
    head_dim: int = ranged(1024, 1)  # width of the two-layer MLP of the RoI head
    roi_output_size: int = ranged(7, 1)  # RoIAlign output size (cells)
    roi_sampling_ratio: int = ranged(2, 0)  # RoIAlign samples per cell side (0 = adaptive)
    interaction: str = "none"  # "none", "parallel", "serial" or "denseserial"
    memory_window: int = ranged(3, 0)  # keyframes on each side read from the feature bank (interaction only)
    pretrained: str = ""  # path to a checkpoint file (AlphAction, PySlowFast, MMAction2, or ours)
    frozen_bn: bool = False  # freeze BatchNorm statistics and affine parameters
    interaction_dim: int = ranged(1024, 1)  # attention width of the interaction blocks (AlphAction: 1024)
    interaction_dropout: float = ranged(0.2, 0.0, 1.0, high_open=True)  # dropout inside the interaction structure
    tube_size: int = ranged(0, 0)  # > 0: person tubes of this many pixels a side cut around each box (models/tubes.py); 0: whole frame
    tube_context: float = ranged(1.5, 0.0, low_open=True)  # tube window side / the box's longer side
    tube_min_size: float = ranged(12.0, 0.0, low_open=True)  # smallest tube window side, in input pixels
    ensemble: int = ranged(1, 1)  # members of a deep ensemble trained side by side (logits averaged); 1 = one model
    test_time_augmentation: int = ranged(1, 1, 8, choices=(1, 2, 4, 8))  # evaluation/prediction: average logits over 1, 2, 4 or 8 flips/transpositions
    room: str = "none"  # what the model sees of the room (bed/couch/chair zones): "none", "masks" (zone masks as extra input channels, cropped with the frame or tube), "features" (person-to-zone shares and distances into the head) or "masks+features"


@dataclass(frozen=True)
class OptimConfig:
    optimizer: str = "adamw"  # "adamw" or "sgd"
    lr: float = ranged(1e-3, 0.0, 1.0, low_open=True)  # peak learning rate (per optimiser step, not scaled by the number of devices)
    weight_decay: float = ranged(1e-4, 0.0)  # decoupled (AdamW) or L2 (SGD); never applied to norm weights and biases
    momentum: float = ranged(0.9, 0.0, 1.0)  # SGD only
    epochs: int = ranged(10, 1)  # training epochs
    warmup_epochs: float = ranged(1.0, 0.0)  # linear warm-up length (epochs, fractional allowed)
    warmup_start_factor: float = ranged(0.01, 0.0, 1.0)  # warm-up starts at this fraction of lr
    schedule: str = "cosine"  # "cosine", "step" or "constant" (applied per optimiser step)
    min_lr_factor: float = ranged(0.0, 0.0, 1.0)  # cosine floor as a fraction of lr
    step_milestones: tuple[int, ...] = ranged((6, 8), 1, increasing=True)  # epochs, "step" schedule
    step_gamma: float = ranged(0.1, 0.0, 1.0, low_open=True)  # lr factor at each step milestone
    grad_clip: float = ranged(5.0, 0.0)  # max gradient norm; 0 disables
    freeze_backbone_epochs: int = ranged(0, 0)  # keep the backbone frozen for the first epochs (only with model.pretrained)
    loss: str = "softmax"  # "softmax" (one class per box), "sigmoid" (multi-label) or "focal"
    focal_gamma: float = ranged(2.0, 0.0)  # focusing exponent of the focal loss (0 = cross-entropy)
    class_weights: str = "none"  # "none", "inverse" or "inverse_sqrt" (of training box frequency)
    class_weight_max: float = ranged(10.0, 0.0, low_open=True)  # upper clip of a class weight (weights are normalised to mean 1 per box)
    label_smoothing: float = ranged(0.0, 0.0, 1.0, high_open=True)  # softmax/focal: target mass spread uniformly over the K classes
    group_smoothing: float = ranged(0.0, 0.0, 1.0, high_open=True)  # softmax: target mass moved to the other classes of the label's taxonomy group (name before "-")


@dataclass(frozen=True)
class TrainerConfig:
    accelerator: str = "auto"  # "cpu", "gpu", "auto"
    devices: Any = ranged(1, 1, also=(-1,))  # int, list of device ids or "auto" (per node)
    num_nodes: int = ranged(1, 1)  # machines; torchrun / SLURM set ranks, Lightning reads them from the environment
    strategy: str = "auto"  # "auto", "ddp", ... ("auto" picks DDP when devices * num_nodes > 1)
    precision: str = "auto"  # "auto" (bf16-mixed on a GPU with bf16, or a CPU with bf16 flags where a probe measures >= 1.5x; else 32-true), "32-true", "bf16-mixed", "16-mixed"
    channels_last: bool = True  # channels-last-3d memory format for the 3D convolutions
    reuse_freed_memory: bool = True  # CPU training: glibc keeps freed memory for the next step instead of returning it to the system (5-10% faster steps at 256x384, same peak memory)
    log_every_n_steps: int = ranged(10, 1)  # optimiser steps between logged training scalars
    limit_train_batches: Any = ranged(1.0, 0.0, 1.0, int_range=Range(0))  # training batches per epoch: a float is a fraction (1.0 = all), an int a count
    limit_val_batches: Any = ranged(1.0, 0.0, 1.0, int_range=Range(0))  # validation batches per epoch: a float is a fraction (1.0 = all), an int a count
    check_val_every_n_epoch: int = ranged(1, 1)  # epochs between validation runs (and best/last checkpoints)
    select_checkpoint: str = "best"  # what checkpoints/best.ckpt (the model evaluate/predict/export use) holds: "best" validation frame-mAP epoch, or "last" (the final epoch: a fixed schedule, for validation sets too small to rank epochs); either way its fall threshold is calibrated on its own validation
    num_sanity_val_steps: int = ranged(1, -1)  # validation batches run before training, to fail early on val bugs
    accumulate_grad_batches: int = ranged(1, 1)  # batches per optimiser step
    max_time_minutes: float = ranged(0.0, 0.0)  # stop training after this wall-clock time (minutes); 0 = no limit
    min_epochs: int = ranged(1, 0)  # epochs trained even when max_time_minutes runs out first
    deterministic: bool = False  # torch deterministic algorithms (CPU results repeat exactly with the seed)
    progress_bar: bool = True  # tqdm bar with loss and clips/s


@dataclass(frozen=True)
class EvalConfig:
    iou_threshold: float = ranged(0.5, 0.0, 1.0, low_open=True)  # frame-mAP matching threshold
    fall_class: str = "lying down-lying with risk"  # class whose precision/recall is reported
    fall_threshold: float | None = ranged(None, 0.0, 1.0, low_open=True)  # operating threshold on the fall-class score, the alert rule's; null: the one train calibrated (stored in the checkpoint's alert rule)
    fall_target_recall: float = ranged(0.95, 0.0, 1.0, low_open=True)  # train calibrates the fall threshold for this recall on the validation set
    detections: str = ""  # JSON detections file: classify its boxes instead of the annotated ones ("" = annotated)
    detection_min_score: float = ranged(0.0, 0.0, 1.0)  # detections with a lower box score are dropped (count logged)
    restrict_to_predicted_images: bool = False  # score only keyframes that got a prediction (partial validation runs)
    plots: bool = True  # write confusion_matrix.png and pr_curves.png beside metrics.json


@dataclass(frozen=True)
class PretrainConfig:
    """``thermal-action pretrain``: contrastive self-supervised pretraining on unlabelled recordings."""

    epochs: int = ranged(6, 1)  # passes over the unlabelled person tubes
    batch_size: int = ranged(32, 2)  # tubes per step; each is seen in two views, the rest of the batch are its negatives
    lr: float = ranged(2.0e-3, 0.0, low_open=True)  # AdamW peak learning rate (cosine decay, 5% warmup)
    weight_decay: float = ranged(1.0e-2, 0.0)
    temperature: float = ranged(0.2, 0.0, low_open=True)  # InfoNCE softmax temperature
    projection_dim: int = ranged(64, 1)  # output width of the projection MLP (dropped after pretraining)
    frame_step: int = ranged(2, 1)  # every frame_step-th frame's detected people become samples
    max_samples: int = ranged(0, 0)  # tubes per epoch (a seeded random subset); 0 = all
    min_score: float = ranged(0.3, 0.0, 1.0)  # person detections with a lower score are not used
    temporal_jitter: int = ranged(6, 0)  # frames each view's window centre moves (uniform in [-j, j])
    box_jitter: float = ranged(1.0, 0.0)  # pixels, std of each view's box corner noise
    temp_offset: float = ranged(1.5, 0.0)  # °C, std of each view's global temperature offset
    temp_gain: float = ranged(0.2, 0.0)  # relative std of each view's gain around the background


@dataclass(frozen=True)
class Config:
    seed: int = ranged(0, 0, 2**32 - 1)  # seeds weights, augmentation and sampling (Lightning takes 0..2^32-1)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)



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


def _field_comments(cls: type) -> dict[str, str]:
    """Field name -> the comment beside it in ``cls``'s source: each field's documentation."""
    import inspect
    import io
    import tokenize

    comments: dict[str, str] = {}
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return comments
    last_name, line_of_name = None, -1
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.NAME and tok.start[1] == 4 and tok.start[0] != line_of_name:
            last_name, line_of_name = tok.string, tok.start[0]
        elif tok.type == tokenize.COMMENT and tok.start[0] == line_of_name and last_name is not None:
            comments[last_name] = tok.string.lstrip("#").strip()
    return comments


def describe_config(cls: type = Config, prefix: str = "", values: Any = None) -> list[dict[str, str]]:
    """Every key of the config class ``cls``: ``key``, ``type``, ``default``, ``range`` and
    ``meaning`` (the comment beside the field), in declaration order (``thermal-action config``);
    with ``values`` (a loaded config of that class) also each key's ``value`` there."""
    rows = []
    hints = typing.get_type_hints(cls)
    comments = _field_comments(cls)
    defaults = cls()

    def text(v: Any) -> str:
        return json.dumps(list(v) if isinstance(v, tuple) else v)

    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            rows.extend(describe_config(tp, prefix + f.name + ".", None if values is None else getattr(values, f.name)))
            continue
        rng = f.metadata.get("range")
        rows.append({"key": prefix + f.name, "type": getattr(tp, "__name__", str(tp)).replace("typing.", ""),
                     "default": text(getattr(defaults, f.name)),
                     "range": "" if rng is None else str(rng), "meaning": comments.get(f.name, "")})
        if values is not None:
            rows[-1]["value"] = text(getattr(values, f.name))
    return rows


def _unknown_key(key: str, root: type) -> ConfigError:
    close = difflib.get_close_matches(key, _all_keys(root), n=1, cutoff=0.5)
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


def _apply(obj: Any, updates: dict[str, Any], prefix: str = "", root: type | None = None) -> Any:
    """``obj`` with ``updates`` (a nested mapping) applied: a new object, ``obj`` is left as it is."""
    root = root or type(obj)
    hints = typing.get_type_hints(type(obj))
    fields = {f.name: f for f in dataclasses.fields(obj)}
    changes: dict[str, Any] = {}
    for name, value in updates.items():
        key = prefix + str(name)
        if name not in hints:
            raise _unknown_key(key, root)
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, dict):
                raise ConfigError(f"config key '{key}' is a section; give a mapping, got {value!r}")
            changes[name] = _apply(changes.get(name, getattr(obj, name)), value, key + ".", root)
        else:
            value = _coerce(value, tp, key)
            check_range(value, fields[name].metadata.get("range"), key)
            changes[name] = value
    return dataclasses.replace(obj, **changes) if changes else obj


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


def config_from_dict(data: dict[str, Any] | None, overrides: list[str] | None = None, cls: type = Config) -> Any:
    """Builds a :class:`Config` (or another typed config class ``cls``, such as the service's
    ``ServeConfig``) from defaults, a nested mapping and ``key=value`` strings."""
    cfg = cls()
    if data:
        if not isinstance(data, dict):
            raise ConfigError(f"a config must be a mapping, got {type(data).__name__}")
        cfg = _apply(cfg, data)
    for text in overrides or []:
        try:
            key, value = parse_override(text)
            cfg = _apply(cfg, _nest(key, value))
        except ConfigError as e:
            # Named as the source, so it is not blamed on the YAML file it overrides.
            raise ConfigError(f"command-line override '{text}': {e}") from e
    return cfg


def replace_values(cfg: Any, values: dict[str, Any]) -> Any:
    """A copy of the loaded config ``cfg`` with ``values`` (dotted key -> value) changed,
    checked like an override (unknown keys, types and ranges are errors); ``cfg`` itself is
    frozen and stays as it is.

    Example::

        build_cfg = replace_values(cfg, {"model.pretrained": "", "model.ensemble": 1})
    """
    for key, value in values.items():
        cfg = _apply(cfg, _nest(key, value))
    return cfg


def load_config(path: str | Path | None = None, overrides: list[str] | None = None, cls: type = Config) -> Any:
    """Loads defaults (of ``cls``, the training :class:`Config` unless given), then the YAML
    file at ``path`` (if given), then ``overrides``.

    ``path`` is a YAML file, or (for the training config) the name of a config shipped in
    the package (``"cpu_default"``, :mod:`thermal_action.configs`); an existing file wins.

    Raises:
        ConfigError: naming the file or override that does not fit.
    """
    data: dict[str, Any] | None = None
    if path:
        where, text = _read_config_file(path, shipped=cls is Config)
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{where}: not valid YAML: {e}") from e
        try:
            cfg = config_from_dict(data, cls=cls)
        except ConfigError as e:
            raise ConfigError(f"{where}: {e}") from e
        return config_from_dict(config_to_dict(cfg), overrides, cls=cls)
    return config_from_dict(data, overrides, cls=cls)


def _read_config_file(path: str | Path, shipped: bool) -> tuple[str, str]:
    """``(what to call it in messages, its text)`` of a YAML file or (``shipped``) a config shipped
    in the package."""
    from thermal_action import configs

    if Path(path).is_file():
        return str(path), Path(path).read_text()
    packaged = configs.find(str(path)) if shipped else None
    if packaged is not None:
        return str(packaged), packaged.read_text()
    hint = ""
    if shipped:
        close = difflib.get_close_matches(Path(path).name.removesuffix(configs.SUFFIX), configs.names(), n=1)
        hint = (f"; did you mean --config {close[0]}?" if close else "") + \
            f" (shipped configs, by name: {', '.join(configs.names())}; or a YAML file)"
    raise ConfigError(f"config file not found: {path}{hint}")


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """The resolved config as plain YAML/JSON-able data (tuples become lists)."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return v

    return plain(cfg)


def save_config(cfg: Any, path: str | Path) -> Path:
    """Writes the resolved config as YAML and returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
    return path
