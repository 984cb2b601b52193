"""Raw labelling-tool annotations -> ``train.json`` / ``val.json`` / ``class_mapping.json``.

The labelling tool writes one JSON object per line per sensor
(``raw_annotations/<sensor>_annotation.json``, see ``docs/data-format.md``). This module turns
those lines plus the recordings' timestamps (``frames/<sensor>.h5``) into the COCO-like
keyframe files the rest of the project reads:

- Each line (a keyframe) is matched to the frame whose timestamp is nearest to its
  ``data_time``. A keyframe farther than ``tolerance_ms`` from every frame is not
  used; it is counted, logged and listed in the summary (file, line, distance).
- ``category == "person"`` boxes become action annotations: ``subcategory`` is the
  action, ``object_id`` the track id. Any other box (objects, furniture) is kept in
  a separate ``context_objects`` list of the output file, for models that use scene
  context. An unknown action is an error naming the file and line.
- Splits: ``"recording"`` (default) holds out whole recordings, the latest ones by
  start time, because neighbouring keyframes of one recording share their labels
  (a random keyframe split leaks: copying the nearest training label scores 84% on
  real data). With a single recording it holds out the last time block instead and
  says so. ``"random"`` splits keyframes at random with a seed, as the original
  converter did (and warns about the leak).
- Annotation ids are numbered over all recordings (sorted by sensor id), keyframes
  in frame order and boxes in line order, before the split, so they do not depend
  on the split.

Boxes are written as annotated (the loader converts and clips them, in one place);
one poking out of the frame by at most ``MAX_BOX_OVERHANG`` pixels is listed, one
further out or without size is an error. Repairs are counted, logged and listed,
never silent: a second line for the same frame
replaces the first (the later annotation wins); a second person box with the same
``object_id`` in one keyframe is left out. Anything else that cannot be used raises
:class:`DatasetError` with the file and line.
"""

from __future__ import annotations

import difflib
import json
import logging
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from thermal_action.errors import DatasetError, refuse_overwrite
from thermal_action.structures import (
    DEFAULT_CLASS_NAMES,
    DEFAULT_MAX_BOX_OVERHANG,
    FRAME_HEIGHT,
    FRAME_WIDTH,
    as_boxes_cxcywh_norm,
    box_overhang_px,
    boxes_cxcywh_norm_to_xyxy,
    check_box_cxcywh_norm,
)

log = logging.getLogger(__name__)

RAW_SUFFIX = "_annotation.json"
#: Pixels a box may poke out of the frame and still be clipped (not rejected).
MAX_BOX_OVERHANG = DEFAULT_MAX_BOX_OVERHANG
_LIST_LIMIT = 200  # entries listed per problem kind in the summary (all are counted)


@dataclass
class RawBox:
    """One box of a raw keyframe line."""

    bbox: list[float]  # YOLO normalized cx, cy, w, h
    category: str  # "person", "object", "furniture"
    subcategory: str  # the action (persons) or what the thing is
    object_id: int | None
    attribute_obscured: Any = "0%"
    attribute_heat_residual: Any = None


@dataclass
class RawKeyframe:
    """One line of a raw annotation file."""

    path: Path
    line: int  # 1-based line number
    sensor_id: str
    mac_address: str | None
    data_time: int  # ms
    annotation_time: int | None
    boxes: list[RawBox] = field(default_factory=list)


