"""Persistence behind one interface: SQLite by default, PostgreSQL when a URL is set."""

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
from .repository import Repository
from .sqlite import SqliteStore

if TYPE_CHECKING:
    from .pg import PgStore

    _check: type[Repository] = SqliteStore  # mypy: the SQLite store satisfies the interface
    _check_pg: type[Repository] = PgStore  # and so does the PostgreSQL store

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
    "Repository",
    "Room",
    "SqliteStore",
    "StoreError",
    "TemplateKeyError",
    "Webhook",
    "open_store",
]


POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres_url(url: str) -> bool:
    return url.startswith(POSTGRES_SCHEMES)


def open_store(data_dir: Path, url: str = "", *, pool_size: int = 8) -> Repository:
    """The embedded default, ``<data_dir>/videogate.sqlite3``; or PostgreSQL when ``url``
    (``[store] url``) is a ``postgresql://`` URL. The template key comes from the data
    dir or ``VIDEOGATE_TEMPLATE_KEY`` either way: nodes sharing a database must share it."""
    keys = load_keyring(data_dir, os.environ.get("VIDEOGATE_TEMPLATE_KEY"))
    return open_with_sealer(data_dir, url, Sealer(keys), pool_size=pool_size)


def open_with_sealer(
    data_dir: Path, url: str, sealer: Sealer, *, pool_size: int = 8
) -> SqliteStore | PgStore:
    if is_postgres_url(url):
        from .pg import PgStore  # psycopg is only imported when PostgreSQL is configured

        return PgStore(url, sealer, pool_size=pool_size)
    if url:
        raise ValueError(f"[store] url: expected postgresql://..., got {url.split(':')[0]!r}")
    return SqliteStore(data_dir / "videogate.sqlite3", sealer)
