"""render: browser-playable MP4 (H.264 yuv420p, even size), GIF, fall highlight, annotations."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from helpers.infer import make_frames, write_recording
from thermal_action.alert_rule import AlertRule
from thermal_action.data.hdf5 import read_recording
from thermal_action.inference.outputs import Prediction
from thermal_action.inference.render import GT_COLOR, FrameRenderer, _Shown, probe_video, render_recording
from thermal_action.structures import DEFAULT_CLASS_NAMES, boxes_xyxy_to_cxcywh_norm
from thermal_action.visualize import HIGHLIGHT_COLOR

N = 24


@pytest.fixture(scope="module")
def rec(tmp_path_factory):
    frames, _ = make_frames(N, dropped=(4,))
    return read_recording(write_recording(tmp_path_factory.mktemp("rec") / "S1.h5", frames))


def _preds(rec, fallen_from: int = 6) -> list[Prediction]:
    """Track 0 (left) falls from frame ``fallen_from`` on; track 1 stands. One prediction every 6 frames."""
    out = []
    for f in range(0, N, 6):
        for tid, box in ((0, [7, 8, 17, 16]), (1, [40, 24, 50, 32])):
            scores = np.full(14, 0.01)
            scores[3 if (tid == 0 and f >= fallen_from) else 1] = 0.87
            out.append(Prediction("S1", f, int(rec.timestamps[f]), tid, np.array(box, float),
                                  boxes_xyxy_to_cxcywh_norm(np.array([box]), 60, 40)[0], scores,
                                  DEFAULT_CLASS_NAMES, recording="S1.h5"))
    return out


def _red(img: np.ndarray) -> int:
    return int(np.all(img == HIGHLIGHT_COLOR, axis=-1).sum())


def test_mp4_is_h264_yuv420p_with_every_frame_and_gif(rec, tmp_path):
    result = render_recording(rec, tmp_path / "v.mp4", gif=tmp_path / "v.gif", predictions=_preds(rec),
                              scale=4, alert_rule=AlertRule(threshold=0.5, min_seconds=1.0))
    info = probe_video(tmp_path / "v.mp4")
    assert (info.codec, info.pix_fmt) == ("h264", "yuv420p")
    assert info.frames == N == result.frames
    # 60*4 = 240 wide; 40*4 + a 15-pixel caption = 175 high, padded to 176.
    assert (info.width, info.height) == (result.width, result.height) == (240, 176)
    assert info.width % 2 == 0 and info.height % 2 == 0
    gif = Image.open(tmp_path / "v.gif")
    assert gif.n_frames == N and gif.size == (info.width, info.height)
    assert [(a.track_id, a.start_frame, a.end_frame) for a in result.alerts] == [(0, 6, 18)]


def test_odd_scale_gives_even_video(rec, tmp_path):
    result = render_recording(rec, tmp_path / "o.mp4", scale=3, stop=5, font_size=9)
    # 60*3 = 180 wide; 40*3 + caption 15 = 135 high -> padded to 136.
    info = probe_video(tmp_path / "o.mp4")
    assert (info.width, info.height, info.frames) == (180, 136, 5) == (result.width, result.height, result.frames)


def test_fall_alert_is_highlighted_only_inside_the_alert(rec):
    from thermal_action.inference.alerts import find_fall_alerts

    preds = _preds(rec)
    alerts = find_fall_alerts(preds, 3, AlertRule(threshold=0.5, min_seconds=1.0))
    by_frame = {}
    for p in preds:
        by_frame.setdefault(p.frame_idx, []).append(p)
    r = FrameRenderer(rec, _Shown.of(by_frame, 13), _Shown.of({}, 13), alerts, 4, 9, rec.frames)
    before, during = r.render(3), r.render(12)
    assert _red(before) == 0
    assert _red(during) > 100
    # The red outline is track 0's box (x 7..17 at scale 4), not track 1's.
    cols = np.nonzero(np.all(during == HIGHLIGHT_COLOR, axis=-1))[1]
    assert cols.min() >= 7 * 4 - 1 and cols.max() < 40 * 4
    # Without alerts the same frame has no red at all.
    plain = FrameRenderer(rec, _Shown.of(by_frame, 13), _Shown.of({}, 13), [], 4, 9, rec.frames)
    assert _red(plain.render(12)) == 0


def test_boxes_hold_until_the_next_keyframe_at_most_max_hold():
    shown = _Shown.of({0: ["a"], 6: ["b"], 30: ["c"]}, max_hold=13)
    assert [shown.at(f) for f in (0, 5, 6, 18, 19, 29, 30, 42, 43)] == [
        ["a"], ["a"], ["b"], ["b"], [], [], ["c"], ["c"], []]


def test_annotations_and_prediction_file(rec, tmp_path):
    ts = int(rec.timestamps[6])
    ann = {
        "images": [{"id": f"S1_{ts}", "sensor_id": "S1", "timestamp": ts, "width": 60, "height": 40, "frame_idx": 6}],
        "annotations": [{"id": 0, "image_id": f"S1_{ts}", "bbox": [0.2, 0.3, 0.15, 0.2], "category_id": 3,
                         "object_id": 0}],
        "categories": [{"id": i, "name": n} for i, n in enumerate(DEFAULT_CLASS_NAMES)],
    }
    (tmp_path / "val.json").write_text(json.dumps(ann))
    from thermal_action.data.annotations import load_annotations

    loaded = load_annotations(tmp_path / "val.json")
    gt = {6: [(np.array([7.5, 8, 16.5, 16]), "gt fall")]}
    r = FrameRenderer(rec, _Shown.of({}, 13), _Shown.of(gt, 13), [], 4, 9, rec.frames)
    grey = lambda img: int(np.all(img[: 40 * 4] == GT_COLOR, axis=-1).sum())  # noqa: E731 - above the caption
    assert grey(r.render(5)) == 0 and grey(r.render(6)) > 50
    # Through the CLI: predictions.json + run.json (alert rule) + annotations file.
    pred_dir = tmp_path / "pred"
    pred_dir.mkdir()
    (pred_dir / "predictions.json").write_text(json.dumps([p.to_record() for p in _preds(rec)]))
    (pred_dir / "run.json").write_text(json.dumps({"class_names": list(DEFAULT_CLASS_NAMES),
                                                   "alert_rule": {"threshold": 0.5, "min_seconds": 1.0}}))
    from thermal_action.cli import main

    rc = main(["render", str(rec.path), "--predictions", str(pred_dir / "predictions.json"), "--annotations",
               str(tmp_path / "val.json"), "--out", str(tmp_path / "c.mp4"), "--scale", "2", "--stop", "8"])
    assert rc == 0 and probe_video(tmp_path / "c.mp4").frames == 8
    assert loaded.keyframes[0].frame_idx == 6


def test_the_alert_rule_comes_from_run_json(tmp_path):
    from thermal_action.inference.render import _run_rule

    run = tmp_path / "run.json"
    assert _run_rule(run) is None
    run.write_text(json.dumps({"alert_rule": AlertRule(threshold=0.3, cooldown_seconds=9.0).to_dict()}))
    assert _run_rule(run) == AlertRule(threshold=0.3, cooldown_seconds=9.0)
    # A run.json of a predict from before alert rules: its threshold and duration, no cooldown.
    run.write_text(json.dumps({"fall_alert_rule": {"class": "other", "threshold": 0.4, "min_seconds": 2.0,
                                                   "fps": 6.0}}))
    assert _run_rule(run) == AlertRule(fall_class="other", threshold=0.4, min_seconds=2.0, cooldown_seconds=0.0)


def test_bad_render_arguments(rec, tmp_path):
    with pytest.raises(ValueError, match="scale"):
        render_recording(rec, tmp_path / "x.mp4", scale=0)
    with pytest.raises(ValueError, match="frame range"):
        render_recording(rec, tmp_path / "x.mp4", start=30)


def _zone_pixels(img: np.ndarray, kind: str, scale: int, box: tuple[int, int, int, int] | None = None) -> int:
    """Image pixels of a zone kind's outline colour (inside ``box``, frame pixels x1, y1, x2, y2)."""
    from thermal_action.visualize import ZONE_COLORS

    part = img[: 40 * scale] if box is None else img[box[1] * scale:box[3] * scale, box[0] * scale:box[2] * scale]
    return int(np.all(part == ZONE_COLORS[kind], axis=-1).sum())


