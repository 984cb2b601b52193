"""Reading a checkpoint file safely (``weights_only=True`` or safetensors) into a flat tensor dict."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from thermal_action.errors import CheckpointError

#: Top-level keys that hold the weights, in the order they are tried.
WEIGHT_CONTAINERS = ("state_dict", "model_state", "model")


@dataclass
class RawCheckpoint:
    """The flat tensor dictionary of a checkpoint file and where it came from."""

    path: str
    tensors: dict[str, torch.Tensor]
    top_level_key: str | None  # None: the file itself was the tensor dict
    extra_keys: list[str]  # other top-level keys (optimizer state, config, ...), never used


def _is_tensor_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(isinstance(v, torch.Tensor) for v in obj.values())


def read_checkpoint(path: str | Path) -> RawCheckpoint:
    """Reads a checkpoint safely and returns its weights as a flat ``name -> tensor`` dict.

    ``.safetensors`` files are read with ``safetensors.torch.load_file``; everything else
    with ``torch.load(path, map_location="cpu", weights_only=True)``, which refuses
    pickled Python objects.

    Raises:
        FileNotFoundError: the file does not exist.
        CheckpointError: the file is not a tensor checkpoint, holds objects that
            ``weights_only`` refuses, or has no recognisable weight dictionary.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            tensors = load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(path, f"not a readable safetensors file: {e}") from e
        if not tensors:
            raise CheckpointError(path, "the safetensors file holds no tensors")
        return RawCheckpoint(str(path), dict(tensors), None, [])

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises UnpicklingError, RuntimeError or others depending on the damage
        raise CheckpointError(path, explain_load_failure(path, e)) from e

    if _is_tensor_dict(obj):
        return RawCheckpoint(str(path), dict(obj), None, [])
    if not isinstance(obj, Mapping):
        raise CheckpointError(path, f"expected a dict of tensors or of sections, got {type(obj).__name__}")
    for key in WEIGHT_CONTAINERS:
        value = obj.get(key)
        if isinstance(value, Mapping) and value:
            tensors = {k: v for k, v in value.items() if isinstance(v, torch.Tensor)}
            if len(tensors) != len(value):
                bad = [k for k, v in value.items() if not isinstance(v, torch.Tensor)][:3]
                raise CheckpointError(path, f"'{key}' holds non-tensor entries, e.g. {bad}")
            return RawCheckpoint(str(path), tensors, key, sorted(k for k in obj if k != key))
    raise CheckpointError(
        path,
        f"no weights found: expected a top-level {' / '.join(repr(k) for k in WEIGHT_CONTAINERS)} "
        f"dict of tensors, found keys {sorted(map(str, obj))[:10]}",
    )


def explain_load_failure(path: Path, error: Exception) -> str:
    """The one-line message for a file ``torch.load(weights_only=True)`` refused (also used for
    training checkpoints: never torch's own text, which suggests the unsafe ``weights_only=False``)."""
    text = str(error)
    if "Unsupported global" in text or "GLOBAL" in text:
        try:
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        except Exception:  # the helper itself may fail on damaged files; the original message is enough
            unsafe = []
        what = f" ({', '.join(unsafe[:5])})" if unsafe else ""
        return (
            f"refused: the file holds pickled Python objects{what} that torch.load(weights_only=True) "
            "does not execute. If you trust the file, extract its weights once in a separate "
            "environment, e.g. torch.save(torch.load(IN, weights_only=False)['state_dict'], OUT), "
            "or save them with safetensors, and load that file instead."
        )
    hint = ""
    if path.suffix == ".pkl":
        hint = " Caffe2 .pkl files must first be converted to PyTorch with PySlowFast."
    detail = re.search(r"WeightsUnpickler error:\s*(.+)", text)
    first_line = detail[1] if detail else (text.strip().splitlines()[0] if text.strip() else "")
    return f"not a readable PyTorch checkpoint ({type(error).__name__}: {first_line.strip()}).{hint}"
