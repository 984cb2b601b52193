"""Export a trained detector to ONNX, with any number of person boxes.

The graph::

    slow (B, 1, Ts, H, W) ─┐
    fast (B, 1, T,  H, W) ─┼─► SlowFast backbone ─► RoIAlign ─► head ─► logits (R, K)
    rois (R, 5)          ──┘                                         └► scores (R, K)
    zone_masks (B, Z, H, W) ──► as Z more input channels      (model.room with "masks")
    zone_features (R, F)    ──► into the head                 (model.room with "features")

The two room inputs are in the graph only when the model reads them (``room`` in the
metadata says which; empty masks and ``has_layout = 0`` features when no layout is known,
as ``thermal_action.data.rooms`` makes them).

``B`` (clips) and ``R`` (boxes, ``(batch_index, x1, y1, x2, y2)`` in input pixels) are
dynamic; ``T``, ``H`` and ``W`` are fixed by the checkpoint's ``data`` config
(``num_frames // frame_stride`` frames of ``40 * scale`` x ``60 * scale`` pixels).
``scores`` is the softmax (or sigmoid, if trained so) of ``logits``.

The file carries everything a predictor needs besides the weights, as JSON in the
model's metadata (key ``thermal_action``; :mod:`.onnx_file` reads it and runs the file
without torch): class names, score activation, the fall alert
rule, alpha and the clip preprocessing (:class:`~thermal_action.data.clips.ClipBuilder`
arguments), so ``thermal-action predict --checkpoint model.onnx`` needs no ``.ckpt``.

Which exporter: the legacy TorchScript-based one (``dynamo=False``) is tried first
(it needs only ``onnx``); when it fails, or when its graph does not reproduce
PyTorch on box counts other than the one traced, the ``torch.export``-based one
(``dynamo=True``, needs ``onnxscript``) is tried. Every export is checked in ONNX
Runtime against PyTorch with 1 and 3 boxes (and 0 when the runtime allows it) and 1
and 2 clips; see :class:`ExportReport`.

Interaction models: the exported graph is the no-memory path (``clip_keys=None``:
person-person interaction inside a clip only; the feature bank of neighbouring
keyframes is Python state that cannot live in a graph). Its scores equal PyTorch's
without memory, not PyTorch's with it, so such an export is refused unless
``allow_no_memory=True``.
"""

from __future__ import annotations

import io
import json
import logging
import time
import warnings
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from thermal_action.inference.onnx_file import (
    INPUT_NAMES,
    METADATA_KEY,
    METADATA_VERSION,
    OUTPUT_NAMES,
    input_names,
    session_feeds,
)
from thermal_action.errors import ExportError
from thermal_action.progress import Progress
from thermal_action.structures import MODEL_ZONE_KINDS, ZONE_FEATURE_NAMES, RoomInputs, pack_pathways

logger = logging.getLogger(__name__)

_DYNAMIC_AXIS = {"slow": "B", "fast": "B", "rois": "R", "zone_masks": "B", "zone_features": "R"}




