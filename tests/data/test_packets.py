"""Dropped packets: the receiver's packing, putting packets back in place, and the reader's repair."""

from __future__ import annotations

import itertools
import logging

import h5py
import numpy as np
import pytest

from thermal_action.data.hdf5 import read_recording, repair_frames
from thermal_action.data.packets import (
    DROPPED_VALUE_C,
    PACKET_PX,
    nearest_complete_frames,
    pack_frame,
    packet_slots,
    realign_packed_frames,
    repair_dropped_packets,
)
from thermal_action.data.synth.config import SynthConfig
from thermal_action.data.synth.recording import simulate_recording
from thermal_action.data.synth.write import write_h5

H, W = 40, 60


def _room(rng: np.random.Generator, noise: float = 0.3) -> np.ndarray:
    """A room with structure to align against: a gradient, a warm lens ring, a person, noise."""
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float64) + 0.5
    f = 17.0 + 0.03 * (xs - W / 2) - 0.02 * (ys - H / 2)
    f += 2.0 / (1.0 + np.exp(-(np.hypot(xs - W / 2, ys - H / 2) - 29.0)))
    f += 6.5 * np.exp(-((xs - 22.0) ** 2) / 8.0 - ((ys - 16.0) ** 2) / 5.0)
    return np.round(f + rng.normal(0, noise, (H, W)), 1).astype(np.float32)


def _lost_mask(lost: tuple[int, ...]) -> np.ndarray:
    mask = np.zeros(H * W, bool)
    for i in lost:
        mask[i * PACKET_PX : (i + 1) * PACKET_PX] = True
    return mask.reshape(H, W)


def test_packet_layout_and_packing():
    assert packet_slots(H * W) == [(0, 576), (576, 576), (1152, 576), (1728, 576), (2304, 96)]
    frame = np.arange(H * W, dtype=np.float32).reshape(H, W)
    packed = pack_frame(frame, (1,)).ravel()
    # Packet 1 lost: packets 0, 2, 3, 4 in order at the start, the last 576 pixels no-data.
    np.testing.assert_array_equal(packed[:576], np.arange(576))
    np.testing.assert_array_equal(packed[576:1824], np.arange(1152, 2400))
    assert (packed[1824:] == DROPPED_VALUE_C).all()
    # Losing the last full packet still moves the short one: the tail is not where the loss was.
    packed3 = pack_frame(frame, (3,)).ravel()
    np.testing.assert_array_equal(packed3[1728:1824], np.arange(2304, 2400))
    with pytest.raises(ValueError, match="outside"):
        pack_frame(frame, (5,))


def test_packet_1_lost_and_packed_is_restored_exactly():
    rng = np.random.default_rng(0)
    reference, clean = _room(rng), _room(rng)
    packed = pack_frame(clean, (1,))
    valid = packed > -100
    rep = repair_dropped_packets(packed, valid, reference)
    assert rep.moved and rep.missing_packets == (1,)
    lost = _lost_mask((1,))
    np.testing.assert_array_equal(rep.valid, ~lost)
    np.testing.assert_array_equal(rep.frame_c[~lost], clean[~lost])  # the arrived pixels back in place
    assert np.isnan(rep.frame_c[lost]).all()
    # In the reader: realigned, then the lost packet filled from the nearest valid frame
    # (frames 0 and 2 are both one away: the earlier wins).
    after = _room(rng)
    fixed, stats = repair_frames(np.stack([reference, packed, after]))
    assert stats.realigned_frames == 1 and stats.realigned_frame_indices == [1]
    assert stats.repaired_frames == 1 and stats.invalid_pixels == PACKET_PX
    np.testing.assert_array_equal(fixed[1][~lost], clean[~lost])
    np.testing.assert_array_equal(fixed[1][lost], reference[lost])
    np.testing.assert_array_equal(fixed[[0, 2]], np.stack([reference, after]))
    # Without realignment only the tail is filled and most of the frame stays ten rows off.
    unaligned, stats_off = repair_frames(np.stack([reference, packed, after]), realign=False)
    assert stats_off.realigned_frames == 0
    assert np.abs(unaligned[1] - clean).mean() > 4 * np.abs(fixed[1] - clean).mean()


def test_a_reference_with_nan_pixels_still_works():
    rng = np.random.default_rng(8)
    reference, clean = _room(rng), _room(rng)
    reference[30:34, 10:20] = np.nan  # e.g. the detector's reference where it had no data
    rep = repair_dropped_packets(pack_frame(clean, (2,)), pack_frame(clean, (2,)) > -100, reference)
    assert rep.moved and rep.missing_packets == (2,)


