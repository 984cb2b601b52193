"""The keyframe clip dataset, batch collation, and the config -> arguments builders.

::

    annotations/<split>.json --load_annotations--> keyframes (boxes in pixels)
    frames/<sensor>.h5 --read_recording (cached per process)--> frames (N, 40, 60) °C
    keyframe + frames + its room --ClipBuilder (+ random AugmentParams)--> arrays --as tensors--> ClipSample
    [ClipSample] --collate_clips / ClipCollator--> Batch (slow, fast, rois, labels, zone masks...)

A keyframe's room is its own furniture (the annotation file's ``context_objects``), else
the layout file's (``data.rooms``, a ``rooms.json``), else none
(:func:`~thermal_action.data.rooms.resolve_layout`): clips without a room still train and
predict, with empty zone masks and ``has_layout = 0``.

Loading: a recording is read whole and cached in the process that needs it (no HDF5
handle is ever kept open, so forking DataLoader workers is safe). Measured in
``benchmarks/bench_data.py`` (one process, one thread): ~34 ms to decode and repair a
500-frame file, ~0.2 ms to cut an augmented 64-frame clip from memory (~4,800 clips/s
warm vs ~30 clips/s re-reading the file per clip), so caching is the default; a
500-frame recording costs ~5 MB of memory per process.

Determinism: the augmentation of item ``i`` in epoch ``e`` draws from a generator seeded
with ``(seed, e, i)``; the epoch lives in shared memory (:meth:`ThermalClipDataset.set_epoch`)
so persistent DataLoader workers see it too. Results do not depend on the number of
workers or on which worker loads an item.
"""

from __future__ import annotations

import copy
import logging
import zlib
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from thermal_action.data.annotations import Keyframe, load_annotations
from thermal_action.data.clips import ClipBuilder, ClipWindow
from thermal_action.errors import DatasetError
from thermal_action.data.hdf5 import DEFAULT_VALID_RANGE, Recording, RecordingCache, read_timestamps
from thermal_action.data.rooms import NO_LAYOUT, RoomLayout, RoomMap, read_rooms, resolve_layout
from thermal_action.data.transforms import Augmenter, rot90_boxes
from thermal_action.structures import (
    Batch,
    ClipSample,
    ImageBoxes,
    boxes_cxcywh_norm_to_xyxy,
    check_boxes_cxcywh_norm,
    pack_pathways,
)

logger = logging.getLogger(__name__)


def _parse_override(image_id: str, value: Any, source: str, width: int, height: int) -> ImageBoxes:
    """Accepts ``(N, 4)`` boxes, ``(N, 5)`` boxes + score, ``(boxes, scores)`` or an object
    with ``boxes_cxcywh_norm`` / ``scores`` attributes (:class:`~thermal_action.structures.ImageBoxes`, what a detections file gives).
    Boxes may poke out of the ``width x height`` frame (the item clips them)."""
    scores = None
    if hasattr(value, "boxes_cxcywh_norm"):
        boxes, scores = value.boxes_cxcywh_norm, getattr(value, "scores", None)
    elif isinstance(value, tuple) and len(value) == 2:
        boxes, scores = value
    else:
        boxes = value
    try:
        b = np.asarray(boxes, dtype=np.float64)
        if b.size == 0:
            b = b.reshape(0, 4)
        if b.ndim != 2 or b.shape[1] not in (4, 5):
            raise ValueError(f"shape {b.shape}")
    except (TypeError, ValueError) as e:
        raise DatasetError(source, f"boxes must be (N, 4) normalized cx, cy, w, h ({e})", record=image_id) from e
    if b.shape[1] == 5:
        b, scores = b[:, :4], b[:, 4]
    s = np.ones(len(b)) if scores is None else np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(s) != len(b):
        raise DatasetError(source, f"{len(s)} scores for {len(b)} boxes", record=image_id)
    b = check_boxes_cxcywh_norm(b, width=width, height=height, source=source, record=image_id, max_overhang_px=None)
    if not np.isfinite(s).all():
        raise DatasetError(source, "scores are not finite", record=image_id)
    return ImageBoxes(b.astype(np.float32), s.astype(np.float32))


