"""evaluate_checkpoint writes metrics.json / predictions.json, with GT boxes and with detections."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from thermal_action.data.annotations import load_annotations
from thermal_action.structures import DEFAULT_CLASS_NAMES
from thermal_action.training.evaluate import evaluate_checkpoint, predict_records

K = len(DEFAULT_CLASS_NAMES)


def _check_records(records, image_ids):
    for r in records:
        assert set(r) >= {"image_id", "bbox", "scores"}
        assert r["image_id"] in image_ids
        assert len(r["bbox"]) == 4 and all(0.0 <= v <= 1.0 for v in r["bbox"])
        assert len(r["scores"]) == K and sum(r["scores"]) == pytest.approx(1.0, abs=1e-4)


def test_evaluate_with_ground_truth_boxes(trained_run, synth_root, tmp_path):
    metrics = evaluate_checkpoint(trained_run.best_checkpoint, synth_root, "annotations/val.json", tmp_path)
    for name in ("metrics.json", "predictions.json", "confusion_matrix.png", "pr_curves.png"):
        assert (tmp_path / name).is_file(), name
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    for key in ("frame_map", "top1_accuracy", "macro_f1", "fall_precision", "fall_recall", "per_class"):
        assert key in on_disk
    assert on_disk["evaluated"]["boxes"] == "ground_truth"
    assert 0.0 <= metrics["frame_map"] <= 1.0
    val = load_annotations(synth_root / "annotations" / "val.json")
    records = json.loads((tmp_path / "predictions.json").read_text())
    assert len(records) == val.num_boxes  # one record per annotated box
    _check_records(records, {k.image_id for k in val.keyframes})
    # Every annotated box pairs with its own prediction.
    assert metrics["matching"]["num_paired"] == val.num_boxes


def test_evaluate_with_a_detections_file(trained_run, synth_root, tmp_path):
    val = load_annotations(synth_root / "annotations" / "val.json")
    detections = []
    for kf in val.keyframes[:5]:
        for box in kf.boxes_cxcywh_norm.tolist():
            detections.append({"image_id": kf.image_id, "bbox": box, "score": 0.9})
    # A false box where nobody is.
    detections.append({"image_id": val.keyframes[0].image_id, "bbox": [0.05, 0.05, 0.05, 0.05], "score": 0.3})
    det_path = tmp_path / "detections.json"
    det_path.write_text(json.dumps(detections))
    metrics = evaluate_checkpoint(trained_run.best_checkpoint, synth_root, "annotations/val.json", tmp_path / "ev",
                                  detections=det_path, overrides=["eval.iou_threshold=0.4"])
    records = json.loads((tmp_path / "ev" / "predictions.json").read_text())
    assert len(records) == len(detections)
    assert sorted(r["box_score"] for r in records) == pytest.approx(sorted(d["score"] for d in detections))
    assert metrics["matching"]["num_unpaired_predictions"] == 1
    # Keyframes without detections miss their boxes.
    assert metrics["matching"]["num_missed_gt"] == val.num_boxes - (len(detections) - 1)
    assert metrics["iou_threshold"] == pytest.approx(0.4)
    assert metrics["evaluated"]["boxes"] == str(det_path)


def test_model_overrides_are_refused(trained_run, synth_root, tmp_path):
    from thermal_action.errors import ConfigError

    with pytest.raises(ConfigError, match="only data"):
        evaluate_checkpoint(trained_run.best_checkpoint, synth_root, "annotations/val.json", tmp_path,
                            overrides=["model.head_dim=64"])


def test_interaction_memory_is_filled_before_predicting(synth_root, tiny_config):
    from torch.utils.data import DataLoader

    from thermal_action.data.dataset import build_collate, build_dataset
    from thermal_action.models.build import build_model

    cfg = tiny_config("model.interaction=serial", "model.interaction_dim=16")
    torch.manual_seed(0)
    model = build_model(cfg.model, K)
    # Make the memory matter: the interaction output is added to the person feature.
    with torch.no_grad():
        for p in model.head.parameters():
            p.add_(0.05 * torch.randn_like(p))
    ds = build_dataset(cfg.data, cfg.data.val_ann, train=False)
    loader = DataLoader(ds, batch_size=4, collate_fn=build_collate(cfg.data, model.alpha, train=False))
    two_pass = predict_records(model, loader, "softmax")
    assert len(model.feature_bank) == len(ds)  # every keyframe written by the first pass
    # One pass from an empty bank: the first clip has no memory yet, so its scores differ.
    model.feature_bank.clear()
    batch = next(iter(loader))
    with torch.no_grad():
        one_pass = torch.softmax(model(batch.slow, batch.fast, batch.rois,
                                       clip_keys=list(zip(batch.sensor_ids, batch.frame_idxs.tolist()))), -1)
    first = np.asarray(two_pass[0]["scores"])
    assert not np.allclose(first, one_pass[0].numpy(), atol=1e-6)


def test_eval_config_keys_do_what_they_say(trained_run, synth_root, tmp_path):
    """eval.detections / detection_min_score / restrict_to_predicted_images / plots, set as config."""
    val = load_annotations(synth_root / "annotations" / "val.json")
    detections = [{"image_id": kf.image_id, "bbox": box, "score": 0.9}
                  for kf in val.keyframes[:3] for box in kf.boxes_cxcywh_norm.tolist()]
    detections.append({"image_id": val.keyframes[0].image_id, "bbox": [0.05, 0.05, 0.05, 0.05], "score": 0.3})
    det_path = tmp_path / "detections.json"
    det_path.write_text(json.dumps(detections))
    out = tmp_path / "ev"
    metrics = evaluate_checkpoint(trained_run.best_checkpoint, synth_root, "annotations/val.json", out, overrides=[
        f"eval.detections={det_path}", "eval.detection_min_score=0.5", "eval.restrict_to_predicted_images=true",
        "eval.plots=false"])
    assert metrics["evaluated"]["boxes"] == str(det_path)
    records = json.loads((out / "predictions.json").read_text())
    assert len(records) == len(detections) - 1  # the 0.3 box is below eval.detection_min_score
    assert metrics["matching"]["num_unpaired_predictions"] == 0
    assert metrics["matching"]["num_missed_gt"] == 0  # only the three keyframes with detections are scored
    assert not (out / "confusion_matrix.png").exists() and not (out / "pr_curves.png").exists()


def test_an_evaluation_set_without_labelled_boxes_is_an_error(trained_run, synth_root, tmp_path):
    import shutil

    from thermal_action.errors import DatasetError

    root = shutil.copytree(synth_root, tmp_path / "data")
    val = root / "annotations" / "val.json"
    val.write_text(json.dumps(dict(json.loads(val.read_text()), annotations=[])))
    with pytest.raises(DatasetError, match=r"annotations/val\.json: no labelled box in its \d+ keyframes: every "
                                           r"metric would be undefined"):
        evaluate_checkpoint(trained_run.best_checkpoint, root, "annotations/val.json", tmp_path / "e")
    assert not (tmp_path / "e").exists()


def test_recordings_of_another_frame_size_are_refused_naming_the_file(trained_run, synth_root, tmp_path):
    import shutil

    import h5py

    from thermal_action.errors import DatasetError

    root = shutil.copytree(synth_root, tmp_path / "data")
    val = root / "annotations" / "val.json"
    data = json.loads(val.read_text())
    sensor = data["images"][0]["sensor_id"]
    for im in data["images"]:  # annotated as 30x30, so only the model's size disagrees
        im["width"] = im["height"] = 30
    val.write_text(json.dumps(data))
    with h5py.File(root / "frames" / f"{sensor}.h5", "a") as f:
        small = f["frames"][:, :30, :30]
        del f["frames"]
        f["frames"] = small
    with pytest.raises(DatasetError, match=rf"{sensor}\.h5 \[frames\]: frames are 30x30 but the model was trained "
                                           r"on 40x60 frames"):
        evaluate_checkpoint(trained_run.best_checkpoint, root, "annotations/val.json", tmp_path / "e")
    assert not (tmp_path / "e" / "metrics.json").exists()


def test_evaluate_says_each_recording_it_scored(trained_run, synth_root, tmp_path, caplog):
    with caplog.at_level("INFO", logger="thermal_action.training.evaluate"):
        evaluate_checkpoint(trained_run.best_checkpoint, synth_root, "annotations/train.json", tmp_path)
    train = load_annotations(synth_root / "annotations" / "train.json")
    per = {s: sum(k.sensor_id == s for k in train.keyframes) for s in {k.sensor_id for k in train.keyframes}}
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("evaluate [")]
    assert [line.split("]")[0] for line in lines] == [f"evaluate [{i}/{len(per)}" for i in range(1, len(per) + 1)]
    assert sorted(line.split("] ")[1] for line in lines) == sorted(f"{s}: {n} keyframes scored"
                                                                   for s, n in per.items()), lines


def test_evaluate_reads_a_rooms_file_and_forgives_only_the_checkpoints_own(synth_root, tiny_config, tmp_path, caplog):
    """A rooms file given to the evaluation must exist; the training run's, relative to its own
    data root, is dropped with a warning when the evaluated data has none."""
    from helpers.infer import write_tiny_checkpoint
    from thermal_action.data.rooms import LayoutTimeline, RoomLayout, RoomMap, Zone, write_rooms
    from thermal_action.errors import RoomsError

    cfg = tiny_config("model.variant=crop_cnn", "model.tube_size=16", "model.room=masks+features",
                      "data.rooms=trained_rooms.json")
    ckpt = write_tiny_checkpoint(tmp_path / "room.ckpt", cfg)
    with caplog.at_level("WARNING"):
        metrics = evaluate_checkpoint(ckpt, synth_root, "annotations/val.json", tmp_path / "a",
                                      overrides=["eval.plots=false"])
    assert "data.rooms 'trained_rooms.json' is not found" in caplog.text
    assert metrics["evaluated"]["model_room"] == "masks+features" and metrics["evaluated"]["rooms_file"] is None
    assert sum(metrics["evaluated"]["keyframes_by_room_source"].values()) == metrics["evaluated"]["num_keyframes"]
    with pytest.raises(RoomsError, match="not found"):
        evaluate_checkpoint(ckpt, synth_root, "annotations/val.json", tmp_path / "b",
                            overrides=[f"data.rooms={tmp_path / 'missing.json'}"])
    val = load_annotations(synth_root / "annotations" / "val.json")
    bed = RoomLayout((Zone.from_box("bed", (0.1, 0.1, 0.5, 0.6)),))
    write_rooms(RoomMap({k.sensor_id: LayoutTimeline([bed]) for k in val.keyframes}), tmp_path / "rooms.json")
    metrics = evaluate_checkpoint(ckpt, synth_root, "annotations/val.json", tmp_path / "c",
                                  overrides=[f"data.rooms={tmp_path / 'rooms.json'}", "eval.plots=false"])
    sources = metrics["evaluated"]["keyframes_by_room_source"]
    assert sources.get("none", 0) == 0 and sum(sources.values()) == len(val.keyframes)
