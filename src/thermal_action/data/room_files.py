"""Layout files from annotations (``thermal-action rooms extract``) and as text (``rooms show``).

A labelling tool that boxes furniture already says where each sensor's bed, couch and chairs
are, keyframe by keyframe; ``predict`` and ``serve`` need it per sensor and time, as a
``rooms.json`` (:mod:`thermal_action.data.rooms`). :func:`extract_rooms` turns one into the
other::

    annotation files  (converted train.json / val.json with context_objects, or the tool's
          |            raw <sensor>_annotation.json lines)
          v
    per keyframe: sensor key (MAC address, else sensor id), time, furniture zones
          |  keyframes without furniture boxes say nothing about the room: skipped
          v
    per sensor, in time order: runs of keyframes whose furniture agrees with the keyframe
          |  before within ``tolerance`` (same kinds and counts; every corner within ``tolerance``
          |  of the frame's width or height); a run shorter than ``min_keyframes`` is an
          |  annotator's slip, dropped
          v
    one layout per run: the median of its boxes, valid from its first keyframe's time
          (the sensor's first layout holds from the start)

Keys: a sensor's MAC address when its keyframes carry one (recordings of one sensor share
it, so a room's history spans recordings), else its sensor id; ``key="sensor"`` keys by
sensor id always.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from thermal_action.data.rooms import (
    LayoutTimeline,
    RoomLayout,
    RoomMap,
    Zone,
    layout_from_context_objects,
    read_rooms,
    write_rooms,
)
from thermal_action.errors import DatasetError

#: Default agreement of two keyframes' furniture: every corner within 6 % of the frame
#: (3.6 px of 60, 2.4 px of 40). Annotators redraw a bed up to ~5 % off from one keyframe to
#: the next (the real sample); furniture moved by less hardly changes what a model sees.
DEFAULT_TOLERANCE = 0.06
KEYS = ("auto", "mac", "sensor")


@dataclass
class FurnitureSighting:
    """The furniture of one annotated keyframe."""

    key: str  # the sensor's key in rooms.json
    sensor_id: str
    timestamp: int  # ms
    layout: RoomLayout
    source: str  # "file [record]" where it was read


@dataclass
class ExtractSummary:
    """What :func:`extract_rooms` did.

    Attributes:
        rooms: the layouts, per sensor key.
        keyframes: keyframes read; with_furniture: those with furniture boxes.
        ignored: keyframes of runs shorter than ``min_keyframes`` (``source`` of each).
        unknown_furniture: labelling-tool names the kind table does not know (zones of
            kind ``"other"``), with how often they were seen.
    """

    rooms: RoomMap
    keyframes: int = 0
    with_furniture: int = 0
    ignored: list[str] = field(default_factory=list)
    unknown_furniture: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"sensors": {k: len(t.layouts) for k, t in self.rooms.sensors.items()},
                "keyframes": self.keyframes, "keyframes_with_furniture": self.with_furniture,
                "ignored_keyframes": len(self.ignored), "ignored": self.ignored[:50],
                "unknown_furniture": self.unknown_furniture,
                "out": str(self.rooms.path) if self.rooms.path else None}


def _sightings_converted(data: dict, path: Path, key: str) -> list[FurnitureSighting]:
    images = {str(im.get("id")): im for im in data.get("images", []) if isinstance(im, dict)}
    objects = data.get("context_objects") or []
    if not isinstance(objects, list):
        raise DatasetError(path, "'context_objects' must be a list")
    grouped: dict[str, list[dict]] = {}
    for i, obj in enumerate(objects):
        if not isinstance(obj, dict) or str(obj.get("image_id")) not in images:
            raise DatasetError(path, "a context object needs the 'image_id' of one of the file's images",
                               f"context_objects[{i}]")
        if obj.get("category") == "furniture":
            grouped.setdefault(str(obj["image_id"]), []).append(obj)
    out = []
    for image_id, im in images.items():
        objs = grouped.get(image_id, [])
        sensor = str(im.get("sensor_id"))
        mac = im.get("mac_address")
        out.append(FurnitureSighting(_key(key, sensor, mac), sensor, int(im.get("timestamp", 0)),
                                     _layout(objs, path, f"image {image_id}"), f"{path} [image {image_id}]"))
    return out


def _sightings_raw(path: Path, key: str) -> list[FurnitureSighting]:
    from thermal_action.data.convert import read_raw_annotations

    first = next((line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()), None)
    if first is None:
        return []
    try:
        sensor = json.loads(first).get("data_id")
    except (json.JSONDecodeError, AttributeError):
        raise DatasetError(path, "neither an annotation file (JSON with 'images') nor labelling-tool JSON lines",
                           "line 1") from None
    out = []
    for kf in read_raw_annotations(path, sensor_id=str(sensor) if sensor is not None else None):
        objs = [{"bbox": b.bbox, "category": b.category, "subcategory": b.subcategory}
                for b in kf.boxes if b.category == "furniture"]
        out.append(FurnitureSighting(_key(key, kf.sensor_id, kf.mac_address), kf.sensor_id, kf.data_time,
                                     _layout(objs, path, f"line {kf.line}"), f"{path} [line {kf.line}]"))
    return out


def _key(key: str, sensor_id: str, mac: Any) -> str:
    if key == "sensor" or (key == "auto" and not mac):
        return sensor_id
    if not mac:
        raise DatasetError(sensor_id, "keying rooms by MAC address, but a keyframe of this sensor has none "
                                      "(use --key sensor)")
    return str(mac).lower()


def _layout(objs: list[dict], path: Path, record: str) -> RoomLayout:
    try:
        return layout_from_context_objects(objs) if objs else RoomLayout()
    except (KeyError, TypeError, ValueError) as e:
        raise DatasetError(path, f"a furniture box is malformed ({e})", record) from None


def read_furniture(paths: Iterable[str | Path], key: str = "auto") -> list[FurnitureSighting]:
    """Every keyframe's furniture in annotation files (converted JSON or raw JSON lines)."""
    if key not in KEYS:
        raise ValueError(f"key must be one of {', '.join(KEYS)}, got {key!r}")
    out: list[FurnitureSighting] = []
    for path in map(Path, paths):
        if not path.is_file():
            raise DatasetError(path, "annotation file not found")
        text = path.read_text(encoding="utf-8")
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = None  # JSON lines
        if isinstance(data, dict) and "images" in data:
            out += _sightings_converted(data, path, key)
        else:
            out += _sightings_raw(path, key)
    return out


