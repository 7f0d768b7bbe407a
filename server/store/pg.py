"""PostgreSQL store (``[store] url = "postgresql://..."``): the same repository mixins
as SQLite over a psycopg 3 connection pool, for several nodes sharing one database.

Why a synchronous pool behind the same role Protocols, not an async interface: every
caller of the store today is synchronous -- request handlers call it directly on the
event loop for short lookups, the audit trail and webhook log write on their own
thread, gallery builds run in the worker pool. Those callers and the SQLite default
stay exactly as they are; a pool of connections (thread-safe, one connection per
concurrent caller) serves the loop and the threads alike. A loopback or LAN round
trip costs about what an SQLite call with its lock costs (``bench/store_latency.py``),
and the heavy paths (audit, galleries) already run off the loop. An async store
would double every call site for no gain the measurements show; docs/scale.md says
when that changes.

Writes: every transaction first takes one cluster-wide advisory lock, which gives
PostgreSQL the single-writer semantics of SQLite's ``BEGIN IMMEDIATE`` that the
shared mixins' check-then-insert steps (unique e-mail, unique room link name) rely
on; reads take no lock. Writes are short (one method, a few statements) and rare
next to reads, so one writer at a time is not the limit (docs/scale.md).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from .crypto import Sealer
from .pg_migrations import PG_MIGRATIONS
from .sql import POSTGRES, Conn, Cursor, Row, StoreBase, split_statements
from .sqlite_accounts import AccountsMixin
from .sqlite_activity import ActivityMixin
from .sqlite_people import PeopleMixin
from .sqlite_rooms import RoomsMixin

# pg_advisory_xact_lock keys: any two constants unlikely to collide with other apps.
WRITE_LOCK = 0x76_67_77_72  # "vgwr"
MIGRATE_LOCK = 0x76_67_6D_67  # "vgmg"
# A connection idle longer than this is checked before it is lent (PgBase._check).
IDLE_CHECK_S = 2.0


class PgRow:
    """A row by column name or position, like ``sqlite3.Row``."""

    __slots__ = ("_index", "_values")

    def __init__(self, values: Sequence[Any], index: dict[str, int]) -> None:
        self._values = values
        self._index = index

    def __getitem__(self, key: Any, /) -> Any:
        return self._values[self._index[key] if isinstance(key, str) else key]

    def keys(self) -> list[str]:
        return list(self._index)


def _row_factory(cursor: psycopg.Cursor[Any]) -> Callable[[Sequence[Any]], PgRow]:
    index: dict[str, int] = {}
    for i, column in enumerate(cursor.description or ()):
        index.setdefault(column.name, i)
    return lambda values: PgRow(values, index)


_PLACEHOLDERS: dict[str, str] = {}


def to_pg(sql: str) -> str:
    """``?`` placeholders to psycopg's ``%s`` (the shared SQL has no literal ``?`` or ``%``)."""
    converted = _PLACEHOLDERS.get(sql)
    if converted is None:
        converted = _PLACEHOLDERS[sql] = sql.replace("?", "%s")
    return converted


class PgConn:
    """A pooled connection inside a transaction, speaking the shared SQL."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    def execute(self, sql: str, parameters: Any = (), /) -> Cursor:
        cursor: Cursor = self._conn.execute(to_pg(sql), parameters or None)
        return cursor


class PgBase(StoreBase):
    """A connection pool; each public method borrows one connection for its transaction."""

    dialect = POSTGRES

    def __init__(self, url: str, sealer: Sealer, *, pool_size: int = 8) -> None:
        self.url = url
        self._sealer = sealer
        self._last_used: dict[int, float] = {}
        self._pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            url,
            min_size=1,
            max_size=max(1, pool_size),
            kwargs={"autocommit": True, "row_factory": _row_factory},
            check=self._check,
            open=True,
            timeout=30.0,
            name="videogate-store",
        )
        self._closed = threading.Event()
        self._migrate()

    def _check(self, conn: psycopg.Connection[Any]) -> None:
        """Before lending a connection that sat idle, one empty round trip: a database
        restarted or a connection cut by a firewall while idle is replaced here instead
        of failing the caller's request. Busy connections skip it (no extra latency)."""
        now = time.monotonic()
        if now - self._last_used.get(id(conn), 0.0) > IDLE_CHECK_S:
            conn.execute("")
        self._last_used[id(conn)] = now

    def close(self) -> None:
        if not self._closed.is_set():
            self._closed.set()
            self._pool.close()

    @contextmanager
    def _tx(self) -> Iterator[Conn]:
        with self._pool.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
            yield PgConn(conn)

    def _rows(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        with self._pool.connection() as conn:
            rows: list[Row] = conn.execute(to_pg(sql), args or None).fetchall()
            return rows

    def _migrate(self) -> None:
        """Bring the schema up to date; nodes starting together wait for each other."""
        with self._pool.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATE_LOCK,))
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
            version = int(row[0] or 0) if row else 0
            for number, script in enumerate(PG_MIGRATIONS[version:], start=version + 1):
                for statement in split_statements(script):
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (number,))

    @property
    def schema_version(self) -> int:
        return int(self._rows("SELECT max(version) FROM schema_version")[0][0] or 0)

    def integrity_ok(self) -> bool:
        """No data-page checksum failure reported for this database (always true when
        the cluster runs without ``--data-checksums``: PostgreSQL checks its own pages)."""
        rows = self._rows(
            "SELECT COALESCE(checksum_failures, 0) FROM pg_stat_database "
            "WHERE datname = current_database()"
        )
        return bool(rows) and int(rows[0][0]) == 0


class PgStore(PgBase, AccountsMixin, RoomsMixin, PeopleMixin, ActivityMixin):
    """Every role of ``repository.Repository`` on PostgreSQL."""