def test_zones_are_drawn_under_the_boxes_annotations_first_then_the_rooms_file(rec, tmp_path):
    from thermal_action.cli import main
    from thermal_action.data.annotations import load_annotations
    from thermal_action.data.rooms import parse_rooms
    from thermal_action.inference.render import _layout_lookup

    # The rooms file: a bed on the right half until frame 12's time, then a couch there.
    t12 = int(rec.timestamps[12])
    rooms = {"sensors": {"S1": [{"zones": [{"kind": "bed", "name": "by the window", "box": [0.5, 0.25, 0.95, 0.75]}]},
                                {"valid_from": t12, "zones": [{"kind": "couch", "box": [0.5, 0.25, 0.95, 0.75]}]}]}}
    (tmp_path / "rooms.json").write_text(json.dumps(rooms))
    room_map = parse_rooms(rooms, "rooms.json")
    plain = FrameRenderer(rec, _Shown.of({}, 13), _Shown.of({}, 13), [], 4, 9, rec.frames)
    zoned = FrameRenderer(rec, _Shown.of({}, 13), _Shown.of({}, 13), [], 4, 9, rec.frames,
                          layout_at=_layout_lookup(rec, {}, room_map))
    assert _zone_pixels(plain.render(3), "bed", 4) == 0
    assert _zone_pixels(zoned.render(3), "bed", 4, (29, 9, 58, 31)) > 100  # the dashed outline of the bed
    assert _zone_pixels(zoned.render(3), "couch", 4) == 0
    assert _zone_pixels(zoned.render(15), "couch", 4, (29, 9, 58, 31)) > 100 and _zone_pixels(
        zoned.render(15), "bed", 4) == 0
    # A person box drawn over a zone stays on top (boxes come after the zones).
    gt = {3: [(np.array([30, 10, 40, 20]), "gt bed")]}
    both = FrameRenderer(rec, _Shown.of({}, 13), _Shown.of(gt, 13), [], 4, 9, rec.frames,
                         layout_at=_layout_lookup(rec, {}, room_map)).render(3)
    assert np.all(both[10 * 4, 30 * 4:40 * 4 - 1] == GT_COLOR)
    # Keyframes with furniture boxes win over the rooms file, from their frame on.
    ts = int(rec.timestamps[6])
    ann = {"images": [{"id": f"S1_{ts}", "sensor_id": "S1", "timestamp": ts, "width": 60, "height": 40,
                       "frame_idx": 6}], "annotations": [],
           "categories": [{"id": i, "name": n} for i, n in enumerate(DEFAULT_CLASS_NAMES)],
           "context_objects": [{"image_id": f"S1_{ts}", "bbox": [0.2, 0.5, 0.2, 0.3], "category": "furniture",
                                "subcategory": "chair"}]}
    (tmp_path / "val.json").write_text(json.dumps(ann))
    own = {6: load_annotations(tmp_path / "val.json").keyframes[0].layout}
    both = FrameRenderer(rec, _Shown.of({}, 13), _Shown.of({}, 13), [], 4, 9, rec.frames,
                         layout_at=_layout_lookup(rec, own, room_map))
    assert _zone_pixels(both.render(20), "chair", 4, (5, 13, 19, 27)) > 50 and _zone_pixels(
        both.render(20), "couch", 4) == 0
    # Through the CLI.
    rc = main(["render", str(rec.path), "--annotations", str(tmp_path / "val.json"), "--rooms",
               str(tmp_path / "rooms.json"), "--out", str(tmp_path / "z.mp4"), "--scale", "2", "--stop", "4"])
    assert rc == 0 and probe_video(tmp_path / "z.mp4").frames == 4
    assert main(["render", str(rec.path), "--rooms", str(tmp_path / "nope.json"), "--out",
                 str(tmp_path / "n.mp4")]) == 2  # one line naming the missing file
