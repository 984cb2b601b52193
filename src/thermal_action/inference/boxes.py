"""Person boxes of a recording, from the first available of: annotations (keyframes
only), a detections file, the built-in detector and tracker (:func:`resolve_boxes`).

A frame absent from a detections file has no person. Boxes without track ids go
through the built-in tracker (every box kept from its first frame, none invented;
tracks survive 6 frames without a box, so detect at least every 6 frames or give
track ids); with ``step > 1`` a grid frame with no entry in the file
takes the nearest listed frame within ``step // 2`` (for detectors run every few
frames).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from thermal_action.data.hdf5 import Recording
from thermal_action.data.rooms import RoomLayout
from thermal_action.errors import DatasetError
from thermal_action.evaluation.detections import DetectionsFile, RawDetection
from thermal_action.people.results import Detections
from thermal_action.structures import FrameBoxes, boxes_cxcywh_norm_to_xyxy

logger = logging.getLogger(__name__)

BOX_SOURCES = ("auto", "annotations", "detections", "detector")


@dataclass
class PersonBoxes:
    """Where the people are in one recording.

    Attributes:
        source: ``"annotations"``, ``"detections"`` or ``"detector"``.
        frames: frame index -> boxes; frames not listed have no person.
        keyframes_only: predict at the listed frames only (annotations), not on the
            ``step`` grid.
    """

    source: str
    frames: dict[int, FrameBoxes]
    keyframes_only: bool = False

    def keyframes(self, num_frames: int, step: int) -> list[tuple[int, FrameBoxes]]:
        """``(frame_idx, boxes)`` to predict: the annotated frames, or every ``step`` frames.

        On the grid, a frame without an entry takes the nearest listed frame within
        ``step // 2`` (detections computed every few frames), else has no person.
        """
        if self.keyframes_only:
            return [(f, self.frames[f]) for f in sorted(self.frames) if 0 <= f < num_frames]
        listed = np.asarray(sorted(self.frames), dtype=np.int64)
        out = []
        for f in range(0, num_frames, step):
            if f in self.frames:
                out.append((f, self.frames[f]))
                continue
            if listed.size == 0 or step < 2:
                continue
            j = int(np.searchsorted(listed, f))
            near = [int(listed[i]) for i in (j - 1, j) if 0 <= i < listed.size]
            best = min(near, key=lambda g: (abs(g - f), g))
            if abs(best - f) <= step // 2:
                out.append((f, self.frames[best]))
        return out


def track_frame(tracker: Any, detections: Detections) -> FrameBoxes:
    """One frame through a tracker: the boxes it reports, with their track ids.

    The one conversion from tracker output to per-frame boxes, for recordings
    (:func:`track_detections`) and live streams (``StreamingPredictor``) alike.

    Args:
        tracker: a :class:`~thermal_action.people.tracker.Tracker` (or one with its
            ``update``), fed every frame in order.
        detections: the frame's untracked boxes.

    Returns:
        The reported boxes (empty when it reports none).
    """
    tracked = tracker.update(detections)
    if not tracked:
        return FrameBoxes.empty()
    return FrameBoxes(
        np.asarray([t.box_xyxy for t in tracked], np.float32),
        np.asarray([t.score for t in tracked], np.float32),
        np.asarray([t.track_id for t in tracked], np.int64),
    )


def track_detections(
    detections: Sequence[Detections | tuple[np.ndarray, np.ndarray]],
    tracker_factory: Callable[[], Any] | None = None,
) -> dict[int, FrameBoxes]:
    """Gives track ids to per-frame boxes with the built-in tracker.

    Args:
        detections: the untracked boxes of every frame, in order (empty for frames
            without people: the tracker must see them to age its tracks); a
            ``(boxes_xyxy (N, 4), scores (N,))`` pair is taken for a frame too.
        tracker_factory: makes a fresh tracker (default: ``inference.tracker.Tracker``).

    Returns:
        frame index -> tracked boxes, for frames with at least one box.
    """
    if tracker_factory is None:
        from thermal_action.people.tracker import Tracker

        tracker_factory = Tracker
    tracker = tracker_factory()
    out: dict[int, FrameBoxes] = {}
    for f, dets in enumerate(detections):
        tracked = track_frame(tracker, dets if isinstance(dets, Detections) else Detections(*dets))
        if len(tracked):
            out[f] = tracked
    return out


def boxes_from_detector(recording: Recording, detector: Any | None = None,
                        tracker_factory: Callable[[], Any] | None = None) -> PersonBoxes:
    """Runs the built-in person detector and tracker over a whole recording."""
    if detector is None:
        from thermal_action.people.person_detector import PersonDetector

        detector = PersonDetector()
    dets = detector.detect_recording(recording.frames)
    tracked = track_detections(dets, tracker_factory)
    return PersonBoxes("detector", tracked)


def boxes_from_annotations(annotations: Any, recording: Recording) -> PersonBoxes | None:
    """The annotated keyframes of ``recording`` (an ``AnnotationSet``), or None when it has none."""
    frames: dict[int, FrameBoxes] = {}
    for kf in annotations.keyframes:
        if kf.sensor_id != recording.sensor_id:
            continue
        if not 0 <= kf.frame_idx < recording.num_frames:
            raise DatasetError(annotations.path, f"frame_idx {kf.frame_idx} out of range for {recording.path} "
                               f"({recording.num_frames} frames)", record=kf.image_id)
        xyxy = boxes_cxcywh_norm_to_xyxy(kf.boxes_cxcywh_norm, recording.width, recording.height)
        frames[int(kf.frame_idx)] = FrameBoxes(xyxy, np.ones(kf.num_boxes), kf.track_ids)
    if not frames:
        return None
    return PersonBoxes("annotations", frames, keyframes_only=True)


def layouts_from_annotations(annotations: Any, recording: Recording) -> dict[int, RoomLayout]:
    """Frame index -> the room its annotated keyframe records (``context_objects``), for the
    keyframes of ``recording`` in an ``AnnotationSet`` that have one; whatever the boxes' source,
    these keyframes' own furniture is the room the model sees there."""
    return {int(kf.frame_idx): kf.layout for kf in annotations.keyframes
            if kf.sensor_id == recording.sensor_id and kf.layout.known}