class ThermalClipDataset(Dataset):
    """One item per keyframe: its clip and person boxes as a :class:`ClipSample`.

    Args:
        keyframes: from :func:`thermal_action.data.annotations.load_annotations`.
        frames_dir: directory of ``<sensor_id>.h5`` files.
        builder: the preprocessing (window, normalisation, resize).
        augmenter: random augmentation, or None (evaluation).
        class_names: index = label.
        seed: base seed of the per-item augmentation generators.
        cache: keep decoded recordings in memory (per process).
        valid_range: °C; temperatures outside are repaired (see ``hdf5.py``).
        boxes_override: ``{image_id: boxes}`` used instead of the annotated boxes (e.g.
            a person detector's): ``(N, 4)`` normalized cxcywh, ``(N, 5)`` with a score
            column, ``(boxes, scores)``, or an object with ``boxes_cxcywh_norm`` and
            ``scores``. Keyframes absent from it get no boxes; labels are -1; box order
            is kept. Boxes are clipped to the frame.
        override_source: names the origin of ``boxes_override`` in errors (a file path).
        rooms: a layout file's rooms, for keyframes without furniture of their own
            (:func:`~thermal_action.data.rooms.resolve_layout`); None: only their own.
    """

    def __init__(
        self,
        keyframes: Sequence[Keyframe],
        frames_dir: str | Path,
        builder: ClipBuilder,
        augmenter: Augmenter | None = None,
        class_names: Sequence[str] | None = None,
        seed: int = 0,
        cache: bool = True,
        valid_range: tuple[float, float] = DEFAULT_VALID_RANGE,
        boxes_override: Mapping[str, Any] | None = None,
        override_source: str = "boxes_override",
        rooms: RoomMap | None = None,
    ):
        self.keyframes = list(keyframes)
        self.rooms = rooms
        #: The room of each keyframe, decided once (annotations > rooms file > none).
        self.layouts: list[RoomLayout] = [self._layout(kf) for kf in self.keyframes]
        self.frames_dir = Path(frames_dir)
        self.builder = builder
        self.augmenter = augmenter
        self.class_names = list(class_names) if class_names is not None else None
        self.seed = int(seed)
        self.cache = RecordingCache(enabled=cache, valid_range=valid_range)
        # Shared memory: set_epoch in the main process reaches forked/spawned workers.
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()
        self._override: dict[str, ImageBoxes] | None = None
        if boxes_override is not None:
            known = {k.image_id for k in self.keyframes}
            unknown = [str(k) for k in boxes_override if str(k) not in known]
            if unknown:
                raise DatasetError(override_source, f"{len(unknown)} image ids are not keyframes of this dataset, "
                                                    f"e.g. {unknown[:3]}", record=unknown[0])
            size = {k.image_id: (k.width, k.height) for k in self.keyframes}
            self._override = {str(k): _parse_override(str(k), v, override_source, *size[str(k)])
                              for k, v in boxes_override.items()}

    def __len__(self) -> int:
        return len(self.keyframes)

    def _layout(self, kf: Keyframe) -> RoomLayout:
        return resolve_layout(kf.layout, self.rooms, kf.sensor_id, kf.extras.get("mac_address"), kf.timestamp)

    def room_sources(self) -> dict[str, int]:
        """Keyframes per layout source (``"annotations"``, ``"rooms file"``, ``"none"``)."""
        return dict(Counter(layout.source for layout in self.layouts))

    def label_sources(self) -> dict[str, int]:
        """Keyframes per origin of their labels: ``"annotations"``, and ``"carried"`` or
        ``"pseudo"`` for those :meth:`with_keyframes` added (``extras["label_source"]``)."""
        return dict(Counter(str(kf.extras.get("label_source", "annotations")) for kf in self.keyframes))

    def with_keyframes(self, extra: Sequence[Keyframe]) -> "ThermalClipDataset":
        """This dataset plus the keyframes ``extra`` (e.g. labels carried along tracks, or
        pseudo-labels): the same preprocessing, augmentation, rooms and recording cache.

        Raises:
            ValueError: the dataset's boxes are overridden (``boxes_override``).
        """
        if self._override is not None:
            raise ValueError("keyframes cannot be added to a dataset whose boxes are overridden")
        new = copy.copy(self)
        new.keyframes = self.keyframes + list(extra)
        new.layouts = self.layouts + [self._layout(kf) for kf in extra]
        new._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()
        new._epoch.fill_(self.epoch)
        return new

    def __getstate__(self) -> dict[str, Any]:
        # Spawned workers re-read recordings lazily rather than receive a pickled cache.
        state = self.__dict__.copy()
        state["cache"] = RecordingCache(self.cache.enabled, self.cache.valid_range)
        return state

    # --- epoch and determinism -------------------------------------------------------

    def set_epoch(self, epoch: int) -> None:
        """Sets the epoch that seeds augmentation (call before each epoch's iteration)."""
        self._epoch.fill_(int(epoch))

    @property
    def epoch(self) -> int:
        return int(self._epoch.item())

    def _rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, index])

    # --- recordings --------------------------------------------------------------------

    def recording_path(self, sensor_id: str) -> Path:
        return self.frames_dir / f"{sensor_id}.h5"

    def preload(self) -> None:
        """Reads every recording now (e.g. in the main process, so forked workers share
        one copy-on-write copy instead of each decoding its own)."""
        for sensor in sorted({k.sensor_id for k in self.keyframes}):
            self.cache.get(self.recording_path(sensor))

    def check_recordings(self) -> set[tuple[int, int]]:
        """Reads every recording now (through the cache) and checks each keyframe against it,
        so that a broken file fails here rather than in the middle of an epoch.

        Returns:
            The ``(H, W)`` frame sizes of the recordings.

        Raises:
            DatasetError: an unusable recording, a ``frame_idx`` out of range, or frames of
                another size than annotated (naming the file and the keyframe).
        """
        sizes: dict[str, tuple[int, int]] = {}
        lengths: dict[str, int] = {}
        for sensor in sorted({k.sensor_id for k in self.keyframes}):
            rec = self.cache.get(self.recording_path(sensor))
            sizes[sensor] = (rec.height, rec.width)
            lengths[sensor] = rec.num_frames
        for kf in self.keyframes:
            path = self.recording_path(kf.sensor_id)
            if not 0 <= kf.frame_idx < lengths[kf.sensor_id]:
                raise DatasetError(path, f"frame_idx {kf.frame_idx} out of range 0..{lengths[kf.sensor_id] - 1}",
                                   record=f"image {kf.image_id}")
            h, w = sizes[kf.sensor_id]
            if (h, w) != (kf.height, kf.width):
                raise DatasetError(path, f"frames are {h}x{w} but the annotation says {kf.height}x{kf.width}",
                                   record=f"image {kf.image_id}")
        return set(sizes.values())

    def clip_window(self, index: int) -> ClipWindow:
        """The (unjittered) frames item ``index`` reads; ``num_padded`` counts edge repeats."""
        kf = self.keyframes[index]
        rec = self.cache.get(self.recording_path(kf.sensor_id))
        return self.builder.window(kf.frame_idx, rec.num_frames)

    def padding_summary(self) -> dict[str, int]:
        """How many keyframes need edge padding (without temporal jitter), reading only timestamps."""
        lengths: dict[str, int] = {}
        clips = frames = 0
        for kf in self.keyframes:
            if kf.sensor_id not in lengths:
                lengths[kf.sensor_id] = len(read_timestamps(self.recording_path(kf.sensor_id)))
            w = self.builder.window(kf.frame_idx, lengths[kf.sensor_id])
            clips += w.num_padded > 0
            frames += w.num_padded
        return {"padded_clips": clips, "padded_frames": frames, "clips": len(self.keyframes)}

    # --- items -------------------------------------------------------------------------

    def _boxes(self, kf: Keyframe, width: int, height: int):
        if self._override is None:
            return (kf.boxes_cxcywh_norm, kf.boxes_xyxy, kf.labels, kf.track_ids, kf.annotation_ids, None)
        ov = self._override.get(kf.image_id)
        norm = ov.boxes_cxcywh_norm if ov is not None else np.zeros((0, 4), np.float32)
        scores = ov.scores if ov is not None else np.zeros(0, np.float32)
        xyxy = np.clip(boxes_cxcywh_norm_to_xyxy(norm, width, height), 0.0, [width, height, width, height])
        minus = np.full(len(norm), -1, dtype=np.int64)
        return norm, xyxy, minus, minus, minus, scores

    def __getitem__(self, index: int) -> ClipSample:
        kf = self.keyframes[index]
        path = self.recording_path(kf.sensor_id)
        rec = self.cache.get(path)
        if not 0 <= kf.frame_idx < rec.num_frames:
            raise DatasetError(path, f"frame_idx {kf.frame_idx} out of range 0..{rec.num_frames - 1}",
                               record=f"image {kf.image_id}")
        if (rec.height, rec.width) != (kf.height, kf.width):
            raise DatasetError(path, f"frames are {rec.height}x{rec.width} but the annotation says "
                                     f"{kf.height}x{kf.width}", record=f"image {kf.image_id}")
        norm, xyxy, labels, tracks, ann_ids, scores = self._boxes(kf, rec.width, rec.height)
        params = None
        if self.augmenter is not None:
            params = self.augmenter.sample(self._rng(index), len(xyxy), rec.height, rec.width)
        layout = self.layouts[index]
        built = self.builder.build(rec.frames, kf.frame_idx, xyxy, params, layout=layout)
        if built.window.num_padded:
            logger.debug("%s frame %d: %d of %d clip frames padded with the edge frame", kf.sensor_id,
                         kf.frame_idx, built.window.num_padded, len(built.window.indices))
        return ClipSample(
            clip=torch.from_numpy(built.clip),
            boxes_xyxy=torch.from_numpy(built.boxes_xyxy),
            boxes_cxcywh_norm=torch.from_numpy(np.ascontiguousarray(norm, dtype=np.float32)),
            labels=torch.from_numpy(np.asarray(labels, dtype=np.int64)),
            track_ids=torch.from_numpy(np.asarray(tracks, dtype=np.int64)),
            annotation_ids=torch.from_numpy(np.asarray(ann_ids, dtype=np.int64)),
            image_id=kf.image_id,
            sensor_id=kf.sensor_id,
            frame_idx=kf.frame_idx,
            timestamp=kf.timestamp,
            zone_masks=torch.from_numpy(built.zone_masks),
            zone_features=torch.from_numpy(built.zone_features),
            room_source="none" if params is not None and params.drop_room else layout.source,
            box_scores=None if scores is None else torch.from_numpy(np.asarray(scores, dtype=np.float32)),
        )

    def sampling_weights(self) -> np.ndarray:
        """Per-keyframe weights for a class-balanced sampler, ``(len,)`` float64.

        A keyframe weighs ``1 / count`` of its rarest box class (training box counts);
        keyframes without boxes weigh like the most common class.
        """
        labels = [k.labels[k.labels >= 0] for k in self.keyframes]
        allc = np.concatenate(labels) if labels else np.zeros(0, np.int64)
        if allc.size == 0:
            return np.ones(len(self.keyframes))
        counts = np.bincount(allc)
        floor = 1.0 / counts.max()
        return np.array([1.0 / counts[lab].min() if lab.size else floor for lab in labels], dtype=np.float64)