class _Exportable(nn.Module):
    """``(slow, fast, rois, *room) -> (logits, scores)`` around an ActionDetector, memory off;
    ``room`` is the model's room inputs in :data:`~.onnx_file.ROOM_INPUT_NAMES` order."""

    def __init__(self, model: nn.Module, score_activation: str):
        super().__init__()
        self.model = model
        self.sigmoid = score_activation == "sigmoid"
        self.room_names = input_names(model.room)[len(INPUT_NAMES):]

    def forward(self, slow: torch.Tensor, fast: torch.Tensor, rois: torch.Tensor,
                *room: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.model(slow, fast, rois, **dict(zip(self.room_names, room)))  # (R, K)
        scores = torch.sigmoid(logits) if self.sigmoid else torch.softmax(logits, dim=-1)
        return logits, scores


@dataclass
class ExportReport:
    """What :func:`export_onnx` wrote and checked.

    Attributes:
        path: the ``.onnx`` file.
        exporter: ``"legacy"`` (``dynamo=False``) or ``"dynamo"``.
        opset: ONNX opset.
        input_shapes: example input shapes with ``B`` / ``R`` for the dynamic axes.
        max_abs_diff_logits: largest |ONNX Runtime - PyTorch| over every check.
        checked_box_counts: R values checked; ``empty_boxes_ok``: whether R = 0 ran.
        attempts: exporter -> error message of the attempts that failed.
        seconds: export plus checks.
        size_bytes: file size.
    """

    path: Path
    exporter: str
    opset: int
    input_shapes: dict[str, list[Any]]
    max_abs_diff_logits: float
    checked_box_counts: list[int]
    empty_boxes_ok: bool
    attempts: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    size_bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["path"] = str(self.path)
        return d

    def format_text(self) -> str:
        lines = [
            f"wrote {self.path} ({self.size_bytes / 1e6:.1f} MB) with the {self.exporter} exporter, opset {self.opset}",
            f"inputs: {', '.join(f'{k} {v}' for k, v in self.input_shapes.items())}",
            f"checked against PyTorch for R = {self.checked_box_counts}: max |logit diff| = "
            f"{self.max_abs_diff_logits:.2e}" + ("" if self.empty_boxes_ok else " (R = 0 not supported by the graph)"),
        ]
        lines += [f"{name} exporter failed: {msg}" for name, msg in self.attempts.items()]
        return "\n".join(lines)


def clip_builder_kwargs(builder: Any) -> dict[str, Any]:
    """The constructor arguments of a :class:`~thermal_action.data.clips.ClipBuilder`."""
    return {
        "num_frames": int(builder.num_frames),
        "frame_stride": int(builder.frame_stride),
        "normalization": builder.normalizer.mode,
        "fixed_range": [float(v) for v in builder.normalizer.fixed_range],
        "background_scale": float(builder.normalizer.background_scale),
        "scale": float(builder.scale),
    }


def _example_inputs(num_clips: int, num_boxes: int, t: int, alpha: int, h: int, w: int,
                    seed: int = 0, room: RoomInputs = RoomInputs()) -> tuple[torch.Tensor, ...]:
    """``(slow, fast, rois, *room)`` in the order of :func:`input_names`."""
    g = torch.Generator().manual_seed(seed)
    clip = torch.randn(num_clips, 1, t, h, w, generator=g)  # (B, 1, T, H, W)
    slow, fast = pack_pathways(clip, alpha)
    xy = torch.rand(num_boxes, 2, generator=g) * torch.tensor([w * 0.7, h * 0.7])
    wh = 3.0 + torch.rand(num_boxes, 2, generator=g) * torch.tensor([w * 0.25, h * 0.25])
    idx = torch.arange(num_boxes) % max(num_clips, 1)
    rois = torch.cat([idx[:, None].float(), xy, xy + wh], dim=1)  # (R, 5)
    out: tuple[torch.Tensor, ...] = (slow.contiguous(), fast.contiguous(), rois)
    if room.zone_channels:
        out += ((torch.rand(num_clips, room.zone_channels, h, w, generator=g) > 0.6).float(),)  # (B, Z, H, W)
    if room.zone_features:
        out += (torch.rand(num_boxes, room.zone_features, generator=g),)  # (R, F)
    return out


@contextmanager
def _plain_laterals(model: nn.Module):
    """Exports the fast->slow laterals as the plain strided ``Conv3d`` they compute.

    The backbone writes each lateral as a frame gather plus a 1x1x1 conv (a
    workaround for a oneDNN bf16 kernel bug), whose kernel reshape the legacy
    exporter cannot size. The plain conv is the same maths; the export check then
    compares the graph with the unpatched PyTorch model, so any difference is caught.
    """
    patched = []
    for m in model.modules():
        if hasattr(m, "_time_strided_conv") and isinstance(getattr(m, "conv_f2s", None), nn.Conv3d):
            # Straight into the instance __dict__ (nn.Module.__setattr__ would register a
            # submodule, which does not shadow the method).
            object.__setattr__(m, "_time_strided_conv", m.conv_f2s)
            patched.append(m)
    try:
        yield len(patched)
    finally:
        for m in patched:
            object.__delattr__(m, "_time_strided_conv")


def _export(module: nn.Module, inputs: tuple[torch.Tensor, ...], path: Path, opset: int, dynamo: bool) -> None:
    names = list(input_names(module.model.room))
    dynamic_axes = {name: {0: _DYNAMIC_AXIS[name]} for name in names}
    dynamic_axes.update({"logits": {0: "R"}, "scores": {0: "R"}})
    sink = io.StringIO()
    with warnings.catch_warnings(), redirect_stdout(sink), redirect_stderr(sink):
        warnings.simplefilter("ignore")
        if dynamo:
            from torch.export import Dim

            dims = {"B": Dim("B", min=1, max=1024), "R": Dim("R", min=1, max=65536)}
            shapes = [{0: dims[_DYNAMIC_AXIS[name]]} for name in names]
            torch.onnx.export(
                module, inputs, str(path), input_names=names, output_names=list(OUTPUT_NAMES),
                dynamo=True, opset_version=max(opset, 18), external_data=False,
                dynamic_shapes={"slow": shapes[0], "fast": shapes[1], "rois": shapes[2], "room": tuple(shapes[3:])},
            )
        else:
            torch.onnx.export(
                module, inputs, str(path), input_names=names, output_names=list(OUTPUT_NAMES),
                dynamo=False, opset_version=opset, dynamic_axes=dynamic_axes, do_constant_folding=True,
            )


def _check(module: nn.Module, path: Path, t: int, alpha: int, h: int, w: int, atol: float) -> tuple[float, list[int], bool]:
    """Runs the file in ONNX Runtime against PyTorch on box and clip counts unlike the traced ones."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 4
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    worst = 0.0
    counts = []
    room = module.model.room
    for seed, (b, r) in enumerate([(1, 1), (2, 3), (1, 3), (2, 5)]):
        inputs = _example_inputs(b, r, t, alpha, h, w, seed=100 + seed, room=room)
        with torch.inference_mode():
            want, _ = module(*inputs)
        got, scores = sess.run(None, session_feeds(sess, *_with_room_names(inputs, room)))
        if got.shape != tuple(want.shape):
            raise ExportError(f"ONNX output shape {got.shape} != PyTorch {tuple(want.shape)} for B={b}, R={r}")
        diff = float(np.abs(got - want.numpy()).max())
        worst = max(worst, diff)
        if not diff <= atol:
            raise ExportError(f"ONNX logits differ from PyTorch by {diff:.2e} > {atol:g} for B={b}, R={r}")
        counts.append(r)
    empty_ok = True
    try:
        inputs = _example_inputs(1, 0, t, alpha, h, w, seed=7, room=room)
        got, _ = sess.run(None, session_feeds(sess, *_with_room_names(inputs, room)))
        empty_ok = got.shape[0] == 0
    except Exception as e:  # noqa: BLE001 - an empty input the runtime rejects is a property, not a failure
        logger.info("%s: ONNX Runtime does not run R = 0 (%s); the predictor skips clips without boxes", path,
                    str(e).splitlines()[0])
        empty_ok = False
    return worst, sorted(set(counts)), empty_ok


def _with_room_names(inputs: tuple[torch.Tensor, ...], room: RoomInputs) -> tuple[torch.Tensor | None, ...]:
    """``(slow, fast, rois, *room)`` as :func:`session_feeds`' ``(slow, fast, rois, zone_masks,
    zone_features)``, None for a room input the model does not read."""
    rest = iter(inputs[3:])
    return (*inputs[:3], next(rest) if room.zone_channels else None, next(rest) if room.zone_features else None)


def export_onnx(
    checkpoint: str | Path,
    out_path: str | Path,
    opset: int = 17,
    exporter: str = "auto",
    allow_no_memory: bool = False,
    atol: float = 1e-4,
) -> ExportReport:
    """``thermal-action export --format onnx``: writes and checks an ONNX file.

    Args:
        checkpoint: a training checkpoint (``.ckpt``).
        out_path: the ``.onnx`` file to write (parents are created).
        opset: ONNX opset of the legacy exporter (the dynamo exporter uses >= 18).
        exporter: ``"auto"`` (legacy, then dynamo), ``"legacy"`` or ``"dynamo"``.
        allow_no_memory: export an interaction model without its memory (see the
            module docstring) instead of refusing.
        atol: largest accepted |ONNX Runtime - PyTorch| logit difference.

    Returns:
        An :class:`ExportReport`.

    Raises:
        ExportError: no exporter produced a graph that matches PyTorch.
        ValueError: an interaction model without ``allow_no_memory``.
    """
    import onnx

    from thermal_action.data.dataset import build_clip_builder
    from thermal_action.models.checkpoint import load_checkpoint

    if exporter not in ("auto", "legacy", "dynamo"):
        raise ValueError(f"exporter must be 'auto', 'legacy' or 'dynamo', got {exporter!r}")
    t0 = time.perf_counter()
    checkpoint, out_path = Path(checkpoint), Path(out_path)
    loaded = load_checkpoint(checkpoint, device="cpu")
    model, cfg, class_names, info = loaded.model, loaded.config, loaded.class_names, loaded.info
    has_memory = getattr(model, "feature_bank", None) is not None
    if has_memory and not allow_no_memory:
        raise ValueError(
            f"{checkpoint}: model.interaction={cfg.model.interaction!r} reads a feature bank of neighbouring "
            "keyframes, which cannot be exported; pass --allow-no-memory to export the in-clip interaction "
            "only (its scores will differ from PyTorch with memory), or use --backend torch"
        )
    builder = build_clip_builder(cfg.data)
    module = _Exportable(model.eval(), info.score_activation).eval()
    t = builder.clip_length
    h, w = max(1, round(40 * builder.scale)), max(1, round(60 * builder.scale))
    alpha = int(model.alpha)
    inputs = _example_inputs(2, 2, t, alpha, h, w, room=model.room)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    order = {"auto": ["legacy", "dynamo"], "legacy": ["legacy"], "dynamo": ["dynamo"]}[exporter]
    attempts: dict[str, str] = {}
    for name in order:
        try:
            with Progress(2, f"export ({name} exporter)", "step", logger) as progress:
                progress.begin(f"tracing the model into {out_path}")
                with _plain_laterals(model):
                    _export(module, inputs, out_path, opset, dynamo=name == "dynamo")
                progress.update()
                progress.begin("running the file in ONNX Runtime against PyTorch")
                worst, counts, empty_ok = _check(module, out_path, t, alpha, h, w, atol)
                progress.update()
        except Exception as e:  # noqa: BLE001 - try the next exporter, report all failures
            attempts[name] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:500]
            logger.info("%s exporter failed: %s", name, attempts[name])
            continue
        meta = {
            "format_version": METADATA_VERSION,
            "class_names": list(class_names),
            "score_activation": info.score_activation,
            "alert_rule": info.alert_rule.to_dict(),
            "fall_calibration": info.fall_calibration,
            "alpha": alpha,
            "clip_builder": clip_builder_kwargs(builder),
            "input_hw": [h, w],
            "frame_size": list(info.frame_size) if info.frame_size else None,
            "valid_range": [float(v) for v in cfg.data.valid_range],
            "clip_length": t,
            "variant": cfg.model.variant,
            "interaction": cfg.model.interaction,
            "room": cfg.model.room,
            "zone_kinds": list(MODEL_ZONE_KINDS),
            "zone_features": list(ZONE_FEATURE_NAMES),
            "memory": False,
            "checkpoint": checkpoint.name,
            "exporter": name,
        }
        proto = onnx.load(str(out_path))
        entry = proto.metadata_props.add()
        entry.key, entry.value = METADATA_KEY, json.dumps(meta)
        onnx.save(proto, str(out_path))
        ts = _example_inputs(1, 1, t, alpha, h, w, room=model.room)
        report = ExportReport(
            path=out_path, exporter=name, opset=opset if name == "legacy" else max(opset, 18),
            input_shapes={n: [_DYNAMIC_AXIS[n], *x.shape[1:]] for n, x in zip(input_names(model.room), ts)},
            max_abs_diff_logits=worst, checked_box_counts=counts, empty_boxes_ok=empty_ok, attempts=attempts,
            seconds=time.perf_counter() - t0, size_bytes=out_path.stat().st_size,
        )
        logger.info(report.format_text())
        return report
    raise ExportError(f"{checkpoint}: no exporter produced a correct ONNX graph: " +
                      "; ".join(f"{k}: {v}" for k, v in attempts.items()))
