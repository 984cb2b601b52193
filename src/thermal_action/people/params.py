"""The detector's thresholds, :class:`DetectorParams`, with the measurements behind each."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DetectorParams:
    """Thresholds of the detector (defaults measured on synthetic and one real recording).

    Attributes:
        grow_sigma: foreground pixels have excess above ``grow_sigma * sigma`` ...
        grow_floor_c: ... and above this (°C). Real sensor noise is sigma ~0.47 °C
            (frame-to-frame), so the floor decides: 1.5 °C keeps the blurred rim of a
            person (annotated boxes are loose) while noise alone exceeds it in <0.1%
            of pixels.
        seed_sigma: a region's hottest pixel must be ``seed_sigma * sigma`` ...
        seed_floor_c: ... and this (°C) above the background: hysteresis, so a region
            grows down to the low threshold only around a clear peak.
        min_warmth_c: the hottest 3x3 mean of a region must be this much (°C) above
            the frame median. In the real sample people reach 4.7-6.9 °C (raw maxima
            5.5-8.6 °C; the wider real set has a median raw maximum of 24.5 °C over a
            16-19 °C room), the warm lens ring 2.7-3.0 °C and the residual heat on a
            chair someone left 3.5 °C, so 4 °C separates them.
        keep_warmth_c: the same test for a region that continues a person seen in the
            last ``memory_frames`` frames (see :func:`detect_frame`). Lying down spreads
            a person: fallen synthetic people reach 3.7 °C, in a cold corner too; the
            synthetic residual heat a person leaves ~2 °C.
        memory_frames: frames a person is remembered without being detected (a
            dropped packet over them, a dip under a threshold).
        memory_margin_px: how far (pixels) a remembered person may have moved.
        memory_min_iou: least mask IoU between a region and a remembered person (both
            grown by the margin) for the region to continue them.
        trust_frames: the lower ``keep_warmth_c`` applies once a person has passed
            ``min_warmth_c`` in this many frames; a patch of residual heat that passes
            it in one odd frame does not become sticky.
        max_merge_frames: people merged into one blob for longer than this (frames,
            20 s) are taken for one person. Someone standing by a fallen person merges
            with them for seconds; a person remembered twice would hand the second
            memory to the residual heat they leave when they get up.
        max_person_c: pixels hotter than this (°C) ...
        max_warmth_c: ... or this much hotter than the frame median are hot objects and
            never foreground, nor are pixels within ``hot_margin_px`` of them. A kettle
            reads 38-45 °C; at this resolution a person's hottest pixel reads 5.5-8.6 °C
            over the median in the real sample (synthetic people: up to ~10 °C on a
            warm bed), never near skin temperature.
        hot_margin_px: margin (pixels, chessboard distance) around hot pixels that is
            also excluded: a kettle's blurred halo reads 27-35 °C, person-like.
        min_area_px: smallest region kept (pixels). Real boxes are at least 7x4 px;
            a person's blob above the low threshold is at least ~6 px.
        max_area_px: largest region kept (pixels); the largest real box is 19x18 px.
        split_depth_sigma: two person-like peaks in one region become two people when
            each rises ``split_depth_sigma`` times the noise of the 3x3 mean ...
        split_depth_floor_c: ... and this (°C) above the saddle that joins them ...
        split_min_area_px: ... and each peak's region above the saddle covers at
            least this many pixels. Peaks are taken on a 3x3 mean, so one hot noise
            pixel does not split a person. The head and torso of the person lying in
            the real sample are two peaks ~1 °C over their saddle, hence 1.5 °C.
        trim_depth_sigma: a part that is no person by itself (its hottest pixel fails
            ``min_warmth_c``) is cut off its neighbour when it rises this many noise
            levels of the 3x3 mean ...
        trim_depth_floor_c: ... and this (°C) above the saddle, instead of widening the
            person's box (a chair still warm from the person who just left it).
        score_scale_c: score = (1 - exp(-peak_excess / score_scale_c)) times an area
            factor: monotone in contrast, in (0, 1); a ranking, not a probability.
        box_pad_px: pixels added on every side of a box (clipped to the frame). The
            1.5 °C iso-line lies inside the body's blurred edge: annotated boxes reach
            0.2-0.7 px (real sample) and ~1.7 px (synthetic) beyond it. IoU 0.5 recall
            with 0 / 0.5 / 1 / 1.5 px: real 0.99 / 0.99 / 0.99 / 0.76, synthetic (two
            seeds) 0.12-0.13 / 0.67-0.71 / 0.91-0.95 / 0.93-0.95.
        window_frames: the background is a percentile over samples spanning this
            many frames (~43 s at 6 fps): a static non-person object is absorbed in
            ~(1 - percentile/100) of it.
        sample_every: frames between background samples.
        percentile: per-pixel percentile of the samples. Low, so that people walking
            through a pixel (warm, a minority of samples) do not raise it.
        init_weight: the first background (a spatial percentile of the first frame) starts
            as this many samples, so an early miss does not absorb a person at once.
        init_window_px: side of the spatial window that makes the first background
            (pixels), larger than a person ...
        init_percentile: ... and the percentile taken over it, low so that a person
            who fills much of the window (at the border) is not part of it.
        freeze_margin_px: detected people, grown by this margin (pixels), are left out
            of the background update.
        sigma_smoothing: weight of the new frame in the running noise estimate.
        min_sigma_c: lower bound of the noise estimate (°C); quantised synthetic data
            can have a MAD of zero.
        repair_packets: put the received packets of a frame with dropped packets back
            in place (:func:`repair_dropped_packets`) before detecting; without it most
            such real frames are misplaced by ten rows.
    """

    grow_sigma: float = 3.0
    grow_floor_c: float = 1.5
    seed_sigma: float = 5.0
    seed_floor_c: float = 3.0
    min_warmth_c: float = 4.0
    keep_warmth_c: float = 2.5
    memory_frames: int = 12
    memory_margin_px: int = 2
    memory_min_iou: float = 0.2
    trust_frames: int = 3
    max_merge_frames: int = 120
    max_person_c: float = 40.0
    max_warmth_c: float = 12.0
    hot_margin_px: int = 1
    min_area_px: int = 6
    max_area_px: int = 400
    split_depth_sigma: float = 3.0
    split_depth_floor_c: float = 1.5
    split_min_area_px: int = 3
    trim_depth_sigma: float = 2.0
    trim_depth_floor_c: float = 0.5
    score_scale_c: float = 3.0
    box_pad_px: float = 1.0
    window_frames: int = 256
    sample_every: int = 4
    percentile: float = 20.0
    init_weight: int = 8
    init_window_px: int = 15
    init_percentile: float = 20.0
    freeze_margin_px: int = 1
    sigma_smoothing: float = 0.05
    min_sigma_c: float = 0.1
    repair_packets: bool = True

    def __post_init__(self) -> None:
        if self.sample_every < 1 or self.window_frames < self.sample_every:
            raise ValueError("need 1 <= sample_every <= window_frames")
        if not 0.0 <= self.percentile <= 100.0:
            raise ValueError(f"percentile must be in [0, 100], got {self.percentile}")
        if self.min_area_px < 1 or self.max_area_px < self.min_area_px:
            raise ValueError("need 1 <= min_area_px <= max_area_px")

    @property
    def num_samples(self) -> int:
        """Background samples kept (the window divided by the sampling step)."""
        return max(1, self.window_frames // self.sample_every)