class MixedClipDataset(Dataset):
    """A primary training set (e.g. real recordings) with an extra one (e.g. synthetic rooms)
    mixed into its batches.

    Items ``0 .. len(primary) - 1`` are the primary clips, the rest the extra ones. Each
    epoch a sampler (``training.datamodule.MixedEpochSampler``) shows every primary clip
    once and :attr:`extra_per_epoch` extra clips, so about ``share`` of every batch is
    extra; the primary set is seen as often as without the mix, the epoch is longer.

    Args:
        primary: the set the model is for (its class names are the run's).
        extra: clips with the same class names.
        share: expected fraction of extra clips per batch, in ``[0, 1)``.
    """

    def __init__(self, primary: ThermalClipDataset, extra: ThermalClipDataset, share: float):
        if not 0.0 <= share < 1.0:
            raise ValueError(f"the extra set's share must be in [0, 1), got {share}")
        if list(extra.class_names) != list(primary.class_names):
            raise ValueError("the extra training set's classes differ from the primary set's")
        if len(extra) == 0 and share > 0:
            raise ValueError("the extra training set has no keyframes")
        self.primary, self.extra, self.share = primary, extra, float(share)
        self.class_names = primary.class_names
        self.keyframes = primary.keyframes + extra.keyframes
        self.layouts = primary.layouts + extra.layouts

    def room_sources(self) -> dict[str, int]:
        """Keyframes per layout source, both sets."""
        return dict(Counter(layout.source for layout in self.layouts))

    @property
    def extra_per_epoch(self) -> int:
        """Extra clips drawn per epoch: ``share`` of the epoch's ``len(primary) + extra_per_epoch``."""
        return int(round(len(self.primary) * self.share / (1.0 - self.share)))

    def __len__(self) -> int:
        return len(self.primary) + len(self.extra)

    def __getitem__(self, index: int) -> ClipSample:
        n = len(self.primary)
        return self.primary[index] if index < n else self.extra[index - n]

    def set_epoch(self, epoch: int) -> None:
        self.primary.set_epoch(epoch)
        self.extra.set_epoch(epoch)

    @property
    def epoch(self) -> int:
        return self.primary.epoch

    def preload(self) -> None:
        self.primary.preload()
        self.extra.preload()

    def check_recordings(self) -> set[tuple[int, int]]:
        """:meth:`ThermalClipDataset.check_recordings` of both sets (their frame sizes)."""
        return self.primary.check_recordings() | self.extra.check_recordings()

    def padding_summary(self) -> dict[str, int]:
        a, b = self.primary.padding_summary(), self.extra.padding_summary()
        return {k: a[k] + b[k] for k in a}

    def expected_class_counts(self) -> np.ndarray:
        """``(K,)`` boxes per class an epoch shows on average: every primary box once, each
        extra box ``extra_per_epoch / len(extra)`` times (what class weights should see)."""
        def counts(keyframes: Sequence[Keyframe]) -> np.ndarray:
            c = np.zeros(len(self.class_names), dtype=np.float64)
            for kf in keyframes:
                np.add.at(c, kf.labels[kf.labels >= 0], 1)
            return c

        rate = self.extra_per_epoch / len(self.extra) if len(self.extra) else 0.0
        return counts(self.primary.keyframes) + rate * counts(self.extra.keyframes)


