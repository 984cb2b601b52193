"""What the sensor adds to a scene: bursty receive timestamps, quantization, dropped-packet constants."""

from __future__ import annotations

import numpy as np

from thermal_action.data.packets import DROPPED_VALUE_C, PACKET_PX

DROPPED_VALUE = DROPPED_VALUE_C  # °C written where a packet was lost (0 K)
DROPPED_BLOCK = PACKET_PX  # pixels per lost packet; as many are no-data at the end of the frame
# Chance that each of the four full packets is among the lost ones, measured on the real
# sample's frames that lost 1-3 packets (43 lost packets: 18, 7, 7, 11).
_PACKET_LOSS_WEIGHTS = np.array([18, 7, 7, 11], dtype=np.float64) / 43.0


def bursty_timestamps(rng: np.random.Generator, n: int, start_ms: int) -> np.ndarray:
    """Receive times like the real sensor's: runs of ~165 ms, a gap, a catch-up burst.

    Returns:
        ``(n,)`` int64 strictly increasing ms since epoch.
    """
    steps: list[float] = []
    while len(steps) < n - 1:
        steps += list(rng.normal(165, 12, size=rng.integers(3, 7)))
        long_gap = rng.random() < 0.02
        steps.append(rng.uniform(1500, 2600) if long_gap else float(np.clip(rng.normal(560, 160), 330, 1400)))
        steps += list(rng.normal(37, 3, size=rng.integers(2, 5)))
        if rng.random() < 0.4:
            steps.append(rng.uniform(60, 130))
    d = np.maximum(np.round(np.array(steps[: n - 1])), 20).astype(np.int64)
    return start_ms + np.concatenate([[0], np.cumsum(d)]).astype(np.int64)


def _quantize(t: np.ndarray) -> np.ndarray:
    # The sensor reports 1/8 °C steps; the pipeline stores them with one decimal.
    return np.round(np.round(t * 8.0) / 8.0, 1).astype(np.float32)
