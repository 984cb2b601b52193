"""The one JSON sanitiser: numpy/torch values become plain JSON, undefined numbers null."""

from __future__ import annotations

import json
import math

import numpy as np
import torch

from thermal_action.jsonable import finite_or_none, to_jsonable


def test_numbers_of_every_kind_become_plain_json_and_undefined_ones_null():
    value = {
        "map": np.float64(0.25), "nan": math.nan, "inf": np.float32(np.inf), "count": np.int64(3),
        "flag": np.bool_(True), "loss": torch.tensor(float("nan")), "scores": np.array([0.5, np.nan]),
        "pair": (torch.tensor([1.0, 2.0]), None), 7: "key made text",
    }
    out = to_jsonable(value)
    assert out == {"map": 0.25, "nan": None, "inf": None, "count": 3, "flag": True, "loss": None,
                   "scores": [0.5, None], "pair": [[1.0, 2.0], None], "7": "key made text"}
    assert type(out["count"]) is int and type(out["map"]) is float and type(out["flag"]) is bool
    json.dumps(out, allow_nan=False)  # strict JSON: would raise on a NaN left behind


def test_finite_or_none():
    assert finite_or_none(np.float32(0.5)) == 0.5 and finite_or_none(2) == 2.0
    assert finite_or_none(math.inf) is None and finite_or_none(np.nan) is None
