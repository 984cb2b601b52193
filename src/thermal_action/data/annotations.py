"""Loading ``annotations/*.json`` (COCO-like keyframe annotations) into keyframes.

Boxes convert once, here, from the on-disk YOLO format (normalized centre x, centre y,
width, height) to pixel corners with :func:`structures.boxes_cxcywh_norm_to_xyxy`, so a
box 10 pixels wide stays 10 pixels wide. A box that pokes out of the frame by at most
``max_box_overhang`` pixels (annotators drag boxes to the border; one real box sits
0.06 px above the top edge) is clipped to the frame and counted; a box further out, of
zero or negative size or with non-finite numbers is an error.

Every problem raises :class:`DatasetError` naming the file and the record. When the
caller passes a ``problems`` list instead, each problem is appended there, the offending
record (box or keyframe) is left out, and loading goes on -- this is how ``validate``
reports all problems in one run. Nothing is left out without a problem recorded.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from thermal_action.data.hdf5 import read_timestamps
from thermal_action.data.rooms import NO_LAYOUT, RoomLayout, layouts_by_image
from thermal_action.errors import DatasetError
from thermal_action.structures import (
    DEFAULT_CLASS_NAMES,
    DEFAULT_MAX_BOX_OVERHANG,
    FRAME_HEIGHT,
    FRAME_WIDTH,
    box_overhang_px,
    boxes_cxcywh_norm_to_xyxy,
    check_box_cxcywh_norm,
)

logger = logging.getLogger(__name__)

_IMAGE_KEYS = {"id", "sensor_id", "timestamp", "frame_idx", "width", "height"}
_ANN_KEYS = {"id", "image_id", "bbox", "category_id", "object_id"}


@dataclass
class Keyframe:
    """One annotated keyframe (a COCO "image") with its person boxes.

    Attributes:
        image_id: the image id (``<sensor>_<timestamp>`` in current files).
        sensor_id: which recording (``frames/<sensor_id>.h5``).
        frame_idx: index into that recording's frames.
        timestamp: capture time, ms since epoch (``timestamps[frame_idx]``).
        width, height: frame size the normalized boxes refer to (pixels).
        boxes_cxcywh_norm: ``(N, 4)`` float32 as on disk (clipped to the frame when
            they poked out).
        boxes_xyxy: ``(N, 4)`` float32 pixel corners of the same boxes.
        labels: ``(N,)`` int64 class index (= category id).
        track_ids: ``(N,)`` int64 ``object_id`` (-1 when absent).
        annotation_ids: ``(N,)`` int64.
        extras: the image's other keys (``mac_address``...), kept as they are.
        box_extras: per box, the annotation's other keys (``category_name``,
            ``attribute_obscured``...).
        layout: the room as the annotator saw it (furniture of the file's
            ``context_objects`` for this image); :data:`~thermal_action.data.rooms.NO_LAYOUT`
            when the file has none for it.
    """

    image_id: str
    sensor_id: str
    frame_idx: int
    timestamp: int
    width: int
    height: int
    boxes_cxcywh_norm: np.ndarray
    boxes_xyxy: np.ndarray
    labels: np.ndarray
    track_ids: np.ndarray
    annotation_ids: np.ndarray
    extras: dict[str, Any] = field(default_factory=dict)
    box_extras: list[dict[str, Any]] = field(default_factory=list)
    layout: RoomLayout = NO_LAYOUT

    @property
    def num_boxes(self) -> int:
        return int(self.labels.shape[0])


@dataclass
class ClippedBox:
    """A box that poked out of the frame and was clipped."""

    annotation_id: int
    image_id: str
    overhang_px: float


@dataclass
class LeftOutKeyframe:
    """A keyframe left out in collect mode because it disagrees with its recording (or the
    recording is unusable); its problem is in :attr:`AnnotationSet.problems`."""

    image_id: str
    sensor_id: str
    num_boxes: int  # annotations of the keyframe, not checked


@dataclass
class AnnotationSet:
    """The keyframes of one annotation file.

    Attributes:
        path: the JSON file.
        keyframes: in file order of ``images``.
        class_names: index = category id.
        clipped_boxes: boxes clipped to the frame (counted repairs).
        extras: other top-level keys (``info``, ``objects``...), kept as they are.
        problems: problems met while loading in collect mode (empty otherwise).
        left_out: keyframes left out in collect mode because of the frames check.
    """

    path: Path
    keyframes: list[Keyframe]
    class_names: list[str]
    clipped_boxes: list[ClippedBox] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)
    problems: list[DatasetError] = field(default_factory=list)
    left_out: list[LeftOutKeyframe] = field(default_factory=list)

    @property
    def num_boxes(self) -> int:
        return sum(k.num_boxes for k in self.keyframes)

    def class_counts(self) -> dict[str, int]:
        """Boxes per class name, every class listed (zeros included)."""
        counts = np.zeros(len(self.class_names), dtype=np.int64)
        for k in self.keyframes:
            np.add.at(counts, k.labels[k.labels >= 0], 1)
        return {name: int(c) for name, c in zip(self.class_names, counts)}

    def by_image_id(self) -> dict[str, Keyframe]:
        return {k.image_id: k for k in self.keyframes}


class _Reporter:
    """Raises each problem, or collects it when a list was given."""

    def __init__(self, problems: list[DatasetError] | None):
        self.problems = problems

    def __call__(self, err: DatasetError) -> None:
        if self.problems is None:
            raise err
        logger.warning("%s", err)
        self.problems.append(err)


def read_json(path: str | Path) -> Any:
    """Reads a JSON file; malformed JSON is a :class:`DatasetError` with line and column."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(path, "annotation file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(path, f"cannot read file ({e})") from e
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise DatasetError(path, f"malformed JSON: {e.msg}", record=f"line {e.lineno}, column {e.colno}") from e


