"""``thermal-action validate``: check a dataset directory and summarise it.

Reads every ``frames/*.h5`` and every annotation file, collecting problems instead of
stopping at the first, and reports: recordings, frames, frame-rate statistics, keyframes,
boxes, class counts per split, persons per keyframe, repaired frames (and of those the
frames whose packed packets were realigned) and clipped boxes,
keyframes whose clip window needs edge padding, the room layouts (keyframes per layout
source), and every problem found. Keyframes and
boxes on a recording that cannot be used (missing, unreadable, no ``frames``, a bad
shape, nothing valid) are counted apart, as unusable, whatever the damage; an
annotation file without a single labelled box is a problem. Optionally
renders a contact sheet of keyframes with their boxes and labels in a thermal colour map.

Problems are things a user must fix (unreadable files, bad records, keyframes that
disagree with their recording). Warnings are things worth knowing that the loader
handles (e.g. the same recording in train and val: a per-keyframe split leaks).

Rooms (:mod:`thermal_action.data.rooms`): furniture boxes (``context_objects``) wholly
outside the frame are problems (the loader drops them), boxes poking out by more than
``max_box_overhang`` pixels and furniture names the kind table does not know (they become
zones of kind "other", which no model sees) are warnings, and so are recordings with people
lying (on a bed or on the floor) but no layout from their annotations or the layout file:
there the model cannot tell a bed from the floor. The layout file (``rooms``, by default
``<dataset>/rooms.json`` when there is one): an unusable file is a problem naming the file,
sensor and zone; keys that name no recording of the dataset are a warning.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from thermal_action.data.annotations import AnnotationSet, load_annotations, read_json
from thermal_action.data.clips import clip_window
from thermal_action.data.hdf5 import DEFAULT_VALID_RANGE, Recording, read_recording
from thermal_action.data.rooms import FURNITURE_KINDS, RoomMap, read_rooms, resolve_layout
from thermal_action.errors import DatasetError, RoomsError
from thermal_action.structures import DEFAULT_CLASS_NAMES, FALL_CLASS_NAME

#: The classes of people lying (on the floor: a fall; on a bed or couch): only a room layout
#: tells them apart.
LYING_CLASS_NAMES = (FALL_CLASS_NAME, DEFAULT_CLASS_NAMES[4])

logger = logging.getLogger(__name__)


@dataclass
class RecordingSummary:
    """One ``frames/<sensor>.h5`` file."""

    sensor_id: str
    path: str
    frames: int
    height: int
    width: int
    duration_s: float
    fps: float  # (frames - 1) / duration: the mean rate over the file
    step_ms_median: float
    step_ms_p95: float
    step_ms_max: float
    gaps_over_1s: int
    repaired_frames: int
    realigned_frames: int  # of the repaired frames, those whose packed packets were moved back in place
    invalid_pixels: int
    nonfinite_pixels: int
    dead_pixels: int
    converted_from_kelvin: bool
    non_increasing_timestamps: int
    converted_from_dtype: str | None = None  # integer frames on disk, converted to float32


@dataclass
class SplitSummary:
    """One annotation file."""

    name: str
    path: str
    keyframes: int
    boxes: int
    class_counts: dict[str, int]
    persons_per_keyframe: dict[int, int]
    clipped_boxes: int
    padded_keyframes: int
    keyframes_on_repaired_frames: int
    sensors: list[str]
    unusable_keyframes: int = 0  # on recordings that cannot be read: not in keyframes / boxes / class counts
    unusable_boxes: int = 0
    layouts: dict[str, int] = field(default_factory=dict)  # keyframes per layout source ("annotations", "rooms file", "none")


@dataclass
class ValidationReport:
    """Everything :func:`validate_dataset` found."""

    dataset_dir: str
    recordings: list[RecordingSummary] = field(default_factory=list)
    splits: list[SplitSummary] = field(default_factory=list)
    class_names: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    contact_sheet: str | None = None
    num_frames_window: int = 64
    rooms_file: str | None = None  # the layout file checked, if any

    # --- totals ----------------------------------------------------------------------

    @property
    def num_frames(self) -> int:
        return sum(r.frames for r in self.recordings)

    @property
    def num_keyframes(self) -> int:
        return sum(s.keyframes for s in self.splits)

    @property
    def num_boxes(self) -> int:
        return sum(s.boxes for s in self.splits)

    @property
    def unusable_keyframes(self) -> int:
        return sum(s.unusable_keyframes for s in self.splits)

    @property
    def unusable_boxes(self) -> int:
        return sum(s.unusable_boxes for s in self.splits)

    @property
    def repaired_frames(self) -> int:
        return sum(r.repaired_frames for r in self.recordings)

    @property
    def realigned_frames(self) -> int:
        return sum(r.realigned_frames for r in self.recordings)

    def frame_rate(self) -> dict[str, float | None]:
        """Frame-rate statistics over all recordings (mean fps per file, frame steps)."""
        if not self.recordings:
            return {"fps_mean": None, "fps_min": None, "fps_max": None, "step_ms_median": None,
                    "step_ms_max": None, "gaps_over_1s": 0}
        fps = [r.fps for r in self.recordings]
        return {
            "fps_mean": float(np.mean(fps)),
            "fps_min": float(np.min(fps)),
            "fps_max": float(np.max(fps)),
            "step_ms_median": float(np.median([r.step_ms_median for r in self.recordings])),
            "step_ms_max": float(np.max([r.step_ms_max for r in self.recordings])),
            "gaps_over_1s": int(sum(r.gaps_over_1s for r in self.recordings)),
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary; the top-level keys are the headline numbers."""
        return {
            "dataset_dir": self.dataset_dir,
            "recordings": len(self.recordings),
            "frames": self.num_frames,
            "frame_rate": self.frame_rate(),
            "keyframes": self.num_keyframes,
            "boxes": self.num_boxes,
            "unusable_keyframes": self.unusable_keyframes,
            "unusable_boxes": self.unusable_boxes,
            "class_counts": {s.name: s.class_counts for s in self.splits},
            "persons_per_keyframe": {s.name: {str(k): v for k, v in s.persons_per_keyframe.items()}
                                     for s in self.splits},
            "repaired_frames": self.repaired_frames,
            "realigned_frames": self.realigned_frames,
            "invalid_pixels": sum(r.invalid_pixels for r in self.recordings),
            "clipped_boxes": sum(s.clipped_boxes for s in self.splits),
            "padded_keyframes": sum(s.padded_keyframes for s in self.splits),
            "window_frames": self.num_frames_window,
            "class_names": self.class_names,
            "problems": list(self.problems),
            "warnings": list(self.warnings),
            "contact_sheet": self.contact_sheet,
            "rooms_file": self.rooms_file,
            "layouts": {s.name: s.layouts for s in self.splits},
            "recording_details": [asdict(r) for r in self.recordings],
            "splits": [dict(asdict(s), persons_per_keyframe={str(k): v for k, v in s.persons_per_keyframe.items()})
                       for s in self.splits],
        }

    def format_text(self) -> str:
        """A human-readable summary."""
        fr = self.frame_rate()
        lines = [f"Dataset {self.dataset_dir}"]
        lines.append(f"  recordings: {len(self.recordings)}   frames: {self.num_frames}")
        if self.recordings:
            lines.append(
                f"  frame rate: {fr['fps_mean']:.2f} fps mean (per file {fr['fps_min']:.2f}-{fr['fps_max']:.2f}); "
                f"frame step median {fr['step_ms_median']:.0f} ms, max {fr['step_ms_max']:.0f} ms; "
                f"{fr['gaps_over_1s']} gaps > 1 s"
            )
            inv = sum(r.invalid_pixels for r in self.recordings)
            nonf = sum(r.nonfinite_pixels for r in self.recordings)
            kel = sum(r.converted_from_kelvin for r in self.recordings)
            lines.append(f"  repaired frames: {self.repaired_frames} ({inv} invalid pixels, {nonf} NaN/inf; "
                         f"{self.realigned_frames} realigned: received packets moved back in place)"
                         + (f"; {kel} recordings converted from Kelvin" if kel else ""))
            for r in self.recordings:
                lines.append(f"    {r.sensor_id}: {r.frames} frames {r.height}x{r.width}, {r.duration_s:.1f} s, "
                             f"{r.fps:.2f} fps, {r.repaired_frames} repaired ({r.realigned_frames} realigned)")
        lines.append(f"  keyframes: {self.num_keyframes}   boxes: {self.num_boxes}   "
                     f"clipped boxes: {sum(s.clipped_boxes for s in self.splits)}   "
                     f"padded windows ({self.num_frames_window} frames): "
                     f"{sum(s.padded_keyframes for s in self.splits)}")
        if self.unusable_keyframes:
            lines.append(f"  on unusable recordings (not counted above): {self.unusable_keyframes} keyframes, "
                         f"{self.unusable_boxes} boxes")
        if self.splits:
            names = self.class_names
            width = max(len(n) for n in names) if names else 10
            header = "  " + "class".ljust(width + 6) + "".join(s.name.rjust(8) for s in self.splits)
            lines.append("  class counts per split:")
            lines.append(header)
            for i, n in enumerate(names):
                row = f"  {i:>3}  {n.ljust(width)} " + "".join(str(s.class_counts.get(n, 0)).rjust(8)
                                                          for s in self.splits)
                lines.append(row)
            for s in self.splits:
                hist = ", ".join(f"{k}: {v}" for k, v in sorted(s.persons_per_keyframe.items()))
                lines.append(f"  {s.name}: {s.keyframes} keyframes, {s.boxes} boxes, sensors {s.sensors}; "
                             f"persons per keyframe {{{hist}}}; {s.keyframes_on_repaired_frames} keyframes "
                             f"on repaired frames")
                lines.append(f"    room layouts of its keyframes: "
                             + (", ".join(f"{k}: {v}" for k, v in s.layouts.items()) or "no keyframes"))
        if self.rooms_file:
            lines.append(f"  layout file: {self.rooms_file}")
        if self.contact_sheet:
            lines.append(f"  contact sheet: {self.contact_sheet}")
        lines.append(f"  warnings: {len(self.warnings)}")
        lines.extend(f"    - {w}" for w in self.warnings)
        lines.append(f"  problems: {len(self.problems)}")
        lines.extend(f"    - {p}" for p in self.problems)
        return "\n".join(lines)


