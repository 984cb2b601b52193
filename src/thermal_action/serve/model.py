"""The service's model, read once: the main process reads the checkpoint file, learns what it
needs of the model from it (:class:`ModelInfo`) and hands the same bytes to every worker
(:class:`ModelFile`, through the workers' spawn arguments), so a worker never opens the file and
every worker, a restarted one included, runs the model the service described, even if the file
changed or went away since.

An ``.onnx`` model (``backend="onnx"``) is ONNX Runtime's to open: each worker opens the file
and refuses to start when its SHA-256 is not the one the main process read.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from thermal_action.alert_rule import AlertRule, resolve_alert_rule
from thermal_action.serve.config import ServeConfig, alert_overrides

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelFile:
    """A model file as the service read it.

    Attributes:
        path: where it was read (names it in messages).
        sha256: hex digest of its bytes.
        data: its bytes (a ``.ckpt``); None for an ``.onnx`` file, which each worker opens itself.
    """

    path: str
    sha256: str
    data: bytes | None = None

    @classmethod
    def read(cls, path: str | Path, keep_bytes: bool = True) -> "ModelFile":
        """Reads ``path`` once (its bytes kept unless ``keep_bytes`` is False)."""
        data = Path(path).read_bytes()
        return cls(str(path), hashlib.sha256(data).hexdigest(), data if keep_bytes else None)

    def check_unchanged(self) -> None:
        """For a file a worker opens itself: raises ValueError if it is not the one read."""
        now = hashlib.sha256(Path(self.path).read_bytes()).hexdigest()
        if now != self.sha256:
            raise ValueError(f"{self.path} changed since the service read it (SHA-256 {now[:12]}, "
                             f"was {self.sha256[:12]}); restart the service to use the new model")


@dataclass
class ModelInfo:
    """What the service needs to know of the model (read once, in the main process), and the
    alert rule in force (the checkpoint's with the config's overrides)."""

    class_names: tuple[str, ...]
    frame_size: tuple[int, int]
    fall_index: int | None  # of the rule's fall class; None: the model lacks it (no alerts)
    alert_rule: AlertRule
    lag_frames: int
    window_length: int


def load_model(checkpoint: str | Path, cfg: ServeConfig, onnx_path: str | None) -> tuple[ModelFile, ModelInfo]:
    """Reads the model once in the service's own process: the file (what the workers get) and
    what the service needs to know of it (classes, frame size, lag), with the alert rule decided:
    the checkpoint's, with the config's ``fall_*`` keys applied.

    Args:
        checkpoint: a ``.ckpt`` from ``train`` or an ``.onnx`` from ``export``.
        cfg: the service config (backend, causal, ``fall_*``).
        onnx_path: with ``backend="onnx"`` and a ``.ckpt``: where it is exported to (then the model).
    """
    from thermal_action.inference.predictor import Predictor
    from thermal_action.structures import FRAME_HEIGHT, FRAME_WIDTH

    onnx = cfg.backend == "onnx" or Path(checkpoint).suffix == ".onnx"
    if onnx:
        p = Predictor.from_checkpoint(checkpoint, backend="onnx", onnx_path=onnx_path)
        model = ModelFile.read(onnx_path if onnx_path is not None else checkpoint, keep_bytes=False)
    else:
        model = ModelFile.read(checkpoint)
        p = Predictor.from_checkpoint(checkpoint, backend="torch", data=model.data)
    rule = resolve_alert_rule(p.alert_rule, alert_overrides(cfg))
    fall_index = p.fall_index(rule.fall_class) if rule.fall_class in p.class_names else None
    if fall_index is None:
        logger.warning("class %r is not one of the model's classes: no fall alerts", rule.fall_class)
    lag = 0 if cfg.causal else p.frames_after
    info = ModelInfo(p.class_names, tuple(p.frame_size or (FRAME_HEIGHT, FRAME_WIDTH)), fall_index, rule, lag,
                     p.window_length)
    return model, info
