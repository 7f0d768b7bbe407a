"""SQLite store: rooms, persons, encrypted templates, invites and the audit log.

One file in the data dir, WAL mode, versioned migrations (``PRAGMA user_version``).
Every public method is one transaction, so a crash leaves either all of a change
or none of it. The method set is the repository interface a PostgreSQL store
would implement.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .crypto import Sealer

EMBEDDING_DIM = 128

MIGRATIONS: list[str] = [
    """
    CREATE TABLE rooms (
        id TEXT PRIMARY KEY,
        slug TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        mode TEXT NOT NULL CHECK (mode IN ('invite', 'open')),
        threshold REAL,
        created REAL NOT NULL
    );
    CREATE TABLE persons (
        id TEXT PRIMARY KEY,
        room_id TEXT NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        external_id TEXT,
        created REAL NOT NULL
    );
    CREATE INDEX persons_room ON persons(room_id);
    CREATE TABLE templates (
        id INTEGER PRIMARY KEY,
        person_id TEXT NOT NULL REFERENCES persons(id) ON DELETE CASCADE,
        engine TEXT NOT NULL,
        sealed BLOB NOT NULL,
        created REAL NOT NULL
    );
    CREATE INDEX templates_person ON templates(person_id);
    CREATE TABLE invites (
        token_hash TEXT PRIMARY KEY,
        room_id TEXT NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
        person_id TEXT REFERENCES persons(id) ON DELETE CASCADE,
        expires REAL,
        revoked INTEGER NOT NULL DEFAULT 0,
        created REAL NOT NULL
    );
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        room_id TEXT,
        person_id TEXT,
        participant_id TEXT,
        event TEXT NOT NULL,
        details TEXT NOT NULL
    );
    CREATE INDEX audit_room ON audit(room_id, ts);
    """,
]


class StoreError(LookupError):
    """A lookup or change the store refuses; ``code`` is stable for APIs and the UI."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Room:
    id: str
    slug: str
    name: str
    mode: str
    threshold: float | None


@dataclass(frozen=True)
class Person:
    id: str
    room_id: str
    name: str
    external_id: str | None


@dataclass(frozen=True)
class Invite:
    room: Room
    person: Person | None
    expires: float | None


@dataclass(frozen=True)
class AuditRecord:
    ts: float
    room_id: str | None
    person_id: str | None
    participant_id: str | None
    event: str
    details: dict[str, Any]


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug[:48] or "room"


