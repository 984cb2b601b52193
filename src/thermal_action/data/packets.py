"""The sensor's packet layout, and putting the packets of a frame with drops back in place.

The sensor sends a frame as packets of :data:`PACKET_PX` pixels in raster order; a
40 x 60 frame (2400 pixels) is four packets of 576 and a last one of 96::

    slot      0            1            2            3          4
    pixels    [0, 576)     [576, 1152)  [1152, 1728) [1728, 2304) [2304, 2400)

When packets are lost, the receiver packs the packets that DID arrive at the start of
the frame and writes -273.2 °C (0 K) into the tail::

    packet 1 lost:   0 | 2 | 3 | 4 | -273.2 x 576
                         ^ everything after the lost packet sits 576 pixels (~10 rows)
                           too early, shifted sideways by 36 columns

So the tail of whole packets at -273.2 °C says how many packets were lost, not which.
In the real sample (SL14_R1, 39 of 498 frames with drops; 31 lost one packet, 3 two,
2 three, 3 four) the lost packet of a one-packet drop was packet 0 in 15 frames, 1 in 4,
2 in 4 and the last full one (3) in only 8; the short packet 4 always arrived.
:func:`repair_dropped_packets` tries every choice of lost packets and keeps the
placement closest to a reference frame (the nearest complete frame) when a sign test
says it is clearly better than the frame as written: there the right
placement differs from it by 0.28-0.52 °C mean absolute difference, every other choice
of lost packets by 0.71 °C or more, and the frame as written by 0.38 °C or more (as
written and right differ only in the last 96 pixels when packet 3 was lost).
:func:`pack_frame` is the receiver's side, for the synthetic generator and tests.

numpy only: both the dataset reader and the person detector use this.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass

import numpy as np

#: Pixels per sensor packet; a lost packet costs this many pixels.
PACKET_PX = 576
#: °C the receiver writes where no data arrived (0 K).
DROPPED_VALUE_C = np.float32(-273.2)
#: How sure (a sign test's z-score, see :func:`repair_dropped_packets`) the evidence must
#: be before received data is moved; below, the frame is left as written.
DEFAULT_MIN_Z = 3.0


def packet_slots(num_pixels: int, packet_px: int = PACKET_PX) -> list[tuple[int, int]]:
    """``(start, length)`` of every packet of a frame of ``num_pixels`` pixels, in raster order."""
    return [(s, min(packet_px, num_pixels - s)) for s in range(0, num_pixels, packet_px)]


def pack_frame(
    frame: np.ndarray,
    lost_packets: tuple[int, ...] | list[int],
    packet_px: int = PACKET_PX,
    fill: float = DROPPED_VALUE_C,
) -> np.ndarray:
    """What the receiver writes when ``lost_packets`` of ``frame`` do not arrive.

    The packets that arrived are packed at the start of the frame, in order; the tail
    (as many pixels as were lost) holds ``fill``.

    Args:
        frame: ``(H, W)`` the complete frame.
        lost_packets: indices of the lost packets (raster order).
        packet_px: pixels per packet.
        fill: the no-data value of the tail.

    Returns:
        ``(H, W)`` the frame as received, same dtype as ``frame``.
    """
    flat = np.asarray(frame).ravel()
    slots = packet_slots(flat.size, packet_px)
    lost = set(int(i) for i in lost_packets)
    if not lost <= set(range(len(slots))):
        raise ValueError(f"lost packets {sorted(lost)} outside 0..{len(slots) - 1}")
    arrived = [flat[s : s + n] for i, (s, n) in enumerate(slots) if i not in lost]
    received = np.concatenate(arrived) if arrived else flat[:0]
    out = np.full(flat.size, fill, dtype=flat.dtype)
    out[: received.size] = received
    return out.reshape(np.shape(frame))


@dataclass
class PacketRepair:
    """A frame with dropped packets, its received packets put back in place.

    Attributes:
        frame_c: ``(H, W)`` float32 °C, NaN where a packet is missing.
        valid: ``(H, W)`` bool, pixels that hold data.
        missing_packets: indices of the missing packets (raster order), empty when the
            frame was complete or left as it was.
        moved: whether received data was moved (it was packed at the frame start).
    """

    frame_c: np.ndarray
    valid: np.ndarray
    missing_packets: tuple[int, ...]
    moved: bool


@functools.lru_cache(maxsize=64)
def _placements(num_full: int, k: int, num_received: int) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """Every choice of ``k`` lost packets among the ``num_full`` full ones (a short last
    packet always arrives: only whole packets are lost), with the shift ``d`` (packets lost
    before it) of each of the ``num_received`` received packets, in arrival order."""
    out = []
    for missing in itertools.combinations(range(num_full), k):
        arrived = [a for a in range(num_full + 1) if a not in missing][:num_received]
        out.append((missing, tuple(sum(i < a for i in missing) for a in arrived)))
    return out


def _lost_tail_px(flat_valid: np.ndarray, packet_px: int) -> int:
    """Pixels lost when the no-data is exactly a tail of whole packets (not all of them), else 0."""
    n = flat_valid.size
    n_bad = int(n - np.count_nonzero(flat_valid))
    if n_bad in (0, n) or n_bad % packet_px or flat_valid[n - n_bad :].any() or not flat_valid[: n - n_bad].all():
        return 0
    return n_bad


def repair_dropped_packets(
    frame_c: np.ndarray,
    valid: np.ndarray,
    reference_c: np.ndarray | None,
    packet_px: int = PACKET_PX,
    min_z: float = DEFAULT_MIN_Z,
) -> PacketRepair:
    """Puts the received packets of a frame with dropped packets back where they belong.

    See the module docstring for the packing. Every way of choosing the lost packets
    (as many whole packets as the no-data tail holds) is a candidate placement of the
    received pixels; the one closest to ``reference_c`` (mean absolute difference
    over the placed pixels) is kept when it beats the frame as written (data in place,
    tail lost: what ``docs/data-format.md`` describes and some pipelines write) clearly: of the
    received pixels that move, more must get closer to the reference than farther from
    it, by ``min_z`` standard deviations of a fair coin (a sign test: robust to a person
    who is in the reference but not in this frame). On the real sample the right
    placement wins by 7.1 standard deviations or more (median 28). On content with
    nothing to align (a flat room, noise only) no placement wins and nothing moves; in
    smooth synthetic rooms a frame where only the final 96 pixels move (packet 3 lost,
    or all four: the short packet 4 always moves) is sometimes too close to call and
    stays as written, which is then within noise of the truth (14 of 186 packed frames
    of the seed-2 synthetic dataset, 0.10 °C mean absolute error; all 253 of seed 0
    realigned exactly).

    Args:
        frame_c: ``(H, W)`` °C (no-data may hold anything).
        valid: ``(H, W)`` bool, pixels that hold data.
        reference_c: ``(H, W)`` °C, a complete frame close in time (non-finite pixels
            count as its median); ``None`` leaves the data where it is (only the tail
            is masked).
        packet_px: pixels per packet.
        min_z: evidence needed to move data (z-score of the sign test).

    Returns:
        A :class:`PacketRepair`. The frame as it is (masked) is kept when no placement
        is clearly closer to the reference, or when its no-data is not a tail of whole
        packets.
    """
    h, w = frame_c.shape
    n = h * w
    flat_valid = np.asarray(valid, dtype=bool).ravel()
    n_bad = _lost_tail_px(flat_valid, packet_px)
    if reference_c is None or n_bad == 0:
        return _as_written(frame_c, flat_valid)
    k, m = n_bad // packet_px, n - n_bad  # packets lost, pixels received
    received = np.asarray(frame_c, dtype=np.float32).ravel()[:m]
    ref = np.asarray(reference_c, dtype=np.float32).ravel()
    if not np.isfinite(ref).all():
        ref = np.where(np.isfinite(ref), ref, np.float32(np.nanmedian(ref)) if np.isfinite(ref).any() else 0.0)
    # Only the last packet can be short, so received packet j (pixels [j*P, (j+1)*P)) lands
    # in slot j + d, d = packets lost before it: err[d][q] = |received[q] - ref[q + d*P]|,
    # and a placement's error is a sum of per-packet sums of these k + 1 rows.
    err = np.stack([np.abs(received - ref[d * packet_px : d * packet_px + m]) for d in range(k + 1)])  # (k+1, m)
    chunks = [slice(j, min(j + packet_px, m)) for j in range(0, m, packet_px)]
    chunk_err = np.add.reduceat(err, np.arange(0, m, packet_px), axis=1).tolist()  # (k+1, J)
    best: tuple[float, tuple[int, ...], tuple[int, ...]] | None = None
    for missing, shifts in _placements(n // packet_px, k, len(chunks)):
        cost = sum(chunk_err[d][j] for j, d in enumerate(shifts))
        if best is None or cost < best[0]:
            best = (cost, missing, shifts)
    if best is None:
        return _as_written(frame_c, flat_valid)
    _, missing, shifts = best
    # A sign test over the received pixels that move: does each get closer to the reference?
    # Counting pixels, not summing gains, so that a person who is in the reference and not
    # in this frame (a few pixels with a large gain) cannot decide alone.
    closer = farther = 0
    for sl, d in zip(chunks, shifts):
        if d > 0:
            closer += int(np.count_nonzero(err[d, sl] < err[0, sl]))
            farther += int(np.count_nonzero(err[d, sl] > err[0, sl]))
    if closer - farther <= min_z * np.sqrt(max(closer + farther, 1)):
        return _as_written(frame_c, flat_valid)
    out = np.full(n, np.nan, np.float32)
    placed = np.zeros(n, bool)
    for sl, d in zip(chunks, shifts):
        to = slice(sl.start + d * packet_px, sl.stop + d * packet_px)
        out[to] = received[sl]
        placed[to] = True
    return PacketRepair(out.reshape(h, w), placed.reshape(h, w), tuple(int(i) for i in missing), True)


def _as_written(frame_c: np.ndarray, flat_valid: np.ndarray) -> PacketRepair:
    """The frame left as it is, no-data masked."""
    valid = flat_valid.reshape(frame_c.shape)
    return PacketRepair(np.where(valid, frame_c, np.float32(np.nan)).astype(np.float32), valid.copy(), (), False)


def nearest_complete_frames(complete: np.ndarray) -> np.ndarray:
    """For every frame, the index of the nearest complete frame (the earlier on a tie), -1 if none.

    Args:
        complete: ``(N,)`` bool, frames without any invalid pixel.

    Returns:
        ``(N,)`` int64 indices.
    """
    idx = np.flatnonzero(complete)
    n = complete.size
    if idx.size == 0:
        return np.full(n, -1, np.int64)
    t = np.arange(n)
    j = np.searchsorted(idx, t)  # first complete frame at or after t
    after = idx[np.minimum(j, idx.size - 1)]
    before = idx[np.maximum(j - 1, 0)]
    after = np.where(j < idx.size, after, before)
    before = np.where(j > 0, before, after)
    return np.where(t - before <= after - t, before, after).astype(np.int64)


@dataclass
class Realignment:
    """What :func:`realign_packed_frames` did to a recording.

    Attributes:
        moved: frames whose received data was moved back in place, ascending.
        no_reference: frames that lost whole packets but could not be checked: the
            recording has no complete frame to compare them with.
    """

    moved: list[int]
    no_reference: list[int]


def realign_packed_frames(
    frames_c: np.ndarray,
    valid: np.ndarray,
    packet_px: int = PACKET_PX,
    min_z: float = DEFAULT_MIN_Z,
) -> Realignment:
    """Puts packed packets back in place in every frame of a recording, in place.

    Each frame whose no-data is a tail of whole packets is realigned
    (:func:`repair_dropped_packets`) against the nearest complete frame; its
    ``frames_c`` pixels are moved (NaN where a packet was lost) and ``valid`` then marks
    the lost packets. Frames with other no-data (NaN, out-of-range pixels) are left as
    they are.

    Args:
        frames_c: ``(N, H, W)`` float32 °C, modified in place.
        valid: ``(N, H, W)`` bool valid pixels, modified in place.
        packet_px: pixels per packet.
        min_z: evidence needed to move data (see :func:`repair_dropped_packets`).

    Returns:
        The :class:`Realignment`.
    """
    n = frames_c.shape[0]
    flat_valid = valid.reshape(n, -1)
    n_bad = flat_valid.shape[1] - np.count_nonzero(flat_valid, axis=1)  # (N,)
    ref_idx = nearest_complete_frames(n_bad == 0)
    lost_packets = (n_bad > 0) & (n_bad % packet_px == 0)
    out = Realignment(moved=[], no_reference=np.flatnonzero(lost_packets & (ref_idx < 0)).tolist())
    for t in np.flatnonzero(lost_packets & (ref_idx >= 0)).tolist():
        rep = repair_dropped_packets(frames_c[t], valid[t], frames_c[ref_idx[t]], packet_px, min_z)
        if rep.moved:
            frames_c[t] = rep.frame_c
            valid[t] = rep.valid
            out.moved.append(t)
    return out
