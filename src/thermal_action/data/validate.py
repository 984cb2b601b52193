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

Where things are: the checks in :mod:`thermal_action.data.validation_checks`, the report, its
summaries and the contact sheet in :mod:`thermal_action.data.validation_report`; here the
checks run in order and across annotation files (a keyframe in two splits, a recording shared
by splits, layout-file keys that name no recording).
"""

from __future__ import annotations

import logging
from pathlib import Path

from thermal_action.data.annotations import AnnotationSet, load_annotations
from thermal_action.data.hdf5 import DEFAULT_VALID_RANGE, Recording, read_recording
from thermal_action.data.rooms import RoomMap, read_rooms
from thermal_action.data.validation_checks import (
    check_frame_sizes,
    check_furniture,
    check_recording_attrs,
    check_sensor_info,
    layout_sources,
    set_aside_unusable,
)
from thermal_action.data.validation_report import (
    ValidationReport,
    render_contact_sheet,
    summarise_recording,
    summarise_split,
)
from thermal_action.errors import DatasetError, RoomsError

logger = logging.getLogger(__name__)


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
        report.recordings.append(summarise_recording(rec))
        check_recording_attrs(rec, problems)
        dead = rec.dead_sensor()
        if dead:
            problems.append(str(DatasetError(rec.path, dead, record="frames")))
    if (fdir / "sensor_info.json").is_file():
        check_sensor_info(fdir / "sensor_info.json", recordings, problems)
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
        check_furniture(p, max_box_overhang, problems, report.warnings)
        bad_kfs, bad_boxes = set_aside_unusable(anns, unusable, set(recordings), problems)
        check_frame_sizes(anns, recordings, problems)
        sets.append(anns)
        summary = summarise_split(anns, recordings, num_frames)
        summary.unusable_keyframes, summary.unusable_boxes = bad_kfs, bad_boxes
        summary.layouts = layout_sources(anns, room_map, report.warnings)
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
            report.contact_sheet = str(render_contact_sheet(sets, recordings, Path(contact_sheet), max_tiles))
        except (OSError, ValueError) as e:
            report.warnings.append(f"contact sheet not written to {contact_sheet}: {e}")
    logger.info("validated %s: %d recordings, %d keyframes, %d problems", root, len(report.recordings),
                report.num_keyframes, len(problems))
    return report
