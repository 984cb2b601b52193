"""What the detector returns: :class:`Detections` (boxes and scores) and the per-frame :class:`FrameResult`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from thermal_action.structures import FrameBoxes


#: The detector's boxes of one frame: :class:`~thermal_action.structures.FrameBoxes` with no
#: track ids yet (all -1); the tracker fills them in.
Detections = FrameBoxes


@dataclass
class FrameResult:
    """Everything :func:`detect_frame` worked out for one frame.

    Attributes:
        detections: the person boxes.
        person_mask: ``(H, W)`` bool, pixels of the accepted people.
        valid_mask: ``(H, W)`` bool, pixels that hold data.
        excess_c: ``(H, W)`` float32 temperature above background and offset (0 where
            there is no data).
        offset_c: global offset of this frame over the background (°C).
        noise_sigma_c: the noise level the thresholds were scaled by (°C).
        frame_c: ``(H, W)`` float32 the frame in °C (background value where no data),
            dropped packets put back in place.
        missing_packets: packets found missing (empty for a complete frame).
        person_regions: ``N`` ``(H, W)`` bool masks, one per detection.
        continued: per detection, the index in ``previous_people`` of the person it
            continues, or ``None`` for a new one.
        overlapping: per detection, the indices of all previous people it overlaps
            (more than one: people who merged into one blob).
        warm_enough: per detection, whether it passed ``min_warmth_c`` (the test for
            a new person) in this frame.
    """

    detections: Detections
    person_mask: np.ndarray
    valid_mask: np.ndarray
    excess_c: np.ndarray
    offset_c: float
    noise_sigma_c: float
    frame_c: np.ndarray = field(repr=False)
    missing_packets: tuple[int, ...] = ()
    person_regions: list[np.ndarray] = field(default_factory=list, repr=False)
    continued: list[int | None] = field(default_factory=list)
    overlapping: list[list[int]] = field(default_factory=list)
    warm_enough: list[bool] = field(default_factory=list)
