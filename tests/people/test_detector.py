"""The built-in thermal person detector on small synthetic scenes made here."""

from __future__ import annotations

import json

import numpy as np
import pytest

from thermal_action.data.packets import PACKET_PX, repair_dropped_packets
from thermal_action.people.frame import detect_frame, to_celsius
from thermal_action.people.image_ops import fill_pinholes, segment_regions
from thermal_action.people.params import DetectorParams
from thermal_action.people.person_detector import PersonDetector
from thermal_action.people.results import Detections
from thermal_action.structures import box_iou_xyxy, boxes_cxcywh_norm_to_xyxy

H, W = 40, 60
LEVEL = 17.0  # °C room background
KETTLE = (52.5, 8.5)  # centre (x, y), a hot static object
DROPPED = -273.2


def _grid() -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float64)
    return xs + 0.5, ys + 0.5  # pixel centres


def _blob(cx: float, cy: float, sx: float, sy: float, amp: float) -> np.ndarray:
    xs, ys = _grid()
    return amp * np.exp(-((xs - cx) ** 2) / (2 * sx**2) - ((ys - cy) ** 2) / (2 * sy**2))


def _truth_box(cx: float, cy: float, sx: float, sy: float) -> np.ndarray:
    # Where the blob fades into the noise: ~2.2 sigma, as a loose annotator would draw it.
    return np.array([cx - 2.2 * sx, cy - 2.2 * sy, cx + 2.2 * sx, cy + 2.2 * sy])


def _background() -> np.ndarray:
    xs, ys = _grid()
    bg = LEVEL + 0.02 * (xs - W / 2) - 0.015 * (ys - H / 2)  # a gentle gradient
    return bg + (44.0 - LEVEL) * np.exp(-((xs - KETTLE[0]) ** 2 + (ys - KETTLE[1]) ** 2) / (2 * 0.8**2))


def _frame(rng: np.random.Generator, people: list[tuple[float, float, float, float, float]], noise: float = 0.3):
    f = _background() + rng.normal(0, noise, (H, W))
    for p in people:
        f += _blob(*p)
    return np.round(f, 1).astype(np.float32)


def _drop_tail(frame: np.ndarray, k: int) -> np.ndarray:
    out = frame.copy().ravel()
    out[H * W - PACKET_PX * k :] = DROPPED
    return out.reshape(H, W)


def _best_iou(truth: np.ndarray, dets: Detections) -> float:
    if len(dets) == 0:
        return 0.0
    return float(box_iou_xyxy(truth[None], dets.boxes_xyxy).max())


def test_finds_people_not_kettle_nor_dropped_block():
    rng = np.random.default_rng(0)
    det = PersonDetector()
    kettle_box = np.array([[KETTLE[0] - 2, KETTLE[1] - 2, KETTLE[0] + 2, KETTLE[1] + 2]])
    for t in range(40):
        a = (12.0 + 0.5 * t, 12.0, 2.0, 1.6, 6.5)  # walking right
        b = (40.0, 28.0 - 0.3 * t, 1.8, 1.8, 6.0)  # walking up
        frame = _frame(rng, [a, b])
        dropped = t % 7 == 3
        if dropped:
            frame = _drop_tail(frame, 1)  # the last 576 pixels: rows 30.4-40
        dets = det.update(frame)
        assert len(dets) == 2, f"frame {t}: {dets.boxes_xyxy}"
        for p in (a, b):
            assert _best_iou(_truth_box(*p[:4]), dets) >= 0.5, f"frame {t}"
        assert box_iou_xyxy(kettle_box, dets.boxes_xyxy).max() == 0.0
        if dropped:
            assert det.last_result is not None
            assert not det.last_result.valid_mask.ravel()[H * W - PACKET_PX :].any()
            assert dets.boxes_xyxy[:, 3].max() <= (H * W - PACKET_PX) / W + 1.0 + 1e-6


def test_dropped_packets_are_never_foreground():
    rng = np.random.default_rng(1)
    frame = _drop_tail(_frame(rng, []), 3)
    res = detect_frame(frame, _background())
    assert len(res.detections) == 0
    assert not res.person_mask[~res.valid_mask].any()
    assert res.valid_mask.sum() == H * W - 3 * PACKET_PX
    # Impossible readings are no-data too, not the hottest thing in the room.
    frame2 = _frame(rng, [])
    frame2[5:8, 5:8] = 900.0
    frame2[20, 20] = np.nan
    res2 = detect_frame(frame2, _background())
    assert len(res2.detections) == 0 and not res2.valid_mask[5:8, 5:8].any() and not res2.valid_mask[20, 20]