def load_class_names(path: str | Path) -> list[str]:
    """Class names from ``class_mapping.json`` (``{"classes": [...], "class_to_id": {...}}``)."""
    path = Path(path)
    data = read_json(path)
    if not isinstance(data, dict):
        raise DatasetError(path, "expected an object with 'classes' or 'class_to_id'")
    if "class_to_id" in data:
        mapping = data["class_to_id"]
        if not isinstance(mapping, dict):
            raise DatasetError(path, "'class_to_id' must map names to ids", record="class_to_id")
        cats = [{"id": i, "name": n} for n, i in mapping.items()]
        names = _names_from_categories(cats, path, record="class_to_id")
        if "classes" in data and list(data["classes"]) != names:
            raise DatasetError(path, "'classes' and 'class_to_id' disagree", record="classes")
        return names
    if isinstance(data.get("classes"), list) and all(isinstance(c, str) for c in data["classes"]):
        return list(data["classes"])
    raise DatasetError(path, "expected 'classes' (list of names) or 'class_to_id'")


def _names_from_categories(categories: Any, path: Path, record: str = "categories") -> list[str]:
    """COCO categories -> names indexed by id; ids must be exactly 0..K-1."""
    if not isinstance(categories, list) or not categories:
        raise DatasetError(path, "'categories' must be a non-empty list", record=record)
    by_id: dict[int, str] = {}
    for c in categories:
        if not isinstance(c, dict) or not isinstance(c.get("id"), int) or isinstance(c.get("id"), bool) \
                or not isinstance(c.get("name"), str):
            raise DatasetError(path, f"category must have an integer 'id' and a string 'name': {c!r}", record=record)
        if c["id"] in by_id:
            raise DatasetError(path, f"duplicate category id {c['id']}", record=record)
        by_id[c["id"]] = c["name"]
    if sorted(by_id) != list(range(len(by_id))):
        raise DatasetError(path, f"category ids must be 0..{len(by_id) - 1}, got {sorted(by_id)}", record=record)
    return [by_id[i] for i in range(len(by_id))]


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _check_box(
    bbox: Any, width: int, height: int, max_overhang: float, path: Path, record: str
) -> tuple[np.ndarray, np.ndarray, float]:
    """One YOLO box -> (cxcywh_norm (4,), xyxy (4,), overhang px); raises on a bad box."""
    b = check_box_cxcywh_norm(bbox, width=width, height=height, source=path, record=record,
                              max_overhang_px=max_overhang)
    overhang = float(box_overhang_px(boxes_cxcywh_norm_to_xyxy(np.asarray(bbox, np.float64), width, height),
                                     width, height)[0])
    return b, boxes_cxcywh_norm_to_xyxy(b, width, height)[0], overhang


