"""The service's database (SQLite on one machine, PostgreSQL shared by several instances:
:mod:`~thermal_action.serve.store_db`): fall alerts as operators handle them, predictions (one per
person per ``store_every_seconds``) for the dashboard's timeline, room layouts (zones) and the
details of each sensor (room, resident, bed), and feedback on alerts.

Schema versions: ``PRAGMA user_version`` (PostgreSQL: the table ``thermal_action_schema``) says
which of :data:`~thermal_action.serve.store_schema.MIGRATIONS` (:data:`~thermal_action.serve.store_schema.PG_MIGRATIONS`,
in :mod:`~thermal_action.serve.store_schema`) a database has; a
database opened here gets the ones it lacks, in order, each in one transaction (a database
from before versions has 0). A database newer than this code is refused, not guessed at.

Alerts. The fall monitor's immutable events (:class:`~thermal_action.inference.alerts.AlertEvent`:
"raised", then "ended") each belong to one *raise* (``alert_raises``: one per sensor, person
and run start). An *alert* (``alerts``), what operators see and handle, is one or more raises:

- a raise of a person (sensor + track) while an earlier alert of that person is still
  unacknowledged is *folded* into it (``repeats`` + 1, ``last_raised_timestamp``; no new row):
  a resident who falls, gets up and falls again before anyone came is one call, not two;
- so is a raise of a *new track id* that is the same person to all appearances: the tracker
  lost a resident lying still and found them again under another id. The rule
  (:class:`FoldRule`): the raise folds into the newest unacknowledged alert of the same
  sensor that has a raise (of another track) whose person was last seen, while above the
  threshold, no more than ``distance_px`` from the new raise's box (the gap between the two
  boxes, 0 when they overlap), and that is either still ongoing or ended no more than
  ``seconds`` before the new raise's run began. A second person falling elsewhere in the room
  (boxes further apart) gets an alert of their own; raises without a box never fold across
  track ids;
- the alert is *ongoing* while any of its raises is (``active``), *ended* when all ended;
- its ``status`` is what people made it: ``open``, ``acknowledged`` (by whom and when), then
  ``resolved``. The ``acknowledged_*`` and ``resolved_*`` columns keep the first of each.

Every step is one row of the audit trail ``alert_events`` (alert id, action, who, when, note):
"raised", "repeat" and "ended" by ``system``, "acknowledged", "resolved" and "feedback" by the
person who did it. Everything is committed as it happens, so a restart loses no alert (WAL
journal: readers never wait for the writer).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from thermal_action.errors import AlertIsOngoing
from thermal_action.inference.alerts import AlertEvent
from thermal_action.serve.operators import Feedback, SensorInfo
from thermal_action.serve.store_db import (
    open_database,
)
from thermal_action.serve.store_schema import (
    migrate,
)

logger = logging.getLogger(__name__)

#: An alert's status, set by people.
ALERT_STATUSES = ("open", "acknowledged", "resolved")
#: An alert's state, set by the model: its person is still down, or no longer.
ALERT_STATES = ("ongoing", "ended")
#: Who the service writes into the audit trail for what it did itself.
SYSTEM = "system"
#: The database's file name in the service's data directory.
DB_FILE = "serve.db"




@dataclass(frozen=True)
class AlertChange:
    """What one alert event did to the alerts.

    Attributes:
        alert: the alert (API row) after the event.
        actions: what happened to it, in order: "raised" (a new alert), "repeat" (a raise
            folded into an unacknowledged alert of the same person), "ended" (its last ongoing
            raise ended); empty when the event only updated a score.
    """

    alert: dict[str, Any]
    actions: tuple[str, ...]

    @property
    def new(self) -> bool:
        return "raised" in self.actions


@dataclass(frozen=True)
class FoldRule:
    """When a raise of another track id is the same person as an open alert's (module docstring).

    Attributes:
        seconds: an alert's raise that ended at most this long before the new raise's run
            began still counts (one that goes on always does); None: never fold across track ids.
        distance_px: the gap between the two boxes (input pixels; 0 when they overlap) at most.
    """

    seconds: float | None = 120.0
    distance_px: float = 5.0

    def __post_init__(self) -> None:
        if self.seconds is not None and self.seconds < 0 or self.distance_px < 0:
            raise ValueError(f"fold rule: seconds and distance_px must be >= 0, got {self.seconds}, {self.distance_px}")


def box_gap(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """The shortest distance (pixels) between two ``xyxy`` boxes; 0 when they touch or overlap."""
    dx = max(a[0] - b[2], b[0] - a[2], 0.0)
    dy = max(a[1] - b[3], b[1] - a[3], 0.0)
    return float((dx * dx + dy * dy) ** 0.5)


def now_ms() -> int:
    return int(time.time() * 1000)


_ALERT_SELECT = """
SELECT a.id, a.sensor_id, a.track_id, a.status, a.active, a.start_timestamp, a.fired_timestamp,
       a.last_raised_timestamp, a.end_timestamp, a.peak_score, a.repeats, a.acknowledged_by, a.acknowledged_at,
       a.resolved_by, a.resolved_at, a.created_at, a.clip,
       coalesce(nullif(i.room, ''), a.sensor_id) AS room, coalesce(i.resident, '') AS resident,
       f.answer AS f_answer, f.reason AS f_reason, f.who AS f_who, f.note AS f_note, f.at AS f_at
