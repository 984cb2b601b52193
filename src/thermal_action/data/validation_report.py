"""What ``thermal-action validate`` reports: a summary per recording and per annotation file,
the report with its totals, its text and JSON forms, and the contact sheet of keyframes.

The checks are :mod:`thermal_action.data.validation_checks`; :func:`~thermal_action.data.validate.validate_dataset`
runs them and fills the report.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from thermal_action.data.annotations import AnnotationSet
from thermal_action.data.clips import clip_window
from thermal_action.data.hdf5 import Recording
from thermal_action.structures import FALL_CLASS_NAME


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
    """Everything :func:`~thermal_action.data.validate.validate_dataset` found."""

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


def summarise_recording(rec: Recording) -> RecordingSummary:
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


def summarise_split(anns: AnnotationSet, recordings: dict[str, Recording], num_frames: int) -> SplitSummary:
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


def render_contact_sheet(
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
