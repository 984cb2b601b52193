"""The model on unlabelled frames (inference.unlabelled) and pseudo-labels from it
(inference.pseudo_labels)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers.infer import make_frames, tiny_config, write_recording, write_tiny_checkpoint
from thermal_action.data.annotations import Keyframe
from thermal_action.inference.predictor import ClipRequest, Predictor
from thermal_action.inference.pseudo_labels import PSEUDO, pseudo_label_keyframes
from thermal_action.inference.unlabelled import (
    combine_members,
    member_predictors,
    score_requests,
    score_unlabelled,
    unlabelled_frames,
)
from thermal_action.structures import DEFAULT_CLASS_NAMES


def test_combine_members_is_the_softmax_of_the_mean_logits():
    logits = torch.randn(3, 5, 14, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    expected = torch.softmax(logits.mean(dim=0), dim=-1).numpy()
    np.testing.assert_allclose(combine_members(torch.softmax(logits, dim=-1).numpy()), expected, rtol=1e-9)


def test_an_ensemble_is_scored_member_by_member_and_as_a_whole():
    from thermal_action.data.dataset import build_clip_builder
    from thermal_action.inference.backends import TorchBackend
    from thermal_action.models.build import build_model

    cfg = tiny_config("model.ensemble=2")
    torch.manual_seed(0)
    model = build_model(cfg.model, len(DEFAULT_CLASS_NAMES))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.2)  # members that score differently
    predictor = Predictor(TorchBackend(model), build_clip_builder(cfg.data), DEFAULT_CLASS_NAMES)
    frames, tracks = make_frames(40, dropped=())
    requests = [ClipRequest(frames, f, np.stack([t[f] for t in tracks]).astype(np.float32)) for f in (10, 20)]
    requests.append(ClipRequest(frames, 30, np.zeros((0, 4), np.float32)))
    probs, members = score_requests(predictor, requests)
    whole = predictor.predict_clips(requests)
    for p, m, w in zip(probs, members, whole):
        assert m.shape == (2, len(w), 14)
        np.testing.assert_allclose(p, w, atol=1e-5)
    per_member = [mp.predict_clips(requests[:1])[0] for mp in member_predictors(predictor)]
    np.testing.assert_allclose(members[0], np.stack(per_member), atol=1e-6)
    assert not np.allclose(members[0][0], members[0][1], atol=1e-3)


def test_a_single_model_has_no_member_scores(tmp_path):
    predictor = Predictor.from_checkpoint(write_tiny_checkpoint(tmp_path / "m.ckpt"))
    assert member_predictors(predictor) == []
    frames, tracks = make_frames(40, dropped=())
    _, members = score_requests(predictor, [ClipRequest(frames, 10, tracks[0][10:11].astype(np.float32))])
    assert members == [None]


def test_unlabelled_frames_are_the_grid_away_from_labelled_keyframes():
    assert unlabelled_frames(40, [13], 6) == [0, 6, 18, 24, 30, 36]
    assert unlabelled_frames(13, [], 6) == [0, 6, 12]
    with pytest.raises(ValueError):
        unlabelled_frames(10, [], 0)


def _labelled(frame: int, box_xyxy, label: int = 1) -> Keyframe:
    from thermal_action.structures import boxes_xyxy_to_cxcywh_norm

    xyxy = np.asarray([box_xyxy], np.float32)
    return Keyframe(image_id=f"rec_{frame}", sensor_id="rec", frame_idx=frame, timestamp=frame, width=60, height=40,
                    boxes_cxcywh_norm=boxes_xyxy_to_cxcywh_norm(xyxy, 60, 40).astype(np.float32), boxes_xyxy=xyxy,
                    labels=np.array([label]), track_ids=np.array([0]), annotation_ids=np.array([0]))


def test_pseudo_labels_keep_the_confident_people_and_the_model_s_top_class(tmp_path):
    frames, tracks = make_frames(60, dropped=())
    rec = write_recording(tmp_path / "rec.h5", frames)
    ckpt = write_tiny_checkpoint(tmp_path / "m.ckpt")
    labelled = [_labelled(30, tracks[0][30])]
    scored = score_unlabelled(Predictor.from_checkpoint(ckpt), [rec], labelled, every=6)
    assert scored and all(u.frame_index % 6 == 0 and abs(u.frame_index - 30) > 3 for u in scored)
    top = np.concatenate([u.probs.max(axis=-1) for u in scored])
    threshold = float(np.median(top))

    kfs = pseudo_label_keyframes(ckpt, [rec], labelled, DEFAULT_CLASS_NAMES, threshold, step=6)
    by_frame = {u.frame_index: u for u in scored}
    assert kfs and len(kfs) < len(scored) + 1
    people = 0
    for kf in kfs:
        u = by_frame[kf.frame_idx]
        sure = u.probs.max(axis=-1) >= threshold
        assert kf.labels.tolist() == np.where(sure, u.probs.argmax(axis=-1), -1).tolist()
        assert kf.extras["label_source"] == PSEUDO and kf.sensor_id == "rec"
        np.testing.assert_allclose(kf.boxes_xyxy, u.boxes.boxes_xyxy)
        people += int(sure.sum())
    assert people == int((top >= threshold).sum())
    assert pseudo_label_keyframes(ckpt, [rec], labelled, DEFAULT_CLASS_NAMES, 1.0, step=6) == []
    with pytest.raises(ValueError, match="classes"):
        pseudo_label_keyframes(ckpt, [rec], labelled, [*DEFAULT_CLASS_NAMES[:-1], "x"], 0.5)