def test_repair_puts_packed_packets_back():
    rng = np.random.default_rng(2)
    prev = _frame(rng, [(20.0, 15.0, 2.0, 1.6, 6.5)])
    cur = _frame(rng, [(20.5, 15.0, 2.0, 1.6, 6.5)])
    flat = cur.ravel()
    # Real receivers pack the packets that arrived (here all but packet 1) at the start.
    received = np.concatenate([flat[:PACKET_PX], flat[2 * PACKET_PX :]])
    packed = np.concatenate([received, np.full(PACKET_PX, DROPPED, np.float32)]).reshape(H, W)
    frame_c, valid = to_celsius(packed)
    rep = repair_dropped_packets(frame_c, valid, prev)
    assert rep.missing_packets == (1,) and rep.moved
    expect_valid = np.ones(H * W, bool)
    expect_valid[PACKET_PX : 2 * PACKET_PX] = False
    np.testing.assert_array_equal(rep.valid.ravel(), expect_valid)
    np.testing.assert_array_equal(rep.frame_c.ravel()[expect_valid], flat[expect_valid])
    # A frame that lost only its tail, data in place, stays as it is.
    tail = _drop_tail(cur, 2)
    rep2 = repair_dropped_packets(*to_celsius(tail), prev)
    assert rep2.missing_packets == () and not rep2.moved
    np.testing.assert_array_equal(rep2.valid, tail > -100)


def test_touching_people_are_split():
    rng = np.random.default_rng(3)
    a, b = (24.0, 20.0, 2.0, 1.8, 6.5), (31.0, 20.5, 2.0, 1.8, 6.0)
    frame = _frame(rng, [a, b], noise=0.2)
    res = detect_frame(frame, _background(), noise_sigma_c=0.2)
    # The two blobs are one connected region above the threshold: only the split parts them.
    excess = res.excess_c > DetectorParams().grow_floor_c
    assert segment_regions(excess, res.excess_c, split_depth=np.inf, min_split_area=1).max() == 1
    assert len(res.detections) == 2
    for p in (a, b):
        assert _best_iou(_truth_box(*p[:4]), res.detections) >= 0.5


def test_one_person_with_two_bumps_is_not_split():
    # Head and torso of someone lying: two peaks 0.5 °C over the saddle between them.
    rng = np.random.default_rng(4)
    frame = _frame(rng, [(22.0, 20.0, 2.2, 1.5, 5.5), (28.0, 20.0, 2.2, 1.5, 5.5)], noise=0.2)
    res = detect_frame(frame, _background(), noise_sigma_c=0.2)
    assert len(res.detections) == 1
    truth = np.array([22.0 - 2.2 * 2.2, 20.0 - 2.2 * 1.5, 28.0 + 2.2 * 2.2, 20.0 + 2.2 * 1.5])
    assert _best_iou(truth, res.detections) >= 0.5


def test_segment_regions_golden():
    heights = np.array(
        [
            [0, 5, 5, 0, 0, 0, 0, 0],
            [0, 5, 9, 3, 8, 5, 0, 0],
            [0, 5, 5, 0, 5, 5, 0, 0],
            [0, 0, 0, 0, 0, 0, 0, 1],
        ],
        dtype=float,
    )
    mask = heights > 0
    # Deep valley (3 between 9 and 8): two regions; the isolated corner pixel is a third.
    deep = segment_regions(mask, heights, split_depth=4.0, min_split_area=2)
    expect = np.array(
        [
            [0, 1, 1, 0, 0, 0, 0, 0],
            [0, 1, 1, 1, 2, 2, 0, 0],
            [0, 1, 1, 0, 2, 2, 0, 0],
            [0, 0, 0, 0, 0, 0, 0, 3],
        ]
    )
    np.testing.assert_array_equal(deep, expect)
    # A valley shallower than split_depth merges them.
    shallow = segment_regions(mask, heights, split_depth=6.0, min_split_area=2)
    assert shallow.max() == 2 and len(np.unique(shallow[mask & (heights >= 3)])) == 1
    # A part that is no person by itself (peak_map below min_peak) is cut off.
    peak_map = np.where(np.arange(8)[None, :] >= 4, 0.0, 10.0) * np.ones_like(heights)
    trimmed = segment_regions(mask, heights, 6.0, 2, peak_map=peak_map, min_peak=5.0, trim_depth=1.0)
    assert trimmed[1, 2] != trimmed[1, 4]
    assert segment_regions(np.zeros((3, 3), bool), np.zeros((3, 3)), 1.0, 1).max() == 0