def boxes_from_detections(
    dets: DetectionsFile,
    recording: Recording,
    single_recording: bool,
    tracker_factory: Callable[[], Any] | None = None,
) -> PersonBoxes | None:
    """The detections of ``recording`` (None when the file has none for it).

    Args:
        dets: from :func:`~thermal_action.evaluation.detections.read_detections_file`.
        recording: the recording they are for.
        single_recording: whether only this recording is being predicted (then boxes
            without a sensor id belong to it; otherwise they are ambiguous: an error).
        tracker_factory: tracker for boxes without track ids.
    """
    sensor = recording.sensor_id
    if dets.has_unnamed() and not single_recording:
        raise DatasetError(dets.path, "detections without a sensor_id (or per-sensor directory) are ambiguous "
                           "when several recordings are predicted; predict one recording at a time or add sensor_id")
    by_image_id = [(r, _split_image_id(dets.path, r)) for r in dets.records if r.image_id is not None]
    mine = [r for r in dets.records if r.image_id is None and r.sensor_id in (None, sensor)]
    ts_to_frame = None
    for r, (s, ts) in by_image_id:
        if s != sensor:
            continue
        if ts_to_frame is None:
            ts_to_frame = {int(t): i for i, t in enumerate(recording.timestamps)}
        if ts not in ts_to_frame:
            raise DatasetError(dets.path, f"no frame of {recording.path} has timestamp {ts}", record=r.record)
        mine.append(RawDetection(ts_to_frame[ts], r.box_cxcywh_norm, r.score, r.track_id, sensor, r.image_id,
                                 r.record))
    if not mine:
        return None
    n = recording.num_frames
    out_of_range = [r for r in mine if r.frame_idx >= n]
    if out_of_range:
        bad = out_of_range[0]
        raise DatasetError(dets.path, f"frame_idx {bad.frame_idx} out of range for {recording.path} ({n} frames)",
                           record=bad.record or f"frame {bad.frame_idx}")
    with_ids = [r.track_id is not None for r in mine]
    if any(with_ids) and not all(with_ids):
        raise DatasetError(dets.path, f"some boxes of {sensor} have a track_id and some do not; give all or none")
    per_frame: dict[int, list[RawDetection]] = {}
    for r in mine:
        per_frame.setdefault(r.frame_idx, []).append(r)

    def xyxy(rs: list[RawDetection]) -> np.ndarray:
        return boxes_cxcywh_norm_to_xyxy(np.asarray([r.box_cxcywh_norm for r in rs]), recording.width, recording.height)

    if all(with_ids):
        frames = {
            f: FrameBoxes(xyxy(rs), [r.score for r in rs], [r.track_id for r in rs]) for f, rs in per_frame.items()
        }
    else:
        seq = [
            Detections(xyxy(per_frame[f]), [r.score for r in per_frame[f]]) if f in per_frame else Detections.empty()
            for f in range(max(per_frame) + 1)
        ]
        frames = track_detections(seq, tracker_factory or _detections_tracker)
    return PersonBoxes("detections", frames)


