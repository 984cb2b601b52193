"""The two ways to run a model: PyTorch (:class:`TorchBackend`) and ONNX Runtime
(:class:`OnnxBackend`). Both take ``(slow, fast, rois)`` (and the room's ``zone_masks``
``(B, Z, H, W)`` and ``zone_features`` ``(R, F)``, used by a model that reads them) and
return ``(R, K)`` logits."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from thermal_action.models.room import RoomInputs

BACKENDS = ("torch", "onnx")


class TorchBackend:
    """Runs an :class:`~thermal_action.models.ActionDetector` in PyTorch.

    Args:
        model: the detector (put in eval mode here).
        device: where inputs go.
        use_memory: pass clip keys so an interaction model reads and writes its
            feature bank; ignored for models without one.
    """

    name = "torch"

    def __init__(self, model: torch.nn.Module, device: str | torch.device = "cpu", use_memory: bool = True):
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

    def __call__(self, slow: torch.Tensor, fast: torch.Tensor, rois: torch.Tensor,
                 clip_keys: Sequence[tuple[str, int]] | None = None, zone_masks: torch.Tensor | None = None,
                 zone_features: torch.Tensor | None = None) -> torch.Tensor:
        with torch.inference_mode():
            logits = self.model(
                slow.to(self.device), fast.to(self.device), rois.to(self.device),
                clip_keys=list(clip_keys) if (self.use_memory and clip_keys is not None) else None,
                zone_masks=None if zone_masks is None else zone_masks.to(self.device),
                zone_features=None if zone_features is None else zone_features.to(self.device),
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
        import onnxruntime as ort

        from thermal_action.inference.export import read_onnx_metadata

        self.path = Path(path)
        self.metadata = read_onnx_metadata(self.path)
        opts = ort.SessionOptions()
        if num_threads:
            opts.intra_op_num_threads = num_threads
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])

    @property
    def alpha(self) -> int:
        return int(self.metadata["alpha"])

    @property
    def room(self) -> RoomInputs:
        """What the exported model reads of the room (files from before the room: nothing)."""
        return RoomInputs.from_setting(self.metadata.get("room", "none"))

    def __call__(self, slow: torch.Tensor, fast: torch.Tensor, rois: torch.Tensor,
                 clip_keys: Sequence[tuple[str, int]] | None = None, zone_masks: torch.Tensor | None = None,
                 zone_features: torch.Tensor | None = None) -> torch.Tensor:
        from thermal_action.inference.export import session_feeds

        feeds = session_feeds(self.session, slow, fast, rois, zone_masks, zone_features)
        (logits,) = self.session.run(["logits"], feeds)
        return torch.from_numpy(logits)

