"""The operators' back-end with the real worker processes: an alert's clip holds the boxes the
worker tracked, the webhook hears of the alert and of its acknowledgement, the sensor list says
how far behind, and the answer on the alert exports as a valid dataset."""

from __future__ import annotations

import httpx
import pytest

from helpers.serve import Webhook, frames_with_people, now_stamps, serve_overrides, wait_for, write_tiny_checkpoint
from thermal_action.serve.config import load_serve_config
from thermal_action.serve.feedback import export_feedback
from thermal_action.serve.protocol import encode_frames
from thermal_action.serve.service import ServiceThread

pytestmark = pytest.mark.slow


def test_clip_webhook_delay_and_feedback_through_the_real_service(tmp_path):
    from thermal_action.data.validate import validate_dataset

    checkpoint = write_tiny_checkpoint(tmp_path / "tiny.ckpt")
    hook = Webhook()
    data = tmp_path / "data"
    cfg = load_serve_config(None, serve_overrides(data, clip_seconds_before=2, clip_seconds_after=2,
                                                  alert_webhook_url=hook.url, notify_backoff_seconds=0.05))
    try:
        with ServiceThread(cfg, checkpoint) as svc:
            auth = {"Authorization": f"Bearer {svc.token}"}
            assert httpx.put(f"{svc.url}/api/sensors/E1/info", json={"room": "Room 3", "resident": "D. Lee"},
                             headers=auth).status_code == 200
            # 10 s of frames at once: the worker takes them in parts no longer than its buffer, so every
            # frame gets its boxes, and the ring keeps what the worker has not processed yet.
            r = httpx.post(f"{svc.url}/api/sensors/E1/frames", content=encode_frames(frames_with_people(60),
                           now_stamps(60)), headers={**auth, "content-type": "application/octet-stream"})
            assert r.json()["accepted"] == 60
            alert = wait_for(lambda: [a for a in httpx.get(f"{svc.url}/api/alerts", headers=auth).json()["alerts"]
                                      if a["has_clip"]], timeout=60, what="an alert with its clip")[0]
            assert (alert["room"], alert["resident"]) == ("Room 3", "D. Lee")
            clip = svc.hub.clip(alert["id"])
            assert len(clip) == 13 and (clip.box_counts > 0).all()  # 0 .. 2 s after the raise (its first frame)
            assert alert["track_id"] in set(clip.box_track_ids.tolist())
            shown = httpx.get(f"{svc.url}/api/alerts/{alert['id']}/clip", headers=auth).json()
            assert len(shown["frames"]) == len(clip) and shown["timestamps"] == clip.timestamps.tolist()
            sensor = httpx.get(f"{svc.url}/api/sensors", headers=auth).json()["sensors"][0]
            assert sensor["room"] == "Room 3" and sensor["delay_s"] is not None
            assert httpx.post(f"{svc.url}/api/alerts/{alert['id']}/acknowledge", json={"who": "nurse Ada"},
                              headers=auth).status_code == 200
            assert httpx.post(f"{svc.url}/api/alerts/{alert['id']}/feedback", headers=auth,
                              json={"answer": "real_fall", "who": "nurse Ada"}).status_code == 200
            wait_for(lambda: ("acknowledged", alert["id"]) in [(m["event"], m["alert"]["id"]) for m in hook.received],
                     timeout=20, what="the webhook told of the acknowledgement")
            assert ("raised", alert["id"]) in [(m["event"], m["alert"]["id"]) for m in hook.received]
            assert httpx.get(f"{svc.url}/api/stats", headers=auth).json()["notify_dead_letters_total"] == 0
            summary = export_feedback(data, tmp_path / "export")  # while the service runs
    finally:
        hook.close()
    assert [r["alert_id"] for r in summary.recordings] == [alert["id"]] and summary.keyframes >= 1
    assert validate_dataset(tmp_path / "export").problems == []
