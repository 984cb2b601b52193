"""Reading ``frames/<sensor_id>.h5`` recordings, with dropped-packet repair.

A recording is read whole and the file is closed at once: no HDF5 handle outlives
:func:`read_recording`, so a dataset holding recordings (or only their paths) is safe
to fork into DataLoader workers. A 500-frame file is ~5 MB decoded and ~16 ms to read,
so the dataset caches decoded recordings per process (see ``benchmarks/bench_data.py``).

Repair, done once here and before any normalisation:

- Temperatures in Kelvin (:func:`~thermal_action.structures.looks_like_kelvin`) are converted
  to °C.
- Frames with dropped packets: the receiver packs the packets that arrived at the start
  of the frame and leaves -273.2 °C in the tail, so everything after a lost packet sits
  576*k pixels (~10 rows) too early. Such frames are realigned first: every choice of
  lost packets is tried against the nearest complete frame and the received pixels go
  where they fit best (:func:`~thermal_action.data.packets.realign_packed_frames`); the
  lost packets are then invalid pixels like any other. In the real sample 39 of 498
  frames have drops and all 39 are realigned: the 64-frame window of a keyframe held 4.7
  scrambled frames on average (1-9). A repaired frame now differs from its neighbours by
  0.18-0.41 °C mean absolute difference (complete frames: 0.28-0.46 °C); with only its
  tail filled it differed by up to 1.86 °C (median 0.97). Frames with no clear best
  placement (a flat scene) are left as written.
- Invalid pixels -- dropped packets (-273.2 °C, 0 K), NaN, inf, or anything outside the
  physically possible ``valid_range`` -- take the value of the same pixel in the nearest
  frame (in index) where that pixel is valid; ties go to the earlier frame.
- A pixel that is invalid in every frame of the recording (a dead pixel) takes the median
  of its frame's valid pixels.
- A recording with no valid temperature at all cannot be repaired: :class:`DatasetError`.
- Integer ``frames`` are converted to float32 (logged as a warning and recorded in
  :attr:`RepairStats.converted_from_dtype`); the realignment is only applied to 40x60
  frames, the size whose packet layout it knows.

Every repair is counted in :class:`RepairStats` and logged (per file at debug level; the
callers that read many files sum them up in one line).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from thermal_action.errors import DatasetError, RecordingNotFoundError
from thermal_action.data.packets import realign_packed_frames
from thermal_action.structures import (
    DEFAULT_VALID_RANGE,
    FRAME_HEIGHT,
    FRAME_WIDTH,
    KELVIN_OFFSET,
    looks_like_kelvin,
)

logger = logging.getLogger(__name__)

#: °C; a recording whose temperatures all lie within this span is a dead or stuck sensor (the
#: sensor's own noise alone spreads a live one over more than a degree).
DEAD_SENSOR_SPAN_C = 0.05

#: Frames searched on each side of a repaired frame before the whole-recording fallback.
_LOCAL_SEARCH = 4


@dataclass
class RepairStats:
    """What :func:`repair_frames` changed in one recording.

    Attributes:
        invalid_pixels: pixels replaced (dropped packets, NaN/inf, out of range).
        nonfinite_pixels: of those, NaN or infinite ones.
        repaired_frames: frames with at least one replaced pixel.
        repaired_frame_indices: their indices, ascending.
        realigned_frames: of those, frames whose received packets were moved back in place
            (the receiver had packed them at the frame start).
        realigned_frame_indices: their indices, ascending.
        dead_pixels: pixel positions invalid in every frame (filled from their frame's median).
        converted_from_kelvin: whether the recording was in Kelvin and converted to °C.
        converted_from_dtype: the integer dtype ``frames`` had on disk (converted to
            float32 and logged), None for float frames.
    """

    invalid_pixels: int = 0
    nonfinite_pixels: int = 0
    repaired_frames: int = 0
    repaired_frame_indices: list[int] = field(default_factory=list)
    realigned_frames: int = 0
    realigned_frame_indices: list[int] = field(default_factory=list)
    dead_pixels: int = 0
    converted_from_kelvin: bool = False
    converted_from_dtype: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "invalid_pixels": self.invalid_pixels,
            "nonfinite_pixels": self.nonfinite_pixels,
            "repaired_frames": self.repaired_frames,
            "realigned_frames": self.realigned_frames,
            "dead_pixels": self.dead_pixels,
            "converted_from_kelvin": self.converted_from_kelvin,
            "converted_from_dtype": self.converted_from_dtype,
        }


@dataclass
class Recording:
    """One sensor recording, repaired and in °C.

    Attributes:
        path: the HDF5 file.
        sensor_id: from the file attribute ``sensor_id`` (the file stem when absent).
        frames: ``(N, H, W)`` float32 temperatures in °C, every pixel valid.
        timestamps: ``(N,)`` int64 capture times, ms since epoch.
        frame_seqs: ``(N,)`` int64 sequence numbers (the timestamps when absent).
        attrs: the file attributes as plain Python values.
        repair: what was repaired.
        non_increasing_timestamps: steps where ``timestamps`` does not strictly increase.
    """

    path: Path
    sensor_id: str
    frames: np.ndarray
    timestamps: np.ndarray
    frame_seqs: np.ndarray
    attrs: dict[str, Any]
    repair: RepairStats
    non_increasing_timestamps: int = 0

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def height(self) -> int:
        return int(self.frames.shape[1])

    @property
    def width(self) -> int:
        return int(self.frames.shape[2])

    def dead_sensor(self) -> str | None:
        """Why this recording looks like a dead or stuck sensor (every temperature within
        :data:`DEAD_SENSOR_SPAN_C` of one value: nobody can be seen in it), or None."""
        lo, hi = float(self.frames.min()), float(self.frames.max())
        if hi - lo >= DEAD_SENSOR_SPAN_C:
            return None
        what = f"{lo:.1f} °C" if hi == lo else f"within {lo:.2f}-{hi:.2f} °C"
        return f"every frame is {what} (all {self.num_frames}): a dead or stuck sensor, nobody can be seen in it"


def _plain(value: Any) -> Any:
    """HDF5 attribute -> plain JSON-able Python value."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def _open(path: Path):
    import h5py

    if not path.is_file():
        raise DatasetError(path, "recording file not found")
    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise DatasetError(path, f"not a readable HDF5 file ({e})") from e


def read_timestamps(path: str | Path) -> np.ndarray:
    """Reads only the ``timestamps`` dataset (cheap; for checking annotations).

    Raises:
        DatasetError: the file is missing, unreadable or has no ``timestamps``.
    """
    path = Path(path)
    with _open(path) as f:
        if "timestamps" not in f:
            raise DatasetError(path, "no 'timestamps' dataset", record="timestamps")
        try:
            return np.asarray(f["timestamps"][()], dtype=np.int64).reshape(-1)
        except (OSError, ValueError, TypeError) as e:
            raise DatasetError(path, f"cannot read 'timestamps' ({e})", record="timestamps") from e


def repair_frames(
    frames: np.ndarray,
    valid_range: tuple[float, float] = DEFAULT_VALID_RANGE,
    path: str | Path = "<frames>",
    realign: bool = True,
) -> tuple[np.ndarray, RepairStats]:
    """Converts Kelvin to °C, realigns packed packets and replaces invalid pixels.

    See the module docstring.

    Args:
        frames: ``(N, H, W)`` raw temperatures (°C or K).
        valid_range: ``(low, high)`` °C; values outside are invalid.
        path: named in errors and log lines.
        realign: put packets that the receiver packed at the frame start back in
            place before filling (``False`` only fills the invalid tail, for comparison).

    Returns:
        ``(frames, stats)``: ``(N, H, W)`` float32 °C with every pixel valid, and what
        changed. The input array is not modified.

    Raises:
        DatasetError: no valid temperature in the whole recording.
    """
    x = np.array(frames, dtype=np.float32, copy=True)  # (N, H, W)
    stats = RepairStats()
    n = x.shape[0]
    # Median, not mean: up to 13% of the pixels may be 0 K / -273.2 °C sentinels. A strided
    # subsample (~20k values) decides as well as all 1.2M and costs ~50x less.
    flat = x.reshape(-1)
    sub = flat[:: max(1, flat.size // 20000)]
    if looks_like_kelvin(sub):
        x -= KELVIN_OFFSET
        stats.converted_from_kelvin = True
    low, high = valid_range
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(x) & (x >= low) & (x <= high)  # (N, H, W)
    n_invalid = int(valid.size - np.count_nonzero(valid))
    if n_invalid == 0:
        return x, stats
    if not valid.any():
        raise DatasetError(path, "no valid temperature in any frame: the recording cannot be repaired",
                           record="frames")
    stats.invalid_pixels = n_invalid
    stats.nonfinite_pixels = int(np.count_nonzero(~np.isfinite(x)))
    bad_frames = np.flatnonzero(~valid.reshape(n, -1).all(axis=1))
    stats.repaired_frames = int(bad_frames.size)
    stats.repaired_frame_indices = bad_frames.tolist()
    if realign:
        # Before the fill: a realigned frame's received pixels become valid sources for
        # its neighbours, and only its truly lost packets are filled.
        realigned = realign_packed_frames(x, valid)
        stats.realigned_frame_indices = realigned.moved
        stats.realigned_frames = len(realigned.moved)
        if realigned.no_reference:
            logger.warning("%s: %d frames lost whole packets but no frame is complete to realign them against; "
                           "their received packets stay where they are", path, len(realigned.no_reference))
    dead = ~valid.any(axis=0)  # (H, W) never valid: no frame to copy from

    # Dropped packets are isolated frames, so searching a few frames out usually suffices;
    # only the search order matters for the result: distance 1 before 2, earlier before later.
    unfilled = []
    for t in bad_frames:
        need = ~valid[t] & ~dead  # (H, W)
        for d in range(1, _LOCAL_SEARCH + 1):
            for src in (t - d, t + d):
                if 0 <= src < n:
                    take = need & valid[src]
                    x[t][take] = x[src][take]
                    need &= ~take
            if not need.any():
                break
        if need.any():
            unfilled.append((t, need))
    if unfilled:
        # Rare long runs of invalid pixels: index of the previous / next valid frame per pixel.
        tt = np.arange(n, dtype=np.int64)[:, None, None]
        prev_idx = np.maximum.accumulate(np.where(valid, tt, -1), axis=0)  # (N, H, W)
        next_idx = np.minimum.accumulate(np.where(valid, tt, n)[::-1], axis=0)[::-1]  # (N, H, W)
        for t, need in unfilled:
            p, q = prev_idx[t], next_idx[t]
            use_prev = (p >= 0) & ((q >= n) | ((t - p) <= (q - t)))
            src = np.where(use_prev, p, q)
            yi, xi = np.nonzero(need)
            x[t, yi, xi] = x[src[yi, xi], yi, xi]

    if dead.any():
        stats.dead_pixels = int(dead.sum())
        live = ~dead
        for i in range(n):
            x[i][dead] = np.median(x[i][live])
    return x, stats


def find_recordings(paths: Iterable[str | Path]) -> list[Path]:
    """``.h5`` files as given, folders replaced by their ``*.h5`` files (sorted): the
    recordings ``predict``, ``pretrain`` and ``replay`` are pointed at.

    Raises:
        RecordingNotFoundError: a path that does not exist, a folder without ``.h5`` files,
            or no path at all.
    """
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(p.glob("*.h5"))
            if not found:
                raise RecordingNotFoundError(p, "no .h5 recordings in this folder")
            out += found
        elif p.is_file():
            out.append(p)
        else:
            raise RecordingNotFoundError(p, "recording file not found")
    if not out:
        raise RecordingNotFoundError("(none)", "no .h5 recordings given")
    return out


def read_raw(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, dict[str, Any]]:
    """A recording's datasets exactly as stored, checked but not repaired or converted: what
    :func:`read_recording` repairs, and what ``thermal-action replay`` sends as a live sensor.

    Returns:
        ``(frames, timestamps, frame_seqs, attrs)``: frames ``(N, H, W)`` in the stored dtype,
        timestamps ``(N,)`` int64 ms, ``frame_seqs`` (None when absent), file attributes.

    Raises:
        DatasetError: the file is missing or unreadable, lacks ``frames`` or ``timestamps``,
            has frames that are not numeric ``(N, H, W)`` or timestamps of another length or
            not integers.
    """
    path = Path(path)
    with _open(path) as f:
        if "frames" not in f:
            raise DatasetError(path, f"no 'frames' dataset (found: {sorted(f.keys())})", record="frames")
        if "timestamps" not in f:
            raise DatasetError(path, "no 'timestamps' dataset", record="timestamps")
        try:
            raw = f["frames"][()]
            timestamps = np.asarray(f["timestamps"][()]).reshape(-1)
            seqs = np.asarray(f["frame_seqs"][()]).reshape(-1) if "frame_seqs" in f else None
        except (OSError, ValueError, TypeError) as e:
            raise DatasetError(path, f"cannot read datasets ({e})") from e
        attrs = {k: _plain(v) for k, v in f.attrs.items()}
    if raw.ndim != 3 or raw.shape[0] == 0:
        raise DatasetError(path, f"'frames' must be (N, H, W) with N > 0, got shape {raw.shape}", record="frames")
    if not np.issubdtype(raw.dtype, np.number):
        raise DatasetError(path, f"'frames' must be numeric, got {raw.dtype}", record="frames")
    n = raw.shape[0]
    if timestamps.shape[0] != n:
        raise DatasetError(path, f"{timestamps.shape[0]} timestamps for {n} frames", record="timestamps")
    if not np.issubdtype(timestamps.dtype, np.integer):
        raise DatasetError(path, f"'timestamps' must be integers (ms), got {timestamps.dtype}", record="timestamps")
    return raw, timestamps.astype(np.int64), seqs, attrs


def read_recording(
    path: str | Path,
    valid_range: tuple[float, float] = DEFAULT_VALID_RANGE,
    realign: bool = True,
) -> Recording:
    """Reads a whole ``frames/<sensor_id>.h5`` file, repairs it and closes it.

    Args:
        path: the HDF5 file (format in ``docs/data-format.md``).
        valid_range: ``(low, high)`` °C; temperatures outside are repaired.
        realign: put packed packets back in place (see :func:`repair_frames`).

    Returns:
        The :class:`Recording`, frames ``(N, H, W)`` float32 °C.

    Raises:
        DatasetError: the file is missing or unreadable, lacks ``frames`` or
            ``timestamps``, has frames that are not ``(N, H, W)``, timestamps of another
            length, or cannot be repaired.
    """
    path = Path(path)
    raw, timestamps, seqs, attrs = read_raw(path)
    n = raw.shape[0]
    if seqs is None or seqs.shape[0] != n:
        seqs = timestamps.copy()
    h, w = raw.shape[1:]
    if realign and (h, w) != (FRAME_HEIGHT, FRAME_WIDTH):
        # The packet layout (576-pixel packets of a 2400-pixel frame) is the 40x60 sensor's:
        # for another size a 0 K tail says nothing about where the received pixels belong.
        realign = False
        logger.info("%s: %dx%d frames, not the 40x60 sensor's: dropped packets are filled, not realigned", path, h, w)
    frames, stats = repair_frames(raw, valid_range=valid_range, path=path, realign=realign)
    if np.issubdtype(raw.dtype, np.integer):
        # Converted, not refused: the values are read as °C (or K) like float ones, and the
        # same integers stored as float give the very same frames. Said once per file, since
        # whole degrees lose the 0.1-1 °C detail a person 5-8 °C above the background shows.
        stats.converted_from_dtype = str(raw.dtype)
        logger.warning("%s: 'frames' are %s, not float32: converted to float32 and read as whole degrees; the "
                       "format stores float32 °C, and a quantised recording can score differently", path, raw.dtype)
    non_increasing = int(np.count_nonzero(np.diff(timestamps) <= 0))
    sensor_id = str(attrs.get("sensor_id") or path.stem)
    if stats.converted_from_kelvin:
        logger.info("%s: temperatures are in Kelvin; converted to °C", path)
    if stats.invalid_pixels:
        # One line per file: how many frames had their received packets moved back in place
        # (packed-drop realignment), and how many pixels were filled. Debug: a dataset load
        # reads dozens of files and says it once (training.datamodule.log_repairs).
        logger.debug(
            "%s: repaired %d of %d frames (%d realigned packed packets; %d invalid pixels, %d NaN/inf, "
            "filled from the nearest valid frame%s)",
            path, stats.repaired_frames, n, stats.realigned_frames, stats.invalid_pixels, stats.nonfinite_pixels,
            f"; {stats.dead_pixels} pixels invalid in every frame filled with the frame median"
            if stats.dead_pixels else "",
        )
    if non_increasing:
        logger.warning("%s: timestamps do not strictly increase at %d steps", path, non_increasing)
    return Recording(
        path=path,
        sensor_id=sensor_id,
        frames=frames,
        timestamps=timestamps,
        frame_seqs=np.asarray(seqs, dtype=np.int64),
        attrs=attrs,
        repair=stats,
        non_increasing_timestamps=non_increasing,
    )


class RecordingCache:
    """Per-process store of decoded recordings, keyed by path.

    Holds arrays only, never an open file, so it may be copied into forked DataLoader
    workers (each worker then fills its own copy lazily; call :meth:`get` for every path
    in the parent first to share one copy copy-on-write).

    Args:
        enabled: keep recordings after reading; when ``False`` every :meth:`get` reads
            the file again (slow, bounded memory).
        valid_range: passed to :func:`read_recording`.
    """

    def __init__(self, enabled: bool = True, valid_range: tuple[float, float] = DEFAULT_VALID_RANGE):
        self.enabled = enabled
        self.valid_range = tuple(valid_range)
        self._store: dict[str, Recording] = {}
        self.reads = 0  # files read from disk (cold loads), for benchmarks and tests

    def get(self, path: str | Path) -> Recording:
        """The recording at ``path``, read (and kept, when enabled) on first use."""
        key = str(path)
        rec = self._store.get(key)
        if rec is None:
            rec = read_recording(path, valid_range=self.valid_range)
            self.reads += 1
            if self.enabled:
                self._store[key] = rec
        return rec

    def clear(self) -> None:
        self._store.clear()

    def __len__(self) -> int:
        return len(self._store)
