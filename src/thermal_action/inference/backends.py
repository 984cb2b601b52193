"""The two ways to run a model: PyTorch (:class:`TorchBackend`) and ONNX Runtime
(:class:`OnnxBackend`). Both take ``(slow, fast, rois)`` (and the room's ``zone_masks``
``(B, Z, H, W)`` and ``zone_features`` ``(R, F)``, used by a model that reads them) as numpy
arrays (the torch backend takes tensors too) and return ``(R, K)`` logits: a tensor from
PyTorch, an array from ONNX Runtime.

This module imports no torch: the ONNX backend runs in an install without it
(:mod:`.onnx_file`), and the torch backend imports it when made.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from thermal_action.inference.onnx_file import open_session, session_feeds, session_metadata
from thermal_action.structures import RoomInputs

if TYPE_CHECKING:
    import torch

BACKENDS = ("torch", "onnx")


class TorchBackend:
    """Runs an :class:`~thermal_action.models.detector.ActionDetector` in PyTorch.

    Args:
        model: the detector (put in eval mode here).
        device: where inputs go.
        use_memory: pass clip keys so an interaction model reads and writes its
            feature bank; ignored for models without one.
    """

    name = "torch"

    def __init__(self, model: torch.nn.Module, device: str | torch.device = "cpu", use_memory: bool = True):
        import torch

        self.model = model.eval()
        self.device = torch.device(device)
        self.use_memory = use_memory and getattr(model, "feature_bank", None) is not None

    @property
    def alpha(self) -> int:
        return int(self.model.alpha)

    @property
    def room(self) -> RoomInputs:
        """What the model reads of the room (``model.room``)."""
        return self.model.room

    def __call__(self, slow: Any, fast: Any, rois: Any, clip_keys: Sequence[tuple[str, int]] | None = None,
                 zone_masks: Any = None, zone_features: Any = None) -> torch.Tensor:
        import torch

        def to_device(x: Any) -> torch.Tensor | None:  # an array is wrapped, not copied, before the move
            return None if x is None else torch.as_tensor(x).to(self.device)

        with torch.inference_mode():
            logits = self.model(
                to_device(slow), to_device(fast), to_device(rois),
                clip_keys=list(clip_keys) if (self.use_memory and clip_keys is not None) else None,
                zone_masks=to_device(zone_masks), zone_features=to_device(zone_features),
            )
        return logits.float().cpu()


class OnnxBackend:
    """Runs an ONNX file written by :func:`thermal_action.inference.export.export_onnx`.

    Args:
        path: the ``.onnx`` file.
        num_threads: ONNX Runtime intra-op threads (0 = its default).
    """

    name = "onnx"
    use_memory = False

    def __init__(self, path: str | Path, num_threads: int = 0):
        self.path = Path(path)
        self.session = open_session(self.path, num_threads=num_threads)
        self.metadata = session_metadata(self.session, self.path)

    @property
    def alpha(self) -> int:
        return int(self.metadata["alpha"])

    @property
    def room(self) -> RoomInputs:
        """What the exported model reads of the room (files from before the room: nothing)."""
        return RoomInputs.from_setting(self.metadata.get("room", "none"))

    def __call__(self, slow: Any, fast: Any, rois: Any, clip_keys: Sequence[tuple[str, int]] | None = None,
                 zone_masks: Any = None, zone_features: Any = None) -> np.ndarray:
        feeds = session_feeds(self.session, slow, fast, rois, zone_masks, zone_features)
        (logits,) = self.session.run(["logits"], feeds)
        return logits