def _check_frames(
    images: list[dict[str, Any]], frames_dir: Path, path: Path, report: _Reporter
) -> set[str]:
    """Checks frame_idx / timestamp against the recordings; returns image ids that failed."""
    failed: set[str] = set()
    by_sensor: dict[str, list[dict[str, Any]]] = {}
    for im in images:
        by_sensor.setdefault(im["sensor_id"], []).append(im)
    for sensor, ims in by_sensor.items():
        h5 = frames_dir / f"{sensor}.h5"
        try:
            ts = read_timestamps(h5)
        except DatasetError as e:
            report(DatasetError(path, f"recording for sensor '{sensor}' unusable: {e}",
                                record=f"images of {sensor}"))
            failed.update(im["id"] for im in ims)
            continue
        for im in ims:
            idx, rec = im["frame_idx"], f"image {im['id']}"
            if not 0 <= idx < len(ts):
                report(DatasetError(path, f"frame_idx {idx} out of range: {h5} has {len(ts)} frames", record=rec))
                failed.add(im["id"])
            elif int(ts[idx]) != im["timestamp"]:
                report(DatasetError(
                    path,
                    f"timestamp {im['timestamp']} disagrees with {h5}: timestamps[{idx}] = {int(ts[idx])}",
                    record=rec,
                ))
                failed.add(im["id"])
    return failed


def _context_layouts(objects: Any, path: Path, report: _Reporter) -> dict[str, RoomLayout]:
    """Image id -> the room its ``context_objects`` give; a malformed object is a problem
    naming the file and its index (left out in collect mode)."""
    if objects is None:
        return {}
    if not isinstance(objects, list):
        raise DatasetError(path, "'context_objects' must be a list")
    good = []
    for i, obj in enumerate(objects):
        try:
            if not isinstance(obj, dict) or "image_id" not in obj:
                raise ValueError("expected an object with 'image_id', 'bbox' and 'category'")
            bbox = obj.get("bbox")
            if not (isinstance(bbox, list) and len(bbox) == 4 and all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in bbox)):
                raise ValueError(f"bbox must be four finite numbers, got {bbox!r}")
        except ValueError as e:
            report(DatasetError(path, str(e), f"context_objects[{i}]"))
            continue
        good.append(obj)
    return layouts_by_image(good)


