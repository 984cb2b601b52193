"""The model's scores on frames nobody labelled: the input of the labelling queue
(:mod:`thermal_action.active`) and of pseudo-labels (``data.pseudo_label_checkpoint``).

::

    recording.h5 ──► every ``every``-th frame, less those within every // 2 of a labelled keyframe
        │
        ├─ built-in detector + tracker ──► person boxes, track ids
        ▼
    Predictor (an ensemble's members one by one) ──► UnlabelledFrame: probs (N, K), member_probs (M, N, K)

An ensemble checkpoint is run whole (its own scores, exactly what ``predict`` gives) and
member by member (each member's softmax, for the disagreement): twice the model's compute.
Recovering the ensemble's scores from the members' (:func:`combine_members`) is exact in
real numbers but not in float32, where a saturated member's small probabilities underflow.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from thermal_action.data.rooms import RoomLayout
from thermal_action.inference.predictor import ClipRequest, Predictor
from thermal_action.structures import PREDICTION, FrameBoxes

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class UnlabelledFrame:
    """One unlabelled frame with people, scored.

    Attributes:
        recording: the sensor id.
        frame_index: frame in the recording.
        timestamp_ms: capture time, ms since the epoch.
        width, height: the frame size (pixels).
        boxes: the people (pixel boxes, detector scores, track ids).
        layout: the room the model saw there.
        probs: ``(N, K)`` class probabilities (the model's output).
        member_probs: ``(M, N, K)`` each ensemble member's, None for a single model.
    """

    recording: str
    frame_index: int
    timestamp_ms: int
    width: int
    height: int
    boxes: FrameBoxes
    layout: RoomLayout
    probs: np.ndarray
    member_probs: np.ndarray | None = None


def combine_members(member_probs: np.ndarray) -> np.ndarray:
    """``(N, K)``: an ensemble's softmax of the mean logits from its members' ``(M, N, K)`` softmaxes
    (the per-row constant of each log-softmax cancels; float64 in, to keep small probabilities)."""
    logp = np.log(np.clip(np.asarray(member_probs, np.float64), 1e-12, 1.0)).mean(axis=0)
    e = np.exp(logp - logp.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def member_predictors(predictor: Predictor) -> list[Predictor]:
    """One predictor per member of an ensemble checkpoint (same preprocessing), ``[]`` for a
    single model or an exported one."""
    from thermal_action.inference.backends import TorchBackend

    backend = predictor.backend
    members = getattr(getattr(backend, "model", None), "members", None)
    if not isinstance(backend, TorchBackend) or members is None:
        return []
    return [Predictor(TorchBackend(m, backend.device, use_memory=False), predictor.clip_builder,
                      predictor.class_names, predictor.score_activation, predictor.max_clips_per_batch,
                      valid_range=predictor.valid_range)
            for m in members]


def score_requests(predictor: Predictor, requests: Sequence[ClipRequest]
                   ) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
    """``(N_i, K)`` scores of every request and, for a softmax ensemble, its ``(M, N_i, K)``
    member scores (None otherwise)."""
    members = member_predictors(predictor)
    if not members or predictor.score_activation != "softmax":
        return predictor.predict_clips(list(requests)), [None] * len(requests)
    per_member = [m.predict_clips(list(requests)) for m in members]
    stacked = [np.stack([pm[i] for pm in per_member]) for i in range(len(requests))]  # (M, N, K)
    return predictor.predict_clips(list(requests)), stacked


def unlabelled_frames(num_frames: int, labelled: Iterable[int], every: int = PREDICTION.step) -> list[int]:
    """Frames ``0, every, 2 * every, ...`` of a recording, less those within ``every // 2``
    frames of a labelled keyframe (on the labelling cadence that keyframe is already there)."""
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    done = np.asarray(sorted(labelled), dtype=np.int64)
    out = []
    for f in range(0, num_frames, every):
        j = int(np.searchsorted(done, f))
        near = [abs(int(done[i]) - f) for i in (j - 1, j) if 0 <= i < len(done)]
        if not near or min(near) > every // 2:
            out.append(f)
    return out


def score_unlabelled(predictor: Predictor | None, recordings: Sequence[str | Path], labelled: Sequence[Any] = (),
                     every: int = PREDICTION.step, rooms: Any = None) -> list[UnlabelledFrame]:
    """Every ``every``-th frame of each recording not next to a labelled keyframe, its people
    found by the built-in detector and tracker, scored by the model.

    Args:
        predictor: the model; None: no scores (``probs`` uniform over the 14 default classes).
        recordings: ``.h5`` files.
        labelled: the labelled ``Keyframe`` objects (their frames are skipped; the nearest
            one of the same recording whose annotations list furniture gives the room).
        every: frames between keyframes (the labelling cadence).
        rooms: a ``RoomMap`` for frames without such a neighbour (None: none known).

    Returns:
        The frames with at least one person, by recording and frame.
    """
    from thermal_action.data.hdf5 import read_recording
    from thermal_action.data.rooms import resolve_layout
    from thermal_action.inference.boxes import boxes_from_detector
    from thermal_action.structures import DEFAULT_CLASS_NAMES, DEFAULT_VALID_RANGE

    done: dict[str, list[Any]] = {}
    for kf in labelled:
        done.setdefault(str(kf.sensor_id), []).append(kf)
    out: list[UnlabelledFrame] = []
    for path in map(Path, recordings):
        rec = read_recording(path, valid_range=predictor.valid_range if predictor else DEFAULT_VALID_RANGE)
        people = boxes_from_detector(rec)
        mine = done.get(rec.sensor_id, [])
        wanted = set(unlabelled_frames(rec.num_frames, [int(k.frame_idx) for k in mine], every))
        frames = [(f, fb) for f, fb in sorted(people.frames.items()) if f in wanted and len(fb)]
        furnished = sorted(((int(k.frame_idx), k.layout) for k in mine if k.layout.known), key=lambda t: t[0])
        mac = rec.attrs.get("mac_address")
        layouts = [resolve_layout(_nearest(furnished, f), rooms, rec.sensor_id, None if mac is None else str(mac),
                                  int(rec.timestamps[f])) for f, _ in frames]
        if predictor is None:
            k = len(DEFAULT_CLASS_NAMES)
            probs, members = [np.full((len(fb), k), 1.0 / k) for _, fb in frames], [None] * len(frames)
        else:
            requests = [ClipRequest(rec.frames, f, fb.boxes_xyxy, clip_key=(rec.sensor_id, f), layout=layout)
                        for (f, fb), layout in zip(frames, layouts)]
            probs, members = score_requests(predictor, requests)
        out.extend(UnlabelledFrame(rec.sensor_id, int(f), int(rec.timestamps[f]), rec.width, rec.height, fb, layout,
                                   p, m)
                   for (f, fb), layout, p, m in zip(frames, layouts, probs, members))
        logger.info("%s: %d unlabelled keyframes with people of %d on the every-%d grid", path.name, len(frames),
                    len(wanted), every)
    return out


def _nearest(furnished: list[tuple[int, RoomLayout]], frame: int) -> RoomLayout | None:
    """The layout of the labelled keyframe nearest to ``frame`` (None when there is none)."""
    if not furnished:
        return None
    return min(furnished, key=lambda t: (abs(t[0] - frame), t[0]))[1]
