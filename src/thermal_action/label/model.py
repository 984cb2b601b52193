"""The labels of one recording and the edits a labeller makes to them (no files, no web).

A recording is labelled at keyframes (every ``every``-th frame). A person is a track: one
box per keyframe where it is seen. An action is set *on a keyframe* and holds along the
track from there until the next keyframe where it is set again: not interpolated, not
copied into every keyframe. So a person standing for 40 keyframes and then sitting takes
two key presses::

    keyframe     0    6   12   18   24   30   36
    track 3      S    .    .    .    W    .    .      events {0: standing, 24: walking}
    label        S    S    S    S    W    W    W      label_at(3, f) = event at or before f

Edits are :class:`Op` s (``set_action``, ``set_box``, ``add_person``, ``delete_box``,
``delete_track``, ``split``, ``merge``, ``set_zones``); :meth:`RecordingLabels.apply`
applies one and says which keyframes it touched (for the annotator name and time each
exported keyframe carries). An edit that cannot apply raises :class:`LabelError` and
changes nothing. Undo replays the base with the remaining edits
(:func:`replay`): the state after an undo is exactly the state before the undone edit.
"""

from __future__ import annotations

import bisect
import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from thermal_action.errors import LabelError

#: Edit kinds a labeller can make.
OP_KINDS = ("set_action", "set_box", "add_person", "delete_box", "delete_track", "split", "merge", "set_zones")


@dataclass
class Op:
    """One edit, as the page sends it and the journal keeps it.

    Attributes:
        kind: one of :data:`OP_KINDS`.
        recording: the recording's sensor id.
        args: the edit's arguments (``track``, ``frame``, ``action``, ``box`` as pixel
            ``[x1, y1, x2, y2]``, ``other``, ``zones``).
        op_id: unique id from the page (a retried request is applied once).
        annotator: who made it.
        time_ms: when the server accepted it (ms since the epoch).
    """

    kind: str
    recording: str
    args: dict[str, Any]
    op_id: str = ""
    annotator: str = ""
    time_ms: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.kind, "recording": self.recording, "args": self.args, "id": self.op_id,
                "annotator": self.annotator, "t": self.time_ms}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Op:
        return cls(str(data["op"]), str(data["recording"]), dict(data.get("args") or {}), str(data.get("id", "")),
                   str(data.get("annotator", "")), int(data.get("t", 0)))


@dataclass
class Touch:
    """Who last changed a keyframe, and when."""

    annotator: str
    time_ms: int


def _int(args: Mapping[str, Any], key: str) -> int:
    value = args.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise LabelError(f"'{key}' must be an integer, got {value!r}")
    return value


