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


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else ""
    found = Backend(request.param, tmp_path, url)
    try:
        yield found
    finally:
        found.close_all()