def _same(a: RoomLayout, b: RoomLayout, tolerance: float) -> bool:
    """Whether two layouts hold the same furniture (kinds and counts, corners within ``tolerance``)."""
    if sorted(z.kind for z in a.zones) != sorted(z.kind for z in b.zones):
        return False
    return _match(a, b, tolerance) is not None


def _match(ref: RoomLayout, other: RoomLayout, tolerance: float) -> list[int] | None:
    """For each zone of ``ref`` the index of its counterpart in ``other`` (greedy, nearest of
    the same kind), or None when one is further than ``tolerance``."""
    free = list(range(len(other.zones)))
    out = []
    for z in ref.zones:
        cands = [j for j in free if other.zones[j].kind == z.kind]
        if not cands:
            return None
        d = [max(abs(u - v) for u, v in zip(z.bounds, other.zones[j].bounds)) for j in cands]
        j = cands[int(np.argmin(d))]
        if min(d) > tolerance:
            return None
        out.append(j)
        free.remove(j)
    return out


def _median_layout(run: Sequence[FurnitureSighting], valid_from: int | None) -> RoomLayout:
    ref = run[0].layout
    boxes = [[z.bounds] for z in ref.zones]
    for s in run[1:]:
        m = _match(ref, s.layout, float("inf"))
        for i, j in enumerate(m or []):
            boxes[i].append(s.layout.zones[j].bounds)
    zones = tuple(Zone.from_box(z.kind, tuple(round(float(v), 6) for v in np.median(np.asarray(b), axis=0)), z.name)
                  for z, b in zip(ref.zones, boxes))
    return RoomLayout(zones, "rooms file", valid_from)


