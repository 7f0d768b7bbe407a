"""Persistence behind one interface: SQLite by default (PostgreSQL can implement it later)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from .crypto import Sealer, TemplateKeyError, load_keyring
from .records import (
    LIVENESS_POLICIES,
    ROOM_MODES,
    ApiKey,
    AuditRecord,
    Delivery,
    Face,
    Invite,
    InviteInfo,
    Meeting,
    Owner,
    Person,
    Room,
    StoreError,
    Webhook,
)
from .sqlite import SqliteStore

if TYPE_CHECKING:
    from .repository import Repository

    _check: type[Repository] = SqliteStore  # mypy: the SQLite store satisfies the interface

__all__ = [
    "LIVENESS_POLICIES",
    "ROOM_MODES",
    "ApiKey",
    "AuditRecord",
    "Delivery",
    "Face",
    "Invite",
    "InviteInfo",
    "Meeting",
    "Owner",
    "Person",
    "Room",
    "SqliteStore",
    "StoreError",
    "TemplateKeyError",
    "Webhook",
    "open_store",
]


def open_store(data_dir: Path) -> SqliteStore:
    """The embedded default: ``<data_dir>/videogate.sqlite3`` with a key beside it."""
    keys = load_keyring(data_dir, os.environ.get("VIDEOGATE_TEMPLATE_KEY"))
    return SqliteStore(data_dir / "videogate.sqlite3", Sealer(keys))