class SqliteStore:
    def __init__(self, path: Path, sealer: Sealer) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._sealer = sealer
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._migrate()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _migrate(self) -> None:
        with self._tx() as db:
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in filter(str.strip, script.split(";")):
                    db.execute(statement)
                db.execute(f"PRAGMA user_version={number}")

    def integrity_ok(self) -> bool:
        with self._lock:
            return bool(self._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok")

    # -- rooms --

    def create_room(self, name: str, mode: str = "invite", slug: str | None = None) -> Room:
        if mode not in ("invite", "open"):
            raise StoreError("bad_mode", "room mode must be 'invite' or 'open'")
        name = name.strip()
        if not name or len(name) > 120:
            raise StoreError("bad_name", "room name must be 1-120 characters")
        room = Room(uuid.uuid4().hex, slug or slugify(name), name, mode, None)
        with self._tx() as db:
            if db.execute("SELECT 1 FROM rooms WHERE slug=?", (room.slug,)).fetchone():
                raise StoreError("slug_taken", f"a room with link name '{room.slug}' exists")
            db.execute(
                "INSERT INTO rooms VALUES (?,?,?,?,?,?)",
                (room.id, room.slug, room.name, room.mode, None, time.time()),
            )
        return room

    def room_by_slug(self, slug: str) -> Room:
        with self._lock:
            row = self._db.execute("SELECT * FROM rooms WHERE slug=?", (slug,)).fetchone()
        if row is None:
            raise StoreError("unknown_room", f"no room '{slug}'")
        return _room(row)

    def rooms(self) -> list[Room]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM rooms ORDER BY created").fetchall()
        return [_room(r) for r in rows]

    # -- persons and templates --

    def add_person(self, room_id: str, name: str, external_id: str | None = None) -> Person:
        name = name.strip()
        if not name or len(name) > 120:
            raise StoreError("bad_name", "person name must be 1-120 characters")
        person = Person(uuid.uuid4().hex, room_id, name, external_id)
        with self._tx() as db:
            if not db.execute("SELECT 1 FROM rooms WHERE id=?", (room_id,)).fetchone():
                raise StoreError("unknown_room", "no such room")
            db.execute(
                "INSERT INTO persons VALUES (?,?,?,?,?)",
                (person.id, room_id, person.name, external_id, time.time()),
            )
        return person

    def person(self, person_id: str) -> Person:
        with self._lock:
            row = self._db.execute("SELECT * FROM persons WHERE id=?", (person_id,)).fetchone()
        if row is None:
            raise StoreError("unknown_person", "no such person")
        return _person(row)

    def persons(self, room_id: str) -> list[Person]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM persons WHERE room_id=? ORDER BY created", (room_id,)
            ).fetchall()
        return [_person(r) for r in rows]

    def add_templates(self, person_id: str, embeddings: np.ndarray, engine: str) -> int:
        vectors = np.asarray(embeddings, dtype=np.float32).reshape(-1, EMBEDDING_DIM)
        with self._tx() as db:
            if not db.execute("SELECT 1 FROM persons WHERE id=?", (person_id,)).fetchone():
                raise StoreError("unknown_person", "no such person")
            for vector in vectors:
                sealed = self._sealer.seal(vector.tobytes(), person_id)
                db.execute(
                    "INSERT INTO templates (person_id, engine, sealed, created) VALUES (?,?,?,?)",
                    (person_id, engine, sealed, time.time()),
                )
        return len(vectors)

    def enrol_person(
        self,
        room_id: str,
        name: str,
        embeddings: np.ndarray,
        engine: str,
        external_id: str | None = None,
    ) -> Person:
        """Create a person with their templates in one transaction: all or nothing."""
        vectors = np.asarray(embeddings, dtype=np.float32).reshape(-1, EMBEDDING_DIM)
        if len(vectors) == 0:
            raise StoreError("no_templates", "at least one usable photo is needed to enrol")
        name = name.strip()
        if not name or len(name) > 120:
            raise StoreError("bad_name", "person name must be 1-120 characters")
        person = Person(uuid.uuid4().hex, room_id, name, external_id)
        now = time.time()
        with self._tx() as db:
            if not db.execute("SELECT 1 FROM rooms WHERE id=?", (room_id,)).fetchone():
                raise StoreError("unknown_room", "no such room")
            db.execute(
                "INSERT INTO persons VALUES (?,?,?,?,?)",
                (person.id, room_id, person.name, external_id, now),
            )
            for vector in vectors:
                db.execute(
                    "INSERT INTO templates (person_id, engine, sealed, created) VALUES (?,?,?,?)",
                    (person.id, engine, self._sealer.seal(vector.tobytes(), person.id), now),
                )
        return person

    def templates(self, person_id: str) -> np.ndarray:
        with self._lock:
            rows = self._db.execute(
                "SELECT sealed FROM templates WHERE person_id=? ORDER BY id", (person_id,)
            ).fetchall()
        return self._open_rows(person_id, rows)

    def gallery(self, room_id: str) -> dict[str, np.ndarray]:
        with self._lock:
            rows = self._db.execute(
                "SELECT t.person_id, t.sealed FROM templates t JOIN persons p "
                "ON p.id = t.person_id WHERE p.room_id=? ORDER BY t.id",
                (room_id,),
            ).fetchall()
        grouped: dict[str, list[sqlite3.Row]] = {}
        for row in rows:
            grouped.setdefault(row["person_id"], []).append(row)
        return {pid: self._open_rows(pid, group) for pid, group in grouped.items()}

    def _open_rows(self, person_id: str, rows: list[sqlite3.Row]) -> np.ndarray:
        vectors = [
            np.frombuffer(self._sealer.open(r["sealed"], person_id), dtype=np.float32) for r in rows
        ]
        if not vectors:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        return np.stack(vectors)

    def delete_person(self, person_id: str) -> None:
        """Remove the person with templates and invites; the audit keeps a tombstone."""
        with self._tx() as db:
            row = db.execute("SELECT room_id FROM persons WHERE id=?", (person_id,)).fetchone()
            if row is None:
                raise StoreError("unknown_person", "no such person")
            db.execute("DELETE FROM persons WHERE id=?", (person_id,))
            db.execute(
                "INSERT INTO audit (ts, room_id, person_id, participant_id, event, details) "
                "VALUES (?,?,?,?,?,?)",
                (time.time(), row["room_id"], person_id, None, "person.deleted", "{}"),
            )

    # -- invites --

    def create_invite(
        self, room_id: str, person_id: str | None, ttl_s: float | None = 7 * 24 * 3600
    ) -> str:
        token = secrets.token_urlsafe(24)
        expires = time.time() + ttl_s if ttl_s else None
        with self._tx() as db:
            db.execute(
                "INSERT INTO invites VALUES (?,?,?,?,0,?)",
                (_hash_token(token), room_id, person_id, expires, time.time()),
            )
        return token

    def revoke_invite(self, token: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE invites SET revoked=1 WHERE token_hash=?", (_hash_token(token),))

    def resolve_invite(self, slug: str, token: str, now: float | None = None) -> Invite:
        now = time.time() if now is None else now
        with self._lock:
            row = self._db.execute(
                "SELECT i.*, r.slug FROM invites i JOIN rooms r ON r.id=i.room_id "
                "WHERE i.token_hash=?",
                (_hash_token(token),),
            ).fetchone()
        if row is None or row["slug"] != slug:
            raise StoreError("unknown_invite", "this invite link is not valid for this room")
        if row["revoked"]:
            raise StoreError("revoked_invite", "this invite link was revoked by the room owner")
        if row["expires"] is not None and row["expires"] < now:
            raise StoreError("expired_invite", "this invite link has expired")
        room = self.room_by_slug(slug)
        person = self.person(row["person_id"]) if row["person_id"] else None
        return Invite(room, person, row["expires"])

    # -- audit --

    def audit(
        self,
        event: str,
        details: Mapping[str, Any],
        room_id: str | None = None,
        person_id: str | None = None,
        participant_id: str | None = None,
    ) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO audit (ts, room_id, person_id, participant_id, event, details) "
                "VALUES (?,?,?,?,?,?)",
                (time.time(), room_id, person_id, participant_id, event, json.dumps(details)),
            )

    def audit_log(self, room_id: str) -> list[AuditRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM audit WHERE room_id=? ORDER BY id", (room_id,)
            ).fetchall()
        return [
            AuditRecord(
                r["ts"],
                r["room_id"],
                r["person_id"],
                r["participant_id"],
                r["event"],
                json.loads(r["details"]),
            )
            for r in rows
        ]


def _room(row: sqlite3.Row) -> Room:
    return Room(row["id"], row["slug"], row["name"], row["mode"], row["threshold"])


def _person(row: sqlite3.Row) -> Person:
    return Person(row["id"], row["room_id"], row["name"], row["external_id"])
