"""Class ids, the posture table (one parameter vector per posture) and the activity mix.

Body coordinates: u along the body axis (angle theta in the image), v across it.
Amplitudes are fractions of the person's excess temperature.
"""

from __future__ import annotations

import numpy as np

# Class ids (DEFAULT_CLASS_NAMES order).
SITTING, STANDING, WALKING, LYING_RISK, LYING_BED, LEANING = 0, 1, 2, 3, 4, 5
TRANS_NORMAL, TRANS_RISK, TRANS_BED = 6, 7, 8
LOWER_OTHER, KNEELING, BENDING, CROUCHING, OTHER = 9, 10, 11, 12, 13


_P_FIELDS = (
    "u0", "su0", "sv0", "a0",  # torso: offset along u, sigmas, amplitude
    "u1", "s1", "a1",  # head: offset along u, isotropic sigma, amplitude
    "u2", "su2", "sv2", "a2",  # legs
    "su3", "sv3", "a3",  # arms, centred on the body
)
_PI = {name: i for i, name in enumerate(_P_FIELDS)}
_SIZE_FIELDS = [_PI[k] for k in ("u0", "su0", "sv0", "u1", "s1", "u2", "su2", "sv2", "su3", "sv3")]


def _posture(**kw: float) -> np.ndarray:
    base = dict(u0=0.0, su0=2.1, sv0=1.75, a0=0.85, u1=0.0, s1=0.9, a1=0.25,
                u2=0.0, su2=1.0, sv2=1.0, a2=0.0, su3=0.7, sv3=1.0, a3=0.0)
    unknown = set(kw) - set(base)
    if unknown:
        raise KeyError(f"unknown posture fields {unknown}")
    base.update(kw)
    return np.array([base[k] for k in _P_FIELDS], dtype=np.float64)


_POSTURES: dict[str, np.ndarray] = {
    "standing": _posture(),
    "leaning": _posture(u0=0.7, su0=2.35, u1=1.7),
    "sitting": _posture(u0=-0.7, su0=1.8, sv0=1.75, u1=-1.0, a1=0.2, u2=3.1, su2=1.8, sv2=1.45, a2=0.45),
    "lying": _posture(u0=-1.6, su0=2.7, sv0=1.5, a0=0.75, u1=-4.8, s1=0.95, a1=0.3,
                      u2=3.6, su2=2.7, sv2=1.15, a2=0.45),
    "kneeling": _posture(sv0=1.8, u2=-2.9, su2=1.3, sv2=2.15, a2=0.45),
    "bending": _posture(u0=1.45, su0=2.75, u1=4.1, a1=0.3, u2=-1.0, su2=1.2, sv2=1.2, a2=0.35),
    "crouching": _posture(su0=1.65, sv0=1.65, a0=0.95, a1=0.2, u2=0.6, su2=1.65, sv2=1.8, a2=0.3),
    "lower_other": _posture(u0=-1.2, su0=1.8, sv0=1.8, u1=-1.45, u2=4.3, su2=2.65, sv2=1.45, a2=0.45),
    "other": _posture(su3=0.7, sv3=3.8, a3=0.35),
}
# Postures drawn with per-instance variation (the "catch-all" classes).
_VARIED = {"lower_other": 0.2, "other": 0.25}

_LOWER = {"kneel": ("kneeling", KNEELING), "bend": ("bending", BENDING),
          "crouch": ("crouching", CROUCHING), "lower_other": ("lower_other", LOWER_OTHER)}

_RANDOM_WEIGHTS = {
    "stand": 0.3, "walk": 0.24, "sit": 0.10, "bed": 0.05, "lean": 0.06, "kneel": 0.04, "bend": 0.05,
    "crouch": 0.04, "lower_other": 0.02, "other": 0.02, "fall": 0.03,
}
# Forced activities cycle over the recordings so that every class shows up.
_FORCED_CYCLE = ("fall", "bed", "lean", "kneel", "bend", "crouch", "lower_other", "other", "sit")
_FORCED_PER_RECORDING = 3

# A pixel row covers more floor than a pixel column (real boxes of round, standing
# people are ~11 x 8 px): body extents are squeezed vertically by this factor.
_ASPECT_Y = 0.78
