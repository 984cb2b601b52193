"""The checks of ``thermal-action validate``: each recording's attributes, ``sensor_info.json``,
keyframes on unusable recordings, frame sizes against the annotations, furniture boxes and
kinds, and recordings with people lying but no room layout.

Each check appends what it finds, as text naming the file and the record, to the ``problems``
or ``warnings`` it is given (:mod:`thermal_action.data.validate` says which is which).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from thermal_action.data.annotations import AnnotationSet, read_json
from thermal_action.data.hdf5 import Recording
from thermal_action.data.rooms import FURNITURE_KINDS, RoomMap, resolve_layout
from thermal_action.errors import DatasetError
from thermal_action.structures import DEFAULT_CLASS_NAMES, FALL_CLASS_NAME

#: The classes of people lying (on the floor: a fall; on a bed or couch): only a room layout
#: tells them apart.
LYING_CLASS_NAMES = (FALL_CLASS_NAME, DEFAULT_CLASS_NAMES[4])


def check_recording_attrs(rec: Recording, problems: list[str]) -> None:
    stem = rec.path.stem
    attr_id = rec.attrs.get("sensor_id")
    if attr_id is not None and str(attr_id) != stem:
        problems.append(str(DatasetError(rec.path, f"sensor_id attribute {attr_id!r} differs from the file name "
                                                   f"{stem!r} (annotations find files by name)", record="attrs")))
    total = rec.attrs.get("total_frames")
    if total is not None and int(total) != rec.num_frames:
        problems.append(str(DatasetError(rec.path, f"total_frames attribute {total} but {rec.num_frames} frames",
                                         record="attrs")))
    if rec.non_increasing_timestamps:
        problems.append(str(DatasetError(rec.path, f"timestamps do not strictly increase at "
                                                   f"{rec.non_increasing_timestamps} steps", record="timestamps")))


def check_sensor_info(path: Path, recordings: dict[str, Recording], problems: list[str]) -> None:
    try:
        info = read_json(path)
    except DatasetError as e:
        problems.append(str(e))
        return
    if not isinstance(info, dict):
        problems.append(str(DatasetError(path, "expected an object keyed by sensor id")))
        return
    for sensor, entry in info.items():
        if not isinstance(entry, dict):
            problems.append(str(DatasetError(path, "entry must be an object", record=sensor)))
            continue
        rec = recordings.get(str(sensor))
        if rec is None:
            problems.append(str(DatasetError(path, "lists a sensor without a readable frames file", record=sensor)))
        elif entry.get("total_frames") is not None and entry["total_frames"] != rec.num_frames:
            problems.append(str(DatasetError(path, f"total_frames {entry['total_frames']} but the file has "
                                                   f"{rec.num_frames}", record=sensor)))


def set_aside_unusable(anns: AnnotationSet, unusable: dict[str, str], readable: set[str],
                        problems: list[str]) -> tuple[int, int]:
    """Takes the keyframes of unusable recordings out of ``anns`` and counts them with those
    the loader already left out for the same reason: ``(keyframes, boxes)``.

    Whether the loader noticed (it reads only timestamps, so a truncated file fails there but
    a file without ``frames`` does not), such keyframes are counted once, as unusable, and
    each split names each unusable recording once among its problems.
    """
    kfs = [k for k in anns.keyframes if k.sensor_id in unusable]
    left = [k for k in anns.left_out if k.sensor_id not in readable]  # unreadable or missing file
    for sensor in sorted({k.sensor_id for k in kfs}):
        problems.append(str(DatasetError(anns.path, f"recording for sensor '{sensor}' unusable: {unusable[sensor]}",
                                         record=f"images of {sensor}")))
    anns.keyframes = [k for k in anns.keyframes if k.sensor_id not in unusable]
    return len(kfs) + len(left), sum(k.num_boxes for k in kfs) + sum(k.num_boxes for k in left)


def check_frame_sizes(anns: AnnotationSet, recordings: dict[str, Recording], problems: list[str]) -> None:
    """One problem per recording whose frames are not the size its keyframes' ``width`` and
    ``height`` say (``train`` refuses such a keyframe with the same words)."""
    wrong: dict[str, list] = {}
    for kf in anns.keyframes:
        rec = recordings.get(kf.sensor_id)
        if rec is not None and (rec.height, rec.width) != (kf.height, kf.width):
            wrong.setdefault(kf.sensor_id, []).append(kf)
    for sensor, kfs in sorted(wrong.items()):
        rec, kf = recordings[sensor], kfs[0]
        problems.append(str(DatasetError(
            rec.path, f"frames are {rec.height}x{rec.width} but the annotation says {kf.height}x{kf.width} "
                      f"({len(kfs)} keyframes of {anns.path.name})", record=f"image {kf.image_id}")))


def check_furniture(path: Path, max_overhang: float, problems: list[str], warnings: list[str]) -> None:
    """Furniture boxes (``context_objects``) outside the frame, and furniture names the kind
    table does not know."""
    try:
        data = read_json(path)
    except DatasetError:
        return  # load_annotations reported it
    if not isinstance(data, dict) or not isinstance(data.get("context_objects"), list):
        return
    sizes = {str(im.get("id")): (im.get("width", 60), im.get("height", 40))
             for im in data.get("images", []) if isinstance(im, dict)}
    poking: list[str] = []
    unknown: dict[str, int] = {}
    for i, obj in enumerate(data["context_objects"]):
        if not isinstance(obj, dict) or obj.get("category") != "furniture":
            continue
        sub = str(obj.get("subcategory", ""))
        if sub.strip().lower() not in FURNITURE_KINDS:
            unknown[sub] = unknown.get(sub, 0) + 1
        bbox = obj.get("bbox")
        try:
            cx, cy, w, h = (float(v) for v in bbox)
        except (TypeError, ValueError):
            continue  # load_annotations reported it
        width, height = sizes.get(str(obj.get("image_id")), (60, 40))
        x1, y1, x2, y2 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
        rec = f"context_objects[{i}] ({sub or 'furniture'}, image {obj.get('image_id')})"
        if x2 <= 0 or y2 <= 0 or x1 >= 1 or y1 >= 1 or w <= 0 or h <= 0:
            problems.append(str(DatasetError(path, f"furniture box {bbox} lies wholly outside the frame (normalized "
                                                   "YOLO cx, cy, w, h): the loader leaves it out", record=rec)))
            continue
        over = max(-x1 * width, (x2 - 1) * width, -y1 * height, (y2 - 1) * height)
        if over > max_overhang:
            poking.append(f"{rec} by {over:.1f} px")
    if poking:
        warnings.append(f"{path}: {len(poking)} furniture box(es) poke out of the frame by more than "
                        f"{max_overhang:g} px (clipped to the frame): {'; '.join(poking[:5])}")
    if unknown:
        known = ", ".join(sorted(FURNITURE_KINDS))
        listed = ", ".join(f"{k!r} ({n})" for k, n in sorted(unknown.items()))
        warnings.append(f"{path}: furniture of unknown kind {listed}: zones of kind 'other' that no model "
                        f"sees (known names: {known})")


def layout_sources(anns: AnnotationSet, rooms: RoomMap | None, warnings: list[str]) -> dict[str, int]:
    """Keyframes per layout source; warns about recordings with people lying but no layout."""
    sources: dict[str, int] = {}
    lying = {i for i, n in enumerate(anns.class_names) if n in LYING_CLASS_NAMES}
    blind: dict[str, int] = {}  # sensor -> lying boxes without a layout
    for kf in anns.keyframes:
        mac = kf.extras.get("mac_address")
        layout = resolve_layout(kf.layout, rooms, kf.sensor_id, str(mac) if mac else None, kf.timestamp)
        sources[layout.source] = sources.get(layout.source, 0) + 1
        n_lying = int(np.isin(kf.labels, list(lying)).sum())
        if n_lying and not layout.known:
            blind[kf.sensor_id] = blind.get(kf.sensor_id, 0) + n_lying
    if blind:
        listed = ", ".join(f"{s} ({n} boxes)" for s, n in sorted(blind.items())[:10])
        warnings.append(f"{anns.path}: {len(blind)} recording(s) have people lying (on a bed or on the floor) but "
                        f"no room layout, so bed and floor look alike there: {listed}; give their furniture "
                        "(context_objects) or a layout file (--rooms rooms.json)")
    return dict(sorted(sources.items()))
