"""SQLite store: owners, API keys, rooms, persons, encrypted templates and photos,
invites and the audit log.

One file in the data dir, WAL mode, versioned migrations (``PRAGMA user_version``,
see ``migrations.py``). Every public method is one transaction, so a crash leaves
either all of a change or none of it; methods that act for an owner take the
``owner_id`` and check ownership inside that same transaction, so another owner's
ids look exactly like unknown ids. The method set is the repository interface
(``repository.Repository``); it is written one aggregate per module
(``sqlite_accounts``, ``sqlite_rooms``, ``sqlite_people``, ``sqlite_activity``) in SQL
both engines accept (``sql.py``), so the PostgreSQL store (``pg.py``) reuses the same
mixins over its own connection pool; this module adds SQLite's connection
(``sqlite_base``).
"""

from __future__ import annotations

from .migrations import MIGRATIONS
from .records import (
    StoreError,
)
from .sqlite_accounts import AccountsMixin
from .sqlite_activity import ActivityMixin
from .sqlite_base import SqliteBase
from .sqlite_people import PeopleMixin
from .sqlite_rooms import RoomsMixin
from .sqlite_rows import API_KEY_PREFIX, EMBEDDING_DIM, new_link_token, slugify, split_room_link

__all__ = [
    "API_KEY_PREFIX", "EMBEDDING_DIM", "MIGRATIONS", "SqliteStore", "StoreError", "new_link_token",
    "slugify", "split_room_link",
]  # fmt: skip


class SqliteStore(SqliteBase, AccountsMixin, RoomsMixin, PeopleMixin, ActivityMixin):
    """Every role of ``repository.Repository``, one aggregate per mixin module."""
