"""What the dashboards and the read API show of a sensor: its status row and its live view."""

from __future__ import annotations

import base64
import io

import numpy as np

from thermal_action.serve.sensors import SensorState


def sensor_status(st: SensorState, now: float, silent_seconds: float, open_alerts: dict[str, int],
                  infos: dict[str, dict]) -> dict:
    """The sensor's row of ``GET /api/sensors`` and of the dashboards' sensor list.

    Args:
        st: the sensor.
        now: ``time.time()``.
        silent_seconds: no frame for this long: silent.
        open_alerts: sensor -> alerts nobody resolved.
        infos: sensor -> its details (room, resident, bed label).
    """
    info = infos.get(st.sensor_id)
    delay, delay_last = st.delay(now)
    return {
        "sensor_id": st.sensor_id, "room": (info["room"] if info else "") or st.sensor_id,
        "resident": info["resident"] if info else "", "bed_label": info["bed_label"] if info else "",
        "status": st.status(now, silent_seconds),
        "connected": st.connected,
        "transports": sorted(t for t, n in st.connections.items() if n > 0),
        "worker": st.worker, "worker_moves": st.moves, "last_move": st.last_move, "fps": round(st.fps(now), 2),
        "last_frame_age_s": None if st.last_arrival is None else round(now - st.last_arrival, 2),
        "frames": st.frames, "dropped": st.dropped, "bad_shape": st.bad_shape, "bad_message": st.bad_message,
        "invalid_frames": st.invalid_frames, "repaired_pixels": st.repaired_pixels,
        "repaired_boxes": st.repaired_boxes, "refused_boxes": st.refused_boxes,
        "new_streams": st.new_streams, "predictions": st.predictions, "last_error": st.last_error,
        "open_alerts": open_alerts.get(st.sensor_id, 0), "fallen": bool(st.active_alerts),
        "delay_s": None if delay is None else round(delay, 3),
        "delay_last_s": None if delay_last is None else round(delay_last, 3),
    }


def live_view(st: SensorState, frame_size: tuple[int, int]) -> dict:
    """The sensor's newest processed frame (PNG, the project's colour map), its people and
    their actions: ``GET /api/sensors/{id}/live`` and the dashboards' ``live`` event.

    Args:
        st: the sensor (a copy, or with the hub's lock held).
        frame_size: ``(H, W)`` to report before any frame.
    """
    from PIL import Image

    from thermal_action.visualize import frame_to_rgb

    lv = st.live
    falling = {t for t, _ in st.active_alerts}
    png = None
    h, w = frame_size
    boxes, ids = np.zeros((0, 4), np.float32), np.zeros(0, np.int64)
    if lv is not None:
        buf = io.BytesIO()
        Image.fromarray(frame_to_rgb(lv.frame)).save(buf, format="PNG")
        png = base64.b64encode(buf.getvalue()).decode()
        h, w = lv.frame.shape
        boxes, ids = lv.boxes_xyxy, lv.track_ids
    people = []
    for box, t in zip(boxes, ids):
        now = st.tracks.get(int(t))
        people.append({"track_id": int(t), "box": [round(float(v), 2) for v in box],
                       "action": now.action if now else None, "score": now.score if now else None,
                       "fall_score": now.fall_score if now else None, "fallen": int(t) in falling,
                       "alert_peak": st.alert_peaks.get(int(t)) if int(t) in falling else None,
                       "prediction_ms": now.timestamp if now else None,
                       "bed_share": now.bed_share if now else None,
                       "room_source": now.room_source if now else None})
    return {"type": "live", "sensor_id": st.sensor_id, "timestamp": lv.timestamp if lv is not None else None,
            "frame_png": png, "height": h, "width": w, "tracks": people, "fallen": bool(st.active_alerts)}


def snapshot(st: SensorState) -> SensorState:
    """What :func:`live_view` reads of ``st``, copied (taken with the hub's lock held, drawn without it)."""
    return SensorState(st.sensor_id, st.worker, live=st.live, tracks=dict(st.tracks),
                       active_alerts=set(st.active_alerts), alert_peaks=dict(st.alert_peaks))
