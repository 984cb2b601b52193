"""Live alerts equal offline alerts: one recording sent to the real service in HTTP batches of
1, 10, 100 frames and all at once stores exactly the alerts ``predict`` finds offline with the
same rule, whatever the batch size (a fall that is raised and ends inside one worker round, and
runs the cooldown joins into one alert, included); and a checkpoint's own rule, untouched by
any override, raises the live alerts. The fall monitor's alerts are the store's *raises*; the
alerts operators see fold a person's raises while unacknowledged (``repeats``).

The tiny checkpoint is untrained, so its fall scores sit in a narrow band; the threshold is
chosen from the offline scores (the middle of a clear gap, so float differences between batched
and single forward passes cannot move a score across it) to give several separate alerts.
"""

from __future__ import annotations

from dataclasses import replace

import httpx
import numpy as np
import pytest

from helpers.infer import person_blob, write_recording, write_tiny_checkpoint
from helpers.serve import serve_overrides, wait_for
from thermal_action.alert_rule import AlertRule
from thermal_action.data.hdf5 import read_recording
from thermal_action.inference.alerts import find_fall_alerts
from thermal_action.inference.recordings import predict_recordings
from thermal_action.serve.config import load_serve_config
from thermal_action.serve.protocol import encode_frames
from thermal_action.serve.service import ServiceThread

pytestmark = pytest.mark.slow

FRAMES = 360
BATCHES = (1, 10, 100, FRAMES)
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


def alert_rows(alerts) -> list[tuple]:
    """What must agree: person, start, raise and end timestamps, peak score, still active."""
    return sorted((int(a["track_id"]), int(a["start_timestamp"]), int(a["fired_timestamp"]),
                   int(a["end_timestamp"]), round(float(a["peak_score"]), 4), bool(a["active"])) for a in alerts)


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """The recording, its offline predictions, a rule giving several alerts, and those alerts."""
    tmp = tmp_path_factory.mktemp("live-alerts")
    checkpoint = write_tiny_checkpoint(tmp / "tiny.ckpt")
    path = write_recording(tmp / "R1.h5", wandering_frames(FRAMES))
    first = predict_recordings(checkpoint, [path], tmp / "scores", boxes="detector")
    fall = first.predictions[0].class_names.index(first.alert_rule.fall_class)
    # Short alerts with a short cooldown: some end inside a batch of 100 frames, some dips are joined.
    rule = AlertRule(threshold=gap_threshold(np.array([p.scores[fall] for p in first.predictions])),
                     min_seconds=1.0, cooldown_seconds=3.0)
    offline = predict_recordings(checkpoint, [path], tmp / "predict", boxes="detector", alert_rule=rule)
    joined = len(find_fall_alerts(offline.predictions, fall, replace(rule, cooldown_seconds=0.0))) - len(offline.alerts)
    expected = alert_rows(a.to_dict() for a in offline.alerts)
    return tmp, rule, read_recording(path), len(offline.predictions), expected, joined


def send_and_collect(svc, rec, sensors: dict[str, int], n_preds: int) -> dict[str, list[tuple]]:
    """Sends the recording as each sensor in batches of its size; the alerts stored per sensor
    once its stream has ended (every keyframe scored, its alerts closed)."""
    stamps = [int(t) for t in rec.timestamps]
    with httpx.Client(base_url=svc.url, headers={"Authorization": f"Bearer {svc.token}"}) as client:
        for sensor, size in sensors.items():
            for i in range(0, FRAMES, size):
                r = client.post(f"/api/sensors/{sensor}/frames", content=encode_frames(rec.frames[i:i + size],
                                stamps[i:i + size]), headers={"content-type": "application/octet-stream"})
                assert r.json()["accepted"] == len(rec.frames[i:i + size])

        def status(sensor: str) -> dict:
            return next(s for s in client.get("/api/sensors").json()["sensors"] if s["sensor_id"] == sensor)

        def alerts(sensor: str) -> list[dict]:
            return client.get("/api/alerts", params={"sensor": sensor, "limit": 1000}).json()["alerts"]

        def raises(sensor: str) -> list[dict]:
            return svc.hub.store.raises(sensor_id=sensor)

        stored = {}
        for sensor in sensors:
            wait_for(lambda: status(sensor)["status"] == "ended" and status(sensor)["predictions"] == n_preds,
                     timeout=60, what=f"{sensor}: every keyframe scored")
            # The round that brought the last predictions brings the stream's last alert events.
            wait_for(lambda: not any(a["state"] == "ongoing" for a in alerts(sensor)), timeout=10,
                     what=f"{sensor}: alerts ended")
            stored[sensor] = alert_rows(raises(sensor))
            shown = alerts(sensor)  # nobody acknowledged: each person's raises are one alert
            assert len(shown) == len({r["track_id"] for r in raises(sensor)})
            assert sum(1 + a["repeats"] for a in shown) == len(raises(sensor))
    return stored


def test_the_recording_gives_several_separate_alerts(case):
    *_, expected, joined = case
    assert len(expected) >= 3
    assert len({a[0] for a in expected}) < len(expected)  # some person falls more than once
    assert joined >= 1  # and gets up only briefly before falling again: one alert


def test_stored_alerts_equal_offline_alerts_for_every_batch_size(case):
    tmp, rule, rec, n_preds, expected, _ = case
    cfg = load_serve_config(None, serve_overrides(
        tmp / "data", fall_threshold=rule.threshold, fall_alert_seconds=rule.min_seconds,
        fall_alert_cooldown_seconds=rule.cooldown_seconds, silent_seconds=0.5, end_stream_seconds=1.0,
        max_frames_per_message=FRAMES))  # "all at once" is more than the default limit of one message
    with ServiceThread(cfg, tmp / "tiny.ckpt") as svc:
        stored = send_and_collect(svc, rec, {f"batch{size}": size for size in BATCHES}, n_preds)
    wrong = {sensor: len(rows) for sensor, rows in stored.items() if rows != expected}
    assert not wrong, f"sensor -> alerts stored, where they differ from the {len(expected)} offline: {wrong}"


def test_a_checkpoints_own_rule_raises_the_live_alerts(case):
    """A checkpoint carrying a (calibrated) rule and a service with no fall_* override: the
    stored alerts are the ones that rule gives offline."""
    tmp, rule, rec, n_preds, expected, _ = case
    checkpoint = write_tiny_checkpoint(tmp / "calibrated.ckpt", alert_rule=rule)
    assert predict_recordings(checkpoint, [rec.path], tmp / "own", boxes="detector").alert_rule == rule
    cfg = load_serve_config(None, serve_overrides(tmp / "data-own", fall_threshold=None, fall_alert_seconds=None,
                                                  silent_seconds=0.5, end_stream_seconds=1.0))
    with ServiceThread(cfg, checkpoint) as svc:
        info = httpx.get(f"{svc.url}/api/info", headers={"Authorization": f"Bearer {svc.token}"}).json()
        assert AlertRule.from_dict(info["alert_rule"]) == rule and info["fall_threshold"] == rule.threshold
        stored = send_and_collect(svc, rec, {"own": 10}, n_preds)
    assert stored["own"] == expected
