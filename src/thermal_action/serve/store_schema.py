"""The service database's schema: the migrations that build it on SQLite
(:data:`MIGRATIONS`, versioned by ``PRAGMA user_version``) and on PostgreSQL
(:data:`PG_MIGRATIONS`, the table ``thermal_action_schema``), and :func:`migrate`, which applies
the ones a database lacks, in order, each in one transaction. A database newer than this code
is refused, not guessed at. What the tables hold: :mod:`~thermal_action.serve.store`."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from thermal_action.errors import StoreError
from thermal_action.serve.store_db import PostgresDatabase, SqliteDatabase

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Migration:
    """One step of the schema: applied to a database whose ``user_version`` is below ``version``."""

    version: int
    what: str
    statements: tuple[str, ...]


MIGRATIONS = (
    Migration(1, "alerts, predictions, zones, the audit trail", (
        """CREATE TABLE IF NOT EXISTS alerts (
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
            UNIQUE (sensor_id, track_id, start_timestamp))""",
        "CREATE INDEX IF NOT EXISTS alerts_state ON alerts (state, id)",
        """CREATE TABLE IF NOT EXISTS predictions (
            sensor_id TEXT NOT NULL,
            timestamp INTEGER NOT NULL,
            frame_idx INTEGER NOT NULL,
            track_id INTEGER NOT NULL,
            action TEXT NOT NULL,
            score REAL NOT NULL,
            fall_score REAL,
            x1 REAL, y1 REAL, x2 REAL, y2 REAL,
            stored_at INTEGER NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS predictions_sensor_time ON predictions (sensor_id, timestamp)",
        """CREATE TABLE IF NOT EXISTS sensor_zones (
            sensor_id TEXT PRIMARY KEY,
            layout TEXT NOT NULL,
            updated_at INTEGER NOT NULL)""",
        """CREATE TABLE IF NOT EXISTS alert_events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            alert_id INTEGER NOT NULL REFERENCES alerts (id),
            action TEXT NOT NULL,
            who TEXT NOT NULL,
            at INTEGER NOT NULL,
            note TEXT NOT NULL DEFAULT '')""",
        "CREATE INDEX IF NOT EXISTS alert_events_alert ON alert_events (alert_id, id)",
    )),
    Migration(2, "operators: raises folded into alerts, status, sensor details, feedback, clips", (
        "ALTER TABLE alerts RENAME COLUMN state TO status",
        "DROP INDEX IF EXISTS alerts_state",
        "CREATE INDEX alerts_status ON alerts (status, id)",
        "CREATE INDEX alerts_person ON alerts (sensor_id, track_id, id)",
        "ALTER TABLE alerts ADD COLUMN repeats INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE alerts ADD COLUMN last_raised_timestamp INTEGER",
        "ALTER TABLE alerts ADD COLUMN clip TEXT",  # file name in <data_dir>/clips; NULL: none (yet, or deleted)
        "UPDATE alerts SET last_raised_timestamp = fired_timestamp",
        """CREATE TABLE alert_raises (
            sensor_id TEXT NOT NULL,
            track_id INTEGER NOT NULL,
            start_timestamp INTEGER NOT NULL,
            fired_timestamp INTEGER NOT NULL,
            end_timestamp INTEGER,
            peak_score REAL NOT NULL,
            active INTEGER NOT NULL,
            alert_id INTEGER NOT NULL REFERENCES alerts (id),
            PRIMARY KEY (sensor_id, track_id, start_timestamp))""",
        "CREATE INDEX alert_raises_alert ON alert_raises (alert_id)",
        """INSERT INTO alert_raises (sensor_id, track_id, start_timestamp, fired_timestamp, end_timestamp,
            peak_score, active, alert_id)
            SELECT sensor_id, track_id, start_timestamp, fired_timestamp, end_timestamp, peak_score, active, id
            FROM alerts""",
        """CREATE TABLE sensors_info (
            sensor_id TEXT PRIMARY KEY,
            room TEXT NOT NULL DEFAULT '',
            resident TEXT NOT NULL DEFAULT '',
            bed_label TEXT NOT NULL DEFAULT '',
            notes TEXT NOT NULL DEFAULT '',
            updated_at INTEGER NOT NULL)""",
        """CREATE TABLE alert_feedback (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            alert_id INTEGER NOT NULL REFERENCES alerts (id),
            answer TEXT NOT NULL,
            reason TEXT NOT NULL DEFAULT '',
            who TEXT NOT NULL,
            note TEXT NOT NULL DEFAULT '',
            at INTEGER NOT NULL)""",
        "CREATE INDEX alert_feedback_alert ON alert_feedback (alert_id, id)",
    )),
    Migration(3, "the person's box of each raise (folding a new track id of the same person)", (
        "ALTER TABLE alert_raises ADD COLUMN x1 REAL",  # pixels, at the raise's latest high score; NULL: unknown
        "ALTER TABLE alert_raises ADD COLUMN y1 REAL",
        "ALTER TABLE alert_raises ADD COLUMN x2 REAL",
        "ALTER TABLE alert_raises ADD COLUMN y2 REAL",
    )),
    Migration(4, "the instance that raised each raise (several serve instances on one store)", (
        "ALTER TABLE alert_raises ADD COLUMN instance TEXT NOT NULL DEFAULT ''",
    )),
)
#: PostgreSQL (a store shared by several instances) starts at the latest schema in one step;
#: a later version adds its statements to both lists.
PG_MIGRATIONS = (
    Migration(4, "alerts, raises, predictions, zones, sensor details, feedback, the audit trail", (
        """CREATE TABLE alerts (
            id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            sensor_id TEXT NOT NULL,
            track_id BIGINT NOT NULL,
            start_timestamp BIGINT NOT NULL,
            fired_timestamp BIGINT NOT NULL,
            end_timestamp BIGINT,
            peak_score DOUBLE PRECISION NOT NULL,
            active INTEGER NOT NULL DEFAULT 1,
            status TEXT NOT NULL DEFAULT 'open',
            acknowledged_by TEXT,
            acknowledged_at BIGINT,
            resolved_by TEXT,
            resolved_at BIGINT,
            created_at BIGINT NOT NULL,
            repeats INTEGER NOT NULL DEFAULT 0,
            last_raised_timestamp BIGINT,
            clip TEXT,
            UNIQUE (sensor_id, track_id, start_timestamp))""",
        "CREATE INDEX alerts_status ON alerts (status, id)",
        "CREATE INDEX alerts_person ON alerts (sensor_id, track_id, id)",
        """CREATE TABLE alert_raises (
            sensor_id TEXT NOT NULL,
            track_id BIGINT NOT NULL,
            start_timestamp BIGINT NOT NULL,
            fired_timestamp BIGINT NOT NULL,
            end_timestamp BIGINT,
            peak_score DOUBLE PRECISION NOT NULL,
            active INTEGER NOT NULL,
            alert_id BIGINT NOT NULL REFERENCES alerts (id),
            x1 DOUBLE PRECISION, y1 DOUBLE PRECISION, x2 DOUBLE PRECISION, y2 DOUBLE PRECISION,
            instance TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (sensor_id, track_id, start_timestamp))""",
        "CREATE INDEX alert_raises_alert ON alert_raises (alert_id)",
        """CREATE TABLE predictions (
            sensor_id TEXT NOT NULL,
            timestamp BIGINT NOT NULL,
            frame_idx BIGINT NOT NULL,
            track_id BIGINT NOT NULL,
            action TEXT NOT NULL,
            score DOUBLE PRECISION NOT NULL,
            fall_score DOUBLE PRECISION,
            x1 DOUBLE PRECISION, y1 DOUBLE PRECISION, x2 DOUBLE PRECISION, y2 DOUBLE PRECISION,
            stored_at BIGINT NOT NULL)""",
        "CREATE INDEX predictions_sensor_time ON predictions (sensor_id, timestamp)",
        "CREATE INDEX predictions_stored_at ON predictions (stored_at)",
        """CREATE TABLE sensor_zones (
            sensor_id TEXT PRIMARY KEY,
            layout TEXT NOT NULL,
            updated_at BIGINT NOT NULL)""",
        """CREATE TABLE alert_events (
            id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            alert_id BIGINT NOT NULL REFERENCES alerts (id),
            action TEXT NOT NULL,
            who TEXT NOT NULL,
            at BIGINT NOT NULL,
            note TEXT NOT NULL DEFAULT '')""",
        "CREATE INDEX alert_events_alert ON alert_events (alert_id, id)",
        """CREATE TABLE sensors_info (
            sensor_id TEXT PRIMARY KEY,
            room TEXT NOT NULL DEFAULT '',
            resident TEXT NOT NULL DEFAULT '',
            bed_label TEXT NOT NULL DEFAULT '',
            notes TEXT NOT NULL DEFAULT '',
            updated_at BIGINT NOT NULL)""",
        """CREATE TABLE alert_feedback (
            id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            alert_id BIGINT NOT NULL REFERENCES alerts (id),
            answer TEXT NOT NULL,
            reason TEXT NOT NULL DEFAULT '',
            who TEXT NOT NULL,
            note TEXT NOT NULL DEFAULT '',
            at BIGINT NOT NULL)""",
        "CREATE INDEX alert_feedback_alert ON alert_feedback (alert_id, id)",
    )),
)
#: The schema version this code writes.
SCHEMA_VERSION = MIGRATIONS[-1].version


