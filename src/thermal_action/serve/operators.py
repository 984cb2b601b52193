"""What operators send the service, parsed and checked once at the edge: a sensor's details
(room, resident, bed, notes), acknowledging or resolving an alert, and feedback on an alert.

Every body is a JSON object with known keys only; a value of the wrong type, too long, or with
control characters is refused with :class:`RequestError`, whose message names the field (the
API answers 400 with it). Text is stripped of surrounding whitespace.

Feedback answers and what they teach the model (:mod:`~thermal_action.serve.feedback` turns
them into training data)::

    real_fall                    the person fell              -> "lying down-lying with risk"
    false_alarm, reason in_bed   lying on the bed/couch       -> "lying down-lying on the bed/couch"
                 reason sitting  sitting                      -> "sitting"
                 reason kneeling kneeling                     -> "lower position-kneeling"
                 reason other    something else               -> left out (no class says "not a fall")
    not_sure                     nobody knows                 -> left out
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from thermal_action.errors import RequestError

#: Most characters per sensor detail.
SENSOR_INFO_LIMITS = {"room": 64, "resident": 100, "bed_label": 32, "notes": 1000}
#: Most characters of a person's name (``who``) and of a note.
MAX_WHO = 100
MAX_NOTE = 1000

FEEDBACK_ANSWERS = ("real_fall", "false_alarm", "not_sure")
FALSE_ALARM_REASONS = ("in_bed", "sitting", "kneeling", "other")

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # tab and newline are text
_CONTROL_ONE_LINE = re.compile(r"[\x00-\x1f\x7f]")


def _object(body: Any, allowed: tuple[str, ...], example: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise RequestError("body", f"must be a JSON object like {example}")
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise RequestError(str(unknown[0]), f"unknown field; allowed: {', '.join(allowed)}")
    return body


def _text(body: dict[str, Any], field: str, limit: int, multiline: bool = False, required: bool = False) -> str:
    value = body.get(field)
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise RequestError(field, f"must be a string, got {type(value).__name__}")
    value = value.strip()
    if required and not value:
        raise RequestError(field, "is required (who are you?)" if field == "who" else "is required")
    if len(value) > limit:
        raise RequestError(field, f"is {len(value)} characters; at most {limit}")
    if (_CONTROL if multiline else _CONTROL_ONE_LINE).search(value):
        raise RequestError(field, "holds control characters")
    return value


@dataclass(frozen=True)
class SensorInfo:
    """What a care home knows of a sensor. Empty strings: not set (the room then shows the
    sensor id)."""

    room: str = ""  # e.g. "Room 12"
    resident: str = ""  # who lives there
    bed_label: str = ""  # e.g. "window bed"
    notes: str = ""  # free text for the staff


def parse_sensor_info(body: Any) -> SensorInfo:
    """``PUT /api/sensors/{id}/info``: ``{room, resident, bed_label, notes}``, all strings; a key
    left out is set empty (PUT replaces the whole record).

    Raises:
        RequestError: names the field.
    """
    body = _object(body, tuple(SENSOR_INFO_LIMITS), '{"room": "Room 12", "resident": "A. Jones", '
                                                    '"bed_label": "window bed", "notes": ""}')
    return SensorInfo(**{k: _text(body, k, n, multiline=k == "notes") for k, n in SENSOR_INFO_LIMITS.items()})


@dataclass(frozen=True)
class AlertAction:
    """Acknowledging or resolving an alert: who did it (required), a note, and for resolving an
    alert whose person is still down, the explicit confirmation."""

    who: str
    note: str = ""
    confirm_ongoing: bool = False


def parse_alert_action(body: Any) -> AlertAction:
    """``POST /api/alerts/{id}/acknowledge`` or ``/resolve``: ``{who, note, confirm_ongoing}``.

    Raises:
        RequestError: no ``who``, or a field of the wrong type or length.
    """
    body = _object({} if body is None else body, ("who", "note", "confirm_ongoing"),
                   '{"who": "your name", "note": "on my way"}')
    confirm = body.get("confirm_ongoing", False)
    if not isinstance(confirm, bool):
        raise RequestError("confirm_ongoing", "must be true or false")
    return AlertAction(_text(body, "who", MAX_WHO, required=True), _text(body, "note", MAX_NOTE, multiline=True),
                       confirm)


@dataclass(frozen=True)
class Feedback:
    """An operator's answer to "was this a fall?" (module docstring)."""

    answer: str  # one of FEEDBACK_ANSWERS
    who: str
    reason: str = ""  # for false_alarm: one of FALSE_ALARM_REASONS; else ""
    note: str = ""


def parse_feedback(body: Any) -> Feedback:
    """``POST /api/alerts/{id}/feedback``: ``{answer, reason, who, note}``.

    Raises:
        RequestError: an unknown answer, a false alarm without a known reason, a reason for
            another answer, no ``who``.
    """
    body = _object(body, ("answer", "reason", "who", "note"),
                   '{"answer": "false_alarm", "reason": "in_bed", "who": "your name"}')
    answer = body.get("answer")
    if answer not in FEEDBACK_ANSWERS:
        raise RequestError("answer", f"must be one of {', '.join(FEEDBACK_ANSWERS)}; got {answer!r}")
    reason = body.get("reason") or ""
    if answer == "false_alarm":
        if reason not in FALSE_ALARM_REASONS:
            raise RequestError("reason", f"a false alarm needs one of {', '.join(FALSE_ALARM_REASONS)}; "
                                         f"got {reason!r}")
    elif reason:
        raise RequestError("reason", f"only a false_alarm has a reason; this answer is {answer}")
    return Feedback(answer, _text(body, "who", MAX_WHO, required=True), reason,
                    _text(body, "note", MAX_NOTE, multiline=True))


def check_alert_id(alert_id: int) -> bool:
    """Whether ``alert_id`` can name an alert (SQLite's positive 64-bit integers)."""
    return isinstance(alert_id, int) and not isinstance(alert_id, bool) and 0 < alert_id < 2**63