def test_fill_pinholes():
    m = np.ones((5, 5), bool)
    m[2, 2] = False
    m[0, 0] = False  # a notch at the corner is not a hole
    out = fill_pinholes(m)
    assert out[2, 2] and not out[0, 0]


def test_lying_still_person_stays_detected():
    rng = np.random.default_rng(5)
    p = DetectorParams()
    det = PersonDetector(p)
    n = 3 * p.window_frames  # far longer than the background needs to absorb a static object
    hits = []
    for t in range(n):
        x = min(10.0 + t, 30.0)  # walks in, then lies still
        person = (x, 20.0, 4.0, 1.5, 6.0)
        dets = det.update(_frame(rng, [person]))
        if t >= n - p.window_frames:
            hits.append(_best_iou(_truth_box(*person[:4]), dets) >= 0.5)
    assert np.mean(hits) >= 0.98


def test_person_lying_still_for_many_background_windows_stays_detected():
    # Asleep in bed: the background's low percentile drifts against the
    # offset, and a person frozen out of it must not lose their warmth to that drift. A short
    # window (32 samples) makes 20 windows a few seconds of test.
    rng = np.random.default_rng(6)
    p = DetectorParams(window_frames=64, sample_every=2)
    det = PersonDetector(p)
    n = 20 * p.window_frames
    hits = []
    for t in range(n):
        person = (min(10.0 + t, 30.0), 20.0, 4.0, 1.5, 6.0)
        dets = det.update(_frame(rng, [person]))
        if t >= n - p.window_frames:
            hits.append(_best_iou(_truth_box(*person[:4]), dets) >= 0.5)
    assert np.mean(hits) >= 0.98


def test_person_who_falls_and_dims_stays_detected():
    # Upright the person is bright; lying on the floor they spread and dim to a 3x3
    # peak under the 4 °C a new person needs, but they continue a known person.
    rng = np.random.default_rng(10)
    det = PersonDetector()
    lying = (30.0, 20.0, 4.0, 1.3, 4.4)
    assert detect_frame(_frame(rng, [lying]), _background()).detections.boxes_xyxy.shape[0] == 0
    hits = []
    for t in range(150):
        if t < 30:
            person = (12.0 + 0.6 * t, 20.0, 2.0, 1.6, 6.5)  # walks in
        elif t < 35:
            f = (t - 29) / 6  # falls
            person = (29.4 + 0.6 * f, 20.0, 2.0 + 2.0 * f, 1.6 - 0.3 * f, 6.5 - 2.1 * f)
        else:
            person = lying
        dets = det.update(_frame(rng, [person]))
        if t >= 35:
            hits.append(_best_iou(_truth_box(*person[:4]), dets) >= 0.5)
    assert np.mean(hits) >= 0.95


def test_fallen_person_is_kept_when_someone_walks_over_them():
    rng = np.random.default_rng(12)
    det = PersonDetector()
    lying = (30.0, 20.0, 4.0, 1.3, 4.4)  # too dim for a new person (see above)
    for t in range(40):
        x = min(12.0 + 0.6 * t, 30.0)
        upright = t < 30
        det.update(_frame(rng, [(x, 20.0, 2.0, 1.6, 6.5) if upright else lying]))
    lying_found = []
    for t in range(50):
        walker = (30.0, 5.0 + 0.8 * t, 2.0, 1.6, 6.5)  # walks straight over them
        dets = det.update(_frame(rng, [lying, walker]))
        if abs(walker[1] - lying[1]) > 10:  # apart again
            lying_found.append(_best_iou(_truth_box(*lying[:4]), dets) >= 0.5)
    assert len(lying_found) > 20 and np.mean(lying_found[-10:]) == 1.0


