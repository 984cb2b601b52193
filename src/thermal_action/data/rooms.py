"""Room layouts: where the bed, the couch and the chairs are in a sensor's view.

A person lying on a bed and a person lying on the floor beside it look the same from
above at 40x60; only the room tells them apart. A sensor's layout is a set of
:class:`Zone` s (a kind, a name, a polygon in normalized sensor coordinates, ``x`` to the
right and ``y`` down in ``[0, 1]``), valid from a time on (furniture moves)::

    keyframe's own furniture boxes  (annotations: ``context_objects`` of category furniture)
            | none for this image
            v
    layout file  (``rooms.json``: sensor id or MAC address -> layouts, each valid from a time)
            | no entry
            v
    no layout    (:data:`NO_LAYOUT`: predictions still come, marked "no room")

The live service adds a third source, zones set per sensor through its API.

What a model gets from a layout:

- :func:`zone_masks`: ``(K, H, W)`` coverage of each pixel by the zones of each of
  :data:`~thermal_action.structures.MODEL_ZONE_KINDS` (bed, couch, chair), resampled with
  a tube or a frame like the thermal image, so flips and rotations move the furniture with
  the person;
- :func:`person_zone_features`: per person box, whether a layout is known, the share of
  the box on a bed / couch / chair and the distance from its centre to the nearest one
  (:data:`~thermal_action.structures.ZONE_FEATURE_NAMES`); these do not change under flips
  and rotations.

``rooms.json``::

    {"sensors": {
        "SL14_R1": {"zones": [{"kind": "bed", "name": "bed by the window", "box": [0.62, 0.31, 0.95, 0.57]}]},
        "02:00:1a:62:51:67": [
            {"valid_from": "2025-10-14T23:00:00Z", "zones": [{"kind": "chair", "box": [0.2, 0.6, 0.4, 0.85]}]},
            {"valid_from": 1760500000000, "zones": [{"kind": "couch", "polygon": [[0.1, 0.1], [0.4, 0.1], [0.4, 0.3]]}]}]}}

``box`` is ``[x1, y1, x2, y2]`` normalized; ``polygon`` at least three ``[x, y]`` points;
``valid_from`` ms since the epoch or an ISO 8601 time (a layout without one holds from the
start). A sensor is looked up by its id first, then by its MAC address.
"""

from __future__ import annotations

import bisect
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from thermal_action.errors import RoomsError
# The kinds a model sees (masks and features, in channel order) and the feature names live
# in structures: the models need their counts and must not import the data layer.
from thermal_action.structures import MODEL_ZONE_KINDS, NUM_ZONE_FEATURES

#: Every kind a zone may have.
ZONE_KINDS = ("bed", "couch", "chair", "table", "door", "other")

#: The kinds a person lies on without having fallen (a prediction's ``bed_share``).
BED_KINDS = ("bed", "couch")

#: The labelling tool's furniture names (``subcategory``) and the zone kind of each.
FURNITURE_KINDS = {
    "bed": "bed", "hospital bed": "bed", "couch": "couch", "sofa": "couch", "chair": "chair",
    "armchair": "chair", "wheelchair": "chair", "stool": "chair", "table": "table", "desk": "table",
    "door": "door",
}
#: Supersampling per pixel side when rasterizing zones (16 points per pixel).
_RASTER_SUBSAMPLES = 4
#: Sample points per side of a person box when measuring its share on a zone (64 points).
_BOX_SAMPLES = 8