FROM alerts a
LEFT JOIN sensors_info i ON i.sensor_id = a.sensor_id
LEFT JOIN alert_feedback f ON f.id = (SELECT max(id) FROM alert_feedback WHERE alert_id = a.id)
"""


def _alert_row(r: dict[str, Any]) -> dict[str, Any]:
    """An ``alerts`` row as the API shows it (README, "Live service")."""
    active = bool(r["active"])
    feedback = None
    if r["f_answer"] is not None:
        feedback = {"answer": r["f_answer"], "reason": r["f_reason"], "who": r["f_who"], "note": r["f_note"],
                    "at": r["f_at"]}
    return {
        "id": r["id"], "sensor_id": r["sensor_id"], "room": r["room"], "resident": r["resident"],
        "track_id": r["track_id"], "state": "ongoing" if active else "ended", "status": r["status"],
        "started_ms": r["start_timestamp"], "raised_ms": r["fired_timestamp"],
        "last_raised_ms": r["last_raised_timestamp"], "ended_ms": None if active else r["end_timestamp"],
        "peak_score": r["peak_score"], "repeats": r["repeats"],
        "acknowledged_by": r["acknowledged_by"], "acknowledged_at": r["acknowledged_at"],
        "resolved_by": r["resolved_by"], "resolved_at": r["resolved_at"],
        "feedback": feedback, "has_clip": r["clip"] is not None, "created_at": r["created_at"],
    }


class Store:
    """The service's database, shared by its threads (one connection behind a lock): a SQLite
    file, or a PostgreSQL database shared by several instances (:mod:`~thermal_action.serve.store_db`).

    Args:
        path: the SQLite file (created with its tables if missing, migrated if older), or a
            ``postgresql://`` URL.
        fold: when a raise of a new track id folds into an open alert (:class:`FoldRule`).
        instance: this service's name among several sharing the store ("" on one machine):
            written on each raise; :meth:`end_all_active` ends only this instance's raises, and a
            raise continues a fall that another instance raised (:meth:`record_alert`).

    Raises:
        StoreError: the database is newer than this code, could not be migrated or reached.
    """

    def __init__(self, path: str | Path, fold: FoldRule = FoldRule(), instance: str = ""):
        self.fold = fold
        self.instance = instance
        self._lock = threading.Lock()
        self._db = open_database(path)
        self.path = self._db.where  # names the database in messages (a PostgreSQL URL without its password)
        try:
            self.migrated_from = migrate(self._db, self.path)
        except BaseException:
            self._db.close()
            raise

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _rows(self, sql: str, args: tuple = ()) -> list[dict[str, Any]]:
        with self._lock:
            return self._rows_locked(sql, args)

    def _rows_locked(self, sql: str, args: tuple = ()) -> list[dict[str, Any]]:
        cur = self._db.execute(sql, args)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]

    def _audit(self, alert_id: int, action: str, who: str, note: str = "", at: int | None = None) -> None:
        """One row of the audit trail; call with the lock held."""
        self._db.execute("INSERT INTO alert_events (alert_id, action, who, at, note) VALUES (?, ?, ?, ?, ?)",
                         (int(alert_id), action, who, now_ms() if at is None else at, note))

    # -- alerts

    def record_alert(self, event: AlertEvent) -> AlertChange:
        """Stores one alert event and returns what it did (module docstring).

        A raise not seen before becomes a new alert, or is folded into the newest
        unacknowledged alert of the same person. "ended" ends the raise; the alert ends with
        its last ongoing raise (its state: the status stays what people made it). A late
        "raised" of an ended raise changes nothing but the peak. An "ended" whose "raised"
        never arrived is stored whole, already over: every event carries all of its raise.
        """
        ended = not event.active
        key = (event.sensor_id, int(event.track_id), int(event.start_timestamp))
        fired, peak = int(event.fired_timestamp), float(event.peak_score)
        end = int(event.end_timestamp) if ended else None
        box = None if event.box_xyxy is None else tuple(float(v) for v in event.box_xyxy)
        actions: list[str] = []
        with self._lock:
            self._db.begin()
            try:
                self._db.lock_key(event.sensor_id)  # another instance may hold this sensor a moment too
                found = self._db.execute(
                    "SELECT alert_id, active FROM alert_raises WHERE sensor_id = ? AND track_id = ? "
                    "AND start_timestamp = ?", key).fetchone()
                if found is None:
                    alert_id = self._new_raise(key, fired, end, peak, box, actions)
                else:
                    if box is not None:  # where the person was last seen above the threshold
                        self._db.execute("UPDATE alert_raises SET x1 = ?, y1 = ?, x2 = ?, y2 = ? WHERE sensor_id = ?"
                                         " AND track_id = ? AND start_timestamp = ?", (*box, *key))
                    alert_id, was_active = found
                    if ended and was_active:
                        self._db.execute(
                            "UPDATE alert_raises SET active = 0, end_timestamp = ?, peak_score = greatest(peak_score, ?)"
                            " WHERE sensor_id = ? AND track_id = ? AND start_timestamp = ?", (end, peak, *key))
                    else:
                        self._db.execute(
                            "UPDATE alert_raises SET peak_score = greatest(peak_score, ?)"
                            " WHERE sensor_id = ? AND track_id = ? AND start_timestamp = ?", (peak, *key))
                    self._db.execute("UPDATE alerts SET peak_score = greatest(peak_score, ?) WHERE id = ?",
                                     (peak, alert_id))
                if ended:
                    self._end_if_over(alert_id, end, actions)
                self._db.commit()
            except BaseException:
                self._db.rollback()
                raise
            row = self._alert_locked(alert_id)
        assert row is not None
        return AlertChange(row, tuple(actions))

    def _new_raise(self, key: tuple[str, int, int], fired: int, end: int | None, peak: float,
                   box: tuple[float, ...] | None, actions: list[str]) -> int:
        sensor_id, track_id, start = key
        earlier = self._db.execute(
            "SELECT id FROM alerts WHERE sensor_id = ? AND track_id = ? AND status = 'open' ORDER BY id DESC LIMIT 1",
            (sensor_id, track_id)).fetchone()
        t = now_ms()
        why = f"track {track_id} raised again before anyone acknowledged; fall score {peak:.2f}"
        moved = self._moved_fall(sensor_id, track_id, start, box, peak)
        if moved[0] is not None:
            earlier, why = moved
        elif earlier is None:
            earlier, why = self._same_person(sensor_id, track_id, start, box, peak)
        if earlier is not None:
            alert_id = earlier[0]
            self._db.execute(
                "UPDATE alerts SET repeats = repeats + 1, last_raised_timestamp = greatest(coalesce(last_raised_timestamp,"
                " 0), ?), peak_score = greatest(peak_score, ?), active = 1 WHERE id = ?", (fired, peak, alert_id))
            actions.append("repeat")
            self._audit(alert_id, "repeat", SYSTEM, why, t)
        else:
            alert_id = self._db.execute(
                "INSERT INTO alerts (sensor_id, track_id, start_timestamp, fired_timestamp, last_raised_timestamp,"
                " end_timestamp, peak_score, active, created_at) VALUES (?, ?, ?, ?, ?, NULL, ?, 1, ?) RETURNING id",
                (*key, fired, fired, peak, t)).fetchone()[0]
            actions.append("raised")
            self._audit(alert_id, "raised", SYSTEM, f"track {track_id}, fall score {peak:.2f}", t)
        self._db.execute(
            "INSERT INTO alert_raises (sensor_id, track_id, start_timestamp, fired_timestamp, end_timestamp,"
            " peak_score, active, alert_id, x1, y1, x2, y2, instance) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (*key, fired, end, peak, int(end is None), alert_id, *(box if box is not None else (None,) * 4),
             self.instance))
        return alert_id

    def _moved_fall(self, sensor_id: str, track_id: int, start: int, box: tuple[float, ...] | None,
                    peak: float) -> tuple[tuple[int] | None, str]:
        """The alert of a fall that *another instance* raised on ``sensor_id`` and that a new
        raise here continues, whatever its status, and the audit trail's note; ``(None, "")``
        when there is none. Call with the lock held, in a transaction.

        The sensor moved (its instance died, or handed it over) and its window restarted here,
        so the person still down raises again under a new track: the same fall, not a new one.
        The other instance's raise is still ongoing (nobody is left to end it) or ended no more
        than the :class:`FoldRule`'s ``seconds`` before this run began, and its person was last
        seen no more than ``distance_px`` from this raise's box. Its ongoing raises of the
        sensor end here: this instance follows the fall from now on."""
        if box is None or not self.instance:
            return None, ""
        since = start - int((self.fold.seconds or 0.0) * 1000)
        rows = self._db.execute(
            "SELECT r.alert_id, r.track_id, r.instance, r.active, r.end_timestamp, r.x1, r.y1, r.x2, r.y2"
            " FROM alert_raises r JOIN alerts a ON a.id = r.alert_id WHERE r.sensor_id = ? AND r.instance != ?"
            " AND r.x1 IS NOT NULL AND (r.active = 1 OR r.end_timestamp >= ?)"
            " ORDER BY a.id DESC, r.fired_timestamp DESC", (sensor_id, self.instance, since)).fetchall()
        for alert_id, other, instance, active, end, *other_box in rows:
            gap = box_gap(box, other_box)
            if gap > self.fold.distance_px:
                continue
            self._db.execute(
                "UPDATE alert_raises SET active = 0, end_timestamp = greatest(fired_timestamp, ?)"
                " WHERE alert_id = ? AND sensor_id = ? AND instance != ? AND active = 1",
                (start, alert_id, sensor_id, self.instance))
            when = "still down" if active else f"last seen {max(0, start - end) / 1000:.0f} s before"
            return (alert_id,), (f"the sensor moved from instance {instance or '?'} to {self.instance}: track "
                                 f"{track_id} raised {gap:.1f} px from its track {other} ({when}), the same fall, "
                                 f"continued; fall score {peak:.2f}")
        return None, ""

    def _same_person(self, sensor_id: str, track_id: int, start: int, box: tuple[float, ...] | None,
                     peak: float) -> tuple[tuple[int] | None, str]:
        """The newest open alert of ``sensor_id`` with a raise of another track that the
        :class:`FoldRule` takes for the same person as a new raise (``box``, run begun at
        ``start``), and the audit trail's note; ``(None, "")`` when there is none. Call with the
        lock held."""
        if box is None or self.fold.seconds is None:
            return None, ""
        rows = self._db.execute(
            "SELECT r.alert_id, r.track_id, r.active, r.end_timestamp, r.x1, r.y1, r.x2, r.y2 FROM alert_raises r"
            " JOIN alerts a ON a.id = r.alert_id WHERE a.sensor_id = ? AND a.status = 'open' AND r.track_id != ?"
            " AND r.x1 IS NOT NULL AND (r.active = 1 OR r.end_timestamp >= ?) ORDER BY a.id DESC, r.fired_timestamp DESC",
            (sensor_id, track_id, start - int(self.fold.seconds * 1000))).fetchall()
        for alert_id, other, active, end, *other_box in rows:
            gap = box_gap(box, other_box)
            if gap <= self.fold.distance_px:
                when = "still down" if active else f"last seen {max(0, start - end) / 1000:.0f} s before"
                return (alert_id,), (f"track {track_id} raised {gap:.1f} px from track {other} ({when}): the same "
                                     f"person under a new track id, folded; fall score {peak:.2f}")
        return None, ""

    def _end_if_over(self, alert_id: int, end: int | None, actions: list[str], note: str = "") -> None:
        """Ends the alert when none of its raises goes on; call with the lock held."""
        still = self._db.execute("SELECT 1 FROM alert_raises WHERE alert_id = ? AND active = 1 LIMIT 1",
                                 (alert_id,)).fetchone()
        if still is not None:
            return
        cur = self._db.execute(
            "UPDATE alerts SET active = 0, end_timestamp = greatest(coalesce(?, fired_timestamp), coalesce((SELECT"
            " max(end_timestamp) FROM alert_raises WHERE alert_id = ?), 0)) WHERE id = ? AND active = 1",
            (end, alert_id, alert_id))
        if cur.rowcount:
            actions.append("ended")
            self._audit(alert_id, "ended", SYSTEM, note)

    def end_all_active(self, sensor_ids: list[str] | None = None, why: str = "") -> list[dict[str, Any]]:
        """Ongoing alerts whose model state is gone (at start: from before a stop; after a worker
        died: of its sensors) cannot be followed any more: they end (their status is kept; the
        audit trail says ``why``). ``sensor_ids`` None: every sensor's. Returns them, ended."""
        where, args = "active = 1 AND instance = ?", (self.instance,)
        if sensor_ids is not None:
            if not sensor_ids:
                return []
            where += f" AND sensor_id IN ({', '.join('?' * len(sensor_ids))})"
            args += tuple(sensor_ids)
        return self._end_raises(where, args, why)

    def end_raises_of_others(self, sensor_id: str, why: str) -> list[dict[str, Any]]:
        """Ends the ongoing raises of ``sensor_id`` that other instances wrote: it moved here,
        and no fall was raised again where they left it (nobody else would ever end them).
        Returns the alerts that ended with them."""
        return self._end_raises("active = 1 AND sensor_id = ? AND instance != ?", (sensor_id, self.instance), why)

    def _end_raises(self, where: str, args: tuple, why: str) -> list[dict[str, Any]]:
        """Ends the raises matching ``where``, then each of their alerts that has no ongoing
        raise left (audit trail: ``why``); returns those alerts."""
        with self._lock:
            self._db.begin()
            try:
                ids = [r[0] for r in self._db.execute(
                    f"SELECT DISTINCT alert_id FROM alert_raises WHERE {where} ORDER BY alert_id", args).fetchall()]
                for alert_id in ids:
                    self._db.execute("UPDATE alert_raises SET active = 0, end_timestamp = coalesce(end_timestamp,"
                                     f" fired_timestamp) WHERE alert_id = ? AND {where}", (alert_id, *args))
                    self._end_if_over(alert_id, None, [], why)
                self._db.commit()
            except BaseException:
                self._db.rollback()
                raise
            rows = [r for r in (self._alert_locked(i) for i in ids) if r is not None]
        return [r for r in rows if r["state"] == "ended"]

    def _alert_locked(self, alert_id: int) -> dict[str, Any] | None:
        rows = self._rows_locked(_ALERT_SELECT + " WHERE a.id = ?", (int(alert_id),))
        return _alert_row(rows[0]) if rows else None

    def alert(self, alert_id: int) -> dict[str, Any] | None:
        with self._lock:
            return self._alert_locked(alert_id)

    def alerts(self, status: str = "all", state: str = "all", limit: int = 100,
               sensor_id: str | None = None) -> list[dict[str, Any]]:
        """Alerts, newest first.

        Args:
            status: one of :data:`ALERT_STATUSES`, ``"unresolved"`` or ``"all"``.
            state: one of :data:`ALERT_STATES` or ``"all"``.
            limit: at most this many.
            sensor_id: only this sensor's.

        Raises:
            ValueError: an unknown status or state.
        """
        where, args = [], []
        if status == "unresolved":
            where.append("a.status != 'resolved'")
        elif status != "all":
            if status not in ALERT_STATUSES:
                raise ValueError(f"status must be one of {', '.join(ALERT_STATUSES)}, unresolved or all; "
                                 f"got {status!r}")
            where.append("a.status = ?")
            args.append(status)
        if state != "all":
            if state not in ALERT_STATES:
                raise ValueError(f"state must be one of {', '.join(ALERT_STATES)} or all; got {state!r}")
            where.append("a.active = ?")
            args.append(int(state == "ongoing"))
        if sensor_id is not None:
            where.append("a.sensor_id = ?")
            args.append(sensor_id)
        sql = _ALERT_SELECT + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY a.id DESC LIMIT ?"
        return [_alert_row(r) for r in self._rows(sql, (*args, int(limit)))]

    def raises(self, sensor_id: str | None = None, alert_id: int | None = None) -> list[dict[str, Any]]:
        """The raises (one per fall monitor alert) behind the alerts, oldest first: ``sensor_id,
        track_id, start_timestamp, fired_timestamp, end_timestamp, peak_score, active, alert_id,
        box`` (``[x1, y1, x2, y2]`` pixels where the person was last seen above the threshold, or None),
        ``instance`` (the service that raised it; "" on one machine)."""
        where, args = [], []
        if sensor_id is not None:
            where.append("sensor_id = ?")
            args.append(sensor_id)
        if alert_id is not None:
            where.append("alert_id = ?")
            args.append(int(alert_id))
        sql = ("SELECT sensor_id, track_id, start_timestamp, fired_timestamp, end_timestamp, peak_score, active,"
               " alert_id, x1, y1, x2, y2, instance FROM alert_raises" + (" WHERE " + " AND ".join(where) if where else "")
               + " ORDER BY fired_timestamp, sensor_id, track_id")
        out = []
        for r in self._rows(sql, tuple(args)):
            box = [r.pop(k) for k in ("x1", "y1", "x2", "y2")]
            out.append(dict(r, active=bool(r["active"]), box=None if box[0] is None else box))
        return out

    def count_alerts(self) -> dict[str, int]:
        """Alerts per status, and ``ongoing``: those whose person is still down."""
        rows = self._rows("SELECT status, count(*) AS n, sum(active) AS ongoing FROM alerts GROUP BY status")
        out = {s: 0 for s in ALERT_STATUSES}
        out.update({r["status"]: r["n"] for r in rows})
        out["ongoing"] = sum(r["ongoing"] or 0 for r in rows)
        return out

    def open_alerts_by_sensor(self) -> dict[str, int]:
        """Sensor id -> alerts nobody acknowledged yet (status ``open``)."""
        rows = self._rows("SELECT sensor_id, count(*) AS n FROM alerts WHERE status = 'open' GROUP BY sensor_id")
        return {r["sensor_id"]: r["n"] for r in rows}

    def alerts_summary(self) -> list[dict[str, Any]]:
        """Unresolved alerts grouped per room (the sensor id where no room is set), rooms with the
        most unacknowledged first: ``room, count, unacknowledged, ongoing, sensor_ids, residents,
        alert_ids`` (newest first), ``oldest_raised_ms``."""
        rooms: dict[str, dict[str, Any]] = {}
        for a in self.alerts("unresolved", limit=100_000):
            r = rooms.setdefault(a["room"], {"room": a["room"], "count": 0, "unacknowledged": 0, "ongoing": 0,
                                             "sensor_ids": [], "residents": [], "alert_ids": [],
                                             "oldest_raised_ms": a["raised_ms"]})
            r["count"] += 1
            r["unacknowledged"] += a["status"] == "open"
            r["ongoing"] += a["state"] == "ongoing"
            r["alert_ids"].append(a["id"])
            r["oldest_raised_ms"] = min(r["oldest_raised_ms"], a["raised_ms"])
            if a["sensor_id"] not in r["sensor_ids"]:
                r["sensor_ids"].append(a["sensor_id"])
            if a["resident"] and a["resident"] not in r["residents"]:
                r["residents"].append(a["resident"])
        return sorted(rooms.values(), key=lambda r: (-r["unacknowledged"], -r["ongoing"], r["oldest_raised_ms"]))

    def set_alert_status(self, alert_id: int, status: str, who: str, note: str = "",
                         confirm_ongoing: bool = False) -> dict[str, Any] | None:
        """Acknowledges or resolves an alert (``who``: the person) and records it in the audit
        trail. Resolving an unacknowledged alert acknowledges it too. None if there is no such alert.

        Raises:
            AlertIsOngoing: resolving an alert whose person is still down, without
                ``confirm_ongoing`` (nothing is changed).
        """
        if status not in ("acknowledged", "resolved"):
            raise ValueError(f"an alert can be acknowledged or resolved, not {status!r}")
        t = now_ms()
        with self._lock:
            found = self._db.execute("SELECT active FROM alerts WHERE id = ?", (int(alert_id),)).fetchone()
            if found is None:
                return None
            if status == "resolved" and found[0] and not confirm_ongoing:
                raise AlertIsOngoing(f"alert {alert_id}: the person is still down (the alert is ongoing); "
                                     "resolve it only when someone is with them: send \"confirm_ongoing\": true")
            self._db.begin()
            try:
                if status == "acknowledged":
                    self._db.execute(
                        "UPDATE alerts SET status = CASE WHEN status = 'resolved' THEN status ELSE 'acknowledged' END,"
                        " acknowledged_by = coalesce(acknowledged_by, ?), acknowledged_at = coalesce(acknowledged_at,"
                        " ?) WHERE id = ?", (who, t, int(alert_id)))
                else:
                    self._db.execute(
                        "UPDATE alerts SET status = 'resolved', resolved_by = coalesce(resolved_by, ?),"
                        " resolved_at = coalesce(resolved_at, ?), acknowledged_by = coalesce(acknowledged_by, ?),"
                        " acknowledged_at = coalesce(acknowledged_at, ?) WHERE id = ?", (who, t, who, t, int(alert_id)))
                self._audit(alert_id, status, who, note, t)
                self._db.commit()
            except BaseException:
                self._db.rollback()
                raise
            return self._alert_locked(alert_id)

    def alert_events(self, alert_id: int) -> list[dict[str, Any]]:
        """The alert's audit trail, oldest first: ``alert_id, action, who, at`` (ms), ``note``."""
        return self._rows("SELECT alert_id, action, who, at, note FROM alert_events WHERE alert_id = ? ORDER BY id",
                          (int(alert_id),))

    # -- feedback

    def add_feedback(self, alert_id: int, feedback: Feedback) -> dict[str, Any] | None:
        """Stores an operator's answer to "was this a fall?" (the newest answer counts) and
        records it in the audit trail; None if there is no such alert."""
        t = now_ms()
        with self._lock:
            if self._db.execute("SELECT 1 FROM alerts WHERE id = ?", (int(alert_id),)).fetchone() is None:
                return None
            self._db.begin()
            try:
                self._db.execute("INSERT INTO alert_feedback (alert_id, answer, reason, who, note, at)"
                                 " VALUES (?, ?, ?, ?, ?, ?)",
                                 (int(alert_id), feedback.answer, feedback.reason, feedback.who, feedback.note, t))
                said = feedback.answer + (f" ({feedback.reason})" if feedback.reason else "")
                self._audit(alert_id, "feedback", feedback.who, said + (f": {feedback.note}" if feedback.note else ""),
                            t)
                self._db.commit()
            except BaseException:
                self._db.rollback()
                raise
            return self._alert_locked(alert_id)

    def alerts_with_feedback(self) -> list[dict[str, Any]]:
        """Alerts whose newest feedback exists and whose clip is kept, oldest first, with the
        clip's file name (``clip``)."""
        rows = self._rows(_ALERT_SELECT + " WHERE f.answer IS NOT NULL AND a.clip IS NOT NULL ORDER BY a.id")
        return [dict(_alert_row(r), clip=r["clip"]) for r in rows]

    # -- clips of alerts (files in <data_dir>/clips)

    def set_clip(self, alert_id: int, name: str | None) -> None:
        """Records the alert's clip file (None: it has none, e.g. deleted)."""
        with self._lock:
            self._db.execute("UPDATE alerts SET clip = ? WHERE id = ?", (name, int(alert_id)))

    def clip_of(self, alert_id: int) -> str | None:
        rows = self._rows("SELECT clip FROM alerts WHERE id = ?", (int(alert_id),))
        return rows[0]["clip"] if rows else None

    def clips_raised_before(self, before_ms: int) -> list[tuple[int, str]]:
        """``(alert id, clip)`` of alerts raised before ``before_ms`` that still have a clip."""
        rows = self._rows("SELECT id, clip FROM alerts WHERE clip IS NOT NULL AND fired_timestamp < ?",
                          (int(before_ms),))
        return [(r["id"], r["clip"]) for r in rows]

    # -- sensor details (room, resident, bed)

    def set_sensor_info(self, sensor_id: str, info: SensorInfo) -> dict[str, Any]:
        """Stores (replaces) a sensor's details; returns them as :meth:`sensor_info` does."""
        with self._lock:
            self._db.execute(
                "INSERT INTO sensors_info (sensor_id, room, resident, bed_label, notes, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (sensor_id) DO UPDATE SET room = excluded.room,"
                " resident = excluded.resident, bed_label = excluded.bed_label, notes = excluded.notes,"
                " updated_at = excluded.updated_at",
                (sensor_id, info.room, info.resident, info.bed_label, info.notes, now_ms()))
        return self.sensor_info(sensor_id)

    def sensor_info(self, sensor_id: str) -> dict[str, Any]:
        """``{sensor_id, room, resident, bed_label, notes, updated_at}``; empty strings and
        ``updated_at`` None for a sensor nobody described."""
        rows = self._rows("SELECT sensor_id, room, resident, bed_label, notes, updated_at FROM sensors_info"
                          " WHERE sensor_id = ?", (sensor_id,))
        if rows:
            return rows[0]
        return {"sensor_id": sensor_id, "room": "", "resident": "", "bed_label": "", "notes": "", "updated_at": None}

    def all_sensor_info(self) -> dict[str, dict[str, Any]]:
        """Sensor id -> its details, for every described sensor."""
        rows = self._rows("SELECT sensor_id, room, resident, bed_label, notes, updated_at FROM sensors_info"
                          " ORDER BY sensor_id")
        return {r["sensor_id"]: r for r in rows}

