"""The clips of alerts as the hub makes them: begun from a sensor's ring when an alert is new,
completed as frames and their boxes arrive, saved to ``<data_dir>/clips`` and recorded in the
store, deleted after ``keep_clip_days`` (the clip itself: :mod:`~thermal_action.serve.clips`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from thermal_action.inference.alerts import AlertEvent
from thermal_action.serve.clips import CLIPS_DIR, PENDING_GRACE_S, Clip, PendingClip, clip_path
from thermal_action.serve.sensors import SensorState
from thermal_action.serve.store import Store, now_ms

logger = logging.getLogger(__name__)


def take_finished(sensors: Iterable[SensorState], only: set[str] | None = None,
                  now: float | None = None) -> list[PendingClip]:
    """Takes the pending clips (of the sensors in ``only``; None: all) that are complete or
    overdue. Call with the hub's lock held."""
    out = []
    for st in sensors:
        if not st.pending_clips or (only is not None and st.sensor_id not in only):
            continue
        done = [c for c in st.pending_clips if c.complete(st.last_timestamp) or c.overdue(now)]
        if done:
            st.pending_clips = [c for c in st.pending_clips if c not in done]
            out += done
    return out


class AlertClips:
    """Makes, saves, loads and deletes the clips of alerts.

    Args:
        data_dir: the service's data directory (clips go to its ``clips/``).
        seconds_before: a clip starts this long before its raise.
        seconds_after: ... and ends this long after it.
        keep_days: clips of alerts raised longer ago are deleted.
        store: where a saved clip is recorded.
        on_saved: called with the alert's row after each clip is saved (None: no such alert).
    """

    def __init__(self, data_dir: str | Path, seconds_before: float, seconds_after: float, keep_days: float,
                 store: Store, on_saved: Callable[[dict | None], None]):
        self.data_dir = data_dir
        self.dir = Path(data_dir) / CLIPS_DIR
        self.before_ms = int(seconds_before * 1000)
        self.seconds_after = seconds_after
        self.keep_days = keep_days
        self.store = store
        self.on_saved = on_saved

    def start(self, st: SensorState, row: dict, event: AlertEvent) -> None:
        """Begins the clip of a new alert from the sensor's ring. Call with the hub's lock held."""
        fired = int(event.fired_timestamp)
        clip = PendingClip(row["id"], st.sensor_id, int(event.track_id), int(event.start_timestamp), fired,
                           float(event.peak_score), fired + int(self.seconds_after * 1000),
                           deadline=time.time() + self.seconds_after + PENDING_GRACE_S)
        for item in st.ring.since(fired - self.before_ms):
            clip.add(item)
        st.pending_clips.append(clip)

    def save(self, clips: list[PendingClip]) -> None:
        """Writes clips and records them; one that cannot be written is logged, the rest go on."""
        for p in clips:
            if not p.frames:
                logger.warning("alert %d: no frames for its clip (sensor %s)", p.alert_id, p.sensor_id)
                continue
            path = clip_path(self.data_dir, p.alert_id)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                Clip.from_pending(p).save(path)
                self.store.set_clip(p.alert_id, path.name)
            except Exception:  # noqa: BLE001 - a full disk must not stop the alerts
                logger.exception("alert %d: its clip could not be saved to %s", p.alert_id, path)
                continue
            self.on_saved(self.store.alert(p.alert_id))

    def load(self, alert_id: int) -> Clip | None:
        """The alert's saved clip; None when it has none (not yet complete, deleted, never made)."""
        name = self.store.clip_of(alert_id)
        if name is None:
            return None
        try:
            return Clip.load(self.dir / name)
        except FileNotFoundError:
            return None

    def purge(self, now_ms_: int | None = None) -> int:
        """Deletes the clips of alerts raised more than ``keep_days`` ago; returns how many."""
        before = (now_ms() if now_ms_ is None else now_ms_) - int(self.keep_days * 86_400_000)
        n = 0
        for alert_id, name in self.store.clips_raised_before(before):
            (self.dir / name).unlink(missing_ok=True)
            self.store.set_clip(alert_id, None)
            n += 1
        if n:
            logger.info("%d alert clips older than %g days deleted", n, self.keep_days)
        return n
