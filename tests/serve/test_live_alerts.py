"""Live alerts equal offline alerts: one recording sent to the real service in HTTP batches of
1, 10, 100 frames and all at once stores exactly the alerts ``predict`` finds offline with the
same rule, whatever the batch size (a fall that fires and ends inside one worker round included).

The tiny checkpoint is untrained, so its fall scores sit in a narrow band; the threshold is
chosen from the offline scores (the middle of a clear gap, so float differences between batched
and single forward passes cannot move a score across it) to give several separate alerts.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest

from helpers.infer import person_blob, write_recording, write_tiny_checkpoint
from helpers.serve import serve_overrides, wait_for
from thermal_action.data.hdf5 import read_recording
from thermal_action.inference.alerts import find_fall_alerts
from thermal_action.inference.boxes import boxes_from_detector
from thermal_action.inference.predictor import Predictor
from thermal_action.inference.recordings import predict_recording
from thermal_action.serve.config import load_serve_config
from thermal_action.serve.protocol import encode_frames
from thermal_action.serve.service import ServiceThread
from thermal_action.structures import FALL_CLASS_NAME

pytestmark = pytest.mark.slow

FRAMES = 360
BATCHES = (1, 10, 100, FRAMES)
MIN_SECONDS = 1.0
#: Scores closer than this to the threshold would make the comparison depend on float noise.
MARGIN = 5e-5


def wandering_frames(n: int, seed: int = 0) -> np.ndarray:
    """``(n, 40, 60)`` °C: two warm people walking to and fro, never leaving the frame."""
    rng = np.random.default_rng(seed)
    frames = 18.0 + rng.normal(0, 0.3, (n, 40, 60)).astype(np.float32)
    for f in range(n):
        frames[f] += person_blob(40, 60, 16 + 8 * np.sin(f / 23), 14 + 4 * np.cos(f / 31))
        frames[f] += person_blob(40, 60, 44 - 8 * np.sin(f / 29), 27 + 3 * np.sin(f / 17))
    return frames


def gap_threshold(scores: np.ndarray) -> float:
    """The middle of the widest gap between sorted fall scores in their middle half."""
    s = np.unique(scores)
    lo, hi = len(s) // 4, 3 * len(s) // 4
    gaps = np.diff(s[lo:hi + 1])
    i = int(np.argmax(gaps))
    assert gaps[i] > 2 * MARGIN, "no clear gap in the fall scores"
    return float((s[lo + i] + s[lo + i + 1]) / 2)


def _alert_rows(alerts) -> list[tuple]:
    return sorted((int(a["track_id"]), int(a["start_timestamp"]), int(a["fired_timestamp"]),
                   int(a["end_timestamp"]), round(float(a["peak_score"]), 4), bool(a["active"])) for a in alerts)


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("live-alerts")
    checkpoint = write_tiny_checkpoint(tmp / "tiny.ckpt")
    path = write_recording(tmp / "R1.h5", wandering_frames(FRAMES))
    predictor = Predictor.from_checkpoint(checkpoint)
    rec = read_recording(path, predictor.valid_range)
    preds = predict_recording(predictor, rec, boxes_from_detector(rec), step=6)
    fall = predictor.fall_index(FALL_CLASS_NAME)
    threshold = gap_threshold(np.array([p.scores[fall] for p in preds]))
    offline = find_fall_alerts(preds, fall, threshold=threshold, min_seconds=MIN_SECONDS)
    expected = _alert_rows([{**a.to_dict(), "fired_timestamp": _timestamp(preds, a.sensor_id, a.fired_frame)}
                            for a in offline])
    return checkpoint, rec, len(preds), threshold, expected, tmp


def _timestamp(preds, sensor_id: str, frame: int) -> int:
    return next(p.timestamp for p in preds if p.sensor_id == sensor_id and p.frame_idx == frame)


def test_the_recording_gives_several_separate_alerts(case):
    *_, expected, _ = case
    assert len(expected) >= 3
    assert len({a[0] for a in expected}) < len(expected)  # some person falls more than once


def test_stored_alerts_equal_offline_alerts_for_every_batch_size(case):
    checkpoint, rec, n_preds, threshold, expected, tmp = case
    cfg = load_serve_config(None, serve_overrides(
        tmp / "data", fall_threshold=threshold, fall_alert_seconds=MIN_SECONDS, silent_seconds=0.5,
        end_stream_seconds=1.0))
    stamps = [int(t) for t in rec.timestamps]
    with ServiceThread(cfg, checkpoint) as svc:
        auth = {"Authorization": f"Bearer {svc.token}"}
        with httpx.Client(base_url=svc.url, headers=auth) as client:
            for size in BATCHES:
                sensor = f"batch{size}"
                for i in range(0, FRAMES, size):
                    r = client.post(f"/api/sensors/{sensor}/frames", content=encode_frames(rec.frames[i:i + size],
                                    stamps[i:i + size]), headers={"content-type": "application/octet-stream"})
                    assert r.json()["accepted"] == len(rec.frames[i:i + size])

            def done(sensor: str):
                st = next((s for s in client.get("/api/sensors").json()["sensors"] if s["sensor_id"] == sensor), None)
                return st is not None and st["status"] == "ended" and st["predictions"] == n_preds

            stored = {}
            for size in BATCHES:
                sensor = f"batch{size}"
                wait_for(lambda: done(sensor), timeout=60, what=f"{sensor}: every keyframe scored")
                # The round that brought the last predictions brings the stream's last alert events.
                wait_for(lambda: not any(a["active"] for a in
                                         client.get("/api/alerts", params={"sensor": sensor}).json()["alerts"]),
                         timeout=10, what=f"{sensor}: alerts ended")
                stored[size] = _alert_rows(client.get("/api/alerts", params={"sensor": sensor}).json()["alerts"])
    wrong = {size: len(rows) for size, rows in stored.items() if rows != expected}
    assert not wrong, f"batch size -> alerts stored, where they differ from the {len(expected)} offline: {wrong}"
