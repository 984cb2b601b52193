"""Batches to prediction records, and the feature-bank fill: shared by training and evaluation.

The training system's validation and :func:`~thermal_action.training.evaluate.predict_records`
both turn a batch's scores into ``predictions.json`` records and, with an interaction
structure, fill the feature bank in a first pass; both import them from here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch

from thermal_action.structures import Batch


def batch_clip_keys(batch: Batch) -> list[tuple[str, int]]:
    """One ``(sensor_id, frame_idx)`` per clip: where a clip sits in its recording.

    The interaction feature bank is keyed by this, so neighbouring keyframes of the
    same recording can be looked up.
    """
    return [(s, int(f)) for s, f in zip(batch.sensor_ids, batch.frame_idxs.tolist())]


def batch_prediction_records(
    batch: Batch, scores: torch.Tensor, box_scores: torch.Tensor | None = None
) -> list[dict[str, Any]]:
    """Prediction records (``predictions.json`` format) for every box of a batch.

    Args:
        batch: the batch the scores were computed on.
        scores: ``(R, K)`` class probabilities.
        box_scores: ``(R,)`` detector confidences, if the boxes came from a detector.
    """
    from thermal_action.evaluation.io import make_prediction_records

    clip_idx = batch.rois[:, 0].long().tolist()
    image_ids = [batch.image_ids[i] for i in clip_idx]
    return make_prediction_records(
        image_ids,
        batch.boxes_cxcywh_norm.float().cpu().numpy(),
        scores.float().cpu().numpy(),
        labels=batch.labels.cpu().numpy(),
        track_ids=batch.track_ids.cpu().numpy(),
        box_scores=None if box_scores is None else box_scores.float().cpu().numpy(),
    )


def merge_records_by_image(parts: Sequence[dict[str, list[dict]]]) -> list[dict[str, Any]]:
    """Joins per-rank ``{image_id: records}`` maps, each keyframe once.

    A DistributedSampler pads the last batches by repeating clips, so a keyframe can
    reach two ranks; its records are then identical and kept once (sorted by id so
    the result does not depend on the rank order).
    """
    merged: dict[str, list[dict]] = {}
    for part in parts:
        for image_id, records in part.items():
            merged.setdefault(image_id, records)
    return [r for image_id in sorted(merged) for r in merged[image_id]]


@torch.no_grad()
def fill_feature_bank(model: torch.nn.Module, batches: Iterable[Batch], forward: Callable[[Batch], Any]) -> int:
    """Runs ``forward`` over ``batches`` only to write every keyframe into the model's bank.

    Returns:
        The number of keyframes the bank holds afterwards.
    """
    bank = getattr(model, "feature_bank", None)
    if bank is None:
        return 0
    model.update_memory = True
    for batch in batches:
        forward(batch)
    return len(bank)


def gather_feature_bank(bank: Any) -> int:
    """Under DDP, gives every rank the keyframes every other rank wrote into its bank, so a
    keyframe reads its neighbours from the whole set whichever rank they were dealt to (as in
    one process). Outside DDP it does nothing. Returns the keyframes each bank then holds.

    The features travel as CPU tensors through ``all_gather_object`` (a few KB per keyframe);
    they are stored back on the device of the bank's own features.
    """
    import torch.distributed as dist

    if bank is None:
        return 0
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return len(bank)
    own = bank.entries()
    device = own[0][2].device if own else torch.device("cpu")
    mine = [(s, f, t.detach().cpu()) for s, f, t in own]
    parts: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, mine)
    for rank, part in enumerate(parts):
        if rank == dist.get_rank():
            continue
        for sensor, frame, feats in part:
            if (sensor, frame) not in bank:
                bank.put((sensor, frame), feats.to(device))
    return len(bank)