def _num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def read_raw_annotations(path: str | Path, sensor_id: str | None = None) -> list[RawKeyframe]:
    """Parses one labelling-tool file.

    Args:
        path: ``<sensor>_annotation.json`` (JSON lines).
        sensor_id: expected ``data_id`` of every line; default: the file name's sensor.

    Returns:
        One :class:`RawKeyframe` per non-blank line, in file order.

    Raises:
        DatasetError: malformed JSON, missing or mistyped fields, an unknown person
            action, or a ``data_id`` of another sensor; names the file and line.
    """
    path = Path(path)
    if sensor_id is None:
        sensor_id = path.name[: -len(RAW_SUFFIX)] if path.name.endswith(RAW_SUFFIX) else path.stem
    known = set(DEFAULT_CLASS_NAMES)
    out: list[RawKeyframe] = []
    with open(path, encoding="utf-8") as fh:
        for lineno, text in enumerate(fh, start=1):
            if not text.strip():
                continue
            rec = f"line {lineno}"
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as e:
                raise DatasetError(path, f"malformed JSON: {e.msg} at column {e.colno}", rec) from None
            if not isinstance(obj, dict):
                raise DatasetError(path, f"expected a JSON object, got {type(obj).__name__}", rec)
            data_id = obj.get("data_id", sensor_id)
            if data_id != sensor_id:
                raise DatasetError(path, f"data_id {data_id!r} is not this file's sensor {sensor_id!r}", rec)
            if not _num(obj.get("data_time")):
                raise DatasetError(path, f"data_time must be a number (ms), got {obj.get('data_time')!r}", rec)
            anns = obj.get("annotations")
            if not isinstance(anns, list):
                raise DatasetError(path, f"annotations must be a list, got {type(anns).__name__}", rec)
            kf = RawKeyframe(path=path, line=lineno, sensor_id=sensor_id, mac_address=obj.get("mac_address"),
                             data_time=int(obj["data_time"]),
                             annotation_time=int(obj["annotation_time"]) if _num(obj.get("annotation_time")) else None)
            for j, a in enumerate(anns):
                where = f"line {lineno}, box {j}"
                if not isinstance(a, dict):
                    raise DatasetError(path, "a box must be a JSON object", where)
                bbox = a.get("bbox")
                # The frame size comes with the recording: the full check is in convert_annotations.
                as_boxes_cxcywh_norm(bbox, source=path, record=where, single=True)
                category = a.get("category")
                sub = a.get("subcategory")
                if not isinstance(category, str):
                    raise DatasetError(path, f"category must be a string, got {category!r}", where)
                oid = a.get("object_id")
                if oid is not None and not (isinstance(oid, int) and not isinstance(oid, bool)):
                    raise DatasetError(path, f"object_id must be an integer, got {oid!r}", where)
                if category == "person":
                    if sub not in known:
                        close = difflib.get_close_matches(str(sub), DEFAULT_CLASS_NAMES, n=1, cutoff=0.5)
                        hint = f"; did you mean {close[0]!r}?" if close else ""
                        raise DatasetError(path, f"unknown action subcategory {sub!r}{hint} "
                                                 f"(known: {', '.join(DEFAULT_CLASS_NAMES)})", where)
                    if oid is None:
                        raise DatasetError(path, "person box without object_id (track id)", where)
                kf.boxes.append(RawBox(bbox=[float(v) for v in bbox], category=category, subcategory=str(sub),
                                       object_id=oid, attribute_obscured=a.get("attribute_obscured", "0%"),
                                       attribute_heat_residual=a.get("attribute_heat_residual")))
            out.append(kf)
    return out


@dataclass
class _Recording:
    sensor_id: str
    raw_path: Path
    h5_path: Path
    timestamps: np.ndarray  # (N,) int64
    mac_address: str | None
    width: int
    height: int


def _open_recording(raw_path: Path, frames_dir: Path, sensor_id: str) -> _Recording:
    h5_path = frames_dir / f"{sensor_id}.h5"
    if not h5_path.is_file():
        raise DatasetError(raw_path, f"no frames file {h5_path} for sensor {sensor_id!r}")
    try:
        with h5py.File(h5_path, "r") as f:
            if "timestamps" not in f:
                raise DatasetError(h5_path, "no 'timestamps' dataset")
            ts = np.asarray(f["timestamps"][()], dtype=np.int64)
            mac = f.attrs.get("mac_address")
            width = int(f.attrs.get("frame_width", FRAME_WIDTH))
            height = int(f.attrs.get("frame_height", FRAME_HEIGHT))
    except OSError as e:
        raise DatasetError(h5_path, f"cannot read HDF5 file: {e}") from None
    if ts.ndim != 1 or len(ts) == 0:
        raise DatasetError(h5_path, f"timestamps must be a non-empty 1-D array, got shape {ts.shape}")
    if np.any(np.diff(ts) <= 0):
        bad = int(np.argmax(np.diff(ts) <= 0)) + 1
        raise DatasetError(h5_path, "timestamps are not strictly increasing", f"frame {bad}")
    if isinstance(mac, bytes):
        mac = mac.decode()
    return _Recording(sensor_id, raw_path, h5_path, ts, None if mac is None else str(mac), width, height)


