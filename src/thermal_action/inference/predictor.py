"""A trained detector plus the exact preprocessing it was trained with (:class:`Predictor`).

The rest of ``predict`` lives beside it: backends in :mod:`.backends`, person boxes in
:mod:`.boxes`, the result record and its files in :mod:`.outputs`, the run over
recordings in :mod:`.recordings`, and detections files in
:mod:`thermal_action.evaluation.detections` (``evaluate`` reads them too).

The preprocessing and the batching are numpy; this module imports no torch, so a
predictor on an exported ``.onnx`` runs where only ONNX Runtime is installed. A
checkpoint (``.ckpt``) brings PyTorch in through its backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from thermal_action.alert_rule import AlertRule
from thermal_action.data.clips import BuiltClip, ClipBuilder, clip_offsets
from thermal_action.data.rooms import NO_LAYOUT, RoomLayout
from thermal_action.inference.backends import BACKENDS, OnnxBackend, TorchBackend
from thermal_action.structures import DEFAULT_VALID_RANGE, pack_pathways

if TYPE_CHECKING:
    import torch


@dataclass
class ClipRequest:
    """One keyframe to classify.

    Attributes:
        frames: ``(L, H, W)`` °C, repaired; the whole recording or a window of it.
        frame_idx: the keyframe's index into ``frames``.
        boxes_xyxy: ``(N, 4)`` person boxes in native pixels of the keyframe.
        clip_key: ``(sensor_id, frame_idx)`` in the recording, for memory models.
        layout: the room at the keyframe (:data:`~thermal_action.data.rooms.NO_LAYOUT`: none
            known; the model then sees empty zone masks and ``has_layout = 0``).
    """

    frames: np.ndarray
    frame_idx: int
    boxes_xyxy: np.ndarray
    clip_key: tuple[str, int] | None = None
    layout: RoomLayout = NO_LAYOUT


class Predictor:
    """A trained detector plus the exact preprocessing it was trained with.

    Args:
        backend: :class:`TorchBackend` or :class:`OnnxBackend`.
        clip_builder: the training preprocessing (``build_clip_builder(cfg.data)``).
        class_names: the K class names.
        score_activation: ``"softmax"`` (one class per person) or ``"sigmoid"``.
        max_clips_per_batch: clips per forward pass; more clips are split. 4 suits
            CPUs (a larger batch is no faster per clip there); raise it on a GPU.
        alert_rule: the fall alert rule that came with the model (its threshold the one
            ``train`` calibrated on validation data); fall alerts use it unless the caller
            overrides it (:func:`~thermal_action.alert_rule.resolve_alert_rule`).
        frame_size: ``(H, W)`` of the frames the model was trained on (None: unknown);
            :func:`predict_recordings` refuses recordings of another size unless asked.

    Example::

        predictor = Predictor.from_checkpoint("runs/x/best.ckpt")
        scores = predictor.predict_clip(frames_window, boxes_xyxy)   # (N, K)
    """

    def __init__(
        self,
        backend: TorchBackend | OnnxBackend,
        clip_builder: ClipBuilder,
        class_names: Sequence[str],
        score_activation: str = "softmax",
        max_clips_per_batch: int = 4,
        alert_rule: AlertRule = AlertRule(),
        frame_size: tuple[int, int] | None = None,
        valid_range: tuple[float, float] = DEFAULT_VALID_RANGE,
    ):
        if score_activation not in ("softmax", "sigmoid"):
            raise ValueError(f"score_activation must be 'softmax' or 'sigmoid', got {score_activation!r}")
        if max_clips_per_batch < 1:
            raise ValueError("max_clips_per_batch must be >= 1")
        self.backend = backend
        self.clip_builder = clip_builder
        self.class_names = tuple(str(n) for n in class_names)
        self.score_activation = score_activation
        self.max_clips_per_batch = max_clips_per_batch
        self.alert_rule = alert_rule
        self.frame_size = tuple(int(v) for v in frame_size) if frame_size else None
        #: °C range the model's training data was repaired to (``data.valid_range``): new
        #: recordings and streams are repaired the same way.
        self.valid_range = (float(valid_range[0]), float(valid_range[1]))
        offsets = clip_offsets(clip_builder.num_frames, clip_builder.frame_stride)
        #: Raw frames the window reaches before / after its keyframe.
        self.frames_before = int(-offsets.min())
        self.frames_after = int(offsets.max())
        self.forward_passes = 0  # for tests and benchmarks

    # -- construction

    @classmethod
    def from_checkpoint(
        cls,
        checkpoint: str | Path,
        device: str | torch.device = "cpu",
        backend: str = "torch",
        onnx_path: str | Path | None = None,
        max_clips_per_batch: int = 4,
        num_threads: int = 0,
        data: bytes | None = None,
    ) -> "Predictor":
        """Loads a training checkpoint (``.ckpt``) or an exported ``.onnx`` file.

        Args:
            checkpoint: a ``.ckpt`` from ``thermal-action train`` or an ``.onnx`` from
                ``thermal-action export`` (which carries the preprocessing with it).
            device: PyTorch device (torch backend).
            backend: ``"torch"`` or ``"onnx"``; an ``.onnx`` checkpoint implies onnx.
            onnx_path: with ``backend="onnx"`` and a ``.ckpt``: where to export it
                (default: next to the checkpoint, ``<name>.onnx``).
            max_clips_per_batch: clips per forward pass.
            num_threads: ONNX Runtime threads (0 = default).
            data: a ``.ckpt``'s bytes, already read (``checkpoint`` then only names it;
                the torch backend).
        """
        checkpoint = Path(checkpoint)
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if checkpoint.suffix == ".onnx" or backend == "onnx":
            if checkpoint.suffix != ".onnx":
                from thermal_action.inference.export import export_onnx

                target = Path(onnx_path) if onnx_path else checkpoint.with_suffix(".onnx")
                export_onnx(checkpoint, target)
                checkpoint = target
            onnx_backend = OnnxBackend(checkpoint, num_threads=num_threads)
            meta = onnx_backend.metadata
            # numpy's resize: the whole ONNX path runs without torch (equal to float32 rounding)
            builder = ClipBuilder(**meta["clip_builder"], resize_engine="numpy")
            return cls(onnx_backend, builder, meta["class_names"], meta["score_activation"], max_clips_per_batch,
                       alert_rule=_onnx_alert_rule(meta),
                       frame_size=meta.get("frame_size"),
                       valid_range=tuple(meta.get("valid_range") or DEFAULT_VALID_RANGE))

        from thermal_action.data.dataset import build_clip_builder
        from thermal_action.models.checkpoint import load_checkpoint

        loaded = load_checkpoint(checkpoint, device=device, data=data)
        info = loaded.info
        return cls(TorchBackend(loaded.model, device), build_clip_builder(info.config.data), info.class_names,
                   info.score_activation,
                   max_clips_per_batch, alert_rule=info.alert_rule, frame_size=info.frame_size,
                   valid_range=tuple(info.config.data.valid_range))

    # -- properties

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def alpha(self) -> int:
        return self.backend.alpha

    @property
    def reads_room(self) -> bool:
        """Whether the model reads the room (``model.room`` other than "none"); a model that
        does not predicts the same whatever the layout, and its predictions say "none"."""
        room = getattr(self.backend, "room", None)
        return room is not None and room.setting != "none"

    def room_source(self, layout: RoomLayout) -> str:
        """What a prediction with ``layout`` records as its room: the layout's source, or
        "none" when the model reads no room."""
        return layout.source if self.reads_room else NO_LAYOUT.source

    @property
    def window_length(self) -> int:
        """Raw frames a window spans, keyframe included."""
        return self.frames_before + self.frames_after + 1

    def fall_index(self, fall_class: str | None = None) -> int:
        """Index of ``fall_class`` (default: the alert rule's) in the scores."""
        from thermal_action.inference.alerts import fall_class_index

        return fall_class_index(self.class_names, fall_class or self.alert_rule.fall_class)

    # -- prediction

    def build_clip(self, frames: np.ndarray, frame_idx: int, boxes_xyxy: np.ndarray,
                   layout: RoomLayout = NO_LAYOUT) -> BuiltClip:
        """The training preprocessing without augmentation (edge frames repeat at the ends),
        with the room's zone masks and person-to-zone features."""
        return self.clip_builder.build(frames, frame_idx, boxes_xyxy, layout=layout)

    def _scores(self, logits: torch.Tensor | np.ndarray) -> np.ndarray:
        """``(R, K)`` logits -> probabilities: PyTorch's activation for a tensor (the torch
        backend's), numpy's for an array (ONNX Runtime's)."""
        if isinstance(logits, np.ndarray):
            if self.score_activation == "softmax":
                e = np.exp(logits - logits.max(axis=-1, keepdims=True, initial=-np.inf))
                return e / e.sum(axis=-1, keepdims=True)
            return np.exp(-np.logaddexp(np.float32(0.0), -logits))  # the sigmoid, without overflow
        import torch

        if self.score_activation == "softmax":
            return torch.softmax(logits, dim=-1).numpy()
        return torch.sigmoid(logits).numpy()

    def predict_clips(self, requests: Sequence[ClipRequest]) -> list[np.ndarray]:
        """Scores of every box of every request, batched over clips and boxes.

        Clips without boxes cost nothing. Requests go through the model
        ``max_clips_per_batch`` clips at a time, each with its own room (``layout``).

        Returns:
            One ``(N_i, K)`` float array per request.
        """
        out: list[np.ndarray] = [np.zeros((0, self.num_classes), np.float32) for _ in requests]
        todo = [i for i, r in enumerate(requests) if len(np.asarray(r.boxes_xyxy).reshape(-1, 4))]
        for start in range(0, len(todo), self.max_clips_per_batch):
            chunk = todo[start: start + self.max_clips_per_batch]
            clips, rois, counts, keys, masks, features = [], [], [], [], [], []
            for b, i in enumerate(chunk):
                req = requests[i]
                built = self.build_clip(req.frames, req.frame_idx,
                                        np.asarray(req.boxes_xyxy, np.float32).reshape(-1, 4), req.layout)
                clips.append(built.clip)  # (1, T, H', W')
                n = built.boxes_xyxy.shape[0]
                rois.append(np.concatenate([np.full((n, 1), b, np.float32), built.boxes_xyxy], axis=1))  # (n, 5)
                counts.append(n)
                keys.append(req.clip_key)
                masks.append(built.zone_masks)  # (Z, H', W')
                features.append(built.zone_features)  # (n, F)
            batch = np.stack(clips)  # (B, 1, T, H', W')
            slow, fast = pack_pathways(batch, self.alpha)
            use_keys = self.backend.use_memory and all(k is not None for k in keys)
            logits = self.backend(slow, fast, np.concatenate(rois), clip_keys=keys if use_keys else None,
                                  zone_masks=np.stack(masks), zone_features=np.concatenate(features))
            self.forward_passes += 1
            scores = self._scores(logits)  # (R, K)
            for i, part in zip(chunk, np.split(scores, np.cumsum(counts)[:-1])):
                out[i] = part
        return out

    def predict_clip(self, frames_window: np.ndarray, boxes_xyxy: np.ndarray, keyframe: int | None = None,
                     layout: RoomLayout = NO_LAYOUT) -> np.ndarray:
        """Scores of the boxes of one keyframe.

        Args:
            frames_window: ``(L, H, W)`` °C (repaired) around the keyframe; missing
                context at either end is padded with the edge frame.
            boxes_xyxy: ``(N, 4)`` person boxes in native pixels.
            keyframe: index of the keyframe in ``frames_window``; default
                ``min(frames_before, L - 1)`` (a full window has its keyframe there).
            layout: the room (default: none known).

        Returns:
            ``(N, K)`` class probabilities.
        """
        frames_window = np.asarray(frames_window, dtype=np.float32)
        if frames_window.ndim != 3:
            raise ValueError(f"frames_window must be (L, H, W), got shape {frames_window.shape}")
        k = min(self.frames_before, len(frames_window) - 1) if keyframe is None else int(keyframe)
        return self.predict_clips([ClipRequest(frames_window, k, boxes_xyxy, layout=layout)])[0]


def _onnx_alert_rule(meta: dict[str, Any]) -> AlertRule:
    """The rule an exported model carries (files from before rules: their threshold)."""
    if meta.get("alert_rule") is not None:
        return AlertRule.from_dict(meta["alert_rule"])
    if meta.get("fall_threshold") is not None:
        return AlertRule(threshold=float(meta["fall_threshold"]))
    return AlertRule()
