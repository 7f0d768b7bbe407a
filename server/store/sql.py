"""What the SQLite and PostgreSQL stores share: the connection and row shapes the
repository mixins are written against, and the few SQL spellings that differ.

Why one set of mixins for both engines: the repository's rules (ownership checks
inside the transaction, all-or-nothing enrolment, sealing with the right context)
are the part that must not drift between backends. So every query is written once,
in the dialect both engines accept (``?`` placeholders, ``RETURNING id``, explicit
casts where PostgreSQL cannot infer a parameter's type), and the handful of
spellings that really differ live in :class:`Dialect`. The PostgreSQL connection
adapter (``pg.py``) turns ``?`` into psycopg's ``%s``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from .crypto import Sealer


class Row(Protocol):
    """A result row readable by column name and by position (``sqlite3.Row`` is one)."""

    def __getitem__(self, key: Any, /) -> Any: ...
    def keys(self) -> list[str]: ...


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


class Conn(Protocol):
    """One connection inside one transaction (``sqlite3.Connection`` is one)."""

    def execute(self, sql: str, parameters: Any = ..., /) -> Cursor: ...


@dataclass(frozen=True)
class Dialect:
    """SQL that the two engines spell differently (everything else is shared)."""

    # The "meeting" key of the audit record's JSON details, as an SQL expression.
    details_meeting: str
    # An aggregate joining one text column of a group with commas ({} = the column).
    group_concat: str
    # A column that orders webhook deliveries by insertion (ties on ``created``).
    insertion_order: str


SQLITE = Dialect(
    details_meeting="json_extract(details, '$.meeting')",
    group_concat="GROUP_CONCAT({})",
    insertion_order="rowid",
)
POSTGRES = Dialect(
    details_meeting="(details::jsonb ->> 'meeting')",
    group_concat="string_agg({}, ',')",
    insertion_order="seq",
)


class StoreBase:
    """The engine-independent part of a store: transactions, reads, the sealer.

    A subclass provides ``_tx`` (one transaction, yielding a :class:`Conn`), ``_rows``
    (one read outside any explicit transaction), ``dialect`` and ``close``.
    """

    dialect: Dialect = SQLITE
    _sealer: Sealer

    def _tx(self) -> AbstractContextManager[Conn]:
        raise NotImplementedError

    def _rows(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def reseal_all(self, sealer: Sealer) -> dict[str, int]:
        """Re-encrypt every sealed value with ``sealer``'s primary key, in one transaction.

        Values already sealed by that key are left alone, so a rotation that was cut
        short can simply be run again. Returns how many values of each kind changed.
        """
        plan = (
            ("templates", "id", "sealed", "person_id", ""),
            ("photos", "id", "sealed", "person_id", "photo:"),
            ("webhooks", "id", "sealed_secret", "id", "webhook:"),
        )
        counts: dict[str, int] = {}
        with self._tx() as db:
            for table, key, column, context_column, prefix in plan:
                rows = db.execute(
                    f"SELECT {key} AS k, {column} AS blob, {context_column} AS c FROM {table}"
                ).fetchall()
                changed = 0
                for row in rows:
                    if sealer.sealed_by_primary(row["blob"]):
                        continue
                    context = f"{prefix}{row['c']}"
                    fresh = sealer.seal(sealer.open(row["blob"], context), context)
                    db.execute(f"UPDATE {table} SET {column}=? WHERE {key}=?", (fresh, row["k"]))
                    changed += 1
                counts[table] = changed
        self._sealer = sealer
        return counts


def split_statements(script: str) -> Iterator[str]:
    """A migration script's statements (``;``-separated, no triggers or functions)."""
    return (s for s in script.split(";") if s.strip())