@pytest.mark.parametrize(
    "lost", [c for k in range(1, 5) for c in itertools.combinations(range(4), k)], ids=str
)
def test_every_choice_of_lost_packets_is_found(lost):
    rng = np.random.default_rng(len(lost) * 10 + lost[0])
    reference, clean = _room(rng), _room(rng)
    rep = repair_dropped_packets(pack_frame(clean, lost), pack_frame(clean, lost) > -100, reference)
    assert rep.moved and rep.missing_packets == lost
    keep = ~_lost_mask(lost)
    np.testing.assert_array_equal(rep.valid, keep)
    np.testing.assert_array_equal(rep.frame_c[keep], clean[keep])


@pytest.mark.parametrize("content", ["room", "flat noise"])
@pytest.mark.parametrize("k", [1, 2, 4])
def test_tail_lost_with_data_in_place_is_unchanged(content, k):
    """What DATA_FORMAT.md describes (and older pipelines write) stays as it is."""
    rng = np.random.default_rng(k)
    make = _room if content == "room" else (lambda r: (18.0 + r.normal(0, 0.2, (H, W))).astype(np.float32))
    frames = np.stack([make(rng) for _ in range(5)])
    frames[2].reshape(-1)[-PACKET_PX * k :] = DROPPED_VALUE_C
    rep = repair_dropped_packets(frames[2], frames[2] > -100, frames[1])
    assert not rep.moved and rep.missing_packets == ()
    np.testing.assert_array_equal(rep.valid, frames[2] > -100)
    fixed, stats = repair_frames(frames)
    assert stats.realigned_frames == 0 and stats.repaired_frames == 1
    n_ok = H * W - PACKET_PX * k
    np.testing.assert_array_equal(fixed[2].reshape(-1)[:n_ok], frames[2].reshape(-1)[:n_ok])
    np.testing.assert_array_equal(fixed[2].reshape(-1)[n_ok:], frames[1].reshape(-1)[n_ok:])


def test_a_person_only_in_the_reference_does_not_move_data():
    """A few pixels that changed a lot (someone left) must not outvote the rest of the frame."""
    rng = np.random.default_rng(5)
    frames = (18.0 + rng.normal(0, 0.2, (4, H, W))).astype(np.float32)
    frames[1, 3:9, 3:9] += 7.0  # in the reference (frame 1), not in frame 2
    frames[2].reshape(-1)[-PACKET_PX:] = DROPPED_VALUE_C
    fixed, stats = repair_frames(frames)
    assert stats.realigned_frames == 0
    np.testing.assert_array_equal(fixed[2].reshape(-1)[:-PACKET_PX], frames[2].reshape(-1)[:-PACKET_PX])


def test_a_frame_without_drops_is_untouched():
    rng = np.random.default_rng(3)
    reference, frame = _room(rng), _room(rng)
    rep = repair_dropped_packets(frame, np.ones((H, W), bool), reference)
    assert not rep.moved and rep.missing_packets == () and rep.valid.all()
    np.testing.assert_array_equal(rep.frame_c, frame)
    frames = np.stack([reference, frame])
    fixed, stats = repair_frames(frames)
    np.testing.assert_array_equal(fixed, frames)
    assert stats.realigned_frames == 0 and stats.repaired_frames == 0
    # No-data that is not a tail of whole packets (a NaN, a partial packet) is not moved either.
    odd = frame.copy()
    odd.reshape(-1)[-100:] = DROPPED_VALUE_C
    assert not repair_dropped_packets(odd, odd > -100, reference).moved
    assert not repair_dropped_packets(pack_frame(frame, (0,)), pack_frame(frame, (0,)) > -100, None).moved


@pytest.mark.parametrize("shape, packet_px", [((4, 6), 6), ((4, 5), 6)])
def test_other_frame_sizes_and_packet_sizes(shape, packet_px):
    """All packets full (24 = 4 x 6) or a short last one (20 = 3 x 6 + 2)."""
    h, w = shape
    ramp = np.arange(h * w, dtype=np.float32).reshape(h, w)
    packed = pack_frame(ramp, (1,), packet_px=packet_px)
    rep = repair_dropped_packets(packed, packed > -100, ramp + 0.01, packet_px=packet_px, min_z=1.0)
    assert rep.moved and rep.missing_packets == (1,)
    keep = np.ones(h * w, bool)
    keep[packet_px : 2 * packet_px] = False
    np.testing.assert_array_equal(rep.frame_c.ravel()[keep], ramp.ravel()[keep])


def test_nearest_complete_frame():
    got = nearest_complete_frames(np.array([False, True, False, False, True, False]))
    np.testing.assert_array_equal(got, [1, 1, 1, 4, 4, 4])
    np.testing.assert_array_equal(nearest_complete_frames(np.array([True, False, True])), [0, 0, 2])  # tie: earlier
    np.testing.assert_array_equal(nearest_complete_frames(np.zeros(3, bool)), [-1, -1, -1])


