"""Pseudo-labels: a trained model's confident scores on unlabelled frames of the training
recordings, as extra training keyframes (``data.pseudo_label_checkpoint``).

::

    training recordings ──► every step-th frame not next to a labelled keyframe
        │  people: built-in detector + tracker; room: the nearest labelled keyframe's
        ▼
    model ──► (N, K) scores ──► a person whose top score >= threshold: that class
                                 the others on the frame: label -1 (they come along, never train)
        ▼
    a Keyframe per frame with at least one confident person (extras["label_source"] = "pseudo")

The classic self-training step: it adds clips of what the model already knows well, so it
mostly helps the common classes and can confirm its own mistakes; whether it helps is
measured (``benchmarks/bench_active.py``, docs/active-learning.md).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from thermal_action.data.annotations import Keyframe
from thermal_action.inference.unlabelled import score_unlabelled
from thermal_action.structures import PREDICTION, boxes_xyxy_to_cxcywh_norm

logger = logging.getLogger(__name__)

#: What a pseudo-labelled keyframe's ``extras["label_source"]`` says.
PSEUDO = "pseudo"


def pseudo_label_keyframes(
    checkpoint: str | Path,
    recordings: Sequence[str | Path],
    labelled: Sequence[Keyframe],
    class_names: Sequence[str],
    threshold: float,
    step: int = PREDICTION.step,
    rooms: Any = None,
) -> list[Keyframe]:
    """Keyframes labelled by ``checkpoint`` where it is at least ``threshold`` sure.

    Args:
        checkpoint: a trained model (``.ckpt``).
        recordings: the ``.h5`` files to look in (the training recordings).
        labelled: the labelled keyframes (their frames, and those next to them, are skipped).
        class_names: the training set's classes; the model's must be the same.
        threshold: a person's top class score must reach this, in (0, 1].
        step: frames between the frames scored.
        rooms: a ``RoomMap`` for frames without a furnished labelled neighbour.

    Raises:
        ValueError: the model's classes differ from ``class_names``, or a threshold outside (0, 1].
    """
    from thermal_action.inference.predictor import Predictor

    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"the pseudo-label threshold must be in (0, 1], got {threshold}")
    # Loading a model draws from torch's global generator: fork it, so that turning the option on
    # changes the training set and nothing else (the run's initialisation stays the seed's).
    with torch.random.fork_rng():
        return _pseudo_label_keyframes(Predictor.from_checkpoint(checkpoint), checkpoint, recordings, labelled,
                                       class_names, threshold, step, rooms)


def _pseudo_label_keyframes(predictor: Any, checkpoint: str | Path, recordings: Sequence[str | Path],
                            labelled: Sequence[Keyframe], class_names: Sequence[str], threshold: float, step: int,
                            rooms: Any) -> list[Keyframe]:
    if list(predictor.class_names) != list(class_names):
        raise ValueError(f"data.pseudo_label_checkpoint {checkpoint}: its classes {list(predictor.class_names)} "
                         f"differ from the training set's {list(class_names)}")
    frames = score_unlabelled(predictor, recordings, labelled, step, rooms)
    out: list[Keyframe] = []
    per_class: Counter[str] = Counter()
    for u in frames:
        top = u.probs.max(axis=-1)
        labels = np.where(top >= threshold, u.probs.argmax(axis=-1), -1).astype(np.int64)
        if not (labels >= 0).any():
            continue
        per_class.update(class_names[i] for i in labels[labels >= 0])
        norm = boxes_xyxy_to_cxcywh_norm(u.boxes.boxes_xyxy, u.width, u.height).astype(np.float32)
        out.append(Keyframe(
            image_id=f"{u.recording}_{u.timestamp_ms}", sensor_id=u.recording, frame_idx=u.frame_index,
            timestamp=u.timestamp_ms, width=u.width, height=u.height, boxes_cxcywh_norm=norm,
            boxes_xyxy=np.asarray(u.boxes.boxes_xyxy, np.float32), labels=labels,
            track_ids=np.asarray(u.boxes.track_ids, np.int64), annotation_ids=np.full(len(labels), -1, np.int64),
            extras={"label_source": PSEUDO, "pseudo_label_scores": top.round(4).tolist()},
            box_extras=[{} for _ in labels], layout=u.layout,
        ))
    logger.info("pseudo-labels from %s: %d people on %d of %d unlabelled frames with people (threshold %.2f): %s",
                checkpoint, sum(per_class.values()), len(out), len(frames), threshold, dict(per_class))
    return out
