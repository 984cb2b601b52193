"""The fall alert rule: when a person's fall score raises an alert, decided once and carried.

An :class:`AlertRule` is made where it is decided and every user takes it from there::

    train: calibrates the threshold on validation data
      └─► AlertRule ─► checkpoint ("alert_rule"; the ONNX metadata on export)
                              │
                              ▼
    resolve_alert_rule(checkpoint's rule, overrides) ◄── predict/render --fall-*, serve fall_*
                              │                           keys, evaluate eval.fall_threshold
                              ▼
    the rule in force ─► predict, evaluate, render, streaming, serve (one FallAlertMonitor)

The rule (all durations in seconds of the monitor's clock, frames / fps by default)::

    fall score >= threshold    o o o o o . o o x x x x o o o x x x x x x x x x x x x
                               |-- run ------|         |run|
                               min_seconds: the alert is raised once a run lasts this long
                               '.' (no prediction) up to max_gap_seconds keeps a run going
                                             |<- cooldown_seconds ->|
                               a new run of the same person inside the cooldown continues
                               the same alert (one alert per fall); after it, the alert ends

A person whose box lies mostly on a bed or couch zone (a prediction's ``bed_share`` >=
:data:`BED_SHARE_MOSTLY`) is held to ``bed_threshold`` instead (when it is set and stricter):
lying on a bed is no fall. ``bed_share`` None (no rooms known) uses ``threshold``.

Checkpoints from before the rule carried only a calibrated threshold; they load as the default
rule with that threshold (``models/checkpoint.py``). This module is core: every layer may
import it, it imports none.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from thermal_action.structures import FALL_CLASS_NAME, FALLBACK_FALL_THRESHOLD

#: A box counts as "on a bed" when at least this share of it lies on a bed/couch zone.
BED_SHARE_MOSTLY = 0.5


def _check_threshold(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0.0 < value <= 1.0:
        raise ValueError(f"fall alert rule: {name} must be a number in (0, 1], got {value!r}")


def _check_seconds(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"fall alert rule: {name} must be a finite number of seconds >= 0, got {value!r}")


def _check_class(value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"fall alert rule: fall_class must be a class name, got {value!r}")


_CHECKS = {
    "fall_class": lambda name, v: _check_class(v),
    "threshold": _check_threshold,
    "min_seconds": _check_seconds,
    "max_gap_seconds": _check_seconds,
    "cooldown_seconds": _check_seconds,
    "bed_threshold": _check_threshold,
}


@dataclass(frozen=True)
class AlertRule:
    """When a person's fall score raises a fall alert (module docstring). Invalid values are
    refused at construction, so every rule in use is a valid one."""

    fall_class: str = FALL_CLASS_NAME  # the class whose score raises alerts
    # Fall score >= this counts as fallen, in (0, 1]; train calibrates it (the default: a model without one).
    threshold: float = FALLBACK_FALL_THRESHOLD
    # s the score must stay at or above the threshold before the alert is raised (0: at the first high score).
    min_seconds: float = 5.0
    # s a run survives without any prediction of the person (the detector may lose someone lying still).
    max_gap_seconds: float = 2.0
    # s after an alert's latest high score in which a new run of the same person continues that alert
    # (one fall, one alert); the alert ends when it has passed. 0: it ends with its run.
    cooldown_seconds: float = 30.0
    # Threshold for a person mostly on a bed/couch zone (the higher of it and threshold applies); None: none.
    # 0.7: a resident asleep in bed scored up to 0.46-0.49 on a fall-free synthetic evening (one false
    # alert in 2 h at the calibrated ~0.13) while no real fall alert of the six recordings changed
    # (benchmarks/bench_alerts.py; the policy only acts where a room is known).
    bed_threshold: float | None = 0.7

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None and f.name == "bed_threshold":
                continue
            _CHECKS[f.name](f.name, value)

    def threshold_for(self, bed_share: float | None = None) -> float:
        """The threshold for a person with ``bed_share`` of their box on a bed/couch zone
        (None: unknown, the plain threshold)."""
        if self.bed_threshold is not None and bed_share is not None and bed_share >= BED_SHARE_MOSTLY:
            return max(self.threshold, self.bed_threshold)
        return self.threshold

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "AlertRule":
        """The inverse of :meth:`to_dict`; unknown keys are refused, missing ones take the defaults."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"fall alert rule: unknown keys {unknown}; known: {sorted(names)}")
        return cls(**data)


@dataclass(frozen=True)
class AlertOverrides:
    """Changes to a rule that a user asks for (command line, service config); None keeps the
    rule's value. Given values are checked here, before any model is loaded."""

    fall_class: str | None = None
    threshold: float | None = None
    min_seconds: float | None = None
    max_gap_seconds: float | None = None
    cooldown_seconds: float | None = None
    bed_threshold: float | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                _CHECKS[f.name](f.name, value)

    def given(self) -> dict[str, Any]:
        """The fields that were set."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


def resolve_alert_rule(rule: AlertRule | None, overrides: AlertOverrides | AlertRule | None = None) -> AlertRule:
    """The rule in force: ``rule`` (a checkpoint's; None: the defaults) with ``overrides`` applied.

    A whole :class:`AlertRule` as ``overrides`` replaces ``rule`` (a Python caller that made
    its own). The one place a rule is changed; the result is range-checked like any rule.
    """
    if isinstance(overrides, AlertRule):
        return overrides
    base = rule if rule is not None else AlertRule()
    if overrides is None:
        return base
    return replace(base, **overrides.given())
