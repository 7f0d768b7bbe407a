"""SQLite store: owners, API keys, rooms, persons, encrypted templates and photos,
invites and the audit log.

One file in the data dir, WAL mode, versioned migrations (``PRAGMA user_version``,
see ``migrations.py``). Every public method is one transaction, so a crash leaves
either all of a change or none of it; methods that act for an owner take the
``owner_id`` and check ownership inside that same transaction, so another owner's
ids look exactly like unknown ids. The method set is the repository interface
(``repository.Repository``) a PostgreSQL store would implement; it is written one
aggregate per module (``sqlite_accounts``, ``sqlite_rooms``, ``sqlite_people``,
``sqlite_activity``) over one connection (``sqlite_base``) and shared row helpers
(``sqlite_rows``).
"""

from __future__ import annotations

from .crypto import Sealer
from .migrations import MIGRATIONS
from .records import (
    StoreError,
)
from .sqlite_accounts import AccountsMixin
from .sqlite_activity import ActivityMixin
from .sqlite_people import PeopleMixin
from .sqlite_rooms import RoomsMixin
from .sqlite_rows import API_KEY_PREFIX, EMBEDDING_DIM, new_link_token, slugify, split_room_link

__all__ = [
    "API_KEY_PREFIX", "EMBEDDING_DIM", "MIGRATIONS", "SqliteStore", "StoreError", "new_link_token",
    "slugify", "split_room_link",
]  # fmt: skip


class SqliteStore(AccountsMixin, RoomsMixin, PeopleMixin, ActivityMixin):
    """Every role of ``repository.Repository``, one aggregate per mixin module."""

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