@dataclass(frozen=True)
class Zone:
    """A piece of furniture (or a door...) in a sensor's view.

    Attributes:
        kind: one of :data:`ZONE_KINDS`.
        polygon: ``(P, 2)`` normalized ``(x, y)`` vertices, ``P >= 3`` (a box is its 4 corners).
        name: what the user calls it ("bed by the window"), may be empty.
    """

    kind: str
    polygon: tuple[tuple[float, float], ...]
    name: str = ""

    @classmethod
    def from_box(cls, kind: str, box_xyxy_norm: Sequence[float], name: str = "") -> Zone:
        x1, y1, x2, y2 = (float(v) for v in box_xyxy_norm)
        return cls(kind, ((x1, y1), (x2, y1), (x2, y2), (x1, y2)), name)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(x1, y1, x2, y2)`` normalized bounding box."""
        xs = [p[0] for p in self.polygon]
        ys = [p[1] for p in self.polygon]
        return min(xs), min(ys), max(xs), max(ys)

    def to_dict(self) -> dict[str, Any]:
        x1, y1, x2, y2 = self.bounds
        corners = {(x1, y1), (x2, y1), (x2, y2), (x1, y2)}
        shape: dict[str, Any] = ({"box": [x1, y1, x2, y2]} if len(self.polygon) == 4 and set(self.polygon) == corners
                                 else {"polygon": [list(p) for p in self.polygon]})
        return {"kind": self.kind, **({"name": self.name} if self.name else {}), **shape}


@dataclass(frozen=True)
class RoomLayout:
    """The zones of one sensor's view from ``valid_from_ms`` on.

    Attributes:
        zones: the furniture.
        source: where it came from: ``"annotations"``, ``"rooms file"``, ``"api"``, or
            ``"none"`` (no layout known: :data:`NO_LAYOUT`).
        valid_from_ms: from when it holds (ms since the epoch); ``None``: always.
    """

    zones: tuple[Zone, ...] = ()
    source: str = "none"
    valid_from_ms: int | None = None

    @property
    def known(self) -> bool:
        return self.source != "none"

    def of_kind(self, kind: str) -> list[Zone]:
        return [z for z in self.zones if z.kind == kind]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"zones": [z.to_dict() for z in self.zones]}
        if self.valid_from_ms is not None:
            out["valid_from"] = int(self.valid_from_ms)
        return out


#: No layout known: the model sees empty masks and ``has_layout = 0``.
NO_LAYOUT = RoomLayout()


@dataclass
class LayoutTimeline:
    """The layouts of one sensor in time order; :meth:`at` gives the one that holds at a time."""

    layouts: list[RoomLayout] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.layouts.sort(key=lambda lay: -1 if lay.valid_from_ms is None else lay.valid_from_ms)
        self._starts = [-1 if lay.valid_from_ms is None else lay.valid_from_ms for lay in self.layouts]

    def at(self, timestamp_ms: int | None) -> RoomLayout:
        """The latest layout valid at ``timestamp_ms`` (the first one when ``None``, or when the
        time is before every ``valid_from``: the room before any recorded change)."""
        if not self.layouts:
            return NO_LAYOUT
        if timestamp_ms is None:
            return self.layouts[-1]
        i = bisect.bisect_right(self._starts, int(timestamp_ms)) - 1
        return self.layouts[max(i, 0)]


@dataclass
class RoomMap:
    """A layout file: sensor id or MAC address -> :class:`LayoutTimeline`."""

    sensors: dict[str, LayoutTimeline] = field(default_factory=dict)
    path: Path | None = None

    def layout_for(self, sensor_id: str, mac_address: str | None = None,
                   timestamp_ms: int | None = None) -> RoomLayout:
        """The layout of a sensor at a time: by id, else by MAC address, else :data:`NO_LAYOUT`."""
        folded = {k.lower(): t for k, t in self.sensors.items()}  # MAC addresses in either case
        for key in (sensor_id, mac_address):
            if key is None:
                continue
            timeline = self.sensors.get(str(key)) or folded.get(str(key).lower())
            if timeline is not None:
                return timeline.at(timestamp_ms)
        return NO_LAYOUT

    def unused_keys(self, sensor_ids: Iterable[str], mac_addresses: Iterable[str | None] = ()) -> list[str]:
        """Keys that name no given sensor (a typo, or a sensor without recordings): warn with these."""
        known = {str(s) for s in sensor_ids} | {str(m).lower() for m in mac_addresses if m}
        return sorted(k for k in self.sensors if k not in known and k.lower() not in known)

    def to_dict(self) -> dict[str, Any]:
        return {"sensors": {k: [lay.to_dict() for lay in t.layouts] for k, t in self.sensors.items()}}


def _finite_point(p: Any, where: str) -> tuple[float, float]:
    if not isinstance(p, (list, tuple)) or len(p) != 2:
        raise RoomsError(f"{where}: a point must be [x, y], got {p!r}")
    try:
        x, y = float(p[0]), float(p[1])
    except (TypeError, ValueError):
        raise RoomsError(f"{where}: a point must be two numbers, got {p!r}") from None
    if not (math.isfinite(x) and math.isfinite(y)):
        raise RoomsError(f"{where}: coordinates must be finite, got {p!r}")
    return x, y


def parse_zone(data: Any, where: str) -> Zone:
    """One zone from its JSON form (``kind``, optional ``name``, ``box`` or ``polygon``).

    Raises:
        RoomsError: naming ``where`` (file and zone): an unknown kind, a bad shape, or a zone
            wholly outside the frame. A zone partly outside is clipped to the frame.
    """
    if not isinstance(data, Mapping):
        raise RoomsError(f"{where}: a zone must be an object, got {type(data).__name__}")
    kind = data.get("kind")
    if kind not in ZONE_KINDS:
        raise RoomsError(f"{where}: unknown zone kind {kind!r}; kinds: {', '.join(ZONE_KINDS)}")
    name = data.get("name", "")
    if not isinstance(name, str):
        raise RoomsError(f"{where}: name must be a string, got {name!r}")
    if ("box" in data) == ("polygon" in data):
        raise RoomsError(f"{where}: give a zone either 'box' [x1, y1, x2, y2] or 'polygon' [[x, y], ...]")
    if "box" in data:
        box = data["box"]
        if not isinstance(box, (list, tuple)) or len(box) != 4:
            raise RoomsError(f"{where}: 'box' must be [x1, y1, x2, y2], got {box!r}")
        (x1, y1), (x2, y2) = _finite_point(box[:2], where), _finite_point(box[2:], where)
        if x2 <= x1 or y2 <= y1:
            raise RoomsError(f"{where}: 'box' needs x2 > x1 and y2 > y1, got {box!r}")
        points = [(x1, y1), (x2, y1), (x2, y2), (x1, y2)]
    else:
        poly = data["polygon"]
        if not isinstance(poly, (list, tuple)) or len(poly) < 3:
            raise RoomsError(f"{where}: 'polygon' needs at least 3 points, got {poly!r}")
        points = [_finite_point(p, where) for p in poly]
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    if max(xs) <= 0 or min(xs) >= 1 or max(ys) <= 0 or min(ys) >= 1:
        raise RoomsError(f"{where}: the zone lies wholly outside the frame (coordinates are normalized to "
                         f"[0, 1]): {data.get('box', data.get('polygon'))!r}")
    clipped = tuple((min(max(x, 0.0), 1.0), min(max(y, 0.0), 1.0)) for x, y in points)
    return Zone(kind, clipped, name)


def _parse_time(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise RoomsError(f"{where}: valid_from must be ms since the epoch or an ISO 8601 time, got {value!r}")
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value < 0:
            raise RoomsError(f"{where}: valid_from must be a time, got {value!r}")
        return int(value)
    if isinstance(value, str):
        try:
            t = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise RoomsError(f"{where}: valid_from {value!r} is not an ISO 8601 time") from None
        return int(t.timestamp() * 1000)
    raise RoomsError(f"{where}: valid_from must be ms since the epoch or an ISO 8601 time, got {value!r}")


def parse_layout(data: Any, where: str, source: str) -> RoomLayout:
    """One layout (``{"valid_from": ..., "zones": [...]}``) from its JSON form."""
    if not isinstance(data, Mapping) or not isinstance(data.get("zones"), list):
        raise RoomsError(f"{where}: a layout must be an object with a 'zones' list")
    unknown = set(data) - {"zones", "valid_from"}
    if unknown:
        raise RoomsError(f"{where}: unknown key(s) {sorted(unknown)}; a layout has 'zones' and 'valid_from'")
    zones = tuple(parse_zone(z, f"{where}, zone {i}") for i, z in enumerate(data["zones"]))
    return RoomLayout(zones, source, _parse_time(data.get("valid_from"), where))


def parse_rooms(data: Any, where: str, source: str = "rooms file") -> RoomMap:
    """A :class:`RoomMap` from the JSON form of ``rooms.json``."""
    if not isinstance(data, Mapping) or not isinstance(data.get("sensors"), Mapping):
        raise RoomsError(f"{where}: expected {{\"sensors\": {{sensor id or MAC: layout or [layouts]}}}}")
    sensors = {}
    for key, value in data["sensors"].items():
        items = value if isinstance(value, list) else [value]
        layouts = [parse_layout(v, f"{where}: sensor {key!r}, layout {i}", source) for i, v in enumerate(items)]
        starts = [lay.valid_from_ms for lay in layouts]
        if len(set(starts)) != len(starts):
            raise RoomsError(f"{where}: sensor {key!r} has two layouts valid from the same time")
        sensors[str(key)] = LayoutTimeline(layouts)
    return RoomMap(sensors)


def read_rooms(path: str | Path) -> RoomMap:
    """Reads a layout file (``rooms.json``, format in the module docstring).

    Raises:
        RoomsError: naming the file (and the sensor and zone) for anything unusable.
    """
    path = Path(path)
    if not path.is_file():
        raise RoomsError(f"{path}: room layout file not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RoomsError(f"{path}: not a JSON file ({e})") from None
    rooms = parse_rooms(data, str(path))
    rooms.path = path
    return rooms


def write_rooms(rooms: RoomMap, path: str | Path) -> None:
    Path(path).write_text(json.dumps(rooms.to_dict(), indent=1), encoding="utf-8")


def furniture_kind(subcategory: str) -> str:
    """The zone kind of a labelling-tool furniture name (``"other"`` for unknown furniture)."""
    return FURNITURE_KINDS.get(str(subcategory).strip().lower(), "other")


def layout_from_context_objects(objects: Iterable[Mapping[str, Any]]) -> RoomLayout:
    """A layout from one keyframe's context objects (furniture only; ``bbox`` is YOLO
    normalized centre x, centre y, width, height, as the person boxes)."""
    zones = []
    for obj in objects:
        if obj.get("category") != "furniture":
            continue
        cx, cy, w, h = (float(v) for v in obj["bbox"])
        x1, y1 = max(cx - w / 2, 0.0), max(cy - h / 2, 0.0)
        x2, y2 = min(cx + w / 2, 1.0), min(cy + h / 2, 1.0)
        if x2 > x1 and y2 > y1:
            zones.append(Zone.from_box(furniture_kind(obj.get("subcategory", "")), (x1, y1, x2, y2),
                                       str(obj.get("subcategory", ""))))
    return RoomLayout(tuple(zones), "annotations")


def layouts_by_image(context_objects: Iterable[Mapping[str, Any]]) -> dict[str, RoomLayout]:
    """Image id -> the layout its context objects give (images with any context object;
    furniture-free images get an empty, known layout: the annotator saw no furniture)."""
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for obj in context_objects:
        grouped.setdefault(str(obj["image_id"]), []).append(obj)
    return {image_id: layout_from_context_objects(objs) for image_id, objs in grouped.items()}


def resolve_layout(own: RoomLayout | None, rooms: RoomMap | None, sensor_id: str,
                   mac_address: str | None = None, timestamp_ms: int | None = None) -> RoomLayout:
    """The layout that holds for one frame: the keyframe's own, else the layout file's, else none."""
    if own is not None and own.known:
        return own
    if rooms is not None:
        return rooms.layout_for(sensor_id, mac_address, timestamp_ms)
    return NO_LAYOUT


def _inside(points: np.ndarray, polygon: Sequence[tuple[float, float]]) -> np.ndarray:
    """Even-odd point-in-polygon test for ``(..., 2)`` points."""
    x, y = points[..., 0], points[..., 1]
    inside = np.zeros(x.shape, dtype=bool)
    poly = np.asarray(polygon, dtype=np.float64)
    for (x1, y1), (x2, y2) in zip(poly, np.roll(poly, -1, axis=0)):
        crosses = (y1 > y) != (y2 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_at = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
        inside ^= crosses & (x < x_at)
    return inside


def zone_masks(layout: RoomLayout, height: int, width: int,
               kinds: Sequence[str] = MODEL_ZONE_KINDS) -> np.ndarray:
    """``(K, H, W)`` float32: the share of each pixel covered by zones of each kind (0-1).

    Pixel ``(i, j)`` spans ``[j, j+1) x [i, i+1)`` of a ``width`` x ``height`` grid; coverage is
    measured on 4x4 points per pixel. An unknown layout gives zeros.
    """
    masks = np.zeros((len(kinds), height, width), dtype=np.float32)
    if not layout.zones:
        return masks
    s = _RASTER_SUBSAMPLES
    ys = (np.arange(height * s) + 0.5) / (height * s)
    xs = (np.arange(width * s) + 0.5) / (width * s)
    grid = np.stack(np.meshgrid(xs, ys), axis=-1)  # (H*s, W*s, 2) normalized (x, y)
    for k, kind in enumerate(kinds):
        hit = np.zeros(grid.shape[:2], dtype=bool)
        for zone in layout.of_kind(kind):
            x1, y1, x2, y2 = zone.bounds
            r0, r1 = max(int(y1 * height * s), 0), min(int(math.ceil(y2 * height * s)), height * s)
            c0, c1 = max(int(x1 * width * s), 0), min(int(math.ceil(x2 * width * s)), width * s)
            if r1 > r0 and c1 > c0:
                hit[r0:r1, c0:c1] |= _inside(grid[r0:r1, c0:c1], zone.polygon)
        masks[k] = hit.reshape(height, s, width, s).mean(axis=(1, 3))
    return masks


def _distances_to_polygon(points: np.ndarray, polygon: Sequence[tuple[float, float]],
                          scale: np.ndarray) -> np.ndarray:
    """``(N,)`` distances in pixels from ``(N, 2)`` normalized points to a polygon (0 inside)."""
    p = points * scale  # (N, 2)
    poly = np.asarray(polygon, dtype=np.float64) * scale
    a, b = poly, np.roll(poly, -1, axis=0)  # (P, 2) edges a -> b
    ab = b - a
    t = np.clip(((p[:, None] - a) * ab).sum(-1) / np.maximum((ab * ab).sum(1), 1e-12), 0.0, 1.0)  # (N, P)
    nearest = a + t[..., None] * ab  # (N, P, 2)
    d = np.sqrt(((nearest - p[:, None]) ** 2).sum(-1)).min(axis=1)
    return np.where(_inside(points, polygon), 0.0, d)


def _box_samples(boxes_xyxy: np.ndarray, height: int, width: int) -> np.ndarray:
    """``(N, S, S, 2)`` normalized sample points spread over each pixel box (``S`` = :data:`_BOX_SAMPLES`)."""
    u = (np.arange(_BOX_SAMPLES) + 0.5) / _BOX_SAMPLES
    size = np.maximum(boxes_xyxy[:, 2:] - boxes_xyxy[:, :2], 0.0)  # (N, 2)
    px = (boxes_xyxy[:, 0:1] + u * size[:, 0:1]) / width  # (N, S)
    py = (boxes_xyxy[:, 1:2] + u * size[:, 1:2]) / height
    return np.stack(np.broadcast_arrays(px[:, None, :], py[:, :, None]), axis=-1)


def _share_inside(samples: np.ndarray, zones: Sequence[Zone]) -> np.ndarray:
    """``(N,)`` share of each box's ``(S, S)`` samples inside any of ``zones``."""
    hit = np.zeros(samples.shape[:-1], dtype=bool)
    for zone in zones:
        hit |= _inside(samples, zone.polygon)
    return hit.mean(axis=(1, 2))


