"""Self-supervised pretraining on unlabelled recordings (``thermal-action pretrain``).

A user has a few hundred labelled keyframes and ten times as many unlabelled frames, and
no pretrained thermal SlowFast exists. This step turns the unlabelled frames into a
pretrained backbone, contrastively (SimCLR's objective on person tubes):

::

    recordings/*.h5 (no labels) --PersonDetector--> person boxes in every frame
    every frame_step-th frame, each box --2 random views--> clips + box
        view: flips, 180° turn, a 90° turn of the whole batch, temperature offset and gain,
              box jitter, the window moved by up to temporal_jitter frames
    model.embed (backbone + RoI pooling, (R, D)) --projection MLP--> (R, P), L2-normalised
    InfoNCE: each tube's two views attract, the batch's other 2B - 2 views repel
    --> pretrained.safetensors (the backbone's tensors), config.yaml, pretrain_log.jsonl

Fine-tune with ``thermal-action train ... model.pretrained=RUN/pretrained.safetensors``
(same ``model.*`` settings). The detector here is the same classical one ``predict`` uses
when no boxes are given, so pretraining sees the people prediction will see.

What it gave is measured by ``benchmarks/bench_real.py`` (run ``ssl_pretrain``: each fold
pretrains on its own training recordings only) and quoted in docs/pretrained.md.
"""

from __future__ import annotations

import json
import logging
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from thermal_action.config import Config, config_from_dict, config_to_dict, replace_values, save_config
from thermal_action.data.dataset import build_clip_builder
from thermal_action.data.hdf5 import find_recordings, read_recording
from thermal_action.data.transforms import Augmenter
from thermal_action.errors import DatasetError
from thermal_action.models.detector import transform_clip, transform_rois
from thermal_action.structures import FRAME_HEIGHT, FRAME_WIDTH, pack_pathways

logger = logging.getLogger(__name__)

WEIGHTS_NAME = "pretrained.safetensors"


@dataclass(frozen=True)
class TubeSample:
    """One unlabelled person: recording, frame and ``(4,)`` pixel box ``x1, y1, x2, y2``."""

    recording: int
    frame: int
    box_xyxy: tuple[float, float, float, float]


@dataclass
class PretrainResult:
    """What :func:`pretrain` wrote and how it went."""

    out_dir: Path
    weights: Path
    epochs: int
    samples: int
    people_per_recording: dict[str, int]
    final_loss: float
    final_accuracy: float  # share of views whose nearest other view (cosine) is their pair
    seconds: float

    def format_text(self) -> str:
        return (
            f"pretrained weights: {self.weights}\n"
            f"samples:            {self.samples} person tubes from {len(self.people_per_recording)} recordings\n"
            f"final epoch:        InfoNCE loss {self.final_loss:.3f}, pair retrieval {self.final_accuracy:.1%}\n"
            f"time:               {self.seconds:.0f} s\n"
            f"fine-tune with:     thermal-action train --config CONFIG model.pretrained={self.weights}"
        )


