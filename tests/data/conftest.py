"""Fixtures that WRITE tiny datasets in the exact on-disk format (h5py + json).

Independent of the synthetic generator on purpose: these files follow DATA_FORMAT.md
line by line, so the reader is tested against the format, not against our own writer.

``tiny_dataset`` layout (frames 40 x 60, °C, background 18 °C, persons +7 °C blobs
exactly filling their annotated boxes):

- ``S1.h5``: 40 frames; frames 5 and 6 have dropped packets (last 576 / 1152 pixels at
  -273.2 °C). train keyframes: frame 0 (two persons; window padded), frame 20 (no
  person), frame 39 (one person, last frame; window padded).
- ``S2.h5``: 24 frames; val keyframes: frames 8 and 16 (one person each).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

DEFAULT_CATEGORIES = [
    {"id": i, "name": n}
    for i, n in enumerate(
        [
            "sitting", "standing", "walking", "lying down-lying with risk", "lying down-lying on the bed/couch",
            "leaning", "transition-normal transition", "transition-lying with risk transition",
            "transition-lying on the bed transition", "lower position-other", "lower position-kneeling",
            "lower position-bending", "lower position-crouching", "other",
        ]
    )
]
BACKGROUND_C = 18.0
PERSON_C = 7.0  # °C above the background
T0 = 1760482247375


def write_recording(
    path: Path,
    frames: np.ndarray,
    timestamps: np.ndarray | None = None,
    sensor_id: str | None = None,
    with_frames: bool = True,
) -> Path:
    """Writes ``frames/<sensor>.h5`` exactly as DATA_FORMAT.md describes."""
    import h5py

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = np.asarray(frames, dtype=np.float32)
    n = frames.shape[0]
    if timestamps is None:
        # Bursty like the real files: 165 ms steps, a 510 ms gap, then 37 ms steps.
        steps = np.tile([165, 165, 510, 37, 37], n // 5 + 1)[: max(0, n - 1)]
        timestamps = T0 + np.concatenate([[0], np.cumsum(steps)]).astype(np.int64)
    timestamps = np.asarray(timestamps, dtype=np.int64)
    sensor_id = sensor_id or path.stem
    with h5py.File(path, "w") as f:
        if with_frames:
            f.create_dataset("frames", data=frames, compression="gzip", compression_opts=4,
                             chunks=(min(64, n), frames.shape[1], frames.shape[2]))
        f.create_dataset("timestamps", data=timestamps)
        f.create_dataset("frame_seqs", data=timestamps)
        f.attrs.update({
            "sensor_id": sensor_id,
            "mac_address": "02:00:1a:62:51:67",
            "frame_height": frames.shape[1],
            "frame_width": frames.shape[2],
            "total_frames": n,
            "min_timestamp": int(timestamps[0]),
            "max_timestamp": int(timestamps[-1]),
            "compression": "gzip",
            "compression_level": 4,
            "corrupted_count": 0,
            "created_at": "2025-11-12T09:31:09.641700+00:00",
        })
    return path


def write_annotations(path: Path, images: list[dict], annotations: list[dict],
                      categories: list[dict] | None = DEFAULT_CATEGORIES, **extra) -> Path:
    """Writes an ``annotations/<split>.json`` file (``categories=None`` leaves the key out)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"images": images, "annotations": annotations}
    if categories is not None:
        data["categories"] = categories
    data["info"] = {"description": "test", "version": "1.0", "year": 2025}
    data.update(extra)
    path.write_text(json.dumps(data))
    return path


def image(sensor: str, frame_idx: int, timestamps: np.ndarray, **extra) -> dict:
    ts = int(timestamps[frame_idx])
    return dict({"id": f"{sensor}_{ts}", "sensor_id": sensor, "mac_address": "02:00:1a:62:51:67",
                 "timestamp": ts, "width": 60, "height": 40, "frame_idx": frame_idx}, **extra)


