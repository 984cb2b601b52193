"""The two databases the service's store runs on, behind one small interface.

- **SQLite** (the default): one file in the data directory, for one machine.
- **PostgreSQL** (``store_url=postgresql://...``): one database shared by several ``serve``
  instances (README, "More than one machine"); needs the ``cluster`` extra (psycopg 3).

:class:`~thermal_action.serve.store.Store` writes its SQL once, in the dialect both accept:
``?`` placeholders (turned into psycopg's ``%s`` here), ``greatest(a, b)`` for the larger of
two values (PostgreSQL's; SQLite gets it as a function registered on the connection),
``INSERT ... RETURNING id`` and ``ON CONFLICT``. Transactions are explicit (:meth:`begin`,
:meth:`commit`, :meth:`rollback`) on a connection in autocommit mode, as the store always did
with SQLite. The schema version: SQLite's ``PRAGMA user_version``; PostgreSQL's one-row table
``thermal_action_schema``.

Several instances writing one PostgreSQL database: :meth:`lock_key` takes a transaction-scoped
advisory lock (``pg_advisory_xact_lock``), so two transactions about the same sensor never
interleave, and :meth:`migration_lock` keeps two instances starting at once from migrating
the schema twice. SQLite's ``BEGIN IMMEDIATE`` already locks the whole file for the writer.
"""

from __future__ import annotations

import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

from thermal_action.errors import StoreError

#: URL schemes that select PostgreSQL.
POSTGRES_SCHEMES = ("postgresql://", "postgres://")
#: The advisory lock key that serialises schema migrations (any constant shared by all instances).
MIGRATION_LOCK = 0x7468_6D61  # "thma"


def is_postgres_url(target: str | Path) -> bool:
    """Whether ``target`` names a PostgreSQL database rather than a SQLite file."""
    return isinstance(target, str) and target.startswith(POSTGRES_SCHEMES)


def _greatest(*values: Any) -> Any:
    """PostgreSQL's ``greatest``: the largest non-NULL value (NULL when all are)."""
    present = [v for v in values if v is not None]
    return max(present) if present else None


class SqliteDatabase:
    """One SQLite file, WAL journal, one connection shared by the store's threads (under its lock).

    Args:
        path: the database file (its directory is created).
    """

    dialect = "sqlite"
    Error: tuple[type[BaseException], ...] = (sqlite3.Error,)

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.where = str(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        try:
            self._db.create_function("greatest", -1, _greatest, deterministic=True)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=5000")  # another process (feedback export) may hold a write lock
        except BaseException:
            self._db.close()
            raise

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Any:
        return self._db.execute(sql, tuple(args))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._db.executemany(sql, rows)

    def begin(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")  # the write lock now: no deadlock between two upgrading readers

    def commit(self) -> None:
        self._db.execute("COMMIT")

    def rollback(self) -> None:
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")

    @property
    def in_transaction(self) -> bool:
        return self._db.in_transaction

    def lock_key(self, key: str) -> None:
        """Nothing to do: ``BEGIN IMMEDIATE`` holds the whole file."""

    @contextmanager
    def migration_lock(self) -> Iterator[None]:
        yield  # one service per data directory (the data directory lock)

    def schema_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def set_schema_version(self, version: int) -> None:
        self._db.execute(f"PRAGMA user_version = {int(version)}")

    def close(self) -> None:
        self._db.close()


class PostgresDatabase:
    """One PostgreSQL connection (psycopg 3, autocommit, explicit transactions).

    Args:
        url: ``postgresql://user[:password]@host[:port]/dbname`` (libpq's URL; ``?host=/dir``
            for a unix socket directory).

    Raises:
        StoreError: the database cannot be reached.
        ModuleNotFoundError: psycopg is missing (the ``cluster`` extra).
    """

    dialect = "postgresql"

    def __init__(self, url: str):
        import psycopg  # the cluster extra; the CLI names it when missing
        self._psycopg = psycopg
        self.Error = (psycopg.Error,)
        self.where = _redacted(url)
        try:
            self._db = psycopg.connect(url, autocommit=True, connect_timeout=10)
        except psycopg.Error as e:
            raise StoreError(f"cannot connect to the PostgreSQL store {self.where}: {e}") from e
        self._sql: dict[str, str] = {}
        self._guard = threading.Lock()

    def _translate(self, sql: str) -> str:
        out = self._sql.get(sql)
        if out is None:  # the store's SQL has no '%' and no '?' inside string literals
            out = self._sql[sql] = sql.replace("?", "%s")
        return out

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Any:
        return self._db.execute(self._translate(sql), tuple(args) if args else None)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self._db.cursor() as cur:
            cur.executemany(self._translate(sql), rows)

    def begin(self) -> None:
        self._db.execute("BEGIN")

    def commit(self) -> None:
        self._db.execute("COMMIT")

    def rollback(self) -> None:
        if self.in_transaction:
            self._db.execute("ROLLBACK")

    @property
    def in_transaction(self) -> bool:
        return self._db.info.transaction_status != self._psycopg.pq.TransactionStatus.IDLE

    def lock_key(self, key: str) -> None:
        """Serialises this transaction with every other one that locks ``key`` (until it ends)."""
        self._db.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (key,))

    @contextmanager
    def migration_lock(self) -> Iterator[None]:
        self._db.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
        try:
            yield
        finally:
            self._db.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))

    def schema_version(self) -> int:
        self._db.execute("CREATE TABLE IF NOT EXISTS thermal_action_schema (version INTEGER NOT NULL)")
        row = self._db.execute("SELECT version FROM thermal_action_schema").fetchone()
        return 0 if row is None else int(row[0])

    def set_schema_version(self, version: int) -> None:
        self._db.execute("DELETE FROM thermal_action_schema")
        self._db.execute("INSERT INTO thermal_action_schema (version) VALUES (%s)", (int(version),))

    def close(self) -> None:
        self._db.close()


def _redacted(url: str) -> str:
    """The URL without its password, for messages and logs."""
    head, sep, tail = url.partition("@")
    if not sep or ":" not in head.split("//", 1)[-1]:
        return url
    scheme, _, user = head.partition("//")
    return f"{scheme}//{user.split(':', 1)[0]}:***@{tail}"


def open_database(target: str | Path) -> SqliteDatabase | PostgresDatabase:
    """A ``postgresql://`` URL opens PostgreSQL; anything else is a SQLite file path."""
    if is_postgres_url(target):
        return PostgresDatabase(str(target))
    return SqliteDatabase(target)