def _summarise_recording(rec: Recording) -> RecordingSummary:
    ts = rec.timestamps
    steps = np.diff(ts).astype(np.float64) if len(ts) > 1 else np.zeros(1)
    duration = float(ts[-1] - ts[0]) / 1000.0 if len(ts) > 1 else 0.0
    return RecordingSummary(
        sensor_id=rec.sensor_id,
        path=str(rec.path),
        frames=rec.num_frames,
        height=rec.height,
        width=rec.width,
        duration_s=duration,
        fps=(rec.num_frames - 1) / duration if duration > 0 else 0.0,
        step_ms_median=float(np.median(steps)),
        step_ms_p95=float(np.percentile(steps, 95)),
        step_ms_max=float(steps.max()),
        gaps_over_1s=int(np.count_nonzero(steps > 1000)),
        repaired_frames=rec.repair.repaired_frames,
        realigned_frames=rec.repair.realigned_frames,
        invalid_pixels=rec.repair.invalid_pixels,
        nonfinite_pixels=rec.repair.nonfinite_pixels,
        dead_pixels=rec.repair.dead_pixels,
        converted_from_kelvin=rec.repair.converted_from_kelvin,
        non_increasing_timestamps=rec.non_increasing_timestamps,
        converted_from_dtype=rec.repair.converted_from_dtype,
    )