def box_share_on(boxes_xyxy: np.ndarray, layout: RoomLayout, kinds: Sequence[str], height: int,
                 width: int) -> np.ndarray | None:
    """``(N,)`` float32 share of each pixel box on any zone of ``kinds`` (e.g. a bed *or* a
    couch: their union, measured as :func:`person_zone_features` measures one kind); None
    when the layout is not known (an unknown room is not a room without furniture)."""
    if not layout.known:
        return None
    boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    zones = [z for z in layout.zones if z.kind in kinds]
    if not zones or not len(boxes):
        return np.zeros(len(boxes), dtype=np.float32)
    return _share_inside(_box_samples(boxes, height, width), zones).astype(np.float32)


def person_zone_features(boxes_xyxy: np.ndarray, layout: RoomLayout, height: int, width: int) -> np.ndarray:
    """``(N, F)`` float32 person-to-zone geometry, columns
    :data:`~thermal_action.structures.ZONE_FEATURE_NAMES`.

    Args:
        boxes_xyxy: ``(N, 4)`` person boxes in pixels of a ``width`` x ``height`` frame.
        layout: the room; :data:`NO_LAYOUT` gives ``has_layout = 0``, no share, distance 1.

    ``on_<kind>``: the share of the box (measured on 8x8 points) inside any zone of that kind;
    ``near_<kind>``: the distance from the box centre to the nearest such zone in frame
    diagonals (0 inside), clipped to 1; 1 where the room has none. All boxes at once (the
    training data path calls this for every clip).
    """
    boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    n, nk = boxes.shape[0], len(MODEL_ZONE_KINDS)
    out = np.zeros((n, NUM_ZONE_FEATURES), dtype=np.float32)
    out[:, 1 + nk:] = 1.0
    if n == 0 or not layout.known:
        return out
    out[:, 0] = 1.0
    scale = np.array([width, height], dtype=np.float64)
    diagonal = float(np.hypot(width, height))
    samples = _box_samples(boxes, height, width)  # (N, S, S, 2)
    centres = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2 / width, (boxes[:, 1] + boxes[:, 3]) / 2 / height], axis=1)
    for k, kind in enumerate(MODEL_ZONE_KINDS):
        zones = layout.of_kind(kind)
        if not zones:
            continue
        out[:, 1 + k] = _share_inside(samples, zones)
        d = np.min([_distances_to_polygon(centres, z.polygon, scale) for z in zones], axis=0)
        out[:, 1 + nk + k] = np.minimum(d / diagonal, 1.0)
    return out