# --- collation ---------------------------------------------------------------------------


def collate_clips(samples: Sequence[ClipSample], alpha: int, quarter_turn: bool = False) -> Batch:
    """Stacks clips into a SlowFast :class:`Batch`.

    Args:
        samples: clips of one shape ``(1, T, H, W)``; any may have zero boxes.
        alpha: the slow pathway takes every ``alpha``-th fast frame (:func:`pack_pathways`).
        quarter_turn: rotate every clip (and box) of the batch by 90° (``torch.rot90``);
            the batch is then ``W x H``.

    Returns:
        ``Batch`` with ``fast (B, 1, T, H, W)``, ``slow (B, 1, T // alpha, H, W)``,
        ``rois (R, 5)`` = ``(batch_index, x1, y1, x2, y2)`` in input pixels,
        ``zone_masks (B, Z, H, W)`` (turned with the clips) and ``zone_features (R, F)``.
    """
    if not samples:
        raise ValueError("cannot collate an empty list of clips")
    shapes = {tuple(s.clip.shape) for s in samples}
    if len(shapes) != 1:
        detail = ", ".join(f"{s.image_id}: {tuple(s.clip.shape)}" for s in samples)
        raise ValueError(f"clips of different shapes cannot form a batch ({detail})")
    fast = torch.stack([s.clip for s in samples])  # (B, 1, T, H, W)
    masks = torch.stack([s.zone_masks for s in samples])  # (B, Z, H, W)
    _, _, _, h, w = fast.shape
    boxes = [s.boxes_xyxy.reshape(-1, 4).to(torch.float32) for s in samples]
    if quarter_turn:
        fast = torch.rot90(fast, 1, dims=(-2, -1))
        masks = torch.rot90(masks, 1, dims=(-2, -1))
        boxes = [rot90_boxes(b, 1, h, w) for b in boxes]
    slow, fast = pack_pathways(fast, alpha)
    batch_idx = torch.cat([torch.full((len(b), 1), float(i)) for i, b in enumerate(boxes)])
    rois = torch.cat([batch_idx, torch.cat(boxes)], dim=1)  # (R, 5)
    box_scores = None
    if any(s.box_scores is not None for s in samples):
        box_scores = torch.cat([
            s.box_scores.to(torch.float32) if s.box_scores is not None else torch.ones(len(s.labels))
            for s in samples
        ])
    return Batch(
        slow=slow,
        fast=fast,
        rois=rois,
        labels=torch.cat([s.labels for s in samples]),
        boxes_cxcywh_norm=torch.cat([s.boxes_cxcywh_norm.reshape(-1, 4) for s in samples]),
        track_ids=torch.cat([s.track_ids for s in samples]),
        annotation_ids=torch.cat([s.annotation_ids for s in samples]),
        image_ids=[s.image_id for s in samples],
        sensor_ids=[s.sensor_id for s in samples],
        frame_idxs=torch.tensor([s.frame_idx for s in samples], dtype=torch.int64),
        timestamps=torch.tensor([s.timestamp for s in samples], dtype=torch.int64),
        zone_masks=masks.contiguous(),
        # The boxes' features as they are, whatever the turn: shares and distances do not turn.
        zone_features=torch.cat([s.zone_features for s in samples]).float(),
        room_sources=[s.room_source for s in samples],
        box_scores=box_scores,
    )


