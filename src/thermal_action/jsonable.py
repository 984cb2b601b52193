"""Plain JSON data from numbers of any kind: the one sanitiser of what the project writes.

JSON has no NaN or infinity (Python's ``json`` writes them, and other readers then fail),
and numpy and torch numbers are not JSON types. Metrics files, prediction records and the
training log (``val_summary.jsonl``) all pass through :func:`to_jsonable`, where an
undefined number (a metric with no support, a loss that diverged) becomes ``null``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np


def finite_or_none(x: float) -> float | None:
    """``float(x)``, or None where it is NaN or infinite."""
    x = float(x)
    return x if math.isfinite(x) else None


def to_jsonable(value: Any) -> Any:
    """Plain JSON data from mappings, sequences, numpy/torch values; NaN and infinities become None."""
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if hasattr(value, "detach"):  # a torch tensor, without importing torch here
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return finite_or_none(value)
    return value


__all__ = ["finite_or_none", "to_jsonable"]
