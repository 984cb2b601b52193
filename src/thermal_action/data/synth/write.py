"""Writing a dataset in the real on-disk format: HDF5 files, COCO-style and raw annotations."""

from __future__ import annotations

import dataclasses
import json
import logging
from datetime import datetime, timezone
from pathlib import Path

import h5py
import numpy as np

from thermal_action.data.rooms import LayoutTimeline, RoomLayout, RoomMap, write_rooms
from thermal_action.data.synth.config import H, W, SynthConfig
from thermal_action.data.synth.recording import SynthRecording, _room_of, simulate_recording
from thermal_action.errors import refuse_overwrite
from thermal_action.structures import DEFAULT_CLASS_NAMES, boxes_xyxy_to_cxcywh_norm

log = logging.getLogger(__name__)


def _norm_box(b: np.ndarray) -> list[float]:
    # Corners on a 1/100 px grid inside the frame (the labelling tool's rounding, a pre-step
    # the converter does not do), then YOLO normalized like the tool writes.
    corners = [round(float(v), 2) for v in b]
    return boxes_xyxy_to_cxcywh_norm(np.asarray(corners), W, H)[0].tolist()


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat()


def create_h5(path: Path, sensor_id: str, mac_address: str, timestamps: np.ndarray,
              created_at_ms: int) -> h5py.File:
    """Opens a new recording file laid out exactly like the real pipeline's (datasets, chunks,
    attributes), its ``frames`` not yet written: write them in slices, then close the file."""
    n = len(timestamps)
    f = h5py.File(path, "w")
    f.create_dataset("frames", shape=(n, H, W), dtype=np.float32, chunks=(min(64, n), H, W),
                     compression="gzip", compression_opts=4)
    f.create_dataset("timestamps", data=timestamps.astype(np.int64))
    f.create_dataset("frame_seqs", data=timestamps.astype(np.int64))
    f.attrs["sensor_id"] = sensor_id
    f.attrs["mac_address"] = mac_address
    f.attrs["frame_height"] = np.int64(H)
    f.attrs["frame_width"] = np.int64(W)
    f.attrs["total_frames"] = np.int64(n)
    f.attrs["min_timestamp"] = np.int64(timestamps.min())
    f.attrs["max_timestamp"] = np.int64(timestamps.max())
    f.attrs["compression"] = "gzip"
    f.attrs["compression_level"] = np.int64(4)
    # Real files count 0 here even with dropped packets (only undecodable frames count).
    f.attrs["corrupted_count"] = np.int64(0)
    f.attrs["created_at"] = _iso(created_at_ms)
    return f


def write_h5(path: Path, sensor_id: str, mac_address: str, frames: np.ndarray, timestamps: np.ndarray,
             created_at_ms: int) -> None:
    """Writes one recording file exactly like the real pipeline (datasets, chunks, attributes)."""
    with create_h5(path, sensor_id, mac_address, timestamps, created_at_ms) as f:
        f["frames"][...] = frames.astype(np.float32)


def _write_json(path: Path, obj: object, indent: int | None) -> None:
    # No trailing newline, like the real files.
    path.write_text(json.dumps(obj, indent=indent), encoding="utf-8")


def class_mapping() -> dict:
    """The ``class_mapping.json`` content for the 14 classes."""
    return {"classes": list(DEFAULT_CLASS_NAMES), "class_to_id": {c: i for i, c in enumerate(DEFAULT_CLASS_NAMES)}}


