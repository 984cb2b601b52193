"""Shared helpers for the inference tests: a tiny checkpoint and tiny recordings.

The checkpoint has TRAIN's exact on-disk layout (``training/checkpoint.py``) but comes
from a seeded, perturbed ``slowfast_tiny`` instead of a training run, so scores differ
clearly between boxes and classes (an untrained head gives ~uniform scores, which would
make score comparisons meaningless).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from helpers import configs
from thermal_action.alert_rule import AlertRule
from thermal_action.config import Config, config_to_dict
from thermal_action.structures import DEFAULT_CLASS_NAMES

T0 = 1_760_482_247_375


def tiny_config(*overrides: str) -> Config:
    """The tiny configuration with no dropout (the checkpoints here are not trained)."""
    return configs.tiny_config("model.dropout=0.0", *overrides)


def write_tiny_checkpoint(path: Path, cfg: Config | None = None, seed: int = 0,
                          score_activation: str = "softmax", frame_size: tuple[int, int] | None = (40, 60),
                          alert_rule: AlertRule | None = None) -> Path:
    """Writes a checkpoint in the training format from a seeded, perturbed tiny model
    (trained, as far as the checkpoint says, on ``frame_size`` frames, its fall alert rule
    ``alert_rule``: None writes none, as checkpoints from before rules)."""
    from thermal_action.models.build import build_model
    from thermal_action.models.checkpoint import CHECKPOINT_KEY, checkpoint_extras

    cfg = cfg or tiny_config()
    torch.manual_seed(seed)
    model = build_model(cfg.model, len(DEFAULT_CLASS_NAMES))
    with torch.no_grad():
        for p in model.parameters():
            # Zero-initialised residual BNs and a std-0.01 classifier make an untrained
            # model nearly constant; shake every weight so boxes get distinct scores.
            p.add_(torch.randn_like(p) * 0.2)
        for name, b in model.named_buffers():
            if name.endswith("running_var"):
                b.uniform_(0.5, 2.0)
            elif name.endswith("running_mean"):
                b.normal_(0.0, 0.1)
        # Then scale the classifier so logits have a std of ~1.5: scores neither
        # uniform nor saturated.
        model.eval()
        from thermal_action.structures import pack_pathways

        t = cfg.data.num_frames // cfg.data.frame_stride
        slow, fast = pack_pathways(torch.randn(2, 1, t, 40, 60), model.alpha)
        rois = torch.tensor([[0, 5, 5, 20, 15], [1, 30, 20, 45, 32]], dtype=torch.float32)
        masks, features = room_inputs(ROOM_LAYOUT, rois, 2)
        logits = model(slow, fast, rois, zone_masks=masks, zone_features=features)
        factor = 1.5 / float(logits.std())
        model.head.classifier.weight.mul_(factor)
        model.head.classifier.bias.mul_(factor)
    state = {"model." + k: v for k, v in model.state_dict().items()}
    ckpt = {
        "state_dict": state,
        "epoch": 0,
        "global_step": 0,
        CHECKPOINT_KEY: checkpoint_extras(config_to_dict(cfg), list(DEFAULT_CLASS_NAMES), score_activation,
                                          alert_rule=alert_rule, frame_size=frame_size),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, path)
    return path


def room_layout():
    """A bed in the left half and a chair on the right of a 40x60 view, as a rooms file gives it."""
    from thermal_action.data.rooms import RoomLayout, Zone

    return RoomLayout((Zone.from_box("bed", (0.05, 0.1, 0.45, 0.7)), Zone.from_box("chair", (0.7, 0.55, 0.9, 0.85))),
                      "rooms file")


ROOM_LAYOUT = room_layout()


def room_inputs(layout, rois: torch.Tensor, num_clips: int, h: int = 40, w: int = 60):
    """``(zone_masks (B, Z, H, W), zone_features (R, F))`` of one layout for every clip."""
    from thermal_action.data.rooms import person_zone_features, zone_masks

    masks = torch.from_numpy(zone_masks(layout, h, w))[None].repeat(num_clips, 1, 1, 1)
    return masks, torch.from_numpy(person_zone_features(rois[:, 1:].numpy(), layout, h, w))


def person_blob(h: int, w: int, cx: float, cy: float, sx: float = 2.5, sy: float = 2.0, amp: float = 7.0) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    return amp * np.exp(-(((xx - cx) / sx) ** 2 + ((yy - cy) / sy) ** 2) / 2)


def make_frames(n: int = 60, seed: int = 0, dropped: tuple[int, ...] = (7, 8, 30)) -> tuple[np.ndarray, list]:
    """``(n, 40, 60)`` °C frames with two warm people moving; packet ``f % 4`` of frame ``f`` lost
    for the frames in ``dropped``.

    Returns:
        ``(frames, tracks)``: tracks[i] = ``(n, 4)`` boxes_xyxy of person i per frame.
    """
    rng = np.random.default_rng(seed)
    h, w = 40, 60
    frames = 18.0 + rng.normal(0, 0.3, (n, h, w)).astype(np.float32)
    tracks = []
    for i, (x0, y0, vx) in enumerate([(12.0, 12.0, 0.4), (45.0, 28.0, -0.3)]):
        boxes = np.zeros((n, 4))
        for f in range(n):
            cx, cy = x0 + vx * f, y0 + 0.1 * f * (1 if i else -1)
            frames[f] += person_blob(h, w, cx, cy).astype(np.float32)
            boxes[f] = [cx - 5, cy - 4, cx + 5, cy + 4]
        tracks.append(boxes)
    from thermal_action.data.packets import pack_frame

    for f in dropped:
        if f < n:
            # As the receiver writes a lost packet: the rest packed forward, -273.2 °C at the end.
            frames[f] = pack_frame(frames[f], [f % 4])
    return frames, tracks


def write_recording(path: Path, frames: np.ndarray, sensor_id: str | None = None, t0: int = T0) -> Path:
    """Writes ``<sensor>.h5`` in the DATA_FORMAT.md layout (bursty timestamps)."""
    import h5py

    n = len(frames)
    steps = np.tile([165, 165, 510, 37, 37], n // 5 + 1)[: n - 1]
    ts = t0 + np.concatenate([[0], np.cumsum(steps)]).astype(np.int64)
    sensor_id = sensor_id or path.stem
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_dataset("frames", data=np.asarray(frames, np.float32), compression="gzip", compression_opts=4)
        f.create_dataset("timestamps", data=ts)
        f.create_dataset("frame_seqs", data=ts)
        f.attrs["sensor_id"] = sensor_id
        f.attrs["frame_height"] = 40
        f.attrs["frame_width"] = 60
        f.attrs["total_frames"] = n
    return path