@dataclass
class RecordingLabels:
    """Boxes, tracks, actions and furniture zones of one recording.

    Attributes:
        keyframes: the keyframe indices into the recording's frames, ascending.
        width, height: frame size in pixels (boxes are clipped to it).
        num_classes: actions are ``0 .. num_classes - 1``.
        boxes: keyframe -> track id -> ``[x1, y1, x2, y2]`` pixels.
        events: track id -> keyframe -> action set there (holds until the next event).
        zones: the furniture (``{"kind", "name", "box": [x1, y1, x2, y2] normalized}``),
            None while none were drawn for this recording.
        touched: keyframe -> who last changed its labels.
    """

    keyframes: list[int]
    width: int
    height: int
    num_classes: int
    boxes: dict[int, dict[int, list[float]]] = field(default_factory=dict)
    events: dict[int, dict[int, int]] = field(default_factory=dict)
    zones: list[dict[str, Any]] | None = None
    touched: dict[int, Touch] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.keyframes = sorted(int(f) for f in self.keyframes)
        self._keyset = set(self.keyframes)
        for f in self.keyframes:
            self.boxes.setdefault(f, {})

    # -- reading

    @property
    def track_ids(self) -> list[int]:
        return sorted({t for per in self.boxes.values() for t in per} | set(self.events))

    def frames_of(self, track: int) -> list[int]:
        """The keyframes where ``track`` has a box."""
        return [f for f in self.keyframes if track in self.boxes[f]]

    def label_at(self, track: int, frame: int) -> int | None:
        """The action of ``track`` at keyframe ``frame``: the last one set at or before it
        (None: none set yet, or cleared)."""
        ev = self.events.get(track)
        if not ev:
            return None
        frames = sorted(ev)
        i = bisect.bisect_right(frames, frame) - 1
        return None if i < 0 else ev[frames[i]]

    def labels(self) -> dict[int, dict[int, int | None]]:
        """Keyframe -> track -> action, for every box."""
        return {f: {t: self.label_at(t, f) for t in per} for f, per in self.boxes.items()}

    def complete_keyframes(self) -> list[int]:
        """Keyframes with at least one person, every one labelled: what is exported."""
        return [f for f in self.keyframes
                if self.boxes[f] and all(self.label_at(t, f) is not None for t in self.boxes[f])]

    def label_counts(self) -> list[int]:
        """Boxes per action over the complete keyframes."""
        counts = [0] * self.num_classes
        for f in self.complete_keyframes():
            for t in self.boxes[f]:
                counts[self.label_at(t, f)] += 1  # type: ignore[index]
        return counts

    # -- editing

    def _frame(self, args: Mapping[str, Any]) -> int:
        f = _int(args, "frame")
        if f not in self._keyset:
            raise LabelError(f"frame {f} is not a keyframe of this recording")
        return f

    def _track(self, args: Mapping[str, Any], key: str = "track") -> int:
        t = _int(args, key)
        if t not in self.track_ids:
            raise LabelError(f"no track {t} in this recording")
        return t

    def _box(self, args: Mapping[str, Any]) -> list[float]:
        box = args.get("box")
        if not (isinstance(box, (list, tuple)) and len(box) == 4
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box)):
            raise LabelError(f"'box' must be [x1, y1, x2, y2] in pixels, got {box!r}")
        x1, y1, x2, y2 = (float(v) for v in box)
        x1, x2 = sorted((min(max(x1, 0.0), self.width), min(max(x2, 0.0), self.width)))
        y1, y2 = sorted((min(max(y1, 0.0), self.height), min(max(y2, 0.0), self.height)))
        if x2 - x1 < 1.0 or y2 - y1 < 1.0:
            raise LabelError(f"a box must be at least 1 px wide and high inside the {self.width}x{self.height} "
                             f"frame, got {list(box)!r}")
        return [round(v, 3) for v in (x1, y1, x2, y2)]

    def _held_until(self, track: int, frame: int) -> list[int]:
        """Keyframes from ``frame`` up to (not including) the track's next event."""
        later = [f for f in self.events.get(track, {}) if f > frame]
        end = min(later) if later else None
        return [f for f in self.keyframes if f >= frame and (end is None or f < end)]

    def apply(self, op: Op) -> list[int]:
        """Applies one edit in place.

        Returns:
            The keyframes whose exported labels it may have changed.

        Raises:
            LabelError: the edit does not fit this recording; nothing changed.
        """
        a = op.args
        if op.kind == "set_action":
            t, f = self._track(a), self._frame(a)
            action = a.get("action")
            if action is not None and not (isinstance(action, int) and not isinstance(action, bool)
                                           and 0 <= action < self.num_classes):
                raise LabelError(f"action must be a class index 0..{self.num_classes - 1} or null, got {action!r}")
            touched = self._held_until(t, f)
            if action is None:
                self.events.get(t, {}).pop(f, None)
            else:
                self.events.setdefault(t, {})[f] = int(action)
            return touched
        if op.kind == "set_box":
            t, f = self._track(a), self._frame(a)
            self.boxes[f][t] = self._box(a)
            return [f]
        if op.kind == "add_person":
            f, box = self._frame(a), self._box(a)
            t = max(self.track_ids, default=-1) + 1
            self.boxes[f][t] = box
            return [f]
        if op.kind == "delete_box":
            t, f = self._track(a), self._frame(a)
            if t not in self.boxes[f]:
                raise LabelError(f"track {t} has no box at keyframe {f}")
            del self.boxes[f][t]
            return [f]
        if op.kind == "delete_track":
            t = self._track(a)
            frames = self.frames_of(t)
            for f in frames:
                del self.boxes[f][t]
            self.events.pop(t, None)
            return frames
        if op.kind == "split":
            t, f = self._track(a), self._frame(a)
            moved = [g for g in self.frames_of(t) if g >= f]
            if not moved or moved == self.frames_of(t):
                raise LabelError(f"splitting track {t} at keyframe {f} leaves one part empty")
            new = max(self.track_ids) + 1
            for g in moved:
                self.boxes[g][new] = self.boxes[g].pop(t)
            ev = self.events.get(t, {})
            # The second part is another person: it starts unlabelled, keeping only the
            # actions set on its own keyframes.
            later = {g: ev.pop(g) for g in sorted(ev) if g >= f}
            if later:
                self.events[new] = later
            return moved
        if op.kind == "merge":
            t, o = self._track(a), self._track(a, "other")
            if t == o:
                raise LabelError("a track cannot be merged with itself")
            both = [f for f in self.keyframes if t in self.boxes[f] and o in self.boxes[f]]
            if both:
                raise LabelError(f"tracks {t} and {o} both have a box at keyframe(s) {both[:5]}; delete one box "
                                 f"there first")
            frames = self.frames_of(o)
            for f in frames:
                self.boxes[f][t] = self.boxes[f].pop(o)
            for f, action in self.events.pop(o, {}).items():
                self.events.setdefault(t, {}).setdefault(f, action)
            return sorted(set(frames) | set(self.frames_of(t)))
        if op.kind == "set_zones":
            self.zones = parse_zones(a.get("zones"))
            return []
        raise LabelError(f"unknown edit {op.kind!r}; edits: {', '.join(OP_KINDS)}")

    def to_dict(self) -> dict[str, Any]:
        """The state as JSON for the page (keys as strings)."""
        return {
            "keyframes": self.keyframes,
            "tracks": self.track_ids,
            "boxes": {str(f): {str(t): b for t, b in per.items()} for f, per in self.boxes.items()},
            "labels": {str(f): {str(t): v for t, v in per.items()} for f, per in self.labels().items()},
            "events": {str(t): {str(f): v for f, v in ev.items()} for t, ev in self.events.items() if ev},
            "zones": self.zones,
            "complete": self.complete_keyframes(),
        }


