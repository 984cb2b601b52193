"""Keeps person ids across frames: greedy IoU matching with a centroid fallback.

The action model reads a clip around each keyframe per person, so a person needs the
same id from frame to frame. People in a 40x60 frame are few (1-3) and small (7-19 px
wide), and move ~0.5-1.1 px per frame, so a simple tracker suffices::

    tracks (predicted one frame ahead) ──┐
                                         ├─► cost = 1 - IoU        (IoU >= iou_threshold)
    detections of this frame ────────────┤        1 + dist / max   (else, centres close)
                                         └─► greedy: cheapest pair first, each used once
         matched: box and velocity updated, misses = 0
         unmatched tracks: coast on their velocity, dropped after max_misses frames
         unmatched detections: new tracks with new ids

Greedy matching on sorted costs equals the optimal (Hungarian) assignment whenever
each person's best match is unambiguous, which is the rule with 1-3 people; it
needs no scipy. Any IoU match beats any centroid match, so a centroid match only
picks up a small, fast box whose consecutive boxes do not overlap.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from thermal_action.people.results import Detections
from thermal_action.structures import box_iou_xyxy


@dataclass
class Track:
    """One person being followed.

    Attributes:
        id: track id, unique within the tracker's life (0, 1, 2, ...).
        box: ``(4,)`` float32 last box (x1, y1, x2, y2 pixels); while coasting, the
            box moved by the velocity.
        score: the last matched detection's score.
        age: frames since the track started.
        hits: frames with a matched detection.
        misses: consecutive frames without one.
        velocity: ``(2,)`` smoothed centre motion (pixels per frame).
    """

    id: int
    box: np.ndarray
    score: float
    age: int = 0
    hits: int = 1
    misses: int = 0
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2, np.float32))

    @property
    def centre(self) -> np.ndarray:
        return np.array([(self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2], np.float32)

    def predicted_box(self) -> np.ndarray:
        """The box one frame ahead at the current velocity."""
        return self.box + np.tile(self.velocity, 2)


@dataclass(frozen=True)
class TrackedBox:
    """A person box with its track id (one per reported track and frame).

    Attributes:
        track_id: the person's id.
        box_xyxy: ``(4,)`` float32 pixel corners.
        score: the detection score; for a coasting track (no detection this frame)
            the last score times ``coast_decay ** misses``.
        coasting: ``True`` when the box is carried on without a detection this frame.
    """

    track_id: int
    box_xyxy: np.ndarray
    score: float
    coasting: bool = False


class Tracker:
    """Assigns track ids to the detections of consecutive frames.

    Args:
        iou_threshold: smallest IoU (with the track's predicted box) for an IoU match.
        max_centroid_distance_px: largest centre distance (pixels) for a match when
            the boxes do not overlap enough; people move at most ~1.1 px per frame,
            a miss or two multiplies that.
        max_misses: frames a track survives without a detection.
        min_hits: matched frames before a track is reported (one-frame noise blobs
            are not); during the first ``min_hits`` frames of a stream tracks are
            reported at once, so people present from the start are not lost.
        report_coasting: also report confirmed tracks that missed this frame, at the
            moved box with a decayed score (a person lying still who drops under the
            threshold for a frame keeps a box at the keyframe).
        coast_decay: score factor per missed frame of a coasting track.
        velocity_smoothing: weight of the newest displacement in the velocity.
        coast_velocity_damping: factor on the velocity per missed frame, so a coasting
            box slows down rather than drifting off.
    """

    def __init__(
        self,
        iou_threshold: float = 0.1,
        max_centroid_distance_px: float = 6.0,
        max_misses: int = 6,
        min_hits: int = 2,
        report_coasting: bool = True,
        coast_decay: float = 0.8,
        velocity_smoothing: float = 0.5,
        coast_velocity_damping: float = 0.5,
    ):
        if not 0.0 < iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
        if max_misses < 0 or min_hits < 1:
            raise ValueError("need max_misses >= 0 and min_hits >= 1")
        self.iou_threshold = iou_threshold
        self.max_centroid_distance_px = max_centroid_distance_px
        self.max_misses = max_misses
        self.min_hits = min_hits
        self.report_coasting = report_coasting
        self.coast_decay = coast_decay
        self.velocity_smoothing = velocity_smoothing
        self.coast_velocity_damping = coast_velocity_damping
        self.reset()

    def reset(self) -> None:
        """Forgets all tracks (call before a new recording); ids restart at 0."""
        self.tracks: list[Track] = []
        self._next_id = 0
        self.frames_seen = 0

    def _costs(self, dets: Detections) -> np.ndarray:
        """``(T, D)`` matching costs; ``inf`` where a pair may not match."""
        if not self.tracks or len(dets) == 0:
            return np.full((len(self.tracks), len(dets)), np.inf)
        pred = np.stack([t.predicted_box() for t in self.tracks])  # (T, 4)
        boxes = dets.boxes_xyxy  # (D, 4)
        iou = box_iou_xyxy(pred, boxes)  # (T, D)
        pc = (pred[:, :2] + pred[:, 2:]) / 2
        dc = (boxes[:, :2] + boxes[:, 2:]) / 2
        dist = np.linalg.norm(pc[:, None, :] - dc[None, :, :], axis=-1)  # (T, D)
        cost = np.full(iou.shape, np.inf)
        near = dist <= self.max_centroid_distance_px
        cost[near] = 1.0 + dist[near] / max(self.max_centroid_distance_px, 1e-9)
        overlap = iou >= self.iou_threshold
        cost[overlap] = 1.0 - iou[overlap]
        return cost

    @staticmethod
    def _greedy(cost: np.ndarray) -> list[tuple[int, int]]:
        pairs = []
        if cost.size == 0:
            return pairs
        used_t, used_d = set(), set()
        flat = np.argsort(cost, axis=None, kind="stable")
        for k in flat.tolist():
            ti, di = divmod(k, cost.shape[1])
            if not np.isfinite(cost[ti, di]):
                break
            if ti in used_t or di in used_d:
                continue
            used_t.add(ti)
            used_d.add(di)
            pairs.append((ti, di))
        return pairs

    def update(self, detections: Detections) -> list[TrackedBox]:
        """Matches the next frame's detections to the tracks.

        Args:
            detections: this frame's boxes and scores (may be empty).

        Returns:
            The reported tracks of this frame, ordered by track id.
        """
        self.frames_seen += 1
        cost = self._costs(detections)
        pairs = self._greedy(cost)
        matched_t = {ti for ti, _ in pairs}
        matched_d = {di for _, di in pairs}
        a = self.velocity_smoothing
        for ti, di in pairs:
            t = self.tracks[ti]
            box = detections.boxes_xyxy[di].astype(np.float32)
            old_centre = t.centre
            t.box = box
            step = (t.centre - old_centre) / (t.misses + 1)
            t.velocity = ((1 - a) * t.velocity + a * step).astype(np.float32)
            t.score = float(detections.scores[di])
            t.hits += 1
            t.misses = 0
        for ti, t in enumerate(self.tracks):
            t.age += 1
            if ti not in matched_t:
                t.misses += 1
                t.box = t.predicted_box().astype(np.float32)
                t.velocity = (t.velocity * self.coast_velocity_damping).astype(np.float32)
        self.tracks = [t for t in self.tracks if t.misses <= self.max_misses]
        for di in range(len(detections)):
            if di not in matched_d:
                self.tracks.append(
                    Track(self._next_id, detections.boxes_xyxy[di].astype(np.float32), float(detections.scores[di]))
                )
                self._next_id += 1
        return self._report()

    def _report(self) -> list[TrackedBox]:
        out = []
        warm_up = self.frames_seen <= self.min_hits
        for t in sorted(self.tracks, key=lambda t: t.id):
            confirmed = t.hits >= self.min_hits or warm_up
            if not confirmed:
                continue
            if t.misses == 0:
                out.append(TrackedBox(t.id, t.box.copy(), t.score, False))
            elif self.report_coasting:
                out.append(TrackedBox(t.id, t.box.copy(), t.score * self.coast_decay**t.misses, True))
        return out