def test_residual_heat_left_behind_is_not_a_person():
    # Someone sits still, gets up and walks off; the seat stays 3.3 °C warm (warmer than
    # a dimmed person needs to stay detected) and overlaps where they sat more than
    # they do, but it is not them.
    rng = np.random.default_rng(11)
    det = PersonDetector()
    seat = (20.0, 20.0, 2.6, 2.4)
    for _ in range(60):
        det.update(_frame(rng, [(*seat, 6.5)]))
    for t in range(30):
        person = (20.0 + 1.0 * (t + 1), 20.0 - 0.2 * (t + 1), 2.0, 1.6, 6.5)
        residual = (*seat, 3.3 + 1.5 * np.exp(-t / 5))  # person-warm for a moment
        dets = det.update(_frame(rng, [person, residual]))
        if t >= 12:  # 13 px apart
            assert _best_iou(_truth_box(*person[:4]), dets) >= 0.5, f"frame {t}"
            assert _best_iou(_truth_box(*seat), dets) < 0.3, f"frame {t}: {dets.boxes_xyxy}"


def test_static_warm_object_is_absorbed():
    rng = np.random.default_rng(6)
    p = DetectorParams()
    det = PersonDetector(p)
    chair = (15.0, 30.0, 2.5, 2.5, 3.0)  # 3 °C: residual heat, too cool to be a person
    for _ in range(10):
        det.update(_frame(rng, []))
    before = det.background[30, 15]
    for _ in range(p.window_frames):
        dets = det.update(_frame(rng, [chair]))
        assert len(dets) == 0
    assert det.background[30, 15] - before > 2.0  # learnt as background


def test_global_drift_and_kelvin():
    rng = np.random.default_rng(7)
    det = PersonDetector()
    person = (30.0, 20.0, 2.0, 1.6, 6.5)
    for t in range(60):
        frame = _frame(rng, [person]) + 0.05 * t  # the sensor drifts 3 °C
        dets = det.update(frame)
        assert len(dets) == 1 and _best_iou(_truth_box(*person[:4]), dets) >= 0.5
    frame = _frame(rng, [person])
    c = detect_frame(frame, _background())
    k = detect_frame(frame + 273.15, _background())  # a pipeline that reports Kelvin
    np.testing.assert_allclose(k.detections.boxes_xyxy, c.detections.boxes_xyxy)
    assert len(c.detections) == 1


def test_empty_and_bad_input():
    rng = np.random.default_rng(8)
    dets = detect_frame(_frame(rng, []), _background()).detections
    assert dets.boxes_xyxy.shape == (0, 4) and dets.scores.shape == (0,)
    all_dropped = np.full((H, W), DROPPED, np.float32)
    assert len(detect_frame(all_dropped, _background()).detections) == 0
    det = PersonDetector()
    assert len(det.update(all_dropped)) == 0
    with pytest.raises(ValueError, match="shape"):
        detect_frame(np.zeros((H, W)), np.zeros((H, W + 1)))
    with pytest.raises(ValueError, match="frame"):
        det.update(np.zeros((2, H, W)))
    with pytest.raises(ValueError, match="reset"):
        det.update(np.zeros((H + 1, W)))
    with pytest.raises(ValueError, match="boxes"):
        Detections(np.zeros((2, 4)), np.zeros(3))


def test_detect_recording_is_repeatable_and_scored():
    rng = np.random.default_rng(9)
    frames = np.stack([_frame(rng, [(20.0 + 0.5 * t, 15.0, 2.0, 1.6, 6.5)]) for t in range(12)])
    det = PersonDetector()
    first = det.detect_recording(frames)
    second = det.detect_recording(frames)
    assert len(first) == 12
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a.boxes_xyxy, b.boxes_xyxy)
        assert a.scores.dtype == np.float32 and np.all((a.scores > 0) & (a.scores < 1))


def test_real_sample_fallen_person_is_found(shared_sample):
    h5py = pytest.importorskip("h5py")
    with h5py.File(shared_sample / "frames" / "SL14_R1.h5", "r") as f:
        frames = f["frames"][:]
    dets = PersonDetector().detect_recording(frames)
    found = []
    for split in ("train", "val"):
        doc = json.loads((shared_sample / "annotations" / f"{split}.json").read_text())
        images = {im["id"]: im for im in doc["images"]}
        for ann in doc["annotations"]:
            if ann["category_id"] != 3:  # the fall class
                continue
            box = boxes_cxcywh_norm_to_xyxy(np.array([ann["bbox"]]), W, H)[0]
            found.append(_best_iou(box, dets[images[ann["image_id"]]["frame_idx"]]) >= 0.5)
    assert len(found) > 10 and np.mean(found) >= 0.9
