"""What a worker's round does to the sensors' state (the hub calls in here with its lock held).

A round (:class:`~thermal_action.serve.messages.Round`) brings, per sensor, refused frames,
scored people, the newest processed frame and the tracked boxes of the frames it took. Here:

- refused frames are counted and the reason kept as the sensor's last error;
- each scored person becomes the sensor's current view of that track (:class:`PersonNow`), and a
  row to store when its action changed or ``store_every_seconds`` passed since its last row
  (the storage policy: one row per person per interval, besides every change);
- the newest frame becomes the live view; tracks not seen for :data:`FORGET_TRACK_MS` go;
- the tracked boxes go to the sensor's clip ring, and the newest frame's capture time gives
  a delay sample (how far behind the service is).

Alerts and the store are the hub's: these functions change sensor state only.
"""

from __future__ import annotations

import logging

import numpy as np

from thermal_action.serve.messages import Round
from thermal_action.serve.model import ModelInfo
from thermal_action.serve.sensors import PersonNow, SensorTable

logger = logging.getLogger(__name__)

#: A track gone from the live frame is forgotten once its last score is this old (ms).
FORGET_TRACK_MS = 10_000


def record_round(table: SensorTable, r: Round, info: ModelInfo, store_every_seconds: float,
                 now: float) -> tuple[list[tuple], list[float]]:
    """Counts the round's refused frames, takes its scored people and live frames into the
    sensors' state.

    Args:
        table: the hub's sensors.
        r: the worker's round.
        info: the model's classes (which one is the fall).
        store_every_seconds: a person's action is stored at least this often (and on change).
        now: ``time.time()``.

    Returns:
        The prediction rows to store (the columns of
        :meth:`~thermal_action.serve.store.Store.add_predictions`), and each scored person's latency (seconds from the
        arrival of the frame that completed its window).
    """
    rows: list[tuple] = []
    latencies: list[float] = []
    fi = info.fall_index
    for e in r.errors:
        st = table.get(e.sensor_id)
        if st is None:
            continue
        st.invalid_frames += e.count
        st.last_error = f"sensor {e.sensor_id}: {e.count} frame(s) refused: {e.message}"
        logger.warning(st.last_error)
    for p in r.predictions:
        st = table.get(p.sensor_id)
        if st is None:
            continue
        k = int(np.argmax(p.scores))
        action = info.class_names[k]
        fall = float(p.scores[fi]) if fi is not None else None
        ts, track = p.timestamp, p.track_id
        st.predictions += 1
        st.tracks[track] = PersonNow(action, float(p.scores[k]), fall, ts, p.bed_share, p.room_source)
        last = st.stored_at.get(track)
        every = store_every_seconds * 1000
        if last is None or ts - last[0] >= every or action != last[1] or ts < last[0]:
            rows.append((p.sensor_id, ts, p.frame_idx, track, action, float(p.scores[k]), fall, *p.box_xyxy))
            st.stored_at[track] = (ts, action)
        latencies.append(now - p.arrival_s)
    for sensor, repaired in r.repaired.items():
        st = table.get(sensor)
        if st is not None:
            st.repaired_pixels = repaired
    for sensor, lv in r.live.items():
        st = table.get(sensor)
        if st is None:
            continue
        st.live = lv
        st.repaired_pixels = lv.repaired_pixels
        live = set(int(t) for t in lv.track_ids)
        for t in [t for t in st.tracks if t not in live and lv.timestamp - st.tracks[t].timestamp > FORGET_TRACK_MS]:
            del st.tracks[t]
    return rows, latencies


def record_tracks(table: SensorTable, r: Round, now: float) -> list[float]:
    """Hands the round's tracked boxes to the sensors' clip rings (after the round's alerts: a
    new alert's clip takes its frames from the ring before the ring moves on to this round's
    newest frame); returns the delay samples (seconds), one per sensor, also kept per sensor."""
    delays: list[float] = []
    for sensor, tracked in r.tracks.items():
        st = table.get(sensor)
        if st is None or not len(tracked.timestamps):
            continue
        delay = now - int(tracked.timestamps[-1]) / 1000.0
        st.delays.append((now, delay))
        delays.append(delay)
        if st.ring is not None:
            for ts, boxes, ids in tracked:
                st.ring.attach(ts, boxes, ids)
    return delays