def box_px(x1: float, y1: float, x2: float, y2: float, w: int = 60, h: int = 40) -> list[float]:
    """Pixel corners -> YOLO normalized cx, cy, w, h."""
    return [(x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h]


def annotation(ann_id: int, image_id: str, xyxy: tuple, category: int = 1, object_id: int = 0) -> dict:
    return {"id": ann_id, "image_id": image_id, "bbox": box_px(*xyxy), "category_id": category,
            "category_name": DEFAULT_CATEGORIES[category]["name"], "object_id": object_id,
            "attribute_obscured": "0%"}


def person_frames(n: int, boxes: dict[int, list[tuple]], seed: int = 0) -> np.ndarray:
    """``(n, 40, 60)`` °C: background with small noise, +7 °C inside each integer box."""
    rng = np.random.default_rng(seed)
    f = (BACKGROUND_C + rng.normal(0, 0.2, size=(n, 40, 60))).astype(np.float32)
    for t, bs in boxes.items():
        for x1, y1, x2, y2 in bs:
            f[t, y1:y2, x1:x2] += PERSON_C
    return f


@dataclass
class TinyDataset:
    root: Path
    frames: dict[str, np.ndarray]  # raw frames as written (with dropped packets)
    timestamps: dict[str, np.ndarray]
    boxes: dict[str, dict[int, list[tuple]]]  # sensor -> frame -> integer pixel boxes

    @property
    def train(self) -> Path:
        return self.root / "annotations" / "train.json"

    @property
    def val(self) -> Path:
        return self.root / "annotations" / "val.json"

    @property
    def frames_dir(self) -> Path:
        return self.root / "frames"


def make_tiny_dataset(root: Path) -> TinyDataset:
    root = Path(root)
    s1_boxes = {0: [(10, 10, 20, 18), (40, 20, 48, 34)], 39: [(25, 5, 37, 13)]}
    # Persons stay where they are in every frame, so any clip window sees them.
    s1_all = {t: s1_boxes[0] if t < 30 else s1_boxes[39] for t in range(40)}
    s1 = person_frames(40, s1_all, seed=1)
    s1[5].reshape(-1)[-576:] = -273.2
    s1[6].reshape(-1)[-1152:] = -273.2
    s2_boxes = {8: [(30, 10, 41, 19)], 16: [(30, 12, 41, 21)]}
    s2_all = {t: s2_boxes[8] if t < 12 else s2_boxes[16] for t in range(24)}
    s2 = person_frames(24, s2_all, seed=2)
    p1 = write_recording(root / "frames" / "S1.h5", s1)
    p2 = write_recording(root / "frames" / "S2.h5", s2)
    import h5py

    ts = {}
    for name, p in (("S1", p1), ("S2", p2)):
        with h5py.File(p, "r") as f:
            ts[name] = f["timestamps"][()]
    im_train = [image("S1", 0, ts["S1"]), image("S1", 20, ts["S1"]), image("S1", 39, ts["S1"])]
    anns_train = [
        annotation(0, im_train[0]["id"], s1_boxes[0][0], category=1, object_id=0),
        annotation(1, im_train[0]["id"], s1_boxes[0][1], category=3, object_id=1),
        annotation(2, im_train[2]["id"], s1_boxes[39][0], category=2, object_id=0),
    ]
    write_annotations(root / "annotations" / "train.json", im_train, anns_train)
    im_val = [image("S2", 8, ts["S2"]), image("S2", 16, ts["S2"])]
    anns_val = [
        annotation(10, im_val[0]["id"], s2_boxes[8][0], category=1, object_id=0),
        annotation(11, im_val[1]["id"], s2_boxes[16][0], category=3, object_id=0),
    ]
    write_annotations(root / "annotations" / "val.json", im_val, anns_val)
    names = [c["name"] for c in DEFAULT_CATEGORIES]
    (root / "annotations" / "class_mapping.json").write_text(
        json.dumps({"classes": names, "class_to_id": {n: i for i, n in enumerate(names)}}))
    return TinyDataset(root=root, frames={"S1": s1, "S2": s2}, timestamps=ts,
                       boxes={"S1": s1_boxes, "S2": s2_boxes})


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> TinyDataset:
    """A fresh two-recording dataset in ``tmp_path/ds`` (see module docstring)."""
    return make_tiny_dataset(tmp_path / "ds")


@pytest.fixture(scope="session")
def shared_tiny_dataset(tmp_path_factory) -> TinyDataset:
    """The same dataset written once per session, for tests that only read it."""
    return make_tiny_dataset(tmp_path_factory.mktemp("shared") / "ds")


@pytest.fixture
def fmt():
    """The format writers above, for tests that build their own (broken) files."""
    from types import SimpleNamespace

    return SimpleNamespace(
        write_recording=write_recording,
        write_annotations=write_annotations,
        image=image,
        annotation=annotation,
        box_px=box_px,
        person_frames=person_frames,
        make_tiny_dataset=make_tiny_dataset,
        categories=DEFAULT_CATEGORIES,
        background=BACKGROUND_C,
        person=PERSON_C,
    )