def load_annotations(
    path: str | Path,
    frames_dir: str | Path | None = None,
    class_names: list[str] | None = None,
    max_box_overhang: float = DEFAULT_MAX_BOX_OVERHANG,
    problems: list[DatasetError] | None = None,
) -> AnnotationSet:
    """Loads one annotation file (format in ``docs/data-format.md``).

    Args:
        path: ``annotations/<split>.json``.
        frames_dir: when given, each keyframe is checked against ``<frames_dir>/<sensor>.h5``
            (file present, ``frame_idx`` in range, ``timestamps[frame_idx] == timestamp``).
        class_names: overrides the class list; by default it comes from the file's
            ``categories``, else from ``class_mapping.json`` beside it.
        max_box_overhang: pixels a box may lie outside the frame and still be clipped.
        problems: collect mode: problems are appended here and their records left out,
            instead of raising the first one.

    Returns:
        The :class:`AnnotationSet`, keyframes in file order.

    Raises:
        DatasetError: malformed JSON, missing keys, duplicate image or annotation ids,
            unknown category or image ids, bad boxes, keyframes that disagree with the
            recordings (only when ``problems`` is None, except for unreadable files
            and an unusable class list, which always raise).
    """
    path = Path(path)
    report = _Reporter(problems)
    collected_before = len(problems) if problems is not None else 0
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) \
            or not isinstance(data.get("annotations"), list):
        raise DatasetError(path, "expected an object with 'images' and 'annotations' lists")

    if class_names is None:
        if "categories" in data:
            class_names = _names_from_categories(data["categories"], path)
        elif (path.parent / "class_mapping.json").is_file():
            class_names = load_class_names(path.parent / "class_mapping.json")
        else:
            logger.warning("%s: no 'categories' and no class_mapping.json; using the 14 default classes", path)
            class_names = list(DEFAULT_CLASS_NAMES)
    class_names = list(class_names)

    images: list[dict[str, Any]] = []
    seen_images: set[str] = set()
    for i, im in enumerate(data["images"]):
        rec = f"images[{i}]" + (f" id {im.get('id')}" if isinstance(im, dict) else "")
        if not isinstance(im, dict):
            report(DatasetError(path, f"image must be an object, got {im!r}", record=rec))
            continue
        missing = [k for k in ("id", "sensor_id", "timestamp", "frame_idx") if k not in im]
        if missing:
            report(DatasetError(path, f"image lacks {missing}", record=rec))
            continue
        if not isinstance(im["id"], str) and not _is_int(im["id"]):
            report(DatasetError(path, f"image id must be a string, got {im['id']!r}", record=rec))
            continue
        im = dict(im, id=str(im["id"]), sensor_id=str(im["sensor_id"]))
        if im["id"] in seen_images:
            report(DatasetError(path, f"duplicate image id {im['id']}", record=rec))
            continue
        seen_images.add(im["id"])
        bad = [k for k in ("frame_idx", "timestamp") if not _is_int(im[k])]
        bad += [k for k in ("width", "height") if k in im and not (_is_int(im[k]) and im[k] > 0)]
        if bad:
            report(DatasetError(path, f"image fields {bad} must be (positive) integers", record=rec))
            continue
        if im["frame_idx"] < 0:
            report(DatasetError(path, f"frame_idx {im['frame_idx']} is negative", record=rec))
            continue
        images.append(im)

    failed_images: set[str] = set()
    if frames_dir is not None:
        failed_images = _check_frames(images, Path(frames_dir), path, report)

    image_ids = {im["id"] for im in images}
    # image id -> [(bbox as on disk, category, track, annotation id, other keys)]
    boxes: dict[str, list[tuple[Any, int, int, int, dict[str, Any]]]] = {}
    clipped: list[ClippedBox] = []
    seen_anns: set[int] = set()
    for i, ann in enumerate(data["annotations"]):
        rec = f"annotations[{i}]" + (f" id {ann.get('id')}" if isinstance(ann, dict) else "")
        if not isinstance(ann, dict):
            report(DatasetError(path, f"annotation must be an object, got {ann!r}", record=rec))
            continue
        missing = [k for k in ("id", "image_id", "bbox", "category_id") if k not in ann]
        if missing:
            report(DatasetError(path, f"annotation lacks {missing}", record=rec))
            continue
        if not _is_int(ann["id"]):
            report(DatasetError(path, f"annotation id must be an integer, got {ann['id']!r}", record=rec))
            continue
        if ann["id"] in seen_anns:
            report(DatasetError(path, f"duplicate annotation id {ann['id']}", record=rec))
            continue
        seen_anns.add(ann["id"])
        image_id = str(ann["image_id"])
        if image_id not in image_ids:
            if image_id not in seen_images:
                report(DatasetError(path, f"unknown image_id {image_id}", record=rec))
            # else: its image was already reported as a problem; the box goes with it.
            continue
        cat = ann["category_id"]
        if not _is_int(cat) or not 0 <= cat < len(class_names):
            report(DatasetError(path, f"unknown category id {cat!r} (known: 0..{len(class_names) - 1})", record=rec))
            continue
        name = ann.get("category_name")
        if name is not None and name != class_names[cat]:
            report(DatasetError(
                path, f"category_name {name!r} disagrees with category {cat} = {class_names[cat]!r}", record=rec
            ))
            continue
        track = ann.get("object_id", -1)
        if track is None:
            track = -1
        if not _is_int(track):
            report(DatasetError(path, f"object_id must be an integer, got {track!r}", record=rec))
            continue
        extra = {k: v for k, v in ann.items() if k not in _ANN_KEYS}
        boxes.setdefault(image_id, []).append((ann["bbox"], int(cat), int(track), int(ann["id"]), extra))

    keyframes: list[Keyframe] = []
    left_out: list[LeftOutKeyframe] = []
    layouts = _context_layouts(data.get("context_objects"), path, report)
    for im in images:
        if im["id"] in failed_images:
            left_out.append(LeftOutKeyframe(im["id"], im["sensor_id"], len(boxes.get(im["id"], []))))
            continue
        width = int(im.get("width", FRAME_WIDTH))
        height = int(im.get("height", FRAME_HEIGHT))
        norm, xyxy, labels, tracks, ann_ids, box_extras = [], [], [], [], [], []
        for bbox, cat, track, ann_id, extra in boxes.get(im["id"], []):
            rec = f"annotation id {ann_id} (image {im['id']})"
            try:
                b, bx, overhang = _check_box(bbox, width, height, max_box_overhang, path, rec)
            except DatasetError as e:
                report(e)
                continue
            if overhang > 0:
                clipped.append(ClippedBox(annotation_id=ann_id, image_id=im["id"], overhang_px=overhang))
                logger.info("%s [%s]: box poked %.2f px out of the frame; clipped", path, rec, overhang)
            norm.append(b)
            xyxy.append(bx)
            labels.append(cat)
            tracks.append(track)
            ann_ids.append(ann_id)
            box_extras.append(extra)
        keyframes.append(
            Keyframe(
                image_id=im["id"],
                sensor_id=im["sensor_id"],
                frame_idx=int(im["frame_idx"]),
                timestamp=int(im["timestamp"]),
                width=width,
                height=height,
                boxes_cxcywh_norm=np.asarray(norm, dtype=np.float32).reshape(-1, 4),
                boxes_xyxy=np.asarray(xyxy, dtype=np.float32).reshape(-1, 4),
                labels=np.asarray(labels, dtype=np.int64),
                track_ids=np.asarray(tracks, dtype=np.int64),
                annotation_ids=np.asarray(ann_ids, dtype=np.int64),
                extras={k: v for k, v in im.items() if k not in _IMAGE_KEYS},
                box_extras=box_extras,
                layout=layouts.get(im["id"], NO_LAYOUT),
            )
        )
    extras = {k: v for k, v in data.items() if k not in ("images", "annotations", "categories")}
    if clipped:
        logger.info("%s: clipped %d boxes that poked out of the frame", path, len(clipped))
    new_problems = list(problems[collected_before:]) if problems is not None else []
    return AnnotationSet(
        path=path,
        keyframes=keyframes,
        class_names=class_names,
        clipped_boxes=clipped,
        extras=extras,
        problems=new_problems,
        left_out=left_out,
    )


