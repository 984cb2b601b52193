"""Predictor, person-box sources, detections files and ``thermal-action predict``."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from thermal_action.alert_rule import AlertOverrides, AlertRule
from helpers.infer import ROOM_LAYOUT, T0, make_frames, tiny_config, write_recording, write_tiny_checkpoint
from thermal_action.data.dataset import clip_from_recording
from thermal_action.data.dataset import build_clip_builder
from thermal_action.errors import DatasetError
from thermal_action.data.hdf5 import read_recording
from thermal_action.evaluation.io import read_predictions
from thermal_action.evaluation.detections import read_detections, read_detections_file
from thermal_action.inference.boxes import FrameBoxes, PersonBoxes, boxes_from_detections, resolve_boxes
from thermal_action.inference.outputs import read_predictions_file
from thermal_action.inference.predictor import ClipRequest, Predictor
from thermal_action.inference.recordings import predict_recording, predict_recordings
from thermal_action.structures import DEFAULT_CLASS_NAMES, box_iou_xyxy, boxes_xyxy_to_cxcywh_norm

K = len(DEFAULT_CLASS_NAMES)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return write_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.ckpt")


@pytest.fixture(scope="module")
def predictor(ckpt) -> Predictor:
    torch.set_num_threads(1)  # other tests run beside this one; one thread is steadier
    return Predictor.from_checkpoint(ckpt, max_clips_per_batch=4)


@pytest.fixture(scope="module")
def rec_path(tmp_path_factory) -> Path:
    frames, _ = make_frames(40, dropped=(7, 20))
    return write_recording(tmp_path_factory.mktemp("rec") / "S1.h5", frames)


@pytest.fixture(scope="module")
def rec(rec_path):
    return read_recording(rec_path)


BOXES = np.array([[7, 8, 17, 16], [40, 24, 50, 32], [0, 0, 6, 5]], np.float32)


def test_predictor_reads_the_checkpoint_preprocessing(predictor):
    assert predictor.class_names == DEFAULT_CLASS_NAMES
    assert predictor.clip_builder.num_frames == 16 and predictor.clip_builder.frame_stride == 2
    # 16 raw frames at stride 2: offsets -8..6 around the keyframe.
    assert (predictor.frames_before, predictor.frames_after, predictor.window_length) == (8, 6, 15)


def test_predictor_uses_the_training_clip_path(predictor, rec):
    # The clip the predictor builds is the one the dataset path builds (clip_from_recording).
    cfg = tiny_config()
    norm = boxes_xyxy_to_cxcywh_norm(BOXES[:2], 60, 40)
    sample = clip_from_recording(rec, 3, norm, build_clip_builder(cfg.data))
    built = predictor.build_clip(rec.frames, 3, BOXES[:2])
    np.testing.assert_array_equal(built.clip, sample.clip.numpy())
    np.testing.assert_array_equal(built.boxes_xyxy, sample.boxes_xyxy.numpy())


def test_predict_clip_scores_and_empty(predictor, rec):
    scores = predictor.predict_clip(rec.frames[10:25], BOXES)
    assert scores.shape == (3, K)
    np.testing.assert_allclose(scores.sum(1), 1.0, atol=1e-5)
    assert np.abs(scores[0] - scores[2]).max() > 1e-3  # boxes differ, scores differ
    # The window's keyframe defaults to index frames_before: the same as the recording's frame 18.
    whole = predictor.predict_clips([ClipRequest(rec.frames, 18, BOXES)])[0]
    np.testing.assert_allclose(scores, whole, atol=1e-6)
    passes = predictor.forward_passes
    empty = predictor.predict_clip(rec.frames[:15], np.zeros((0, 4)))
    assert empty.shape == (0, K) and predictor.forward_passes == passes  # no model call for no boxes
    with pytest.raises(ValueError, match="frames_window"):
        predictor.predict_clip(rec.frames[0], BOXES)


def test_batching_matches_single_clips(predictor, rec):
    reqs = [ClipRequest(rec.frames, f, BOXES[: 1 + f % 3]) for f in (0, 5, 12, 20, 33, 39)]
    reqs.insert(2, ClipRequest(rec.frames, 7, np.zeros((0, 4))))
    before = predictor.forward_passes
    batched = predictor.predict_clips(reqs)
    assert predictor.forward_passes - before == 2  # 6 clips with boxes, 4 per pass
    assert batched[2].shape == (0, K)
    for req, got in zip(reqs, batched):
        alone = predictor.predict_clips([req])[0]
        np.testing.assert_allclose(got, alone, atol=1e-5)


def test_keyframe_grid_and_nearest_listed_frame():
    fb = FrameBoxes(np.array([[1, 1, 5, 5]]), [0.9], [3])
    pb = PersonBoxes("detections", {0: fb, 7: fb, 20: fb})
    assert [f for f, _ in pb.keyframes(30, 6)] == [0, 6, 18]  # 6 <- 7 (within 3); 12 has none; 18 <- 20
    assert [f for f, _ in pb.keyframes(30, 1)] == [0, 7, 20]
    ann = PersonBoxes("annotations", {3: fb, 11: fb}, keyframes_only=True)
    assert [f for f, _ in ann.keyframes(30, 6)] == [3, 11]


def test_detector_boxes_follow_the_people(predictor, rec):
    boxes = resolve_boxes(rec)
    assert boxes.source == "detector"
    preds = predict_recording(predictor, rec, boxes, step=6)
    assert sorted({p.frame_idx for p in preds}) == [0, 6, 12, 18, 24, 30, 36]
    _, tracks = make_frames(40)
    for p in preds:
        truth = np.stack([t[p.frame_idx] for t in tracks])
        assert box_iou_xyxy(p.box_xyxy[None], truth).max() > 0.4
        assert p.timestamp == rec.timestamps[p.frame_idx]
    # Two people, two stable track ids.
    assert sorted({p.track_id for p in preds}) == [0, 1]
    first = {p.track_id: p.box_xyxy[0] for p in preds if p.frame_idx == 0}
    last = {p.track_id: p.box_xyxy[0] for p in preds if p.frame_idx == 36}
    assert all(abs(first[t] - last[t]) < 20 for t in (0, 1))  # ids did not swap sides


def _write_annotations(path: Path, rec, frames_and_boxes):
    images, anns = [], []
    for j, (f, boxes) in enumerate(frames_and_boxes):
        ts = int(rec.timestamps[f])
        images.append({"id": f"S1_{ts}", "sensor_id": "S1", "timestamp": ts, "width": 60, "height": 40,
                       "frame_idx": f})
        for i, b in enumerate(boxes):
            anns.append({"id": len(anns), "image_id": f"S1_{ts}", "bbox": list(b), "category_id": 3,
                         "object_id": 7 + i})
    cats = [{"id": i, "name": n} for i, n in enumerate(DEFAULT_CLASS_NAMES)]
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return path


def test_predict_recordings_with_annotations(predictor, rec, rec_path, tmp_path):
    ann = _write_annotations(tmp_path / "val.json", rec, [(5, [[0.2, 0.3, 0.15, 0.2]]),
                                                         (17, [[0.2, 0.3, 0.15, 0.2], [0.75, 0.7, 0.2, 0.2]])])
    run = predict_recordings(predictor, [rec_path], tmp_path / "out", annotations=ann)
    assert run.box_sources == {"S1.h5": "annotations"}
    assert [(p.frame_idx, p.track_id) for p in run.predictions] == [(5, 7), (17, 7), (17, 8)]
    np.testing.assert_allclose(run.predictions[2].box_cxcywh_norm, [0.75, 0.7, 0.2, 0.2], atol=1e-6)
    np.testing.assert_allclose(run.predictions[2].box_xyxy, [39, 24, 51, 32], atol=1e-4)


def test_predict_recordings_files(predictor, rec_path, tmp_path):
    run = predict_recordings(predictor, [rec_path], tmp_path / "out", step=12,
                             alert_rule=AlertOverrides(threshold=1e-6, min_seconds=0.0))
    out = tmp_path / "out"
    records = read_predictions(out / "predictions.json", num_classes=K)  # the evaluate format checks pass
    assert len(records) == len(run.predictions) > 0
    r = records[0]
    assert r["image_id"] == f"S1_{T0}" and r["frame_idx"] == 0 and r["recording"] == "S1.h5"
    assert r["top_class"] == DEFAULT_CLASS_NAMES[int(np.argmax(r["scores"]))]
    assert r["top_score"] == pytest.approx(max(r["scores"]))
    rows = list(csv.DictReader(open(out / "predictions.csv")))
    assert len(rows) == len(records)
    assert {int(row["frame_idx"]) for row in rows} <= {0, 12, 24, 36}
    assert float(rows[0]["score:" + DEFAULT_CLASS_NAMES[3]]) == pytest.approx(r["scores"][3], abs=1e-6)
    meta = json.loads((out / "run.json").read_text())
    assert meta["class_names"] == list(DEFAULT_CLASS_NAMES) and meta["step"] == 12
    assert meta["alert_rule"] == {**predictor.alert_rule.to_dict(), "threshold": 1e-6, "min_seconds": 0.0}
    assert run.alert_rule == AlertRule.from_dict(meta["alert_rule"])
    # Threshold 1e-6 and 0 s: every track is "fallen" from its first prediction: one alert per track.
    alerts = json.loads((out / "alerts.json").read_text())
    assert sorted(a["track_id"] for a in alerts) == [0, 1]
    back, names = read_predictions_file(out / "predictions.json")
    assert names == list(DEFAULT_CLASS_NAMES)
    np.testing.assert_allclose(back[0].scores, run.predictions[0].scores, atol=1e-6)
    np.testing.assert_allclose(back[0].box_xyxy, run.predictions[0].box_xyxy, atol=1e-4)


def test_missing_fall_class_fails_before_work(predictor, rec_path, tmp_path):
    with pytest.raises(ValueError, match="fall class"):
        predict_recordings(predictor, [rec_path], tmp_path / "o", alert_rule=AlertOverrides(fall_class="tumbling"))


# ----------------------------------------------------------------------------- detections files


def test_detections_json_list_lines_and_image_ids(rec, tmp_path):
    ts5 = int(rec.timestamps[5])
    recs = [
        {"frame_idx": 0, "bbox": [0.2, 0.3, 0.15, 0.2], "score": 0.9, "track_id": 4},
        {"frame_idx": 0, "bbox": [0.7, 0.7, 0.15, 0.2], "track_id": 5, "sensor_id": "S1"},
        {"frame_idx": 3, "bbox": [0.7, 0.7, 0.15, 0.2], "track_id": 5, "sensor_id": "OTHER"},
        {"frame_idx": 4, "bbox": [0.5, 0.5, 0.1, 0.1], "track_id": 9, "class": "chair"},
        {"image_id": f"S1_{ts5}", "bbox": [0.3, 0.3, 0.1, 0.1], "track_id": 6, "category_id": 1},
    ]
    as_list = tmp_path / "d.json"
    as_list.write_text(json.dumps(recs))
    as_lines = tmp_path / "d.jsonl"
    as_lines.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    for path in (as_list, as_lines):
        dets = read_detections_file(path)
        assert dets.skipped_non_person == 1
        boxes = boxes_from_detections(dets, rec, single_recording=True)
        assert sorted(boxes.frames) == [0, 5]  # OTHER's box is not ours; image_id -> frame 5
        assert boxes.frames[0].track_ids.tolist() == [4, 5]
        np.testing.assert_allclose(boxes.frames[0].boxes_xyxy[0], [7.5, 8, 16.5, 16])
        np.testing.assert_allclose(boxes.frames[0].scores, [0.9, 1.0])
        assert boxes.frames[5].track_ids.tolist() == [6]


def test_one_detections_file_gives_evaluate_and_predict_the_same_boxes(rec, tmp_path):
    # evaluate --detections reads boxes per keyframe id, predict --detections per frame;
    # the same file must give the same boxes and scores to both.
    ts = [int(rec.timestamps[f]) for f in (4, 9)]
    recs = [
        {"image_id": f"S1_{ts[0]}", "bbox": [0.2, 0.3, 0.15, 0.2], "score": 0.9, "track_id": 1},
        {"image_id": f"S1_{ts[0]}", "bbox": [0.7, 0.6, 0.2, 0.25], "score": 0.4, "track_id": 2},
        {"image_id": f"S1_{ts[1]}", "bbox": [0.25, 0.3, 0.15, 0.2], "track_id": 1},
        {"image_id": f"S1_{ts[1]}", "bbox": [0.5, 0.5, 0.1, 0.1], "class": "chair", "track_id": 3},
    ]
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in recs))
    for_evaluate = read_detections(path)
    for_predict = boxes_from_detections(read_detections_file(path), rec, single_recording=True)
    assert sorted(for_predict.frames) == [4, 9] and len(for_evaluate) == 2
    for f, t in zip((4, 9), ts):
        ev = for_evaluate[f"S1_{t}"]
        np.testing.assert_allclose(boxes_xyxy_to_cxcywh_norm(for_predict.frames[f].boxes_xyxy, 60, 40),
                                   ev.boxes_cxcywh_norm, atol=1e-6)
        np.testing.assert_allclose(for_predict.frames[f].scores, ev.scores, atol=1e-6)


def test_detections_without_track_ids_are_tracked(rec, tmp_path):
    _, tracks = make_frames(40)
    recs = [{"frame_idx": f, "bbox": boxes_xyxy_to_cxcywh_norm(t[f][None], 60, 40)[0].tolist(), "score": 0.8}
            for f in range(0, 40, 2) for t in tracks]
    path = tmp_path / "d.json"
    path.write_text(json.dumps({"detections": recs}))
    boxes = boxes_from_detections(read_detections_file(path), rec, single_recording=True)
    ids_by_person = [{int(fb.track_ids[np.argmin(np.abs(fb.boxes_xyxy[:, 0] - t[f][0]))]) for f, fb in
                      boxes.frames.items() if f % 2 == 0} for t in tracks]
    assert all(len(ids) == 1 for ids in ids_by_person) and ids_by_person[0] != ids_by_person[1]


def test_yolo_directories(rec, tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "000006.txt").write_text("0 0.2 0.3 0.15 0.2 0.7 3\n2 0.5 0.5 0.1 0.1 0.9 4\n\n")
    (flat / "12.txt").write_text("0 0.2 0.3 0.15 0.2 0.6 3\n")
    dets = read_detections_file(flat)
    assert dets.skipped_non_person == 1
    boxes = boxes_from_detections(dets, rec, single_recording=True)
    assert sorted(boxes.frames) == [6, 12]
    assert boxes.frames[6].track_ids.tolist() == [3]
    assert boxes.frames[6].scores.tolist() == pytest.approx([0.7])
    per_sensor = tmp_path / "per"
    (per_sensor / "S1").mkdir(parents=True)
    (per_sensor / "S2").mkdir()
    (per_sensor / "S1" / "3.txt").write_text("0 0.2 0.3 0.15 0.2\n")
    (per_sensor / "S2" / "3.txt").write_text("0 0.5 0.5 0.15 0.2\n0 0.2 0.2 0.1 0.1\n")
    dets = read_detections_file(per_sensor)
    boxes = boxes_from_detections(dets, rec, single_recording=False)
    assert len(boxes.frames[3]) == 1 and boxes.frames[3].scores.tolist() == [1.0]


@pytest.mark.parametrize(
    "content, match",
    [
        ('[{"frame_idx": 1, "bbox": [10, 20, 5, 5]}]', "not normalized"),
        ('[{"frame_idx": 1, "bbox": [0.5, 0.5, 0.1]}]', "4 numbers"),
        ('[{"bbox": [0.5, 0.5, 0.1, 0.1]}]', "frame_idx"),
        ('[{"frame_idx": -1, "bbox": [0.5, 0.5, 0.1, 0.1]}]', "frame_idx must be"),
        ('{"frame_idx": 1, "bbox": [0.5, 0.5, 0.1, 0.1]}\n{oops', "line 2"),
    ],
)
def test_bad_detections_name_file_and_record(tmp_path, content, match):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(DatasetError, match=match) as e:
        read_detections_file(path)
    assert "bad.json" in str(e.value)


def test_detections_that_do_not_fit_the_recording(rec, tmp_path):
    path = tmp_path / "d.json"
    path.write_text(json.dumps([{"frame_idx": 99, "bbox": [0.5, 0.5, 0.1, 0.1]}]))
    with pytest.raises(DatasetError, match="out of range"):
        boxes_from_detections(read_detections_file(path), rec, single_recording=True)
    with pytest.raises(DatasetError, match="ambiguous"):
        boxes_from_detections(read_detections_file(path), rec, single_recording=False)
    path.write_text(json.dumps([{"frame_idx": 1, "bbox": [0.5, 0.5, 0.1, 0.1], "track_id": 1},
                                {"frame_idx": 2, "bbox": [0.5, 0.5, 0.1, 0.1]}]))
    with pytest.raises(DatasetError, match="track_id"):
        boxes_from_detections(read_detections_file(path), rec, single_recording=True)
    # evaluate takes any keyframe id; predict needs '<sensor>_<timestamp>' with a frame of that time.
    for image_id, match in [("frame7", "is not '<sensor_id>_<timestamp>'"), ("S1_12", "has timestamp 12")]:
        path.write_text(json.dumps([{"image_id": image_id, "bbox": [0.5, 0.5, 0.1, 0.1]}]))
        with pytest.raises(DatasetError, match=match) as e:
            boxes_from_detections(read_detections_file(path), rec, single_recording=True)
        assert "d.json" in str(e.value) and f"record 0, image_id '{image_id}'" in str(e.value)
    bad = tmp_path / "yolo"
    bad.mkdir()
    (bad / "5.txt").write_text("0 0.5 0.5 0.1\n")
    with pytest.raises(DatasetError, match="5.txt"):
        read_detections_file(bad)


def test_box_source_preference(rec, tmp_path):
    path = tmp_path / "d.json"
    path.write_text(json.dumps([{"frame_idx": 2, "bbox": [0.5, 0.5, 0.1, 0.1], "track_id": 1, "sensor_id": "S9"}]))
    dets = read_detections_file(path)
    # The file has nothing for S1: auto falls back to the detector, "detections" insists.
    assert resolve_boxes(rec, "auto", detections=dets).source == "detector"
    with pytest.raises(DatasetError, match="no detections"):
        resolve_boxes(rec, "detections", detections=dets)
    with pytest.raises(ValueError, match="needs an annotations file"):
        resolve_boxes(rec, "annotations")
    with pytest.raises(ValueError, match="boxes must be"):
        resolve_boxes(rec, "magic")


def test_cli_predict(ckpt, rec_path, tmp_path, capsys):
    from thermal_action.cli import main

    det = tmp_path / "d.jsonl"
    det.write_text(json.dumps({"frame_idx": 6, "bbox": [0.2, 0.3, 0.15, 0.2], "track_id": 2}) + "\n")
    rc = main(["predict", str(rec_path), "--checkpoint", str(ckpt), "--out", str(tmp_path / "o"),
               "--detections", str(det), "--step", "6"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["predictions"] == 1 and summary["box_sources"] == {"S1.h5": "detections"}
    rc = main(["predict", str(rec_path), "--checkpoint", str(tmp_path / "missing.ckpt"), "--out", str(tmp_path / "p")])
    assert rc == 2 and "missing.ckpt" in capsys.readouterr().err


def test_real_sample_with_its_annotations(predictor, tmp_path, shared_sample):
    from thermal_action.data.annotations import load_annotations

    ann_path = shared_sample / "annotations" / "train.json"
    ann = load_annotations(ann_path)
    want = sorted((k.frame_idx, int(t)) for k in ann.keyframes if k.sensor_id == "SL14_R1" for t in k.track_ids)
    run = predict_recordings(predictor, [shared_sample / "frames" / "SL14_R1.h5"], tmp_path, annotations=ann_path)
    assert sorted((p.frame_idx, p.track_id) for p in run.predictions) == want
    kf = {k.frame_idx: k for k in ann.keyframes if k.sensor_id == "SL14_R1"}
    for p in run.predictions:
        assert p.timestamp == kf[p.frame_idx].timestamp  # the real bursty timestamps carried through


def test_memory_model_fills_its_bank_before_predicting(tmp_path, rec):
    cfg = tiny_config("model.interaction=parallel", "model.interaction_dim=16")
    pred = Predictor.from_checkpoint(write_tiny_checkpoint(tmp_path / "m.ckpt", cfg), max_clips_per_batch=8)
    assert pred.backend.use_memory
    fb = FrameBoxes(BOXES[:2], [1, 1], [0, 1])
    boxes = PersonBoxes("detections", {f: fb for f in range(0, 40, 6)})
    out = predict_recording(pred, rec, boxes, step=6)
    bank = pred.backend.model.feature_bank
    assert pred.forward_passes == 2  # one pass fills the bank, the second reads it
    assert len(bank) == 7 and ("S1", 0) in bank
    # Without memory (as in ONNX and streaming) the scores differ: the memory is really read.
    pred.backend.use_memory = False
    bank.clear()
    plain = predict_recording(pred, rec, boxes, step=6)
    assert max(float(np.abs(a.scores - b.scores).max()) for a, b in zip(out, plain)) > 1e-4


def _small_sensor_recording(path: Path) -> Path:
    """A 24x32 recording (another sensor) with one warm person; frame 3 has a 0 K tail of 576 pixels."""
    from helpers.infer import person_blob

    rng = np.random.default_rng(3)
    frames = (18.0 + rng.normal(0, 0.3, (20, 24, 32))).astype(np.float32)
    frames += person_blob(24, 32, 12.0, 10.0).astype(np.float32)
    frames[3].reshape(-1)[-576:] = -273.2
    return write_recording(path, frames)


def test_a_recording_of_another_frame_size_is_refused_unless_allowed(ckpt, tmp_path, caplog, capsys):
    from thermal_action.cli import main

    assert Predictor.from_checkpoint(ckpt).frame_size == (40, 60)
    small = _small_sensor_recording(tmp_path / "small" / "T9.h5")
    with pytest.raises(DatasetError, match=r"T9\.h5 \[frames\]: frames are 24x32 but the model was trained on "
                                           r"40x60 frames; pass --allow-frame-size"):
        predict_recordings(ckpt, [small], tmp_path / "refused")
    assert not (tmp_path / "refused" / "predictions.json").exists()
    assert main(["predict", str(small), "--checkpoint", str(ckpt), "--out", str(tmp_path / "cli")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "frames are 24x32 but the model was trained on 40x60" in err
    # Opted in: predictions, and the 40x60 packet layout is not applied to the 24x32 frames.
    with caplog.at_level("INFO"):
        run = predict_recordings(ckpt, [small], tmp_path / "allowed", allow_frame_size=True)
    assert run.predictions and (tmp_path / "allowed" / "predictions.json").is_file()
    assert "24x32 frames, not the 40x60 sensor's: dropped packets are filled, not realigned" in caplog.text
    rec = read_recording(small)
    assert rec.repair.repaired_frames == 1 and rec.repair.realigned_frames == 0
    assert np.isfinite(rec.frames).all() and rec.frames.min() > 10


def test_a_checkpoint_without_a_frame_size_does_not_refuse(tmp_path):
    old = write_tiny_checkpoint(tmp_path / "old.ckpt", frame_size=None)
    small = _small_sensor_recording(tmp_path / "T9.h5")
    predictor = Predictor.from_checkpoint(old)
    assert predictor.frame_size is None
    assert predict_recordings(predictor, [small], tmp_path / "out").predictions


def test_integer_frames_predict_like_the_same_values_as_float(predictor, tmp_path):
    import h5py

    frames, _ = make_frames(30, dropped=(7,))
    whole = np.round(frames)
    as_float = write_recording(tmp_path / "F" / "S1.h5", whole)
    as_int = write_recording(tmp_path / "I" / "S1.h5", whole)
    with h5py.File(as_int, "a") as f:
        del f["frames"]
        f["frames"] = whole.astype(np.int16)
    a = predict_recordings(predictor, [as_float], tmp_path / "a", step=10)
    b = predict_recordings(predictor, [as_int], tmp_path / "b", step=10)
    assert len(a.predictions) == len(b.predictions) > 0
    for p, q in zip(a.predictions, b.predictions):
        np.testing.assert_array_equal(p.scores, q.scores)


def test_an_exported_model_carries_its_alert_rule_and_old_exports_their_threshold():
    from thermal_action.inference.predictor import _onnx_alert_rule

    rule = AlertRule(threshold=0.4, cooldown_seconds=7.0)
    assert _onnx_alert_rule({"alert_rule": rule.to_dict()}) == rule
    assert _onnx_alert_rule({"fall_threshold": 0.45}) == AlertRule(threshold=0.45)
    assert _onnx_alert_rule({}) == AlertRule()


def test_a_dead_sensor_is_warned_about_per_recording(predictor, rec_path, tmp_path, caplog):
    dead = write_recording(tmp_path / "D1.h5", np.zeros((30, 40, 60), np.float32))
    with caplog.at_level("WARNING", logger="thermal_action.inference.recordings"):
        predict_recordings(predictor, [dead, rec_path], tmp_path / "out", step=10)
    warned = [r.getMessage() for r in caplog.records if "dead or stuck sensor" in r.getMessage()]
    assert len(warned) == 1 and "D1.h5: every frame is 0.0 °C (all 30)" in warned[0], warned


def test_predict_says_each_recording_it_finished(predictor, rec_path, tmp_path, caplog):
    other = write_recording(tmp_path / "S2.h5", make_frames(30, seed=1)[0])
    with caplog.at_level("INFO", logger="thermal_action.inference.recordings"):
        predict_recordings(predictor, [rec_path, other], tmp_path / "out", step=10)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("predict [")]
    assert len(lines) == 2 and lines[0].startswith(f"predict [1/2] {rec_path}: ") and "S2.h5" in lines[1]
    assert "predictions from" in lines[1] and "frames repaired" in lines[1]


# --- the room -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def room_ckpt(tmp_path_factory) -> Path:
    """A tiny crop-CNN checkpoint that reads the room (zone masks and features)."""
    cfg = tiny_config("model.variant=crop_cnn", "model.tube_size=16", "model.room=masks+features")
    return write_tiny_checkpoint(tmp_path_factory.mktemp("room") / "room.ckpt", cfg)


@pytest.fixture(scope="module")
def room_predictor(room_ckpt) -> Predictor:
    return Predictor.from_checkpoint(room_ckpt)


def _rooms_file(path: Path, sensor: str = "S1") -> Path:
    from thermal_action.data.rooms import LayoutTimeline, RoomMap, write_rooms

    write_rooms(RoomMap({sensor: LayoutTimeline([ROOM_LAYOUT])}), path)
    return path


def test_a_prediction_without_a_room_works_and_says_so(room_predictor, rec_path, tmp_path):
    run = predict_recordings(room_predictor, [rec_path], tmp_path / "out", step=12)
    assert run.predictions and {p.room_source for p in run.predictions} == {"none"}
    summary = json.loads((tmp_path / "out" / "run.json").read_text())
    assert summary["predictions_without_room"] == len(run.predictions) and summary["rooms"] is None
    assert summary["room_sources"] == {"none": len(run.predictions)}
    rows = list(csv.DictReader(open(tmp_path / "out" / "predictions.csv")))
    assert {row["room_source"] for row in rows} == {"none"}
    back, _ = read_predictions_file(tmp_path / "out" / "predictions.json")
    assert {p.room_source for p in back} == {"none"}


def test_the_rooms_file_and_annotated_furniture_reach_the_model(room_predictor, rec, rec_path, tmp_path):
    rooms = _rooms_file(tmp_path / "rooms.json")
    bare = predict_recordings(room_predictor, [rec_path], tmp_path / "bare", step=12)
    run = predict_recordings(room_predictor, [rec_path], tmp_path / "out", step=12, rooms=rooms)
    assert {p.room_source for p in run.predictions} == {"rooms file"}
    assert run.summary()["predictions_without_room"] == 0
    # The alert rule's bed share: the room's bed/couch under each box (None without a room).
    from thermal_action.data.rooms import BED_KINDS, box_share_on

    for p in run.predictions:
        assert p.bed_share == pytest.approx(float(box_share_on(p.box_xyxy[None], ROOM_LAYOUT, BED_KINDS, 40, 60)[0]))
    assert {p.bed_share for p in bare.predictions} == {None}
    assert any(p.bed_share > 0.5 for p in run.predictions) and any(p.bed_share == 0 for p in run.predictions)
    assert json.loads((tmp_path / "out" / "run.json").read_text())["rooms"] == str(rooms)
    assert [(p.frame_idx, p.track_id) for p in run.predictions] == [(p.frame_idx, p.track_id) for p in bare.predictions]
    assert max(np.abs(a.scores - b.scores).max() for a, b in zip(run.predictions, bare.predictions)) > 1e-4
    # A keyframe's own furniture wins over the rooms file; one without furniture takes the file's.
    ann = _write_annotations(tmp_path / "val.json", rec, [(5, [[0.2, 0.3, 0.15, 0.2]]), (17, [[0.2, 0.3, 0.15, 0.2]])])
    data = json.loads(ann.read_text())
    data["context_objects"] = [{"image_id": data["images"][0]["id"], "bbox": [0.8, 0.5, 0.3, 0.6],
                                "category": "furniture", "subcategory": "couch"}]
    ann.write_text(json.dumps(data))
    both = predict_recordings(room_predictor, [rec_path], tmp_path / "both", annotations=ann, rooms=rooms)
    assert [(p.frame_idx, p.room_source) for p in both.predictions] == [(5, "annotations"), (17, "rooms file")]
    only_ann = predict_recordings(room_predictor, [rec_path], tmp_path / "ann", annotations=ann)
    assert [p.room_source for p in only_ann.predictions] == ["annotations", "none"]
    assert only_ann.summary()["predictions_without_room"] == 1


def test_predict_clip_with_and_without_a_layout(room_predictor, rec):
    from thermal_action.data.rooms import NO_LAYOUT

    with_room = room_predictor.predict_clip(rec.frames[:40], BOXES, keyframe=20, layout=ROOM_LAYOUT)
    without = room_predictor.predict_clip(rec.frames[:40], BOXES, keyframe=20, layout=NO_LAYOUT)
    assert with_room.shape == without.shape == (3, K)
    assert np.isfinite(without).all() and np.abs(with_room - without).max() > 1e-4
    np.testing.assert_allclose(without.sum(1), 1.0, atol=1e-5)


def test_cli_predict_takes_a_rooms_file(room_ckpt, ckpt, rec_path, tmp_path, capsys):
    from thermal_action.cli import main

    rooms = _rooms_file(tmp_path / "rooms.json")
    assert main(["predict", str(rec_path), "--checkpoint", str(room_ckpt), "--out", str(tmp_path / "o"),
                 "--step", "12", "--rooms", str(rooms)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["predictions_without_room"] == 0 and set(summary["room_sources"]) == {"rooms file"}
    # A model without the room used none, whatever the file says.
    assert main(["predict", str(rec_path), "--checkpoint", str(ckpt), "--out", str(tmp_path / "n"),
                 "--step", "12", "--rooms", str(rooms)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["predictions_without_room"] == summary["predictions"] > 0
