"""The store test-suite runs against SQLite and PostgreSQL alike: the ``backend``
fixture is parametrized over both, and gives each test a fresh database, a way to
(re)open the store on it as another process or node would, and the raw access the
encryption-at-rest and tampering tests need (outside the store)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from server.store import Repository, open_store


@dataclass
class Backend:
    name: str
    data_dir: Path
    url: str = ""  # empty: SQLite in data_dir
    opened: list[Repository] = field(default_factory=list)

    def open(self) -> Any:
        """A store on this backend's database (a new instance each call, like a restart
        or a second node). Typed Any: tests also use engine-specific helpers."""
        store = open_store(self.data_dir, self.url)
        self.opened.append(store)
        return store

    def execute(self, sql: str, args: Sequence[Any] = ()) -> None:
        """Change the database behind the store's back (``?`` placeholders)."""
        if not self.url:
            db = sqlite3.connect(self.data_dir / "videogate.sqlite3")
            db.execute(sql, args)
            db.commit()
            db.close()
            return
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(sql.replace("?", "%s"), args or None)

    def raw_bytes(self) -> bytes:
        """Everything the database holds at rest, as bytes to search for plaintext."""
        if not self.url:
            return (self.data_dir / "videogate.sqlite3").read_bytes()
        import psycopg

        out = bytearray()
        with psycopg.connect(self.url, autocommit=True) as conn:
            tables = conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            ).fetchall()
            for (table,) in tables:
                for row in conn.execute(f"SELECT * FROM {table}").fetchall():
                    for value in row:
                        if isinstance(value, bytes | bytearray | memoryview):
                            out += bytes(value)
                        elif value is not None:
                            out += str(value).encode()
        return bytes(out)

    def close_all(self) -> None:
        for store in self.opened:
            store.close()


def _emptied(url: str) -> str:
    """Every table of the store emptied (ids restart), the schema kept: ~50 ms instead
    of ~0.6 s for a new database and its migration on this machine."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                "AND tablename <> 'schema_version'"
            ).fetchall()
        ]
        if tables:
            conn.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
    return url


@pytest.fixture(scope="session")
def store_database(postgres_server: Any) -> str:
    """One database for the store suite, emptied before each test (``backend``); tests
    of migrations themselves take a fresh one from ``postgres_url``."""
    url: str = postgres_server.create_database()
    return url


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    url = ""
    if request.param == "postgres":
        url = _emptied(request.getfixturevalue("store_database"))
    found = Backend(request.param, tmp_path, url)
    try:
        yield found
    finally:
        found.close_all()
