"""Labels carried along a track between two labelled keyframes that agree (``data.carry_labels``).

::

    keyframe A (frame a)                                keyframe B (frame b), b - a <= max_gap
      person 3: "standing"  ─────── same track, same label ───────  person 3: "standing"
      person 5: "sitting"   ─────── same track, other label ──────  person 5: "walking"
                    │                       │
                    ▼                       ▼
         frames a + (b - a) j / (n + 1), j = 1..n: a new training keyframe each,
           person 3: box interpolated, label "standing"
           person 5: box interpolated, label -1 (comes along, never trains)
           (a person at one end only is left out: where it went is unknown)

A label set on a keyframe holds along the track until it changes (the labelling page's
timeline works the same way), so when both ends say the same, the frames between very
probably say it too: more training clips per label. Boxes are interpolated linearly
between the two annotated boxes (people move little in a second or two); the room is the
first keyframe's. A frame that is a keyframe already is never made again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import pairwise

import numpy as np

from thermal_action.data.annotations import Keyframe
from thermal_action.structures import boxes_cxcywh_norm_to_xyxy

#: What a carried keyframe's ``extras["label_source"]`` says.
CARRIED = "carried"


def carry_labels_along_tracks(
    keyframes: Sequence[Keyframe],
    per_gap: int,
    max_gap: int,
    timestamps_of: Callable[[str], np.ndarray],
) -> list[Keyframe]:
    """New keyframes between consecutive labelled keyframes where a person keeps its label.

    Args:
        keyframes: the labelled keyframes (any order; several recordings).
        per_gap: frames made per agreeing pair (evenly spaced between the two).
        max_gap: pairs more than this many frames apart make none.
        timestamps_of: sensor id -> the recording's ``(N,)`` timestamps (ms), for the new
            keyframes' times and ids.

    Returns:
        The new keyframes (``extras["label_source"] == "carried"``), by recording and frame;
        each has at least one labelled person.
    """
    if per_gap < 1:
        return []
    by_rec: dict[str, list[Keyframe]] = {}
    for kf in keyframes:
        by_rec.setdefault(kf.sensor_id, []).append(kf)
    out: list[Keyframe] = []
    for sensor, kfs in sorted(by_rec.items()):
        kfs = sorted(kfs, key=lambda k: k.frame_idx)
        taken = {k.frame_idx for k in kfs}
        stamps = None
        for a, b in pairwise(kfs):
            gap = b.frame_idx - a.frame_idx
            if gap < 2 or gap > max_gap:
                continue
            pairs = _matched_people(a, b)
            if not any(la == lb and la >= 0 for _, _, la, lb in pairs):
                continue
            if stamps is None:
                stamps = timestamps_of(sensor)
            frames = sorted({a.frame_idx + round(gap * j / (per_gap + 1)) for j in range(1, per_gap + 1)} - taken)
            for f in frames:
                out.append(_between(a, b, pairs, f, int(stamps[f])))
                taken.add(f)
    return out


def _matched_people(a: Keyframe, b: Keyframe) -> list[tuple[int, int, int, int]]:
    """``(index in a, index in b, label in a, label in b)`` of the people with a track id at
    both ends (each track id once per keyframe)."""
    ta, tb = np.asarray(a.track_ids), np.asarray(b.track_ids)
    out = []
    for i, t in enumerate(ta.tolist()):
        if t < 0 or (ta == t).sum() != 1 or (tb == t).sum() != 1:
            continue
        j = int(np.flatnonzero(tb == t)[0])
        out.append((i, j, int(a.labels[i]), int(b.labels[j])))
    return out


def _between(a: Keyframe, b: Keyframe, pairs: list[tuple[int, int, int, int]], frame: int,
             timestamp: int) -> Keyframe:
    w = (frame - a.frame_idx) / (b.frame_idx - a.frame_idx)
    ia = [i for i, _, _, _ in pairs]
    ib = [j for _, j, _, _ in pairs]
    norm = ((1 - w) * a.boxes_cxcywh_norm[ia] + w * b.boxes_cxcywh_norm[ib]).astype(np.float32)
    labels = np.array([la if la == lb else -1 for _, _, la, lb in pairs], dtype=np.int64)
    return Keyframe(
        image_id=f"{a.sensor_id}_{timestamp}", sensor_id=a.sensor_id, frame_idx=int(frame), timestamp=timestamp,
        width=a.width, height=a.height, boxes_cxcywh_norm=norm,
        boxes_xyxy=boxes_cxcywh_norm_to_xyxy(norm, a.width, a.height).astype(np.float32), labels=labels,
        track_ids=np.asarray(a.track_ids)[ia].astype(np.int64), annotation_ids=np.full(len(pairs), -1, np.int64),
        extras={**a.extras, "label_source": CARRIED, "carried_from": [a.image_id, b.image_id]},
        box_extras=[{} for _ in pairs], layout=a.layout,
    )