def extract_rooms(paths: Sequence[str | Path], out: str | Path | None = None, tolerance: float = DEFAULT_TOLERANCE,
                  min_keyframes: int = 2, key: str = "auto") -> ExtractSummary:
    """``thermal-action rooms extract``: a ``rooms.json`` from annotation files' furniture
    (module docstring).

    Args:
        paths: converted annotation files (``context_objects``) or raw labelling-tool files.
        out: where to write the layout file (None: not written).
        tolerance: how far (share of the frame's width / height) a corner may move and the
            furniture count as unchanged.
        min_keyframes: a layout must hold over this many keyframes in a row, unless it is
            the sensor's only one.
        key: ``"auto"`` (MAC address when known, else sensor id), ``"mac"`` or ``"sensor"``.

    Returns:
        An :class:`ExtractSummary`.

    Raises:
        DatasetError: an unreadable file or malformed record (naming file and record).
        ValueError: no keyframe of any file has furniture boxes.
    """
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    sightings = read_furniture(paths, key)
    summary = ExtractSummary(RoomMap())
    summary.keyframes = len(sightings)
    seen = [s for s in sightings if s.layout.zones]
    summary.with_furniture = len(seen)
    for s in seen:
        for z in s.layout.zones:
            if z.kind == "other":
                summary.unknown_furniture[z.name] = summary.unknown_furniture.get(z.name, 0) + 1
    if not seen:
        raise ValueError(f"no keyframe of {', '.join(map(str, paths))} has furniture boxes "
                         "(context objects of category 'furniture'): nothing to extract")
    by_key: dict[str, list[FurnitureSighting]] = {}
    for s in sorted(seen, key=lambda s: (s.key, s.timestamp)):
        by_key.setdefault(s.key, []).append(s)
    for k, items in by_key.items():
        runs: list[list[FurnitureSighting]] = []
        for s in items:
            if runs and _same(runs[-1][-1].layout, s.layout, tolerance):
                runs[-1].append(s)
            else:
                runs.append([s])
        if any(len(r) >= min_keyframes for r in runs):
            for r in runs:
                if len(r) < min_keyframes:
                    summary.ignored += [s.source for s in r]
            runs = [r for r in runs if len(r) >= min_keyframes]
        merged: list[list[FurnitureSighting]] = []
        for r in runs:  # a slip dropped between two runs of the same furniture joins them
            if merged and _same(merged[-1][-1].layout, r[0].layout, tolerance):
                merged[-1] += r
            else:
                merged.append(r)
        layouts = [_median_layout(r, None if i == 0 else r[0].timestamp) for i, r in enumerate(merged)]
        summary.rooms.sensors[k] = LayoutTimeline(layouts)
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        write_rooms(summary.rooms, out)
        summary.rooms.path = Path(out)
    return summary


def _when(ms: int | None) -> str:
    if ms is None:
        return "from the start"
    t = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return f"from {t.strftime('%Y-%m-%d %H:%M:%S')} UTC ({ms})"


def format_rooms(rooms: RoomMap, width: int = 60, height: int = 40) -> str:
    """A layout file as text: per sensor, its layouts in time order and their zones (normalized
    and in pixels of a ``width`` x ``height`` frame)."""
    where = str(rooms.path) if rooms.path else "rooms"
    lines = [f"{where}: {len(rooms.sensors)} sensor(s)"]
    for key, timeline in rooms.sensors.items():
        lines.append(f"  {key}: {len(timeline.layouts)} layout(s)")
        for lay in timeline.layouts:
            lines.append(f"    {_when(lay.valid_from_ms)}: {len(lay.zones)} zone(s)")
            for z in lay.zones:
                x1, y1, x2, y2 = z.bounds
                shape = "box" if len(z.polygon) == 4 and "box" in z.to_dict() else f"polygon of {len(z.polygon)}"
                name = f" {z.name!r}" if z.name and z.name != z.kind else ""
                lines.append(f"      {z.kind:<6}{name}: {shape} x {x1:.3f}-{x2:.3f}, y {y1:.3f}-{y2:.3f} "
                             f"({x1 * width:.1f}-{x2 * width:.1f} x {y1 * height:.1f}-{y2 * height:.1f} px)")
    return "\n".join(lines)


def show_rooms(path: str | Path) -> str:
    """``thermal-action rooms show``: reads (and so checks) a layout file and formats it."""
    return format_rooms(read_rooms(path))


__all__ = ["DEFAULT_TOLERANCE", "ExtractSummary", "FurnitureSighting", "extract_rooms", "format_rooms",
           "read_furniture", "show_rooms"]