def parse_zones(zones: Any) -> list[dict[str, Any]]:
    """Furniture zones as the page sends them, checked with the room layout rules
    (:func:`thermal_action.data.rooms.parse_zone`); boxes only (the raw format has no polygons)."""
    from thermal_action.data.rooms import parse_zone
    from thermal_action.errors import RoomsError

    if not isinstance(zones, list):
        raise LabelError(f"'zones' must be a list, got {type(zones).__name__}")
    out = []
    for i, z in enumerate(zones):
        if not isinstance(z, Mapping) or "box" not in z:
            raise LabelError(f"zone {i}: expected {{'kind', 'box': [x1, y1, x2, y2] normalized}}")
        try:
            zone = parse_zone(z, f"zone {i}")
        except RoomsError as e:
            raise LabelError(str(e)) from None
        x1, y1, x2, y2 = zone.bounds
        out.append({"kind": zone.kind, "name": zone.name, "box": [round(v, 4) for v in (x1, y1, x2, y2)]})
    return out


def replay(base: RecordingLabels, ops: Iterable[Op]) -> RecordingLabels:
    """A copy of ``base`` with ``ops`` applied in order (each one's keyframes touched by its
    annotator at its time)."""
    state = copy.deepcopy(base)
    for op in ops:
        for f in state.apply(op):
            state.touched[f] = Touch(op.annotator, op.time_ms)
    return state


def base_labels(keyframes: Sequence[int], width: int, height: int, num_classes: int,
                boxes: Mapping[int, Mapping[int, Sequence[float]]]) -> RecordingLabels:
    """The state before any edit: the pre-annotated boxes, no action set."""
    return RecordingLabels(list(keyframes), width, height, num_classes,
                           boxes={int(f): {int(t): [float(v) for v in b] for t, b in per.items()}
                                  for f, per in boxes.items()})
