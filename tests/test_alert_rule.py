"""The alert rule: valid or refused at construction, overridden in one function, round-trips
through plain data (as checkpoints, run.json and ONNX metadata carry it)."""

from __future__ import annotations

import math

import pytest

from thermal_action.alert_rule import AlertOverrides, AlertRule, resolve_alert_rule
from thermal_action.structures import FALL_CLASS_NAME, FALLBACK_FALL_THRESHOLD


@pytest.mark.parametrize("bad", [0.0, -0.1, 1.5, 2, math.nan, math.inf, "0.5", True, None])
def test_a_threshold_outside_0_1_is_refused_everywhere(bad):
    with pytest.raises(ValueError, match=r"threshold must be a number in \(0, 1\]"):
        AlertRule(threshold=bad)
    if bad is not None:
        with pytest.raises(ValueError, match="threshold"):
            AlertOverrides(threshold=bad)
        with pytest.raises(ValueError, match="bed_threshold"):
            AlertRule(bed_threshold=bad)


@pytest.mark.parametrize("field", ["min_seconds", "max_gap_seconds", "cooldown_seconds"])
@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf])
def test_durations_must_be_finite_and_not_negative(field, bad):
    with pytest.raises(ValueError, match=field):
        AlertRule(**{field: bad})
    with pytest.raises(ValueError, match=field):
        AlertOverrides(**{field: bad})


def test_defaults_and_the_edges_that_are_allowed():
    r = AlertRule()
    assert r.fall_class == FALL_CLASS_NAME and r.threshold == FALLBACK_FALL_THRESHOLD and r.bed_threshold == 0.7
    assert AlertRule(threshold=1.0, min_seconds=0, cooldown_seconds=0).threshold == 1.0
    with pytest.raises(ValueError, match="fall_class"):
        AlertRule(fall_class="")


def test_overrides_apply_in_one_place_and_keep_what_is_not_given():
    checkpoint = AlertRule(threshold=0.37, min_seconds=4.0, cooldown_seconds=20.0)
    assert resolve_alert_rule(checkpoint) is checkpoint
    assert resolve_alert_rule(checkpoint, AlertOverrides()) == checkpoint
    got = resolve_alert_rule(checkpoint, AlertOverrides(min_seconds=2.0, bed_threshold=0.9))
    assert got == AlertRule(threshold=0.37, min_seconds=2.0, cooldown_seconds=20.0, bed_threshold=0.9)
    assert resolve_alert_rule(None, AlertOverrides(threshold=0.6)) == AlertRule(threshold=0.6)
    mine = AlertRule(threshold=0.8)
    assert resolve_alert_rule(checkpoint, mine) is mine  # a whole rule replaces it
    assert AlertOverrides(threshold=0.2, fall_class="other").given() == {"threshold": 0.2, "fall_class": "other"}


def test_plain_data_round_trip_and_unknown_keys():
    r = AlertRule(threshold=0.42, min_seconds=3.0, max_gap_seconds=1.0, cooldown_seconds=12.0, bed_threshold=0.9)
    assert AlertRule.from_dict(r.to_dict()) == r
    assert AlertRule.from_dict({"threshold": 0.3}) == AlertRule(threshold=0.3)
    with pytest.raises(ValueError, match="unknown keys"):
        AlertRule.from_dict({"threshold": 0.3, "treshold": 0.4})