def _check_recording_attrs(rec: Recording, problems: list[str]) -> None:
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


def _check_sensor_info(path: Path, recordings: dict[str, Recording], problems: list[str]) -> None:
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


def _set_aside_unusable(anns: AnnotationSet, unusable: dict[str, str], readable: set[str],
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


def _check_frame_sizes(anns: AnnotationSet, recordings: dict[str, Recording], problems: list[str]) -> None:
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


def _summarise_split(anns: AnnotationSet, recordings: dict[str, Recording], num_frames: int) -> SplitSummary:
    persons: dict[int, int] = {}
    padded = on_repaired = 0
    repaired = {s: set(r.repair.repaired_frame_indices) for s, r in recordings.items()}
    for kf in anns.keyframes:
        persons[kf.num_boxes] = persons.get(kf.num_boxes, 0) + 1
        rec = recordings.get(kf.sensor_id)
        if rec is not None:
            if clip_window(kf.frame_idx, num_frames, 1, rec.num_frames).num_padded:
                padded += 1
            on_repaired += kf.frame_idx in repaired[kf.sensor_id]
    return SplitSummary(
        name=anns.path.stem,
        path=str(anns.path),
        keyframes=len(anns.keyframes),
        boxes=anns.num_boxes,
        class_counts=anns.class_counts(),
        persons_per_keyframe=dict(sorted(persons.items())),
        clipped_boxes=len(anns.clipped_boxes),
        padded_keyframes=padded,
        keyframes_on_repaired_frames=int(on_repaired),
        sensors=sorted({k.sensor_id for k in anns.keyframes}),
    )


def _render_contact_sheet(
    sets: list[AnnotationSet], recordings: dict[str, Recording], path: Path, max_tiles: int
) -> Path:
    from thermal_action.visualize import SheetItem, contact_sheet

    # Spread the tiles evenly over each split's keyframes, all splits represented.
    per_split = max(1, max_tiles // max(1, len(sets)))
    items = []
    for anns in sets:
        kfs = sorted((k for k in anns.keyframes if k.sensor_id in recordings), key=lambda k: (k.sensor_id, k.frame_idx))
        if len(kfs) > per_split:
            kfs = [kfs[i] for i in np.linspace(0, len(kfs) - 1, per_split).round().astype(int)]
        for kf in kfs:
            frame = recordings[kf.sensor_id].frames[kf.frame_idx]
            names = [anns.class_names[c] if 0 <= c < len(anns.class_names) else str(c) for c in kf.labels]
            items.append(SheetItem(
                frame=frame,
                boxes_xyxy=kf.boxes_xyxy,
                texts=[f"{t}:{n}" for t, n in zip(kf.track_ids.tolist(), names)],
                title=f"{anns.path.stem} {kf.sensor_id} #{kf.frame_idx}",
                track_ids=kf.track_ids.tolist(),
                highlight=[n == FALL_CLASS_NAME for n in names],
            ))
    if not items:
        raise ValueError("no keyframe to draw")
    # One colour range for all tiles, from just below the background to 10 °C above it
    # (a person is 5-8 °C above): a kettle at 45 °C then saturates instead of
    # squeezing the persons into the dark end of the map.
    sample = np.stack([it.frame for it in items])
    background = float(np.median(sample))
    vmin = min(float(np.percentile(sample, 1.0)), background - 2.0)
    contact_sheet(items, cols=min(6, len(items)), path=path, scale=6, font_size=10, vmin=vmin, vmax=background + 10.0)
    return path


def _check_furniture(path: Path, max_overhang: float, problems: list[str], warnings: list[str]) -> None:
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


def _layout_sources(anns: AnnotationSet, rooms: RoomMap | None, warnings: list[str]) -> dict[str, int]:
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


def validate_dataset(
    dataset_dir: str | Path,
    ann_files: list[str | Path] | None = None,
    contact_sheet: str | Path | None = None,
    frames_dir: str = "frames",
    num_frames: int = 64,
    valid_range: tuple[float, float] = DEFAULT_VALID_RANGE,
    max_box_overhang: float = 2.0,
    max_tiles: int = 48,
    rooms: str | Path | None = None,
) -> ValidationReport:
    """Checks a dataset directory and summarises it (see the module docstring).

    Args:
        dataset_dir: holds ``frames/`` and ``annotations/``.
        ann_files: annotation files to check (relative to ``dataset_dir`` unless absolute);
            default every ``annotations/*.json`` except ``class_mapping.json``.
        contact_sheet: PNG to write, or None for none.
        frames_dir: the frames folder, relative to ``dataset_dir``.
        num_frames: the clip window used to count keyframes that need edge padding.
        valid_range: °C; temperatures outside are repaired and counted.
        max_box_overhang: pixels a box may poke out of the frame and be clipped.
        max_tiles: most keyframes drawn on the contact sheet.
        rooms: a layout file (``rooms.json``) to check with the dataset; default
            ``<dataset_dir>/rooms.json`` when there is one.

    Returns:
        The :class:`ValidationReport`; ``problems`` lists every problem found.

    Raises:
        DatasetError: ``dataset_dir`` is not a directory.
    """
    root = Path(dataset_dir)
    if not root.is_dir():
        raise DatasetError(root, "dataset directory not found")
    report = ValidationReport(dataset_dir=str(root), num_frames_window=num_frames)
    problems = report.problems

    fdir = root / frames_dir
    recordings: dict[str, Recording] = {}
    h5_files = sorted(fdir.glob("*.h5")) if fdir.is_dir() else []
    if not fdir.is_dir():
        problems.append(str(DatasetError(fdir, "frames directory not found")))
    elif not h5_files:
        problems.append(str(DatasetError(fdir, "no .h5 recordings")))
    unusable: dict[str, str] = {}  # sensor (file stem) -> why its recording cannot be used
    for h5 in h5_files:
        try:
            rec = read_recording(h5, valid_range=valid_range)
        except DatasetError as e:
            problems.append(str(e))
            unusable[h5.stem] = str(e)
            continue
        recordings[h5.stem] = rec
        report.recordings.append(_summarise_recording(rec))
        _check_recording_attrs(rec, problems)
        dead = rec.dead_sensor()
        if dead:
            problems.append(str(DatasetError(rec.path, dead, record="frames")))
    if (fdir / "sensor_info.json").is_file():
        _check_sensor_info(fdir / "sensor_info.json", recordings, problems)
    room_map: RoomMap | None = None
    if rooms is None and (root / "rooms.json").is_file():
        rooms = root / "rooms.json"
    if rooms is not None:
        report.rooms_file = str(rooms)
        try:
            room_map = read_rooms(rooms)
        except RoomsError as e:
            problems.append(str(e))

    if ann_files is None:
        adir = root / "annotations"
        paths = sorted(p for p in adir.glob("*.json") if p.name != "class_mapping.json") if adir.is_dir() else []
        if not paths:
            problems.append(str(DatasetError(adir, "no annotation files (annotations/*.json)")))
    else:
        paths = [Path(p) if Path(p).is_absolute() else root / p for p in ann_files]

    sets: list[AnnotationSet] = []
    for p in paths:
        errs: list[DatasetError] = []
        try:
            anns = load_annotations(p, frames_dir=fdir, max_box_overhang=max_box_overhang, problems=errs)
        except DatasetError as e:
            problems.extend(str(x) for x in errs)
            problems.append(str(e))
            continue
        problems.extend(str(x) for x in errs)
        _check_furniture(p, max_box_overhang, problems, report.warnings)
        bad_kfs, bad_boxes = _set_aside_unusable(anns, unusable, set(recordings), problems)
        _check_frame_sizes(anns, recordings, problems)
        sets.append(anns)
        summary = _summarise_split(anns, recordings, num_frames)
        summary.unusable_keyframes, summary.unusable_boxes = bad_kfs, bad_boxes
        summary.layouts = _layout_sources(anns, room_map, report.warnings)
        report.splits.append(summary)
        if anns.num_boxes == 0:
            what = f"{len(anns.keyframes)} usable keyframes" + (
                f" ({bad_kfs} more on unusable recordings)" if bad_kfs else "")
            problems.append(str(DatasetError(p, f"no labelled box in its {what}: nothing to train or evaluate on",
                                             record="annotations")))
        if not report.class_names:
            report.class_names = anns.class_names
        elif anns.class_names != report.class_names:
            problems.append(str(DatasetError(p, "class list differs from the other annotation files",
                                             record="categories")))

    # Across splits: a keyframe in two splits is a problem, a shared recording a warning.
    seen: dict[str, str] = {}
    for anns in sets:
        for kf in anns.keyframes:
            other = seen.get(kf.image_id)
            if other is not None and other != anns.path.stem:
                problems.append(str(DatasetError(anns.path, f"keyframe also in split '{other}'",
                                                 record=f"image {kf.image_id}")))
            seen.setdefault(kf.image_id, anns.path.stem)
    if len(sets) > 1:
        by_sensor: dict[str, list[str]] = {}
        for anns in sets:
            for s in sorted({k.sensor_id for k in anns.keyframes}):
                by_sensor.setdefault(s, []).append(anns.path.stem)
        shared = {s: v for s, v in by_sensor.items() if len(v) > 1}
        if shared:
            report.warnings.append(
                f"{len(shared)} recordings have keyframes in several splits ({', '.join(sorted(shared)[:5])}): "
                "neighbouring keyframes share labels, so such a split leaks; hold out whole recordings"
            )
    if room_map is not None:
        sensors = set(recordings) | set(unusable) | {k.sensor_id for a in sets for k in a.keyframes}
        macs = {str(r.attrs.get("mac_address")) for r in recordings.values() if r.attrs.get("mac_address")}
        macs |= {str(k.extras["mac_address"]) for a in sets for k in a.keyframes if k.extras.get("mac_address")}
        unused = room_map.unused_keys(sensors, macs)
        if unused:
            report.warnings.append(f"{rooms}: {len(unused)} key(s) name no recording of this dataset (a typo, or a "
                                   f"sensor without recordings here): {', '.join(unused[:10])}")
    ints = [f"{r.sensor_id} ({r.converted_from_dtype})" for r in report.recordings if r.converted_from_dtype]
    if ints:
        report.warnings.append(f"{len(ints)} recordings have integer frames, converted to float32 as whole degrees: "
                               f"{', '.join(ints[:5])}")
    train = next((s for s in report.splits if s.name == "train"), None)
    if train is not None:
        empty = [n for n, c in train.class_counts.items() if c == 0]
        if empty:
            report.warnings.append(f"{len(empty)} classes have no training box: {empty}")

    if contact_sheet is not None and sets:
        try:
            report.contact_sheet = str(_render_contact_sheet(sets, recordings, Path(contact_sheet), max_tiles))
        except (OSError, ValueError) as e:
            report.warnings.append(f"contact sheet not written to {contact_sheet}: {e}")
    logger.info("validated %s: %d recordings, %d keyframes, %d problems", root, len(report.recordings),
                report.num_keyframes, len(problems))
    return report
