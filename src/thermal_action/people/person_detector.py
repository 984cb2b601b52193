"""The stateful :class:`PersonDetector`: one recording's background model and its memory of people."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from thermal_action.people.frame import detect_frame, initial_background, robust_sigma, to_celsius
from thermal_action.people.image_ops import binary_dilate, sorted_percentile
from thermal_action.people.params import DetectorParams
from thermal_action.people.results import Detections, FrameResult


@dataclass
class _Remembered:
    """A person detected recently: where, when last, and in how many frames warm enough for a new one."""

    mask: np.ndarray
    last_seen: int
    warm_frames: int
    merged_since: int | None = None  # first frame of a merge with other people, if merged


class PersonDetector:
    """Detects people frame by frame, learning the background of one recording.

    Feed the frames of one sensor in order (streaming); :meth:`reset` before another
    recording. The background is a per-pixel low percentile of samples taken every
    ``sample_every`` frames over ``window_frames`` frames, with the global offset of
    each frame removed (rooms differ, sensors drift). Pixels of detected people (and a
    margin) keep the current background value in a new sample, so a person who stays
    still - sitting, or lying after a fall - is never learnt as background; anything
    static that does not pass as a person (a kettle, a warm chair after someone
    left, the warm lens ring) is absorbed. Frames with dropped packets have their
    packets put back in place against the previous frame and are not sampled.
    People detected in the last ``memory_frames`` frames are remembered: a region
    continuing one needs less warmth (someone who falls spreads out and dims), and
    remembered people are not learnt as background while briefly missed.

    Args:
        params: thresholds; defaults when ``None``.

    Example::

        det = PersonDetector()
        for frame in frames:          # (40, 60) each, in order
            d = det.update(frame)     # d.boxes_xyxy (N, 4), d.scores (N,)
    """

    def __init__(self, params: DetectorParams | None = None):
        self.params = params or DetectorParams()
        self.reset()

    def reset(self) -> None:
        """Forgets the background (call before a new recording)."""
        self._samples: np.ndarray | None = None  # (S, H, W) offset-free samples
        self._num_filled = 0
        self._next_slot = 0
        self._background: np.ndarray | None = None  # (H, W) °C at the first frame's level
        self._sigma: float | None = None
        self._person_mask: np.ndarray | None = None
        self._last_frame_c: np.ndarray | None = None  # reference for dropped-packet repair
        self._memory: list[_Remembered] = []  # people detected in recent frames
        self.frames_seen = 0
        self.last_result: FrameResult | None = None

    @property
    def background(self) -> np.ndarray | None:
        """``(H, W)`` current background (°C, at the level of the first frame)."""
        return None if self._background is None else self._background.copy()

    def _push_sample(self, sample: np.ndarray) -> None:
        assert self._samples is not None
        self._samples[self._next_slot] = sample
        self._next_slot = (self._next_slot + 1) % len(self._samples)
        self._num_filled = min(self._num_filled + 1, len(self._samples))
        # np.percentile to the last bit, at a tenth of its cost (it partitions every column).
        ordered = np.sort(self._samples[: self._num_filled], axis=0)
        self._background = sorted_percentile(ordered, self.params.percentile).astype(np.float32)

    def _initialise(self, frame: np.ndarray) -> None:
        p = self.params
        frame_c, valid = to_celsius(frame)
        first = initial_background(frame_c, valid, p.init_window_px, p.init_percentile)
        self._samples = np.empty((p.num_samples, *first.shape), np.float32)
        self._num_filled, self._next_slot = 0, 0
        for _ in range(min(p.init_weight, p.num_samples)):
            self._samples[self._next_slot] = first
            self._next_slot = (self._next_slot + 1) % p.num_samples
            self._num_filled += 1
        self._background = first

    def update(self, frame: np.ndarray) -> Detections:
        """Detects people in the next frame of the recording and updates the background.

        Args:
            frame: ``(H, W)`` temperatures (°C or Kelvin; dropped packets allowed).

        Returns:
            The frame's :class:`Detections`.
        """
        p = self.params
        frame = np.asarray(frame)
        if frame.ndim != 2:
            raise ValueError(f"expected one (H, W) frame, got shape {frame.shape}")
        if self._background is None:
            self._initialise(frame)
        elif frame.shape != self._background.shape:
            raise ValueError(
                f"frame shape {frame.shape} differs from earlier frames {self._background.shape}; reset() first"
            )
        assert self._background is not None
        result = detect_frame(
            frame,
            self._background,
            p,
            noise_sigma_c=self._sigma,
            ignore_mask=self._person_mask,
            reference_c=self._last_frame_c,
            previous_people=[m.mask for m in self._memory],
            trusted_people=[m.warm_frames >= p.trust_frames for m in self._memory],
        )
        self._remember(result)
        # Remembered people missed in this frame are not learnt as background either.
        remembered = np.zeros_like(result.person_mask)
        for m in self._memory:
            remembered |= m.mask
        frozen = binary_dilate(result.person_mask | remembered, p.freeze_margin_px)
        quiet = result.valid_mask & ~frozen
        if quiet.sum() > 0.25 * quiet.size:
            frame_sigma = max(robust_sigma(result.excess_c[quiet]), p.min_sigma_c)
            a = 1.0 if self._sigma is None else p.sigma_smoothing
            self._sigma = frame_sigma if self._sigma is None else (1 - a) * self._sigma + a * frame_sigma
        if self.frames_seen % p.sample_every == p.sample_every - 1 and result.valid_mask.all():
            sample = np.where(frozen, self._background, result.frame_c - result.offset_c)
            before = self._background
            self._push_sample(sample.astype(np.float32))
            self._hold_level(before, frozen)
        self._person_mask = frozen
        self._last_frame_c = result.frame_c
        self.frames_seen += 1
        self.last_result = result
        return result.detections

    def _hold_level(self, before: np.ndarray, frozen: np.ndarray) -> None:
        """Takes the new sample's drift out of the background's unfrozen pixels.

        The low percentile sits below the median of the noise, and the frame's offset is a
        median: each new sample pulls the background down a little and the offset up as much
        (~0.5 °C a minute at the sensor's noise). That is harmless where everything drifts
        together, but frozen pixels (a person) keep their value, so a person lying still lost
        their warmth against the drifting rest and was lost within minutes (an hour-long night
        asleep in bed was not seen after its third minute). Shifting the unfrozen pixels back by
        their mean change keeps the level still; every excess is relative to the offset, so
        nothing else changes.
        """
        assert self._samples is not None and self._background is not None
        quiet = ~frozen
        if not quiet.any():
            return
        drift = float(np.mean(self._background[quiet] - before[quiet]))
        self._samples[: self._num_filled, quiet] -= drift
        self._background[quiet] -= drift

    def _remember(self, result: FrameResult) -> None:
        """Moves continued people to their new regions; forgets people unseen too long.

        A region that also overlaps remembered people nobody else continued holds
        people merged into one blob (someone walking over someone lying down): all of
        them are remembered at the blob until it splits, so each part finds a person;
        otherwise the walker would leave with the only memory and the other would be a
        stranger. A merged part seen warm in fewer than ``trust_frames`` frames (a
        person who split in two for a frame) and people merged for longer than
        ``max_merge_frames`` are taken for one person.
        """
        p = self.params
        t = self.frames_seen
        assigned = {c for c in result.continued if c is not None}
        drop: set[int] = set()
        new = []
        for region, cont, over, warm in zip(
            result.person_regions, result.continued, result.overlapping, result.warm_enough
        ):
            if cont is None:
                new.append(_Remembered(region, t, int(warm)))
                continue
            m = self._memory[cont]
            m.mask, m.last_seen, m.warm_frames = region, t, m.warm_frames + int(warm)
            merged = [k for k in over if k not in assigned]
            if not merged:
                m.merged_since = None
                continue
            # A part that split off for a frame or two is no second person.
            drop.update(k for k in merged if self._memory[k].warm_frames < p.trust_frames)
            merged = [k for k in merged if k not in drop]
            since = [self._memory[k].merged_since for k in (cont, *merged)]
            start = min([s for s in since if s is not None] + [t])
            if not merged or t - start >= p.max_merge_frames:
                drop.update(merged)
                m.merged_since = None
                continue
            for k in (cont, *merged):
                mk = self._memory[k]
                mk.mask, mk.last_seen, mk.merged_since = region, t, start
            assigned.update(merged)
        self._memory = [
            m for i, m in enumerate(self._memory) if i not in drop and t - m.last_seen < p.memory_frames
        ] + new

    def detect_recording(self, frames: np.ndarray) -> list[Detections]:
        """Runs a fresh detector state over a whole recording, in order.

        Args:
            frames: ``(N, H, W)`` temperatures of one recording.

        Returns:
            ``N`` :class:`Detections`, one per frame.
        """
        frames = np.asarray(frames)
        if frames.ndim != 3:
            raise ValueError(f"expected (N, H, W) frames, got shape {frames.shape}")
        self.reset()
        return [self.update(f) for f in frames]
