"""Recordings as stored, and when each frame is sent: the replay's schedule and sensor ids."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from thermal_action.serve.protocol import check_sensor_id

_FALLBACK_STEP_MS = 1000.0 / 6.0  # one frame of a ~6 Hz sensor, for one-frame recordings


@dataclass
class RawRecording:
    """One recording as stored (no repair).

    Attributes:
        path: the HDF5 file.
        frames: ``(N, H, W)`` float32 temperatures as stored, dropped packets included.
        timestamps: ``(N,)`` int64 capture times, ms since epoch.
    """

    path: Path
    frames: np.ndarray
    timestamps: np.ndarray

    @property
    def name(self) -> str:
        """The file stem."""
        return self.path.stem


def read_raw_recording(path: str | Path) -> RawRecording:
    """Reads the ``frames`` and ``timestamps`` of a recording exactly as stored (``docs/data-format.md``).

    The reader's :func:`~thermal_action.data.hdf5.read_raw` (same checks as
    ``read_recording``), with nothing repaired: a replayed sensor sends what the real one
    sent (as float32, the wire format's type).

    Raises:
        DatasetError: as :func:`~thermal_action.data.hdf5.read_raw`.
    """
    from thermal_action.data.hdf5 import read_raw

    path = Path(path)
    frames, timestamps, _, _ = read_raw(path)
    return RawRecording(path, np.asarray(frames, dtype=np.float32), timestamps)


def frame_step_ms(timestamps: np.ndarray) -> float:
    """The recording's typical step: the median of its positive timestamp steps (ms)."""
    d = np.diff(np.asarray(timestamps, dtype=np.int64))
    d = d[d > 0]
    return float(np.median(d)) if d.size else _FALLBACK_STEP_MS


def schedule(timestamps: np.ndarray, speed: float = 1.0, loop: bool = False) -> Iterator[tuple[int, float]]:
    """When each frame of a recording is sent: ``(frame index, seconds after the sensor's start)``.

    Frame ``i`` of repetition ``r`` is due at ``(t_i - t_0 + r * cycle) / speed`` ms, where
    ``cycle`` is the recording's span plus one :func:`frame_step_ms`; times never go backwards
    (a recording whose timestamps do keeps the previous time).

    Args:
        timestamps: ``(N,)`` the recording's timestamps (ms).
        speed: playback speed (2: twice as fast).
        loop: repeat forever (the iterator never ends) instead of once.

    Yields:
        ``(i, seconds)`` in send order.
    """
    if speed <= 0:
        raise ValueError(f"speed must be > 0, got {speed}")
    t = np.asarray(timestamps, dtype=np.int64)
    rel = np.maximum.accumulate(t - t[0]).astype(np.float64)  # (N,) ms since the first frame
    cycle = float(rel[-1]) + frame_step_ms(t)
    r = 0
    while True:
        base = r * cycle
        for i, ms in enumerate(rel):
            yield i, (base + float(ms)) / speed / 1000.0
        if not loop:
            return
        r += 1


def sensor_ids(names: Sequence[str], sensors: int | None = None) -> list[tuple[str, int]]:
    """Assigns sensor ids to recordings: ``[(sensor_id, recording index), ...]``.

    Args:
        names: the recordings' names (file stems); characters a sensor id cannot hold become ``_``.
        sensors: how many sensors; None: one per recording. At most the recordings: the first
            ``sensors`` recordings under their names. More: the recordings cycled, ids
            ``<name>-<k>`` (``k``: the copy, from 0).

    Raises:
        ValueError: no recordings or ``sensors`` < 1.
    """
    if not names:
        raise ValueError("no recordings to replay")
    n = len(names) if sensors is None else int(sensors)
    if n < 1:
        raise ValueError(f"sensors must be >= 1, got {n}")
    clean = [re.sub(r"[^A-Za-z0-9._-]", "_", name)[:56] or "sensor" for name in names]
    copies = n > len(names)
    out: list[tuple[str, int]] = []
    used: set[str] = set()
    for j in range(n):
        rec = j % len(names)
        sid = f"{clean[rec]}-{j // len(names)}" if copies else clean[rec]
        base, k = sid, 1
        while sid in used:  # two files with one stem (from different directories)
            sid, k = f"{base}.{k}", k + 1
        used.add(check_sensor_id(sid))
        out.append((sid, rec))
    return out