class ClipCollator:
    """``collate_fn`` for a DataLoader: :func:`collate_clips`, with random batch quarter turns.

    The quarter-turn decision for a batch is seeded by ``seed`` and the batch content
    (image ids and frame indices), so it does not depend on worker count or order.

    Args:
        alpha: SlowFast speed ratio.
        quarter_turn_prob: probability that a batch is rotated by 90° (training only).
        seed: base seed.
    """

    def __init__(self, alpha: int, quarter_turn_prob: float = 0.0, seed: int = 0):
        if not 0.0 <= quarter_turn_prob <= 1.0:
            raise ValueError(f"quarter_turn_prob must be in [0, 1], got {quarter_turn_prob}")
        self.alpha = int(alpha)
        self.quarter_turn_prob = float(quarter_turn_prob)
        self.seed = int(seed)

    def __call__(self, samples: Sequence[ClipSample]) -> Batch:
        turn = False
        if self.quarter_turn_prob > 0:
            key = "|".join(f"{s.image_id}:{s.frame_idx}" for s in samples).encode()
            rng = np.random.default_rng([self.seed, zlib.crc32(key)])
            turn = bool(rng.random() < self.quarter_turn_prob)
        return collate_clips(samples, self.alpha, quarter_turn=turn)


def clip_from_recording(
    recording: Recording,
    frame_idx: int,
    boxes_cxcywh_norm: np.ndarray,
    builder: ClipBuilder,
    track_ids: np.ndarray | None = None,
    layout: RoomLayout = NO_LAYOUT,
) -> ClipSample:
    """A :class:`ClipSample` for prediction on a bare recording (no annotations).

    The same path the dataset uses, without augmentation. Boxes (e.g. from a person
    detector) are clipped to the frame; labels are -1.

    Args:
        recording: from :func:`thermal_action.data.hdf5.read_recording`.
        frame_idx: the frame to classify (centre of the window).
        boxes_cxcywh_norm: ``(N, 4)`` normalized centre boxes in that frame.
        builder: from :func:`thermal_action.data.dataset.build_clip_builder`.
        track_ids: ``(N,)`` person ids, -1 when not given.
        layout: the room at ``frame_idx`` (default: none known).

    Raises:
        DatasetError: ``frame_idx`` out of range.
    """
    if not 0 <= frame_idx < recording.num_frames:
        raise DatasetError(recording.path, f"frame_idx {frame_idx} out of range 0..{recording.num_frames - 1}",
                           record=f"frame {frame_idx}")
    norm = np.asarray(boxes_cxcywh_norm, dtype=np.float32).reshape(-1, 4)
    xyxy = boxes_cxcywh_norm_to_xyxy(norm, recording.width, recording.height)
    xyxy = np.clip(xyxy, 0.0, [recording.width, recording.height, recording.width, recording.height])
    built = builder.build(recording.frames, frame_idx, xyxy, layout=layout)
    n = len(norm)
    tracks = np.full(n, -1, dtype=np.int64) if track_ids is None else np.asarray(track_ids, dtype=np.int64)
    ts = int(recording.timestamps[frame_idx])
    return ClipSample(
        clip=torch.from_numpy(built.clip),
        boxes_xyxy=torch.from_numpy(built.boxes_xyxy),
        boxes_cxcywh_norm=torch.from_numpy(norm),
        labels=torch.full((n,), -1, dtype=torch.int64),
        track_ids=torch.from_numpy(tracks),
        annotation_ids=torch.full((n,), -1, dtype=torch.int64),
        image_id=f"{recording.sensor_id}_{ts}",
        sensor_id=recording.sensor_id,
        frame_idx=int(frame_idx),
        timestamp=ts,
        zone_masks=torch.from_numpy(built.zone_masks),
        zone_features=torch.from_numpy(built.zone_features),
        room_source=layout.source,
    )