# -- predictions

    def add_predictions(self, rows: list[tuple]) -> dict[str, str]:
        """Rows of ``(sensor_id, timestamp, frame_idx, track_id, action, score, fall_score, x1, y1, x2, y2)``.

        One transaction per sensor: a row that cannot be stored loses that sensor's rows of this
        call, never another sensor's. Returns sensor id -> why its rows were not stored."""
        by_sensor: dict[str, list[tuple]] = {}
        t = now_ms()
        for r in rows:
            by_sensor.setdefault(r[0], []).append((*r, t))
        failed: dict[str, str] = {}
        with self._lock:
            for sensor, sensor_rows in by_sensor.items():
                try:
                    self._db.begin()
                    self._db.executemany(
                        "INSERT INTO predictions (sensor_id, timestamp, frame_idx, track_id, action, score,"
                        " fall_score, x1, y1, x2, y2, stored_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        sensor_rows)
                    self._db.commit()
                except (*self._db.Error, OverflowError, ValueError, TypeError) as e:
                    self._db.rollback()
                    failed[sensor] = f"sensor {sensor}: {len(sensor_rows)} prediction(s) could not be stored: {e}"
        return failed

    def timeline(self, sensor_id: str, since_ms: int, limit: int = 20_000) -> list[dict[str, Any]]:
        return self._rows(
            "SELECT timestamp, track_id, action, score, fall_score FROM predictions"
            " WHERE sensor_id = ? AND timestamp >= ? ORDER BY timestamp LIMIT ?",
            (sensor_id, int(since_ms), int(limit)))

    def count_predictions(self, sensor_id: str | None = None) -> int:
        if sensor_id is None:
            return self._rows("SELECT count(*) AS n FROM predictions")[0]["n"]
        return self._rows("SELECT count(*) AS n FROM predictions WHERE sensor_id = ?", (sensor_id,))[0]["n"]

    def purge_predictions(self, older_than_ms: int) -> int:
        """Deletes predictions stored before ``older_than_ms``; alerts are never deleted."""
        with self._lock:
            return self._db.execute("DELETE FROM predictions WHERE stored_at < ?", (int(older_than_ms),)).rowcount

    # -- room layouts (zones) per sensor

    def set_zones(self, sensor_id: str, layout: dict[str, Any]) -> None:
        """Stores (replaces) a sensor's layout, the JSON form of a checked ``RoomLayout``."""
        with self._lock:
            self._db.execute(
                "INSERT INTO sensor_zones (sensor_id, layout, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (sensor_id) DO UPDATE SET layout = excluded.layout, updated_at = excluded.updated_at",
                (sensor_id, json.dumps(layout), now_ms()))

    def zones(self, sensor_id: str) -> dict[str, Any] | None:
        """``{"sensor_id", "layout", "updated_at"}`` of a sensor, or None."""
        rows = self._rows("SELECT sensor_id, layout, updated_at FROM sensor_zones WHERE sensor_id = ?", (sensor_id,))
        return dict(rows[0], layout=json.loads(rows[0]["layout"])) if rows else None

    def all_zones(self) -> dict[str, dict[str, Any]]:
        """Sensor id -> ``{"sensor_id", "layout", "updated_at"}`` of every sensor with zones."""
        rows = self._rows("SELECT sensor_id, layout, updated_at FROM sensor_zones ORDER BY sensor_id")
        return {r["sensor_id"]: dict(r, layout=json.loads(r["layout"])) for r in rows}

    def delete_zones(self, sensor_id: str) -> bool:
        """Forgets a sensor's zones; False when it had none."""
        with self._lock:
            return self._db.execute("DELETE FROM sensor_zones WHERE sensor_id = ?", (sensor_id,)).rowcount > 0
