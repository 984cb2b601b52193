"""The service's SQLite database: every fall alert with its state, predictions (one per
person per ``store_every_seconds``) for the dashboard's timeline, and the room layouts
(zones) set per sensor through the API (``sensor_zones``: the layout's JSON as the API got it).

Alerts arrive as the fall monitor's immutable events
(:class:`~thermal_action.inference.alerts.AlertEvent`: "raised", then "ended";
:meth:`Store.record_alert`). An alert is raised ``open``; a person acknowledges it
(``acknowledged``, by whom and when) and resolves it (``resolved``). The alert's
``acknowledged_*`` and ``resolved_*`` columns keep the first of each; every request, a second
acknowledgement included, is one row of the audit trail ``alert_events`` (alert id, action,
who, when, note). Whether the fall itself goes on (``active``) is separate: the model says so,
a person decides the state. Everything is committed as it happens, so a restart of the service
loses no alert (WAL journal: readers never wait for the writer).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from thermal_action.inference.alerts import AlertEvent

ALERT_STATES = ("open", "acknowledged", "resolved")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sensor_id TEXT NOT NULL,
    track_id INTEGER NOT NULL,
    start_timestamp INTEGER NOT NULL,
    fired_timestamp INTEGER NOT NULL,
    end_timestamp INTEGER,
    peak_score REAL NOT NULL,
    active INTEGER NOT NULL DEFAULT 1,
    state TEXT NOT NULL DEFAULT 'open',
    acknowledged_by TEXT,
    acknowledged_at INTEGER,
    resolved_by TEXT,
    resolved_at INTEGER,
    created_at INTEGER NOT NULL,
    UNIQUE (sensor_id, track_id, start_timestamp)
);
CREATE INDEX IF NOT EXISTS alerts_state ON alerts (state, id);
CREATE TABLE IF NOT EXISTS predictions (
    sensor_id TEXT NOT NULL,
    timestamp INTEGER NOT NULL,
    frame_idx INTEGER NOT NULL,
    track_id INTEGER NOT NULL,
    action TEXT NOT NULL,
    score REAL NOT NULL,
    fall_score REAL,
    x1 REAL, y1 REAL, x2 REAL, y2 REAL,
    stored_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS predictions_sensor_time ON predictions (sensor_id, timestamp);
CREATE TABLE IF NOT EXISTS sensor_zones (
    sensor_id TEXT PRIMARY KEY,
    layout TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS alert_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id INTEGER NOT NULL REFERENCES alerts (id),
    action TEXT NOT NULL,
    who TEXT NOT NULL,
    at INTEGER NOT NULL,
    note TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS alert_events_alert ON alert_events (alert_id, id);
"""

_ALERT_COLUMNS = ("id", "sensor_id", "track_id", "state", "active", "start_timestamp", "fired_timestamp",
                  "end_timestamp", "peak_score", "acknowledged_by", "acknowledged_at", "resolved_by",
                  "resolved_at", "created_at")


def now_ms() -> int:
    return int(time.time() * 1000)


