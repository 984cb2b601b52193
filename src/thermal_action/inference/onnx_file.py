"""What an exported ONNX file holds and takes, read without torch and without the ``onnx``
package: ONNX Runtime alone opens it (a gateway that serves an exported model installs
nothing else; :mod:`.export` writes the file and needs PyTorch).

- Inputs: :data:`INPUT_NAMES` ``(slow, fast, rois)``, then :data:`ROOM_INPUT_NAMES` for a
  model that reads the room; a model that reads only the fast pathway has no ``slow``.
- Outputs: :data:`OUTPUT_NAMES` ``(logits, scores)``, ``(R, K)`` each.
- Metadata: JSON under :data:`METADATA_KEY` (class names, score activation, alert rule,
  alpha, the clip preprocessing; :func:`thermal_action.inference.export.export_onnx` lists it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from thermal_action.structures import RoomInputs

METADATA_KEY = "thermal_action"
METADATA_VERSION = 1
INPUT_NAMES = ("slow", "fast", "rois")
#: The room's inputs, after :data:`INPUT_NAMES`, for a model that reads them.
ROOM_INPUT_NAMES = ("zone_masks", "zone_features")
OUTPUT_NAMES = ("logits", "scores")


def input_names(room: RoomInputs) -> tuple[str, ...]:
    """The graph inputs of a model with these room inputs, in argument order."""
    return INPUT_NAMES + tuple(name for name, used in zip(ROOM_INPUT_NAMES, (room.zone_channels, room.zone_features))
                               if used)


def session_feeds(session: Any, slow: Any, fast: Any, rois: Any, zone_masks: Any = None,
                  zone_features: Any = None) -> dict[str, np.ndarray]:
    """The inputs an ONNX Runtime session declares, as float32 arrays: a model that reads only
    the fast pathway (the crop CNN) is exported without the ``slow`` input, one without a room
    without ``zone_masks`` and ``zone_features``.

    Args:
        session: an ``onnxruntime.InferenceSession``.
        slow, fast, rois, zone_masks, zone_features: numpy arrays (or CPU tensors, as the
            export check passes them), shaped as the module docstring says.

    Raises:
        ValueError: the graph reads a room input that was not given.
    """
    given = {"slow": slow, "fast": fast, "rois": rois, "zone_masks": zone_masks, "zone_features": zone_features}
    feeds = {}
    for i in session.get_inputs():
        value = given.get(i.name)
        if value is None:
            raise ValueError(f"the ONNX graph reads '{i.name}' (a model with model.room), but none was given")
        if not isinstance(value, np.ndarray) and hasattr(value, "detach"):  # a tensor
            value = value.detach().cpu().numpy()
        feeds[i.name] = np.ascontiguousarray(value, dtype=np.float32)
    return feeds


def open_session(path: str | Path, num_threads: int = 0, optimize: bool = True) -> Any:
    """An ONNX Runtime CPU session on ``path``.

    Args:
        num_threads: intra-op threads (0 = ONNX Runtime's default).
        optimize: apply graph optimisations (False: only reading the metadata).

    Raises:
        FileNotFoundError: no such file.
        ValueError: naming the file, when ONNX Runtime cannot read it as a model.
    """
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX file not found: {path}")
    opts = ort.SessionOptions()
    if num_threads:
        opts.intra_op_num_threads = num_threads
    if not optimize:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - ONNX Runtime's own error types (InvalidProtobuf, Fail, ...)
        raise ValueError(f"{path}: ONNX Runtime cannot read it as a model: {str(e).splitlines()[0][:300]}") from e


def session_metadata(session: Any, path: str | Path) -> dict[str, Any]:
    """The ``thermal_action`` metadata of an open session on ``path`` (named in the error).

    Raises:
        ValueError: the file has none (not written by ``thermal-action export``).
    """
    props = session.get_modelmeta().custom_metadata_map
    if METADATA_KEY not in props:
        raise ValueError(f"{path}: no '{METADATA_KEY}' metadata; export it with 'thermal-action export'")
    meta = json.loads(props[METADATA_KEY])
    meta["clip_builder"]["fixed_range"] = tuple(meta["clip_builder"]["fixed_range"])
    return meta


def read_onnx_metadata(path: str | Path) -> dict[str, Any]:
    """The ``thermal_action`` metadata of an exported file (clear errors when it is missing,
    not a model, or has none)."""
    return session_metadata(open_session(path, optimize=False), path)