def test_an_output_that_cannot_be_written_is_named_before_any_work(rec, tmp_path, capsys):
    from thermal_action.cli import main

    (tmp_path / "folder.mp4").mkdir()
    (tmp_path / "afile").write_text("x")
    with pytest.raises(OSError, match=r"cannot write the video .*folder\.mp4: it is a folder"):
        render_recording(rec, tmp_path / "folder.mp4")
    with pytest.raises(OSError, match=r"cannot write the video .*afile/out\.mp4: .*afile is a file, not a folder"):
        render_recording(rec, tmp_path / "afile" / "out.mp4")
    with pytest.raises(OSError, match=r"cannot write the GIF .*folder\.mp4: it is a folder"):
        render_recording(rec, tmp_path / "ok.mp4", gif=tmp_path / "folder.mp4")
    assert not (tmp_path / "ok.mp4").exists()
    h5 = write_recording(tmp_path / "S1.h5", make_frames(6)[0])
    assert main(["render", str(h5), "--out", str(tmp_path / "folder.mp4")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("folder.mp4: it is a folder; name a file") and "\n" not in err


def test_ffmpeg_giving_up_is_a_message_with_its_words_not_broken_pipe(rec, tmp_path):
    with pytest.raises(OSError, match=r"ffmpeg stopped writing .*out\.xyz after \d+ frame\(s\): .*output format"):
        render_recording(rec, tmp_path / "out.xyz")


def test_an_ffmpeg_that_logs_a_lot_while_frames_arrive_does_not_block_the_writer(tmp_path, monkeypatch):
    """ffmpeg's messages are not left in a pipe nobody reads until the end: an ffmpeg that
    writes 1 MB to stderr before it reads a frame used to wait on that pipe while the writer
    waited on ffmpeg."""
    import threading

    from thermal_action.inference import render

    chatty = tmp_path / "ffmpeg"
    chatty.write_text("#!/bin/sh\nhead -c 1000000 /dev/zero | tr '\\0' x >&2\ncat > /dev/null\n")
    chatty.chmod(0o755)
    monkeypatch.setattr(render, "ffmpeg_exe", lambda: str(chatty))
    writer = render.Mp4Writer(tmp_path / "v.mp4", 480, 320, fps=6)
    frame = np.zeros((320, 480, 3), np.uint8)  # 460 kB: more than a pipe holds

    def write() -> None:
        with writer:
            for _ in range(3):
                writer.write(frame)

    t = threading.Thread(target=write, daemon=True)
    t.start()
    t.join(timeout=20)
    if t.is_alive():
        writer._proc.kill()
        pytest.fail("the writer blocked on ffmpeg's unread messages")
    assert writer.frames == 3 and writer._proc.returncode == 0