def test_no_complete_frame_leaves_packets_and_warns(caplog):
    rng = np.random.default_rng(4)
    frames = np.stack([pack_frame(_room(rng), (0,)) for _ in range(3)])
    x, valid = frames.copy(), frames > -100
    out = realign_packed_frames(x, valid)
    assert out.moved == [] and out.no_reference == [0, 1, 2]
    with caplog.at_level(logging.WARNING, logger="thermal_action.data.hdf5"):
        fixed, stats = repair_frames(frames, path="nothing_complete.h5")
    assert stats.realigned_frames == 0 and "nothing_complete.h5: 3 frames lost whole packets" in caplog.text
    assert np.isfinite(fixed).all() and fixed.min() > 0  # still filled (from the other frames)


def test_kelvin_recording_with_packed_packets(tmp_path, fmt):
    rng = np.random.default_rng(6)
    celsius = np.stack([_room(rng) for _ in range(4)])
    kelvin = celsius + np.float32(273.15)
    kelvin[2] = pack_frame(kelvin[2], (0, 2), fill=0.0)  # 0 K where no data arrived
    rec = read_recording(fmt.write_recording(tmp_path / "K.h5", kelvin))
    assert rec.repair.converted_from_kelvin and rec.repair.realigned_frame_indices == [2]
    keep = ~_lost_mask((0, 2))
    np.testing.assert_allclose(rec.frames[2][keep], celsius[2][keep], atol=1e-3)


def test_synthetic_file_with_packed_drops_is_repaired_to_within_noise(tmp_path, caplog):
    cfg = SynthConfig(num_recordings=1, val_recordings=0, frames_per_recording=160, seed=1)
    assert cfg.pack_dropped_packets  # the default: synthetic data exercises the repair
    sim = simulate_recording(cfg, 0)
    assert len(sim.dropped_frames) >= 5
    assert any(lost[0] < 3 for lost in sim.lost_packets)  # not only the tail: data really moved
    path = tmp_path / f"{sim.sensor_id}.h5"
    write_h5(path, sim.sensor_id, sim.mac_address, sim.frames, sim.timestamps, 0)
    with caplog.at_level(logging.DEBUG, logger="thermal_action.data.hdf5"):
        rec = read_recording(path)
    assert f"repaired {len(sim.dropped_frames)} of" in caplog.text
    assert f"({rec.repair.realigned_frames} realigned packed packets" in caplog.text
    assert rec.repair.repaired_frame_indices == sim.dropped_frames.tolist()
    assert rec.repair.realigned_frames >= 0.9 * len(sim.dropped_frames)
    truth = sim.dropped_clean_frames  # (D, H, W) the frames before the loss
    got = rec.frames[sim.dropped_frames]
    unaligned = read_recording(path, realign=False).frames[sim.dropped_frames]
    for j, (t, lost) in enumerate(zip(sim.dropped_frames.tolist(), sim.lost_packets)):
        keep = ~_lost_mask(lost)
        if t in rec.repair.realigned_frame_indices:
            np.testing.assert_array_equal(got[j][keep], truth[j][keep])  # received pixels exactly back
        # Lost pixels come from a neighbouring frame: off by the sensor noise (~0.3 °C), no more.
        assert np.abs(got[j] - truth[j]).mean() < 0.4, t
    assert np.abs(got - truth).mean() < 0.25
    assert np.abs(unaligned - truth).mean() > 2 * np.abs(got - truth).mean()
    # Frames without drops are read exactly as simulated.
    fine = np.setdiff1d(np.arange(len(sim.frames)), sim.dropped_frames)
    np.testing.assert_array_equal(rec.frames[fine], sim.frames[fine])


def test_real_sample_frames_fit_their_neighbours_after_realignment(shared_sample):
    """Frames 60 (packets 0 and 1 lost) and 430 (packet 0 lost) of the real recording."""
    path = shared_sample / "frames" / "SL14_R1.h5"
    rec = read_recording(path)
    before = read_recording(path, realign=False)
    assert rec.repair.repaired_frames == 39 and rec.repair.realigned_frames == 39

    def diffs(frames: np.ndarray, t: int) -> list[float]:
        return [float(np.abs(frames[t] - frames[s]).mean()) for s in (t - 1, t + 1)]

    for t in (60, 430):
        assert max(diffs(rec.frames, t)) < 0.5, (t, diffs(rec.frames, t))
        assert max(diffs(before.frames, t)) > 1.0, (t, diffs(before.frames, t))  # frame 431 is scrambled too
    with h5py.File(path, "r") as f:
        raw = f["frames"][()]
    # Frames 59 and 429 are complete: the references the reader uses.
    assert repair_dropped_packets(raw[60], raw[60] > -100, raw[59]).missing_packets == (0, 1)
    assert repair_dropped_packets(raw[430], raw[430] > -100, raw[429]).missing_packets == (0,)