def _split_image_id(path: Path, r: RawDetection) -> tuple[str, int]:
    """``(sensor_id, timestamp)`` of an ``image_id`` record; predict needs the timestamp."""
    image_id = str(r.image_id)
    sensor, _, ts = image_id.rpartition("_")
    if not sensor or not ts.lstrip("-").isdigit():
        raise DatasetError(path, f"image_id {image_id!r} is not '<sensor_id>_<timestamp>'", record=r.record)
    return sensor, int(ts)


def _detections_tracker() -> Any:
    """The tracker for a user's detections: every box is reported from its first frame
    (no confirmation delay) and no box is invented on frames the file leaves empty."""
    from thermal_action.people.tracker import Tracker

    return Tracker(min_hits=1, report_coasting=False)



def resolve_boxes(
    recording: Recording,
    source: str = "auto",
    annotations: Any | None = None,
    detections: DetectionsFile | None = None,
    single_recording: bool = True,
    tracker_factory: Callable[[], Any] | None = None,
) -> PersonBoxes:
    """Picks the person boxes of a recording: annotations, else detections, else the detector.

    Args:
        source: ``"auto"`` (that order of preference) or one source to insist on
            (an error when it has nothing for this recording).
        annotations: an ``AnnotationSet`` or None.
        detections: a parsed detections file or None.
    """
    if source not in BOX_SOURCES:
        raise ValueError(f"boxes must be one of {BOX_SOURCES}, got {source!r}")
    if source in ("auto", "annotations") and annotations is not None:
        found = boxes_from_annotations(annotations, recording)
        if found is not None:
            return found
        if source == "annotations":
            raise DatasetError(annotations.path, f"no keyframe of sensor {recording.sensor_id!r}")
        logger.info("%s: no annotated keyframe in %s; trying the next box source", recording.path, annotations.path)
    elif source == "annotations":
        raise ValueError("boxes='annotations' needs an annotations file")
    if source in ("auto", "detections") and detections is not None:
        found = boxes_from_detections(detections, recording, single_recording, tracker_factory)
        if found is not None:
            return found
        if source == "detections":
            raise DatasetError(detections.path, f"no detections for sensor {recording.sensor_id!r}")
        logger.info("%s: no detections for it in %s; using the built-in detector", recording.path, detections.path)
    elif source == "detections":
        raise ValueError("boxes='detections' needs a detections file")
    return boxes_from_detector(recording, tracker_factory=tracker_factory)