class Store:
    """One SQLite file, shared by the service's threads (one connection behind a lock).

    Args:
        path: the database file (created with its tables if missing).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _rows(self, sql: str, args: tuple = ()) -> list[dict[str, Any]]:
        with self._lock:
            cur = self._db.execute(sql, args)
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row)) for row in cur.fetchall()]

    # -- alerts

    @staticmethod
    def _alert(row: dict[str, Any]) -> dict[str, Any]:
        row["active"] = bool(row["active"])
        return row

    def record_alert(self, event: AlertEvent) -> tuple[dict[str, Any], bool]:
        """Stores one alert event; returns the alert and whether it is new.

        An alert is one row per ``(sensor, track, start timestamp)``. "raised" inserts it
        ``open`` and ``active`` (the same alert raised again only raises its peak); "ended"
        marks the fall over (``active`` false, its end and peak): the state stays what people
        made it. An "ended" whose "raised" never arrived inserts the whole alert, already
        over: every event carries all of its alert.
        """
        ended = not event.active
        key = (event.sensor_id, int(event.track_id), int(event.start_timestamp))
        with self._lock:
            found = self._db.execute(
                "SELECT id FROM alerts WHERE sensor_id = ? AND track_id = ? AND start_timestamp = ?", key).fetchone()
            if found is None:
                self._db.execute(
                    "INSERT INTO alerts (sensor_id, track_id, start_timestamp, fired_timestamp, end_timestamp,"
                    " peak_score, active, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (*key, int(event.fired_timestamp), int(event.end_timestamp) if ended else None,
                     float(event.peak_score), int(not ended), now_ms()))
            elif ended:
                self._db.execute(
                    "UPDATE alerts SET active = 0, end_timestamp = ?, peak_score = max(peak_score, ?) WHERE id = ?",
                    (int(event.end_timestamp), float(event.peak_score), found[0]))
            else:
                self._db.execute("UPDATE alerts SET peak_score = max(peak_score, ?) WHERE id = ?",
                                 (float(event.peak_score), found[0]))
        return self.find_alert(*key), found is None

    def end_all_active(self, sensor_ids: list[str] | None = None) -> int:
        """Alerts still ``active`` whose model state is gone (at start: from before a stop; after
        a worker died: of its sensors) cannot be followed any more: they end (their state is
        kept). ``sensor_ids`` None: every sensor's. Returns how many."""
        where, args = "active = 1", ()
        if sensor_ids is not None:
            if not sensor_ids:
                return 0
            where += f" AND sensor_id IN ({', '.join('?' * len(sensor_ids))})"
            args = tuple(sensor_ids)
        with self._lock:
            return self._db.execute(
                "UPDATE alerts SET active = 0, end_timestamp = coalesce(end_timestamp, fired_timestamp)"
                f" WHERE {where}", args).rowcount

    def find_alert(self, sensor_id: str, track_id: int, start_timestamp: int) -> dict[str, Any]:
        rows = self._rows(f"SELECT {', '.join(_ALERT_COLUMNS)} FROM alerts"
                          " WHERE sensor_id = ? AND track_id = ? AND start_timestamp = ?",
                          (sensor_id, int(track_id), int(start_timestamp)))
        return self._alert(rows[0])

    def alert(self, alert_id: int) -> dict[str, Any] | None:
        rows = self._rows(f"SELECT {', '.join(_ALERT_COLUMNS)} FROM alerts WHERE id = ?", (int(alert_id),))
        return self._alert(rows[0]) if rows else None

    def alerts(self, state: str = "all", limit: int = 100, sensor_id: str | None = None) -> list[dict[str, Any]]:
        """Alerts, newest first; ``state`` one of :data:`ALERT_STATES`, ``"unresolved"`` or ``"all"``."""
        where, args = [], []
        if state == "unresolved":
            where.append("state != 'resolved'")
        elif state != "all":
            if state not in ALERT_STATES:
                raise ValueError(f"state must be one of {', '.join(ALERT_STATES)}, unresolved or all; got {state!r}")
            where.append("state = ?")
            args.append(state)
        if sensor_id is not None:
            where.append("sensor_id = ?")
            args.append(sensor_id)
        sql = f"SELECT {', '.join(_ALERT_COLUMNS)} FROM alerts"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT ?"
        return [self._alert(r) for r in self._rows(sql, (*args, int(limit)))]

    def count_alerts(self) -> dict[str, int]:
        rows = self._rows("SELECT state, count(*) AS n FROM alerts GROUP BY state")
        out = {s: 0 for s in ALERT_STATES}
        out.update({r["state"]: r["n"] for r in rows})
        return out

    def open_alerts_by_sensor(self) -> dict[str, int]:
        """Sensor id -> alerts in state ``open``."""
        rows = self._rows("SELECT sensor_id, count(*) AS n FROM alerts WHERE state = 'open' GROUP BY sensor_id")
        return {r["sensor_id"]: r["n"] for r in rows}

    def set_alert_state(self, alert_id: int, state: str, by: str, note: str = "") -> dict[str, Any] | None:
        """Acknowledges or resolves an alert (``by``: who) and records it in ``alert_events``.
        Resolving an unacknowledged alert acknowledges it too. None if there is no such alert."""
        if state not in ("acknowledged", "resolved"):
            raise ValueError(f"an alert can be acknowledged or resolved, not {state!r}")
        t = now_ms()
        with self._lock:
            if state == "acknowledged":
                cur = self._db.execute(
                    "UPDATE alerts SET state = CASE WHEN state = 'resolved' THEN state ELSE 'acknowledged' END,"
                    " acknowledged_by = coalesce(acknowledged_by, ?), acknowledged_at = coalesce(acknowledged_at, ?)"
                    " WHERE id = ?", (by, t, int(alert_id)))
            else:
                cur = self._db.execute(
                    "UPDATE alerts SET state = 'resolved', resolved_by = coalesce(resolved_by, ?),"
                    " resolved_at = coalesce(resolved_at, ?), acknowledged_by = coalesce(acknowledged_by, ?),"
                    " acknowledged_at = coalesce(acknowledged_at, ?) WHERE id = ?", (by, t, by, t, int(alert_id)))
            if cur.rowcount == 0:
                return None
            self._db.execute("INSERT INTO alert_events (alert_id, action, who, at, note) VALUES (?, ?, ?, ?, ?)",
                             (int(alert_id), state, by, t, note))
        return self.alert(alert_id)

    def alert_events(self, alert_id: int) -> list[dict[str, Any]]:
        """The alert's audit trail, oldest first: ``alert_id, action, who, at`` (ms), ``note``."""
        return self._rows("SELECT alert_id, action, who, at, note FROM alert_events WHERE alert_id = ? ORDER BY id",
                          (int(alert_id),))

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
                    self._db.execute("BEGIN")
                    self._db.executemany(
                        "INSERT INTO predictions (sensor_id, timestamp, frame_idx, track_id, action, score,"
                        " fall_score, x1, y1, x2, y2, stored_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        sensor_rows)
                    self._db.execute("COMMIT")
                except (sqlite3.Error, OverflowError, ValueError, TypeError) as e:
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
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