def recordings_in(ann: dict[str, Any]) -> list[str]:
    """The sorted ``sensor_id`` values of an annotation file's images."""
    return sorted({str(img["sensor_id"]) for img in ann.get("images", [])})


def subset_by_recording(ann: dict[str, Any], recordings: Iterable[str]) -> dict[str, Any]:
    """The keyframes (with their annotations and context objects) of the given recordings.

    Splitting by whole recordings is the honest way to hold data out: keyframes a second
    apart share their labels, so a per-keyframe split leaks.
    """
    keep = set(recordings)
    images = [img for img in ann.get("images", []) if str(img["sensor_id"]) in keep]
    ids = {img["id"] for img in images}
    out = {k: v for k, v in ann.items() if k not in ("images", "annotations", "context_objects")}
    out["images"] = images
    out["annotations"] = [a for a in ann.get("annotations", []) if a["image_id"] in ids]
    if "context_objects" in ann:
        out["context_objects"] = [a for a in ann["context_objects"] if a["image_id"] in ids]
    return out


def write_recording_split(src: str | Path, held_out: Iterable[str], train_out: str | Path,
                          held_out_out: str | Path) -> tuple[list[str], list[str]]:
    """Splits the annotation file ``src`` by recording into two files.

    Returns:
        ``(kept recordings, held-out recordings)``.

    Raises:
        DatasetError: a held-out recording is not in ``src``, or nothing would be kept.
    """
    ann = read_json(src)
    have = recordings_in(ann)
    held = sorted(set(held_out))
    missing = [r for r in held if r not in have]
    if missing:
        raise DatasetError(f"{src}: no keyframes of recording(s) {missing} (it has {have})")
    kept = [r for r in have if r not in held]
    if not kept:
        raise DatasetError(f"{src}: holding out {held} leaves no recording to train on")
    for path, recs in ((train_out, kept), (held_out_out, held)):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(subset_by_recording(ann, recs)))
    return kept, held