def _raw_lines(rec: SynthRecording, rng: np.random.Generator, jitter_ms: int) -> list[str]:
    lines = []
    ann_time = int(rec.timestamps[-1]) + 20 * 86_400_000 + int(rng.integers(0, 86_400_000))
    for j, kf in enumerate(rec.keyframes):
        anns = []
        for p in rec.people:
            anns.append({"bbox": _norm_box(p.annotated_boxes_xyxy[j]), "category": "person",
                         "subcategory": DEFAULT_CLASS_NAMES[int(p.labels[kf])], "attribute_obscured": "0%",
                         "attribute_heat_residual": None, "object_id": p.object_id})
        for t in rec.things if rec.furniture_labelled else ():
            anns.append({"bbox": _norm_box(t.box_xyxy), "category": t.category, "subcategory": t.subcategory,
                         "attribute_obscured": "0%", "attribute_heat_residual": t.heat_residual[j],
                         "object_id": t.object_id})
        jitter = 0
        if jitter_ms > 0:
            # Stay nearer to this frame than to its neighbours, so that the keyframe is still
            # the nearest frame (bursts put frames ~37 ms apart).
            ts = rec.timestamps
            gaps = [int(ts[kf] - ts[kf - 1])] if kf > 0 else []
            gaps += [int(ts[kf + 1] - ts[kf])] if kf + 1 < len(ts) else []
            bound = min([jitter_ms] + [(g - 1) // 2 for g in gaps])
            jitter = int(rng.integers(-bound, bound + 1))
        ann_time += int(rng.integers(2_000, 60_000))
        line = {"data_id": rec.sensor_id, "mac_address": rec.mac_address, "annotator_id": "synth",
                "annotation_time": ann_time, "data_time": int(rec.timestamps[kf]) + jitter, "annotations": anns}
        lines.append(json.dumps(line, separators=(",", ":")))
    return lines


def context_objects(rec: SynthRecording, j: int, image_id: str) -> list[dict]:
    """Keyframe ``j``'s objects and furniture as ``convert-annotations`` writes them
    (``context_objects`` of the annotation file); none when the annotator did not box them."""
    if not rec.furniture_labelled:
        return []
    return [{"image_id": image_id, "bbox": _norm_box(t.box_xyxy), "category": t.category,
             "subcategory": t.subcategory, "object_id": t.object_id, "attribute_obscured": "0%",
             "attribute_heat_residual": t.heat_residual[j]} for t in rec.things]


def rooms_file_layouts(recordings: list[SynthRecording]) -> RoomMap:
    """``rooms.json`` of a dataset: per room (its sensor's MAC address) the furniture of its
    first recording, and a new layout valid from the first frame of every later recording
    whose furniture differs."""
    rooms: dict[str, list[RoomLayout]] = {}
    for rec in sorted(recordings, key=lambda r: int(r.timestamps[0])):
        layouts = rooms.setdefault(rec.mac_address, [])
        if not layouts or layouts[-1].zones != rec.layout.zones:
            layouts.append(RoomLayout(rec.layout.zones, "rooms file", int(rec.timestamps[0])))
    return RoomMap({mac: LayoutTimeline(layouts) for mac, layouts in rooms.items()})


def existing_outputs(out_dir: str | Path, config: SynthConfig) -> list[Path]:
    """The files :func:`generate_dataset` would replace in ``out_dir`` (empty for a fresh directory)."""
    out = Path(out_dir)
    paths = [out / "frames" / "sensor_info.json", out / "rooms.json"] + [
        out / "annotations" / f"{s}.json" for s in ("train", "val", "class_mapping")]
    for index in range(config.num_recordings):
        room, take = _room_of(index, config)
        sensor = f"SYN{room:02d}_R{take + 1}"
        paths += [out / "frames" / f"{sensor}.h5", out / "raw_annotations" / f"{sensor}_annotation.json"]
    return [p for p in paths if p.exists()]


def generate_dataset(out_dir: str | Path, config: SynthConfig | None = None, overwrite: bool = False) -> dict:
    """Writes a synthetic dataset in the real on-disk format.

    Args:
        out_dir: dataset directory (created); gets ``frames/``, ``annotations/``,
            ``raw_annotations/`` and ``rooms.json`` (every room's furniture over time, keyed
            by its sensor's MAC address).
        config: what to generate; defaults to :class:`SynthConfig()`.
        overwrite: replace files already there (``sensor_info.json``, ``train.json``...);
            without it an existing dataset is refused (:class:`FileExistsError`).

    Returns:
        A JSON-serialisable summary: recordings with their split and counts, boxes per
        class per split, and classes missing from a split.
    """
    config = config or SynthConfig()
    config.validate()
    out = Path(out_dir)
    if not overwrite:
        refuse_overwrite(existing_outputs(out, config), "synth")
    (out / "frames").mkdir(parents=True, exist_ok=True)
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    (out / "raw_annotations").mkdir(parents=True, exist_ok=True)

    categories = [{"id": i, "name": c} for i, c in enumerate(DEFAULT_CLASS_NAMES)]
    splits: dict[str, dict] = {
        s: {"images": [], "annotations": [], "categories": categories,
            "info": {"description": f"Synthetic Thermal Sensor Human Action Detection Dataset ({d}), "
                                    f"seed {config.seed}", "version": "1.0", "year": 2025},
            "context_objects": []}
        for s, d in (("train", "Training"), ("val", "Validation"))
    }
    sensor_info: dict[str, dict] = {}
    summary_recs = []
    for_rooms: list[SynthRecording] = []  # the recordings without their frames, for rooms.json
    ann_id = 0
    for index in range(config.num_recordings):
        rec = simulate_recording(config, index)
        rng = np.random.default_rng([config.seed, 13, index])
        created_ms = int(rec.timestamps[-1]) + 25 * 86_400_000 + int(rng.integers(0, 86_400_000))
        write_h5(out / "frames" / f"{rec.sensor_id}.h5", rec.sensor_id, rec.mac_address, rec.frames,
                 rec.timestamps, created_ms)
        raw = _raw_lines(rec, rng, config.data_time_jitter_ms)
        (out / "raw_annotations" / f"{rec.sensor_id}_annotation.json").write_text("\n".join(raw), encoding="utf-8")
        split = splits[rec.split]
        for j, kf in enumerate(rec.keyframes):
            ts = int(rec.timestamps[kf])
            image_id = f"{rec.sensor_id}_{ts}"
            split["images"].append({"id": image_id, "sensor_id": rec.sensor_id, "mac_address": rec.mac_address,
                                    "timestamp": ts, "width": W, "height": H, "frame_idx": int(kf)})
            for p in rec.people:
                label = int(p.labels[kf])
                split["annotations"].append({
                    "id": ann_id, "image_id": image_id, "bbox": _norm_box(p.annotated_boxes_xyxy[j]),
                    "category_id": label, "category_name": DEFAULT_CLASS_NAMES[label], "object_id": p.object_id,
                    "attribute_obscured": "0%"})
                ann_id += 1
            split["context_objects"].extend(context_objects(rec, j, image_id))
        # For rooms.json, without the frames (all recordings' frames at once would be a lot).
        for_rooms.append(dataclasses.replace(rec, frames=rec.frames[:0], dropped_clean_frames=rec.frames[:0]))
        sensor_info[rec.sensor_id] = {
            "hdf5_path": f"{out.name}/frames/{rec.sensor_id}.h5", "mac_address": rec.mac_address,
            "total_frames": int(len(rec.frames)), "corrupted_frames": 0, "annotation_count": int(len(rec.keyframes)),
            "min_timestamp": int(rec.timestamps.min()), "max_timestamp": int(rec.timestamps.max())}
        summary_recs.append({"sensor_id": rec.sensor_id, "split": rec.split, "room": rec.room,
                             "frames": int(len(rec.frames)), "keyframes": int(len(rec.keyframes)),
                             "people": len(rec.people), "boxes": int(len(rec.keyframes) * len(rec.people)),
                             "dropped_frames": int(len(rec.dropped_frames)),
                             "furniture": [t.subcategory for t in rec.things if t.category == "furniture"],
                             "furniture_labelled": rec.furniture_labelled, "layout_changes": rec.layout_changes})

    _write_json(out / "frames" / "sensor_info.json", sensor_info, 2)
    for s in ("train", "val"):
        _write_json(out / "annotations" / f"{s}.json", splits[s], 1)
    _write_json(out / "annotations" / "class_mapping.json", class_mapping(), 2)
    rooms = rooms_file_layouts(for_rooms)
    write_rooms(rooms, out / "rooms.json")

    class_counts = {}
    missing = {}
    for s in ("train", "val"):
        counts = {c: 0 for c in DEFAULT_CLASS_NAMES}
        for a in splits[s]["annotations"]:
            counts[a["category_name"]] += 1
        class_counts[s] = counts
        missing[s] = [c for c, k in counts.items() if k == 0]
    absent = [c for c in DEFAULT_CLASS_NAMES if class_counts["train"][c] + class_counts["val"][c] == 0]
    if absent:
        log.warning("classes without any box in this synthetic dataset: %s", absent)
    return {"out_dir": str(out), "seed": config.seed, "recordings": summary_recs,
            "rooms_file": str(out / "rooms.json"),
            "layouts": {mac: len(t.layouts) for mac, t in rooms.sensors.items()},
            "images": {s: len(splits[s]["images"]) for s in splits},
            "boxes": {s: len(splits[s]["annotations"]) for s in splits},
            "class_counts": class_counts, "missing_classes": missing}
