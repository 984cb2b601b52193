"""Long-term feature bank for the memory (M) blocks of the interaction structure.

The bank maps ``(sensor_id, frame_idx)`` of a keyframe to the detached pooled person
features of that keyframe, ``(N, D)``. It is plain Python state, not a parameter or
buffer: it is not saved in checkpoints and costs ``4 * D`` bytes per stored person
(9.2 kB at D = 2304, 2.6 kB for ``slowfast_tiny``'s 640).

Neighbours are counted in *keyframes known to the bank*: for a keyframe ``f`` of
sensor ``s`` the memory holds the ``window`` stored keyframes of ``s`` before ``f``
and the ``window`` after it (``f`` itself excluded), each tagged with its relative
offset (-window..-1, 1..window). Keyframes are 1-13 frames apart in the real data, so
ranks, not frame distances, give a stable temporal position. In the first epoch the
bank only knows the keyframes already seen, so the memory is partial or empty, which
the M blocks handle (an empty memory leaves the person feature unchanged).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

import torch

ClipKey = tuple[str, int]


@dataclass
class MemoryBatch:
    """Memory features read for a batch of clips, flattened over clips.

    Attributes:
        features: ``(S, D)`` person features of neighbouring keyframes.
        clip_index: ``(S,)`` int64 clip (batch index) each entry belongs to.
        offsets: ``(S,)`` int64 relative keyframe offset of each entry (never 0).
    """

    features: torch.Tensor
    clip_index: torch.Tensor
    offsets: torch.Tensor

    @property
    def num_entries(self) -> int:
        return int(self.features.shape[0])


class FeatureBank:
    """Detached person features per keyframe, keyed by ``(sensor_id, frame_idx)``.

    Args:
        window: keyframes read on each side of the query keyframe.
    """

    def __init__(self, window: int) -> None:
        if window < 0:
            raise ValueError(f"memory window must be >= 0, got {window}")
        self.window = window
        self._features: dict[ClipKey, torch.Tensor] = {}
        self._frames: dict[str, list[int]] = {}
        self._dim: int | None = None

    def __len__(self) -> int:
        return len(self._features)

    def __contains__(self, key: ClipKey) -> bool:
        return (str(key[0]), int(key[1])) in self._features

    def clear(self) -> None:
        """Forgets every stored keyframe (e.g. between independent evaluations)."""
        self._features.clear()
        self._frames.clear()
        self._dim = None

    def get(self, key: ClipKey) -> torch.Tensor | None:
        """The stored ``(N, D)`` features of one keyframe, or None."""
        return self._features.get((str(key[0]), int(key[1])))

    def write(self, clip_keys: Sequence[ClipKey], features: torch.Tensor, batch_index: torch.Tensor) -> None:
        """Stores (replaces) the person features of each clip's keyframe.

        Args:
            clip_keys: ``B`` keys ``(sensor_id, frame_idx)``.
            features: ``(R, D)`` pooled person features (detached here).
            batch_index: ``(R,)`` clip of each person.
        """
        if features.dim() != 2:
            raise ValueError(f"bank features must be (R, D), got {tuple(features.shape)}")
        if self._dim is not None and features.shape[1] != self._dim:
            raise ValueError(f"bank holds {self._dim}-d features, got {features.shape[1]}-d (model changed?)")
        self._dim = int(features.shape[1])
        feats = features.detach()
        for b, (sensor, frame) in enumerate(clip_keys):
            key = (str(sensor), int(frame))
            # clone: do not keep the whole batch tensor alive through a view.
            self._features[key] = feats[batch_index == b].clone()
            frames = self._frames.setdefault(key[0], [])
            pos = bisect.bisect_left(frames, key[1])
            if pos == len(frames) or frames[pos] != key[1]:
                frames.insert(pos, key[1])

    def entries(self) -> list[tuple[str, int, torch.Tensor]]:
        """Every stored keyframe as ``(sensor_id, frame_idx, (N, D) features)``."""
        return [(k[0], k[1], v) for k, v in self._features.items()]

    def put(self, key: ClipKey, features: torch.Tensor) -> None:
        """Stores (replaces) one keyframe's ``(N, D)`` person features (e.g. from another rank)."""
        self.write([key], features, torch.zeros(features.shape[0], dtype=torch.long, device=features.device))

    def neighbours(self, key: ClipKey) -> list[tuple[int, int]]:
        """``(frame_idx, offset)`` of the stored neighbours of ``key`` (``key`` excluded)."""
        sensor, frame = str(key[0]), int(key[1])
        frames = self._frames.get(sensor, [])
        pos = bisect.bisect_left(frames, frame)
        before = frames[max(0, pos - self.window) : pos]
        start = pos + 1 if pos < len(frames) and frames[pos] == frame else pos
        after = frames[start : start + self.window]
        return [(f, i - len(before)) for i, f in enumerate(before)] + [(f, i + 1) for i, f in enumerate(after)]

    def read(
        self, clip_keys: Sequence[ClipKey], dim: int, device: torch.device, dtype: torch.dtype
    ) -> MemoryBatch:
        """Gathers the neighbouring keyframes' person features of every clip.

        Args:
            clip_keys: ``B`` keys ``(sensor_id, frame_idx)``.
            dim: feature width ``D`` (used for the empty result).
            device, dtype: of the returned tensors.

        Returns:
            A :class:`MemoryBatch`; ``S = 0`` when nothing is stored nearby.
        """
        if self._dim is not None and self._dim != dim:
            raise ValueError(f"bank holds {self._dim}-d features, the model asks for {dim}-d")
        feats, clip_index, offsets = [], [], []
        for b, key in enumerate(clip_keys):
            for frame, offset in self.neighbours(key):
                f = self._features[(str(key[0]), frame)]
                feats.append(f)
                clip_index.extend([b] * f.shape[0])
                offsets.extend([offset] * f.shape[0])
        if feats:
            features = torch.cat([f.to(device=device, dtype=dtype) for f in feats], dim=0)
        else:
            features = torch.zeros(0, dim, device=device, dtype=dtype)
        return MemoryBatch(
            features=features,
            clip_index=torch.tensor(clip_index, dtype=torch.long, device=device),
            offsets=torch.tensor(offsets, dtype=torch.long, device=device),
        )