def _nearest(ts: np.ndarray, t: int) -> int:
    i = int(np.searchsorted(ts, t))
    if i == 0:
        return 0
    if i >= len(ts):
        return len(ts) - 1
    return i if ts[i] - t < t - ts[i - 1] else i - 1


def _limited(items: list) -> list:
    return items[:_LIST_LIMIT]


def convert_annotations(
    raw_dir: str | Path,
    frames_dir: str | Path,
    out_dir: str | Path,
    split: str = "recording",
    val_fraction: float = 0.2,
    seed: int = 42,
    tolerance_ms: float = 50.0,
    min_context_frames: int = 0,
    overwrite: bool = False,
) -> dict:
    """Converts raw labelling-tool files into ``train.json``, ``val.json`` and ``class_mapping.json``.

    Args:
        raw_dir: directory of ``<sensor>_annotation.json`` files.
        frames_dir: directory of ``<sensor>.h5`` files.
        out_dir: where the three JSON files go (created).
        split: ``"recording"`` (hold out whole recordings; a later time block when
            there is only one) or ``"random"`` (keyframes at random; leaks).
        val_fraction: share of recordings (or keyframes) for val.
        seed: random split seed.
        tolerance_ms: largest accepted distance between ``data_time`` and the nearest
            frame timestamp.
        min_context_frames: leave out keyframes with fewer frames than this on either
            side (0 keeps all; clip windows are padded). Left-out keyframes are listed.
        overwrite: replace ``train.json``, ``val.json`` or ``class_mapping.json`` already in
            ``out_dir`` (a hand-made split); without it they are refused (:class:`FileExistsError`).

    Returns:
        A JSON-serialisable summary: counts per stage, the unmatched and left-out
        keyframes, repairs, the split and the class counts per split.
    """
    raw_dir, frames_dir, out_dir = Path(raw_dir), Path(frames_dir), Path(out_dir)
    if split not in ("recording", "random"):
        raise ValueError(f"split must be 'recording' or 'random', got {split!r}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if not overwrite:
        refuse_overwrite([p for p in (out_dir / f"{n}.json" for n in ("train", "val", "class_mapping"))
                          if p.exists()], "convert-annotations")
    if not raw_dir.is_dir():
        raise DatasetError(raw_dir, "raw annotation directory not found")
    if not frames_dir.is_dir():
        raise DatasetError(frames_dir, "frames directory not found")
    raw_files = sorted(raw_dir.glob(f"*{RAW_SUFFIX}"))
    if not raw_files:
        raise DatasetError(raw_dir, f"no *{RAW_SUFFIX} files")

    unmatched: list[dict] = []
    edge: list[dict] = []
    duplicates: list[dict] = []
    dup_tracks: list[dict] = []
    outside: list[dict] = []
    # Matched keyframes per recording: frame_idx -> (RawKeyframe, frame timestamp).
    per_rec: list[tuple[_Recording, dict[int, RawKeyframe]]] = []
    total_lines = 0
    for raw_path in raw_files:
        sensor_id = raw_path.name[: -len(RAW_SUFFIX)]
        rec = _open_recording(raw_path, frames_dir, sensor_id)
        lines = read_raw_annotations(raw_path, sensor_id)
        total_lines += len(lines)
        matched: dict[int, RawKeyframe] = {}
        n = len(rec.timestamps)
        for kf in lines:
            idx = _nearest(rec.timestamps, kf.data_time)
            delta = int(rec.timestamps[idx]) - kf.data_time
            where = {"file": str(raw_path), "line": kf.line, "data_time": kf.data_time}
            if abs(delta) > tolerance_ms:
                unmatched.append({**where, "nearest_frame": idx, "nearest_timestamp": int(rec.timestamps[idx]),
                                  "delta_ms": delta})
                continue
            if idx < min_context_frames or n - 1 - idx < min_context_frames:
                edge.append({**where, "frame_idx": idx, "frames_before": idx, "frames_after": n - 1 - idx})
                continue
            if idx in matched:
                old = matched[idx]
                # The later annotation wins (annotation_time, then line order).
                keep_new = (kf.annotation_time or 0) >= (old.annotation_time or 0)
                duplicates.append({**where, "frame_idx": idx, "other_line": old.line,
                                   "kept_line": kf.line if keep_new else old.line})
                if not keep_new:
                    continue
            matched[idx] = kf
        per_rec.append((rec, matched))
    if unmatched:
        log.warning("%d keyframe(s) had no frame within %.0f ms and were not used; first: %s",
                    len(unmatched), tolerance_ms, unmatched[0])
    if edge:
        log.warning("%d keyframe(s) had fewer than %d frames on one side and were left out",
                    len(edge), min_context_frames)
    if duplicates:
        log.warning("%d keyframe line(s) matched a frame that another line already matched; the later "
                    "annotation was kept", len(duplicates))

    # Build images, annotations and context objects in one global order.
    entries: list[dict] = []  # one per image: {"rec": i, "image": {...}, "anns": [...], "ctx": [...]}
    ann_id = 0
    for ri, (rec, matched) in enumerate(per_rec):
        for idx in sorted(matched):
            kf = matched[idx]
            ts = int(rec.timestamps[idx])
            image_id = f"{rec.sensor_id}_{ts}"
            image = {"id": image_id, "sensor_id": rec.sensor_id,
                     "mac_address": kf.mac_address if kf.mac_address is not None else rec.mac_address,
                     "timestamp": ts, "width": rec.width, "height": rec.height, "frame_idx": idx}
            anns, ctx, seen_tracks = [], [], set()
            for j, b in enumerate(kf.boxes):
                # The loader's check (the loader clips the small overhangs; the box is kept as annotated).
                check_box_cxcywh_norm(b.bbox, width=rec.width, height=rec.height, source=kf.path,
                                      record=f"line {kf.line}, box {j}", max_overhang_px=MAX_BOX_OVERHANG)
                xyxy = boxes_cxcywh_norm_to_xyxy(np.asarray(b.bbox), rec.width, rec.height)
                over = float(box_overhang_px(xyxy, rec.width, rec.height)[0])
                if over > 0:
                    outside.append({"file": str(kf.path), "line": kf.line, "box": j, "bbox": b.bbox,
                                    "overhang_px": round(over, 3)})
                bbox = b.bbox
                if b.category != "person":
                    ctx.append({"image_id": image_id, "bbox": bbox, "category": b.category,
                                "subcategory": b.subcategory, "object_id": b.object_id,
                                "attribute_obscured": b.attribute_obscured,
                                "attribute_heat_residual": b.attribute_heat_residual})
                    continue
                if b.object_id in seen_tracks:
                    dup_tracks.append({"file": str(kf.path), "line": kf.line, "box": j, "object_id": b.object_id})
                    continue
                seen_tracks.add(b.object_id)
                cid = DEFAULT_CLASS_NAMES.index(b.subcategory)
                anns.append({"id": ann_id, "image_id": image_id, "bbox": bbox, "category_id": cid,
                             "category_name": b.subcategory, "object_id": b.object_id,
                             "attribute_obscured": b.attribute_obscured})
                ann_id += 1
            entries.append({"rec": ri, "image": image, "anns": anns, "ctx": ctx})
    if outside:
        log.info("%d box(es) poke out of the frame by <= %.1f px; kept as annotated (the loader clips them)",
                 len(outside), MAX_BOX_OVERHANG)
    if dup_tracks:
        log.warning("%d person box(es) repeated an object_id already used in their keyframe and were left out",
                    len(dup_tracks))

    # Split.
    rec_ids = sorted({e["rec"] for e in entries})
    val_recs: list[str] = []
    if split == "recording" and len(rec_ids) >= 2:
        n_val = min(len(rec_ids) - 1, round(val_fraction * len(rec_ids)))
        if val_fraction > 0:
            n_val = max(1, n_val)
        # The latest recordings (by first timestamp) are held out.
        order = sorted(rec_ids, key=lambda r: (int(per_rec[r][0].timestamps[0]), per_rec[r][0].sensor_id))
        held = set(order[len(order) - n_val:]) if n_val else set()
        is_val = [e["rec"] in held for e in entries]
        val_recs = sorted(per_rec[r][0].sensor_id for r in held)
        mode = "recording"
        note = f"held out {n_val} of {len(rec_ids)} recordings (the latest): {', '.join(val_recs) or 'none'}"
    elif split == "recording":
        n_val = round(val_fraction * len(entries))
        if val_fraction > 0 and len(entries) >= 2:
            n_val = max(1, n_val)
        n_val = min(n_val, max(0, len(entries) - 1))
        # Entries are in frame order within the one recording: the last block is val.
        is_val = [i >= len(entries) - n_val for i in range(len(entries))]
        mode = "time_block"
        first_val = entries[len(entries) - n_val]["image"]["frame_idx"] if n_val else None
        note = (f"only one recording: held out the last {n_val} of {len(entries)} keyframes (a later time block, "
                f"from frame {first_val}); keyframes next to the boundary share context, so expect some leakage")
        log.warning("split: %s", note)
    else:
        rng = np.random.default_rng(seed)
        n_val = round(val_fraction * len(entries))
        val_set = set(rng.permutation(len(entries))[:n_val].tolist())
        is_val = [i in val_set for i in range(len(entries))]
        mode = "random"
        note = (f"random keyframe split (seed {seed}): {n_val} of {len(entries)} keyframes in val; neighbouring "
                f"keyframes share labels, so val scores are optimistic (use --split recording for honest numbers)")
        log.warning("split: %s", note)

    year = datetime.fromtimestamp(
        max((e["image"]["timestamp"] for e in entries), default=0) / 1000, tz=timezone.utc).year
    categories = [{"id": i, "name": c} for i, c in enumerate(DEFAULT_CLASS_NAMES)]
    outputs = {}
    for name, desc, want in (("train", "Training", False), ("val", "Validation", True)):
        sel = [e for e, v in zip(entries, is_val) if v == want]
        outputs[name] = {
            "images": [e["image"] for e in sel],
            "annotations": [a for e in sel for a in e["anns"]],
            "categories": categories,
            "info": {"description": f"Thermal Sensor Human Action Detection Dataset ({desc})", "version": "1.0",
                     "year": year},
            "context_objects": [c for e in sel for c in e["ctx"]],
        }
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, data in outputs.items():
        (out_dir / f"{name}.json").write_text(json.dumps(data, indent=1), encoding="utf-8")
    mapping = {"classes": list(DEFAULT_CLASS_NAMES), "class_to_id": {c: i for i, c in enumerate(DEFAULT_CLASS_NAMES)}}
    (out_dir / "class_mapping.json").write_text(json.dumps(mapping, indent=2), encoding="utf-8")

    def class_counts(anns: list[dict]) -> dict[str, int]:
        counts = {c: 0 for c in DEFAULT_CLASS_NAMES}
        for a in anns:
            counts[a["category_name"]] += 1
        return counts

    recordings = []
    for ri, (rec, matched) in enumerate(per_rec):
        rec_entries = [(e, v) for e, v in zip(entries, is_val) if e["rec"] == ri]
        splits = sorted({"val" if v else "train" for _, v in rec_entries})
        recordings.append({"sensor_id": rec.sensor_id, "raw_file": str(rec.raw_path), "frames": len(rec.timestamps),
                           "keyframes": len(matched), "splits": splits})
    summary = {
        "out_dir": str(out_dir),
        "recordings": recordings,
        "raw_keyframes": total_lines,
        "keyframes": len(entries),
        "unmatched": {"count": len(unmatched), "tolerance_ms": tolerance_ms, "items": _limited(unmatched)},
        "left_out_near_edges": {"count": len(edge), "min_context_frames": min_context_frames,
                                "items": _limited(edge)},
        "duplicate_keyframes": {"count": len(duplicates), "items": _limited(duplicates)},
        "duplicate_track_boxes": {"count": len(dup_tracks), "items": _limited(dup_tracks)},
        "boxes_poking_out": {"count": len(outside), "items": _limited(outside)},
        "keyframes_without_persons": sum(1 for e in entries if not e["anns"]),
        "person_boxes": sum(len(e["anns"]) for e in entries),
        "context_boxes": sum(len(e["ctx"]) for e in entries),
        "split": {"mode": mode, "note": note, "val_recordings": val_recs,
                  "images": {k: len(v["images"]) for k, v in outputs.items()},
                  "boxes": {k: len(v["annotations"]) for k, v in outputs.items()}},
        "class_counts": {k: class_counts(v["annotations"]) for k, v in outputs.items()},
    }
    return summary