def migrate(db: SqliteDatabase | PostgresDatabase, where: str) -> int:
    """Applies the migrations ``db`` lacks, in order (:data:`MIGRATIONS` for SQLite,
    :data:`PG_MIGRATIONS` for PostgreSQL); returns the version it had.

    Raises:
        StoreError: the database is newer than this code, or a migration failed (it is rolled
            back: the database stays at the last version that applied).
    """
    with db.migration_lock():  # several instances may start at once on one PostgreSQL store
        return _migrate(db, where)


def _migrate(db: SqliteDatabase | PostgresDatabase, where: str) -> int:
    version = db.schema_version()
    if version > SCHEMA_VERSION:
        raise StoreError(f"{where}: database schema version {version} is newer than this thermal-action's "
                         f"({SCHEMA_VERSION}); run a newer thermal-action, or choose another data_dir")
    for m in PG_MIGRATIONS if db.dialect == "postgresql" else MIGRATIONS:
        if m.version <= version:
            continue
        db.begin()
        try:
            for statement in m.statements:
                db.execute(statement)
            db.set_schema_version(m.version)
            db.commit()
        except db.Error as e:
            db.rollback()
            raise StoreError(f"{where}: migration {m.version} ({m.what}) failed: {e}") from e
        logger.info("%s: schema migrated to version %d (%s)", where, m.version, m.what)
    return version
