"""Feedback becomes training data: the clips of alerts with a usable answer are exported in the
dataset format, pass ``validate`` and train a tiny epoch; answers that teach nothing are left
out and counted; the command line does the same."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers.configs import tiny_config
from helpers.infer import person_blob
from helpers.serve import alert_event
from thermal_action.serve.clips import Clip, clip_path
from thermal_action.serve.feedback import export_feedback
from thermal_action.serve.operators import Feedback, SensorInfo
from thermal_action.serve.store import DB_FILE, Store

T0 = 1_760_000_000_000
STEP = 166
FRAMES = 121
FALLEN, OTHER = 4, 9
ANSWERS = (("real_fall", ""), ("false_alarm", "in_bed"), ("false_alarm", "sitting"), ("false_alarm", "other"),
           ("not_sure", ""))


def scene(k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A clip's frames (°C, float16), box counts, boxes and track ids: person FALLEN lies still from
    frame 30, person OTHER walks."""
    rng = np.random.default_rng(k)
    frames = 18.0 + rng.normal(0, 0.3, (FRAMES, 40, 60))
    counts, boxes, ids = [], [], []
    for f in range(FRAMES):
        x = 12.0 if f >= 30 else 12.0 + (30 - f) * 0.3
        frames[f] += person_blob(40, 60, x, 20.0, sx=3.5, sy=1.8)
        frames[f] += person_blob(40, 60, 45 - 10 * np.sin(f / 20), 10.0)
        people = [([x - 5, 16, x + 5, 24], FALLEN), ([40 - 10 * np.sin(f / 20), 5, 50 - 10 * np.sin(f / 20), 15], OTHER)]
        if f == 50:
            people = people[1:]  # the tracker lost the fallen person for one frame
        counts.append(len(people))
        boxes += [b for b, _ in people]
        ids += [i for _, i in people]
    return (frames.astype(np.float16), np.asarray(counts, np.int64), np.asarray(boxes, np.float32),
            np.asarray(ids, np.int64))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """A service data directory with five alerts, each with a clip and one of :data:`ANSWERS`."""
    data = tmp_path_factory.mktemp("serve") / "data"
    store = Store(data / DB_FILE)
    store.set_sensor_info("bed-0", SensorInfo("Room 12", "A. Jones"))
    for k, (answer, reason) in enumerate(ANSWERS):
        ts = T0 + k * 10**7 + STEP * np.arange(FRAMES, dtype=np.int64)
        ts[71] = ts[70]  # a repeated timestamp (a burst): left out of the recording
        sensor = f"bed-{k}"
        alert = store.record_alert(alert_event("raised", sensor, FALLEN, int(ts[30]), int(ts[60]), 0.9)).alert
        frames, counts, boxes, ids = scene(k)
        path = clip_path(data, alert["id"])
        path.parent.mkdir(parents=True, exist_ok=True)
        Clip(alert["id"], sensor, FALLEN, 0.9, int(ts[30]), int(ts[60]), 60, ts, frames, counts, boxes, ids).save(path)
        store.set_clip(alert["id"], path.name)
        store.add_feedback(alert["id"], Feedback(answer, "nurse Ada", reason))
    unfilmed = store.record_alert(alert_event("raised", "bed-9", 1, T0, T0 + 1000, 0.9)).alert
    store.add_feedback(unfilmed["id"], Feedback("real_fall", "nurse Ada"))  # no clip: nothing to learn from
    store.close()
    return data


def test_export_writes_a_valid_dataset_of_the_usable_answers(data_dir, tmp_path):
    from thermal_action.data.validate import validate_dataset

    out = tmp_path / "feedback_set"
    summary = export_feedback(data_dir, out)
    assert [(r["sensor_id"], r["label"]) for r in summary.recordings] == [
        ("bed-0", "lying down-lying with risk"), ("bed-1", "lying down-lying on the bed/couch"),
        ("bed-2", "sitting")]
    assert summary.left_out == {"false_alarm (other)": 1, "not_sure": 1}
    assert sorted(p.name for p in (out / "frames").iterdir()) == ["bed-0_1.h5", "bed-1_2.h5", "bed-2_3.h5",
                                                                  "sensor_info.json"]
    train = json.loads((out / "annotations" / "train.json").read_text())
    kf = [im for im in train["images"] if im["sensor_id"] == "bed-0_1"]
    # From the fall's start (frame 30) to the clip's end (frame 120), about once a second (6 frames).
    steps = np.diff([im["timestamp"] for im in kf])
    assert kf[0]["timestamp"] == T0 + 30 * STEP and len(kf) == 15 and (steps >= 1000 - STEP).all()
    assert (steps <= 1000 + STEP).all()
    anns = [a for a in train["annotations"] if a["image_id"].startswith("bed-0_1_")]
    assert {a["object_id"] for a in anns} == {FALLEN} and len(anns) == len(kf)
    assert {a["category_name"] for a in anns} == {"lying down-lying with risk"}
    assert summary.class_counts == {"lying down-lying with risk": len(kf),
                                    "lying down-lying on the bed/couch": summary.recordings[1]["keyframes"],
                                    "sitting": summary.recordings[2]["keyframes"]}
    info = json.loads((out / "frames" / "sensor_info.json").read_text())
    assert info["bed-0_1"]["total_frames"] == FRAMES - 1 and info["bed-0_1"]["alert_id"] == 1
    assert "A. Jones" not in (out / "frames" / "sensor_info.json").read_text() + json.dumps(train)
    assert "nurse Ada" not in json.dumps(train)
    report = validate_dataset(out)
    assert report.problems == [], report.problems
    with pytest.raises(FileExistsError):
        export_feedback(data_dir, out)
    assert export_feedback(data_dir, out, overwrite=True).keyframes == summary.keyframes


def test_the_exported_feedback_trains_a_tiny_epoch(data_dir, tmp_path):
    from thermal_action.training.train import train

    out = tmp_path / "feedback_set"
    export_feedback(data_dir, out)
    result = train(tiny_config(f"data.root={out}", "data.val_ann=annotations/train.json"), tmp_path / "run")
    assert Path(result.best_checkpoint).is_file()


def test_feedback_export_command(data_dir, tmp_path):
    out = tmp_path / "cli_set"
    r = subprocess.run([sys.executable, "-m", "thermal_action.cli", "feedback", "export", str(data_dir), "--out",
                        str(out)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)["recordings"]) == 3 and (out / "annotations" / "class_mapping.json").is_file()
    r = subprocess.run([sys.executable, "-m", "thermal_action.cli", "feedback", "export", str(tmp_path), "--out",
                        str(out)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "no serve.db" in r.stderr