def info_nce(za: torch.Tensor, zb: torch.Tensor, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """SimCLR's NT-Xent loss of two views ``(N, P)`` of the same ``N`` items.

    Every one of the ``2N`` embeddings (L2-normalised here) must pick its pair out of the
    other ``2N - 1`` by cosine similarity / ``temperature``.

    Returns:
        ``(loss, accuracy)``: the mean cross-entropy and the share of embeddings whose most
        similar other embedding is their pair (a detached scalar).
    """
    n = za.shape[0]
    if n < 2 or zb.shape != za.shape:
        raise ValueError(f"info_nce needs two (N >= 2, P) views of the same shape, got {tuple(za.shape)} and "
                         f"{tuple(zb.shape)}")
    z = F.normalize(torch.cat([za, zb]).float(), dim=1)
    sim = z @ z.T / temperature  # (2N, 2N)
    self_mask = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    sim = sim.masked_fill(self_mask, float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    loss = F.cross_entropy(sim, target)
    accuracy = (sim.argmax(dim=1) == target).float().mean().detach()
    return loss, accuracy


class ContrastiveModel(nn.Module):
    """A detector's :meth:`embed` followed by a two-layer projection MLP (SimCLR's ``g``)."""

    def __init__(self, detector: nn.Module, feature_dim: int, projection_dim: int) -> None:
        super().__init__()
        self.detector = detector
        hidden = max(projection_dim, feature_dim)
        self.projection = nn.Sequential(nn.Linear(feature_dim, hidden), nn.ReLU(), nn.Linear(hidden, projection_dim))

    def forward(self, slow: torch.Tensor, fast: torch.Tensor, rois: torch.Tensor,
                zone_masks: torch.Tensor | None = None) -> torch.Tensor:
        return self.projection(self.detector.embed(slow, fast, rois, zone_masks))


# --------------------------------------------------------------------------- proposals
def propose_people(frames: np.ndarray, frame_step: int, min_score: float, recording: int) -> list[TubeSample]:
    """Person boxes of every ``frame_step``-th frame from the classical detector (all frames
    are fed to it, in order, so its background model sees the whole recording)."""
    from thermal_action.people.person_detector import PersonDetector

    detections = PersonDetector().detect_recording(frames)
    samples = []
    for t in range(0, len(detections), frame_step):
        d = detections[t]
        for box, score in zip(d.boxes_xyxy, d.scores):
            if score >= min_score and box[2] > box[0] and box[3] > box[1]:
                samples.append(TubeSample(recording, t, tuple(float(v) for v in box)))
    return samples


# --------------------------------------------------------------------------- batches
class TwoViewBatcher:
    """Builds the two augmented views of a list of samples as two model inputs."""

    def __init__(self, cfg: Config, frames: Sequence[np.ndarray], alpha: int) -> None:
        self.builder = build_clip_builder(cfg.data)
        p = cfg.pretrain
        self.augmenter = Augmenter(flip=True, rotate=True, temp_offset=p.temp_offset, temp_gain=p.temp_gain,
                                   box_jitter=p.box_jitter, temporal_jitter=p.temporal_jitter)
        self.frames = frames
        self.alpha = alpha  # the model's slow/fast ratio

    def view(self, samples: Sequence[TubeSample], rng: np.random.Generator, quarter_turn: bool):
        """``(slow, fast, rois, zone_masks)`` of one view of ``samples``: one clip and one RoI per
        sample. Unlabelled recordings come without a room: the zone masks are empty (a model with
        ``model.room`` masks learns to read them when fine-tuned)."""
        clips, boxes, masks = [], [], []
        for s in samples:
            frames = self.frames[s.recording]
            h, w = frames.shape[1:]
            params = self.augmenter.sample(rng, 1, h, w)
            built = self.builder.build(frames, s.frame, np.asarray([s.box_xyxy]), params)
            clips.append(torch.from_numpy(built.clip))
            boxes.append(torch.from_numpy(built.boxes_xyxy).reshape(1, 4))
            masks.append(torch.from_numpy(built.zone_masks))
        clip = torch.stack(clips)  # (B, 1, T, H, W)
        zone_masks = torch.stack(masks)  # (B, Z, H, W)
        index = torch.arange(len(samples), dtype=torch.float32)[:, None]
        rois = torch.cat([index, torch.cat(boxes).float()], dim=1)
        if quarter_turn:  # a transpose of the whole batch: with the per-clip flips, any quarter turn
            h, w = clip.shape[-2:]
            clip, rois = transform_clip(clip, True, False, False), transform_rois(rois, h, w, True, False, False)
            zone_masks = transform_clip(zone_masks, True, False, False)
        slow, fast = pack_pathways(clip, self.alpha)
        return slow, fast, rois, zone_masks


def _seeded(*keys: int) -> np.random.Generator:
    return np.random.default_rng([int(k) & 0xFFFFFFFF for k in keys])


def pretrain(cfg: Config, recordings: Sequence[str | Path], out_dir: str | Path) -> PretrainResult:
    """Contrastive pretraining of ``cfg.model``'s backbone on unlabelled recordings.

    Args:
        cfg: the resolved config: ``model.*`` is the model to pretrain (and later fine-tune),
            ``data.*`` the clip preprocessing, ``pretrain.*`` this step, ``seed`` the seed.
        recordings: ``.h5`` files or folders of them (annotations are not read).
        out_dir: run directory (created; must not hold a previous pretraining run).

    Returns:
        A :class:`PretrainResult`; the weights load with ``model.pretrained=<weights>``.

    Raises:
        DatasetError: a recording is unreadable.
        ValueError: bad settings, or fewer than two people found.
        FileExistsError: ``out_dir`` already holds a pretraining run.
    """
    from safetensors.torch import save_file

    from thermal_action.models.build import build_model
    from thermal_action.training.schedule import LrSchedule, build_optimizer

    p = cfg.pretrain
    if cfg.model.ensemble > 1:
        # One backbone is pretrained; an ensemble cannot start from it (models/build.py).
        logger.info("model.ensemble=%d: pretraining one model; fine-tune it with model.ensemble=1 "
                    "model.pretrained=<weights>", cfg.model.ensemble)
        cfg = replace_values(cfg, {"model.ensemble": 1})
    # The config's declared ranges (batch_size >= 2, epochs >= 1, ...), also for a Config built in code.
    config_from_dict(config_to_dict(cfg))
    out = Path(out_dir)
    if (out / WEIGHTS_NAME).exists():
        raise FileExistsError(f"{out} already holds a pretraining run ({WEIGHTS_NAME}); choose another --out")
    files = find_recordings(recordings)
    t0 = time.perf_counter()

    frames: list[np.ndarray] = []
    samples: list[TubeSample] = []
    people: dict[str, int] = {}
    for i, path in enumerate(files):
        rec = read_recording(path, tuple(cfg.data.valid_range))
        if (rec.height, rec.width) != (FRAME_HEIGHT, FRAME_WIDTH):
            logger.warning("%s: %dx%d frames; the person detector and the model were designed for %dx%d",
                           path, rec.height, rec.width, FRAME_HEIGHT, FRAME_WIDTH)
        frames.append(rec.frames)
        found = propose_people(rec.frames, p.frame_step, p.min_score, i)
        people[path.name] = len(found)
        samples.extend(found)
        logger.info("%s: %d frames, %d person tubes (every %d-th frame)", path.name, rec.num_frames, len(found),
                    p.frame_step)
    if len(samples) < 2:
        raise DatasetError(files[0] if len(files) == 1 else Path(str(files[0].parent)),
                           f"the person detector found {len(samples)} people in {len(files)} recordings: "
                           "nothing to pretrain on")

    torch.manual_seed(cfg.seed)
    detector = build_model(cfg.model, num_classes=1)
    feature_dim = detector.head.dim_person
    model = ContrastiveModel(detector, feature_dim, p.projection_dim)
    use_cuda = cfg.trainer.accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available()
    device = torch.device("cuda" if use_cuda else "cpu")
    model.to(device)
    if cfg.trainer.channels_last:
        model.to(memory_format=torch.channels_last_3d)
    trained = nn.ModuleList([detector.backbone, model.projection])  # the head's classifier is not pretrained
    trainable = [q for q in trained.parameters() if q.requires_grad]
    optimizer = build_optimizer(trained, "adamw", p.lr, p.weight_decay)
    batcher = TwoViewBatcher(cfg, frames, detector.alpha)
    per_epoch = min(len(samples), p.max_samples) if p.max_samples > 0 else len(samples)
    steps_per_epoch = per_epoch // p.batch_size or 1
    total = steps_per_epoch * p.epochs
    # Training's own schedule: cosine decay after a 5% linear warm-up, per optimiser step.
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, LrSchedule(total_steps=total, warmup_steps=max(1, int(0.05 * total)), kind="cosine"))

    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    log_path = out / "pretrain_log.jsonl"
    log_path.write_text("")
    (out / "people.json").write_text(json.dumps({"recordings": [str(f) for f in files], "people": people}, indent=2))
    salt = zlib.crc32(b"pretrain")
    model.train()
    step, loss_value, acc_value = 0, float("nan"), float("nan")
    for epoch in range(p.epochs):
        rng = _seeded(cfg.seed, salt, epoch)
        order = rng.permutation(len(samples))[:per_epoch]
        e0, losses, accs = time.perf_counter(), [], []
        for b in range(steps_per_epoch):
            batch = [samples[i] for i in order[b * p.batch_size:(b + 1) * p.batch_size]]
            if len(batch) < 2:
                continue
            brng = _seeded(cfg.seed, salt, epoch, b)
            views = []
            for turn in (False, bool(brng.random() < 0.5)):
                slow, fast, rois, zone_masks = (t.to(device) for t in batcher.view(batch, brng, turn))
                if cfg.trainer.channels_last:
                    slow = slow.contiguous(memory_format=torch.channels_last_3d)
                    fast = fast.contiguous(memory_format=torch.channels_last_3d)
                views.append(model(slow, fast, rois, zone_masks))
            loss, acc = info_nce(views[0], views[1], p.temperature)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 5.0)
            optimizer.step()
            scheduler.step()
            step += 1
            losses.append(float(loss.detach()))
            accs.append(float(acc))
        loss_value, acc_value = float(np.mean(losses)), float(np.mean(accs))
        seconds = time.perf_counter() - e0
        entry = {"epoch": epoch, "loss": loss_value, "pair_accuracy": acc_value, "steps": len(losses),
                 "tubes_per_s": len(losses) * p.batch_size / max(seconds, 1e-9), "seconds": seconds}
        with log_path.open("a") as f:
            f.write(json.dumps(entry) + "\n")
        logger.info("pretrain epoch %d: InfoNCE %.3f, pair retrieval %.1f%%, %.0f tubes/s", epoch, loss_value,
                    100 * acc_value, entry["tubes_per_s"])

    state = {f"backbone.{k}": v.detach().cpu().contiguous() for k, v in detector.backbone.state_dict().items()}
    weights = out / WEIGHTS_NAME
    tmp = weights.with_suffix(".tmp")
    save_file(state, str(tmp), metadata={"producer": "thermal-action pretrain", "variant": cfg.model.variant,
                                         "epochs": str(p.epochs), "samples": str(len(samples))})
    tmp.replace(weights)
    return PretrainResult(out, weights, p.epochs, len(samples), people, loss_value, acc_value,
                          time.perf_counter() - t0)


__all__ = ["ContrastiveModel", "PretrainResult", "TubeSample", "TwoViewBatcher", "find_recordings", "info_nce",
           "pretrain", "propose_people"]
