"""ONNX export: dynamic boxes and clips, same scores as PyTorch, metadata, interaction models."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from helpers.infer import ROOM_LAYOUT, make_frames, tiny_config, write_recording, write_tiny_checkpoint
from thermal_action.inference.export import _example_inputs, clip_builder_kwargs, export_onnx
from thermal_action.inference.onnx_file import read_onnx_metadata
from thermal_action.inference.predictor import ClipRequest, Predictor
from thermal_action.inference.recordings import predict_recordings
from thermal_action.structures import DEFAULT_CLASS_NAMES


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.set_num_threads(1)
    d = tmp_path_factory.mktemp("export")
    ckpt = write_tiny_checkpoint(d / "tiny.ckpt", score_activation="sigmoid")
    report = export_onnx(ckpt, d / "tiny.onnx")
    return ckpt, report


def test_legacy_exporter_gives_a_checked_graph(exported):
    ckpt, report = exported
    assert report.exporter == "legacy" and report.attempts == {}
    # Traced with 2 boxes, checked with other counts: R is really dynamic.
    assert report.checked_box_counts == [1, 3, 5]
    assert report.max_abs_diff_logits < 1e-4
    assert report.input_shapes["rois"] == ["R", 5] and report.input_shapes["fast"][0] == "B"
    meta = read_onnx_metadata(report.path)
    assert meta["class_names"] == list(DEFAULT_CLASS_NAMES)
    assert meta["score_activation"] == "sigmoid" and meta["memory"] is False
    assert meta["clip_builder"]["num_frames"] == 16 and meta["clip_builder"]["fixed_range"] == (5.0, 45.0)


def test_onnx_predictor_matches_torch(exported, tmp_path):
    ckpt, report = exported
    torch_pred = Predictor.from_checkpoint(ckpt)
    onnx_pred = Predictor.from_checkpoint(report.path)  # the .onnx alone: preprocessing from its metadata
    assert onnx_pred.backend.name == "onnx" and onnx_pred.score_activation == "sigmoid"
    assert onnx_pred.alert_rule == torch_pred.alert_rule  # the checkpoint's rule, in the metadata
    assert clip_builder_kwargs(onnx_pred.clip_builder) == clip_builder_kwargs(torch_pred.clip_builder)
    frames, _ = make_frames(30)
    boxes = np.array([[7, 8, 17, 16], [40, 24, 50, 32], [0, 0, 6, 5], [20, 20, 30, 28]], np.float32)
    for reqs in (
        [ClipRequest(frames, 10, boxes[:1])],  # R = 1
        [ClipRequest(frames, 3, boxes[:3])],  # R = 3
        [ClipRequest(frames, 0, boxes[:2]), ClipRequest(frames, 29, boxes[:4]), ClipRequest(frames, 5, boxes[:0])],
    ):
        want, got = torch_pred.predict_clips(reqs), onnx_pred.predict_clips(reqs)
        for w, g in zip(want, got):
            assert w.shape == g.shape
            np.testing.assert_allclose(g, w, atol=1e-4)
    # R = 0 straight into the graph (the predictor never sends it, but the graph takes it).
    assert report.empty_boxes_ok
    slow, fast, rois = _example_inputs(1, 0, 8, onnx_pred.alpha, 40, 60)
    assert onnx_pred.backend(slow, fast, rois).shape == torch_pred.backend(slow, fast, rois).shape == (0, 14)


def test_predict_with_onnx_backend(exported, tmp_path):
    ckpt, _ = exported
    frames, _ = make_frames(20)
    rec = write_recording(tmp_path / "S1.h5", frames)
    a = predict_recordings(ckpt, [rec], tmp_path / "torch", step=6, backend="torch")
    b = predict_recordings(ckpt, [rec], tmp_path / "onnx", step=6, backend="onnx")
    assert (tmp_path / "onnx" / "model.onnx").is_file()
    assert json.loads((tmp_path / "onnx" / "run.json").read_text())["backend"] == "onnx"
    assert len(a.predictions) == len(b.predictions) > 0
    for p, q in zip(a.predictions, b.predictions):
        assert (p.frame_idx, p.track_id) == (q.frame_idx, q.track_id)
        np.testing.assert_allclose(p.scores, q.scores, atol=1e-4)


def test_interaction_model_refused_unless_no_memory_allowed(tmp_path):
    cfg = tiny_config("model.interaction=parallel", "model.interaction_dim=16")
    ckpt = write_tiny_checkpoint(tmp_path / "inter.ckpt", cfg)
    with pytest.raises(ValueError, match="feature bank.*--allow-no-memory"):
        export_onnx(ckpt, tmp_path / "inter.onnx")
    report = export_onnx(ckpt, tmp_path / "inter.onnx", allow_no_memory=True)
    # Person-person interaction inside a clip is in the graph: checked with 2 clips x several boxes.
    assert report.max_abs_diff_logits < 1e-4
    assert read_onnx_metadata(report.path)["interaction"] == "parallel"


def test_cli_export_and_errors(exported, tmp_path, capsys):
    from thermal_action.cli import main

    ckpt, _ = exported
    assert main(["export", str(tmp_path / "m.onnx"), "--checkpoint", str(ckpt), "--exporter", "legacy"]) == 0
    assert "legacy exporter" in capsys.readouterr().out
    with pytest.raises(ValueError, match="no 'thermal_action' metadata"):
        import onnx

        plain = onnx.load(str(tmp_path / "m.onnx"))
        del plain.metadata_props[:]
        onnx.save(plain, str(tmp_path / "plain.onnx"))
        read_onnx_metadata(tmp_path / "plain.onnx")
    with pytest.raises(ValueError, match="exporter"):
        export_onnx(ckpt, tmp_path / "x.onnx", exporter="magic")


def test_fast_only_tube_model_exports_without_a_slow_input(tmp_path):
    """The CPU default's crop CNN reads only the fast pathway, so its graph has no ``slow``
    input; the export check, the ONNX predictor and the service feed what the graph declares."""
    cfg = tiny_config("model.variant=crop_cnn", "model.tube_size=8", "model.test_time_augmentation=8")
    ckpt = write_tiny_checkpoint(tmp_path / "crop.ckpt", cfg)
    report = export_onnx(ckpt, tmp_path / "crop.onnx")
    assert report.max_abs_diff_logits < 1e-4
    frames, _ = make_frames(30)
    boxes = np.array([[7, 8, 17, 16], [40, 24, 50, 32]], np.float32)
    want = Predictor.from_checkpoint(ckpt).predict_clips([ClipRequest(frames, 10, boxes)])
    got = Predictor.from_checkpoint(report.path).predict_clips([ClipRequest(frames, 10, boxes)])
    np.testing.assert_allclose(got[0], want[0], atol=1e-4)


def test_export_announces_its_long_steps(exported, tmp_path, caplog):
    ckpt, _ = exported
    with caplog.at_level("INFO", logger="thermal_action.inference.export"):
        export_onnx(ckpt, tmp_path / "m.onnx", exporter="legacy")
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == f"export (legacy exporter) [1/2] tracing the model into {tmp_path / 'm.onnx'}"
    assert lines[1] == "export (legacy exporter) [2/2] running the file in ONNX Runtime against PyTorch"


@pytest.mark.parametrize("room, variant", [("masks+features", "crop_cnn"), ("features", "slowfast_tiny")])
def test_a_model_that_reads_the_room_exports_with_its_room_inputs(room, variant, tmp_path):
    import onnxruntime as ort

    from thermal_action.data.rooms import NO_LAYOUT

    cfg = tiny_config(f"model.variant={variant}", "model.tube_size=16", f"model.room={room}",
                      "model.test_time_augmentation=8")
    ckpt = write_tiny_checkpoint(tmp_path / "room.ckpt", cfg)
    report = export_onnx(ckpt, tmp_path / "room.onnx")
    assert report.max_abs_diff_logits < 1e-4
    names = [i.name for i in ort.InferenceSession(str(report.path), providers=["CPUExecutionProvider"]).get_inputs()]
    want_names = {"masks+features": ["fast", "rois", "zone_masks", "zone_features"],
                  "features": ["slow", "fast", "rois", "zone_features"]}[room]
    assert names == want_names
    assert report.input_shapes.get("zone_features") == ["R", 7]
    assert ("zone_masks" in report.input_shapes) == ("masks" in room)
    meta = read_onnx_metadata(report.path)
    assert meta["room"] == room and meta["zone_kinds"] == ["bed", "couch", "chair"] and len(meta["zone_features"]) == 7
    frames, _ = make_frames(30)
    boxes = np.array([[7, 8, 17, 16], [40, 24, 50, 32]], np.float32)
    torch_pred, onnx_pred = Predictor.from_checkpoint(ckpt), Predictor.from_checkpoint(report.path)
    assert torch_pred.reads_room and onnx_pred.reads_room
    for layout in (ROOM_LAYOUT, NO_LAYOUT):
        reqs = [ClipRequest(frames, 10, boxes, layout=layout), ClipRequest(frames, 20, boxes[:1], layout=layout)]
        for w, g in zip(torch_pred.predict_clips(reqs), onnx_pred.predict_clips(reqs)):
            np.testing.assert_allclose(g, w, atol=1e-4)
    with pytest.raises(ValueError, match="reads 'zone_(masks|features)'.*none was given"):
        onnx_pred.backend(*_example_inputs(1, 1, 8, onnx_pred.alpha, 40, 60))