# --- builders (the only place that reads DataConfig) ---------------------------------------


def _resolve(root: str | Path, path: str | Path) -> Path:
    p = Path(path)
    return p if p.is_absolute() or not str(root) else Path(root) / p


def build_clip_builder(cfg: Any) -> ClipBuilder:
    """The preprocessing of :class:`~thermal_action.config.DataConfig` ``cfg``; the predictor
    uses this too, so training and prediction see the same clips."""
    return ClipBuilder(
        num_frames=cfg.num_frames,
        frame_stride=cfg.frame_stride,
        normalization=cfg.normalization,
        fixed_range=tuple(cfg.fixed_range),
        background_scale=cfg.background_scale,
        scale=cfg.scale,
    )


def build_augmenter(cfg: Any) -> Augmenter:
    """The training augmentation of a ``DataConfig``."""
    return Augmenter(
        flip=cfg.flip,
        rotate=cfg.rotate,
        temp_offset=cfg.temp_offset,
        temp_gain=cfg.temp_gain,
        box_jitter=cfg.box_jitter,
        temporal_jitter=cfg.temporal_jitter,
        room_dropout=cfg.room_dropout,
    )


def build_dataset(
    cfg: Any,
    ann_file: str | Path,
    train: bool,
    boxes_override: Mapping[str, Any] | None = None,
    seed: int = 0,
    override_source: str = "boxes_override",
) -> ThermalClipDataset:
    """A :class:`ThermalClipDataset` from a ``DataConfig``.

    Args:
        cfg: the ``data`` section of the config.
        ann_file: annotation file, relative to ``cfg.root`` unless absolute
            (e.g. ``cfg.train_ann``).
        train: augment (when ``cfg.augment``).
        boxes_override: see :class:`ThermalClipDataset`.
        seed: augmentation seed.
        override_source: names where ``boxes_override`` came from, in errors.

    Raises:
        DatasetError: any problem of the annotation file or of its keyframes' recordings.
        RoomsError: an unusable ``cfg.rooms`` file (naming it, the sensor and the zone).
    """
    frames_dir = _resolve(cfg.root, cfg.frames_dir)
    anns = load_annotations(_resolve(cfg.root, ann_file), frames_dir=frames_dir,
                            max_box_overhang=cfg.max_box_overhang)
    rooms = read_rooms(_resolve(cfg.root, cfg.rooms)) if cfg.rooms else None
    return ThermalClipDataset(
        anns.keyframes,
        frames_dir,
        build_clip_builder(cfg),
        augmenter=build_augmenter(cfg) if (train and cfg.augment) else None,
        class_names=anns.class_names,
        seed=seed,
        cache=cfg.cache,
        valid_range=tuple(cfg.valid_range),
        boxes_override=boxes_override,
        override_source=override_source,
        rooms=rooms,
    )


def build_collate(cfg: Any, alpha: int, train: bool, seed: int = 0) -> ClipCollator:
    """The ``collate_fn`` for ``cfg``: batch quarter turns only when training with rotations."""
    turns = train and cfg.augment and cfg.rotate
    return ClipCollator(alpha, quarter_turn_prob=0.5 if turns else 0.0, seed=seed)
