"""SQLite store: owners, API keys, rooms, persons, encrypted templates and photos,
invites and the audit log.

One file in the data dir, WAL mode, versioned migrations (``PRAGMA user_version``,
see ``migrations.py``). Every public method is one transaction, so a crash leaves
either all of a change or none of it; methods that act for an owner take the
``owner_id`` and check ownership inside that same transaction, so another owner's
ids look exactly like unknown ids. The method set is the repository interface
(``repository.Repository``) a PostgreSQL store would implement.
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
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from .crypto import Sealer
from .migrations import MIGRATIONS
from .records import (
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
    clean_external_id,
    clean_name,
    clean_room_settings,
    clean_webhook,
)

__all__ = ["MIGRATIONS", "SqliteStore", "StoreError", "slugify"]

EMBEDDING_DIM = 128
API_KEY_PREFIX = "vg_"

# (embedding, optional photo bytes, photo mime type)
FaceInput = tuple[np.ndarray, bytes | None, str]


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

    def _rows(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def _migrate(self) -> None:
        with self._tx() as db:
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in filter(str.strip, script.split(";")):
                    db.execute(statement)
                db.execute(f"PRAGMA user_version={number}")

    @property
    def schema_version(self) -> int:
        return int(self._rows("PRAGMA user_version")[0][0])

    def integrity_ok(self) -> bool:
        with self._lock:
            return bool(self._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok")

    # -- owners and API keys --

    def create_owner(self, email: str, password_hash: str) -> Owner:
        owner = Owner(uuid.uuid4().hex, email.strip().lower(), time.time())
        with self._tx() as db:
            if db.execute("SELECT 1 FROM owners WHERE email=?", (owner.email,)).fetchone():
                raise StoreError("email_taken", "an account with this email exists")
            db.execute(
                "INSERT INTO owners VALUES (?,?,?,?)",
                (owner.id, owner.email, password_hash, owner.created),
            )
        return owner

    def owner_credentials(self, email: str) -> tuple[Owner, str]:
        """The owner and their password hash, for sign-in only."""
        rows = self._rows("SELECT * FROM owners WHERE email=?", (email.strip().lower(),))
        if not rows:
            raise StoreError("unknown_owner", "no such account")
        row = rows[0]
        return Owner(row["id"], row["email"], row["created"]), str(row["password_hash"])

    def set_password_hash(self, owner_id: str, password_hash: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE owners SET password_hash=? WHERE id=?", (password_hash, owner_id))

    def owner(self, owner_id: str) -> Owner:
        rows = self._rows("SELECT * FROM owners WHERE id=?", (owner_id,))
        if not rows:
            raise StoreError("unknown_owner", "no such account")
        return Owner(rows[0]["id"], rows[0]["email"], rows[0]["created"])

    def create_api_key(self, owner_id: str, name: str) -> tuple[ApiKey, str]:
        """A new key; the secret is returned once and only its SHA-256 is kept."""
        name = clean_name(name, "key name")
        key_id = secrets.token_hex(6)
        secret = f"{API_KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        key = ApiKey(key_id, owner_id, name, time.time(), None, False)
        with self._tx() as db:
            db.execute(
                "INSERT INTO api_keys (id, owner_id, name, key_hash, created) VALUES (?,?,?,?,?)",
                (key.id, owner_id, name, _hash_token(secret), key.created),
            )
        return key, secret

    def api_keys(self, owner_id: str) -> list[ApiKey]:
        rows = self._rows("SELECT * FROM api_keys WHERE owner_id=? ORDER BY created", (owner_id,))
        return [_api_key(r) for r in rows]

    def revoke_api_key(self, owner_id: str, key_id: str) -> None:
        with self._tx() as db:
            cur = db.execute(
                "UPDATE api_keys SET revoked=1 WHERE id=? AND owner_id=?", (key_id, owner_id)
            )
            if cur.rowcount == 0:
                raise StoreError("unknown_key", "no such API key")

    def owner_by_api_key(self, secret: str) -> Owner:
        """Authenticate a bearer key (constant work per lookup: one indexed hash match)."""
        if not secret.startswith(API_KEY_PREFIX) or len(secret) > 200:
            raise StoreError("bad_key", "invalid API key")
        with self._tx() as db:
            row = db.execute(
                "SELECT o.*, k.id AS key_id FROM api_keys k JOIN owners o ON o.id=k.owner_id "
                "WHERE k.key_hash=? AND k.revoked=0",
                (_hash_token(secret),),
            ).fetchone()
            if row is None:
                raise StoreError("bad_key", "invalid or revoked API key")
            db.execute("UPDATE api_keys SET last_used=? WHERE id=?", (time.time(), row["key_id"]))
        return Owner(row["id"], row["email"], row["created"])

    # -- rooms --

    def create_room(
        self,
        name: str,
        mode: str = "invite",
        slug: str | None = None,
        *,
        owner_id: str | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> Room:
        """A new room. Owner rooms get a unique link name (a suffix is added when taken,
        so one owner cannot learn another's room names); CLI rooms keep theirs exact."""
        values = clean_room_settings({"name": name, "mode": mode, **(settings or {})})
        base = slug or slugify(values["name"])
        room_id = uuid.uuid4().hex
        with self._tx() as db:
            chosen = base
            while db.execute("SELECT 1 FROM rooms WHERE slug=?", (chosen,)).fetchone():
                if owner_id is None:
                    raise StoreError("slug_taken", f"a room with link name '{base}' exists")
                chosen = f"{base}-{secrets.token_hex(3)}"
            db.execute(
                "INSERT INTO rooms (id, slug, name, mode, threshold, created, owner_id) "
                "VALUES (?,?,?,?,?,?,?)",
                (
                    room_id,
                    chosen,
                    values.pop("name"),
                    values.pop("mode"),
                    None,
                    time.time(),
                    owner_id,
                ),
            )
            self._update_room_row(db, room_id, values)
            return _room(db.execute("SELECT * FROM rooms WHERE id=?", (room_id,)).fetchone())

    @staticmethod
    def _update_room_row(db: sqlite3.Connection, room_id: str, values: Mapping[str, Any]) -> None:
        for column, value in values.items():  # columns come from clean_room_settings only
            db.execute(f"UPDATE rooms SET {column}=? WHERE id=?", (value, room_id))
        if values.get("retain_photos") == 0:
            # Privacy by default: turning retention off deletes the photos kept so far.
            db.execute(
                "DELETE FROM photos WHERE person_id IN (SELECT id FROM persons WHERE room_id=?)",
                (room_id,),
            )

    def room_by_slug(self, slug: str) -> Room:
        rows = self._rows("SELECT * FROM rooms WHERE slug=?", (slug,))
        if not rows:
            raise StoreError("unknown_room", f"no room '{slug}'")
        return _room(rows[0])

    def rooms(self, owner_id: str | None = None) -> list[Room]:
        """All rooms, or one owner's rooms when ``owner_id`` is given."""
        if owner_id is None:
            rows = self._rows("SELECT * FROM rooms ORDER BY created")
        else:
            rows = self._rows("SELECT * FROM rooms WHERE owner_id=? ORDER BY created", (owner_id,))
        return [_room(r) for r in rows]

    def room(self, room_id: str, owner_id: str | None = None) -> Room:
        """A room by id; with ``owner_id`` another owner's room is ``unknown_room``."""
        rows = self._rows("SELECT * FROM rooms WHERE id=?", (room_id,))
        if not rows or (owner_id is not None and rows[0]["owner_id"] != owner_id):
            raise StoreError("unknown_room", "no such room")
        return _room(rows[0])

    def update_room(self, room_id: str, owner_id: str, changes: Mapping[str, Any]) -> Room:
        with self._tx() as db:
            _owned_room(db, room_id, owner_id)  # first: another owner's room is just unknown
            self._update_room_row(db, room_id, clean_room_settings(dict(changes)))
            return _room(db.execute("SELECT * FROM rooms WHERE id=?", (room_id,)).fetchone())

    def delete_room(self, room_id: str, owner_id: str) -> None:
        """Delete a room with its people, templates, photos and invites; audit keeps a tombstone."""
        with self._tx() as db:
            _owned_room(db, room_id, owner_id)
            db.execute("DELETE FROM rooms WHERE id=?", (room_id,))
            _audit(db, "room.deleted", {}, room_id=room_id)

    # -- persons, templates and photos --

    def add_person(
        self,
        room_id: str,
        name: str,
        external_id: str | None = None,
        *,
        owner_id: str | None = None,
    ) -> Person:
        with self._tx() as db:
            if owner_id is None:
                if not db.execute("SELECT 1 FROM rooms WHERE id=?", (room_id,)).fetchone():
                    raise StoreError("unknown_room", "no such room")
            else:
                _owned_room(db, room_id, owner_id)
            name = clean_name(name, "person name")
            external_id = clean_external_id(external_id)
            person = Person(uuid.uuid4().hex, room_id, name, external_id, time.time())
            db.execute(
                "INSERT INTO persons VALUES (?,?,?,?,?)",
                (person.id, room_id, person.name, external_id, person.created),
            )
        return person

    def person(self, person_id: str, owner_id: str | None = None) -> Person:
        """A person by id; with ``owner_id`` another owner's person is ``unknown_person``."""
        rows = self._rows(
            "SELECT p.*, r.owner_id FROM persons p JOIN rooms r ON r.id=p.room_id WHERE p.id=?",
            (person_id,),
        )
        if not rows or (owner_id is not None and rows[0]["owner_id"] != owner_id):
            raise StoreError("unknown_person", "no such person")
        return _person(rows[0])

    def persons(self, room_id: str) -> list[Person]:
        rows = self._rows("SELECT * FROM persons WHERE room_id=? ORDER BY created", (room_id,))
        return [_person(r) for r in rows]

    def update_person(self, person_id: str, owner_id: str, changes: Mapping[str, Any]) -> Person:
        with self._tx() as db:
            _owned_person(db, person_id, owner_id)
            values: dict[str, Any] = {}
            for key, value in changes.items():
                if key == "name":
                    values["name"] = clean_name(value, "person name")
                elif key == "external_id":
                    values["external_id"] = clean_external_id(value)
                else:
                    raise StoreError("bad_field", f"unknown person field '{key}'")
            for column, value in values.items():
                db.execute(f"UPDATE persons SET {column}=? WHERE id=?", (value, person_id))
            return _person(db.execute("SELECT * FROM persons WHERE id=?", (person_id,)).fetchone())

    def face_counts(self, room_id: str) -> dict[str, int]:
        """Templates per person of a room (enrolment status at a glance)."""
        rows = self._rows(
            "SELECT p.id, COUNT(t.id) AS n FROM persons p LEFT JOIN templates t "
            "ON t.person_id=p.id WHERE p.room_id=? GROUP BY p.id",
            (room_id,),
        )
        return {r["id"]: int(r["n"]) for r in rows}

    def add_templates(self, person_id: str, embeddings: np.ndarray, engine: str) -> int:
        vectors = np.asarray(embeddings, dtype=np.float32).reshape(-1, EMBEDDING_DIM)
        with self._tx() as db:
            if not db.execute("SELECT 1 FROM persons WHERE id=?", (person_id,)).fetchone():
                raise StoreError("unknown_person", "no such person")
            for vector in vectors:
                self._insert_template(db, person_id, vector, engine, time.time())
        return len(vectors)

    def _insert_template(
        self, db: sqlite3.Connection, person_id: str, vector: np.ndarray, engine: str, now: float
    ) -> int:
        sealed = self._sealer.seal(np.asarray(vector, np.float32).tobytes(), person_id)
        cur = db.execute(
            "INSERT INTO templates (person_id, engine, sealed, created) VALUES (?,?,?,?)",
            (person_id, engine, sealed, now),
        )
        assert cur.lastrowid is not None
        return int(cur.lastrowid)

    def add_faces(
        self, person_id: str, owner_id: str | None, faces: Sequence[FaceInput], engine: str
    ) -> list[Face]:
        """Enrol several photos of one person at once: all stored or none.

        A photo is kept (sealed) only when given and the room retains photos.
        """
        now = time.time()
        added: list[Face] = []
        with self._tx() as db:
            if owner_id is None:
                row = db.execute(
                    "SELECT r.retain_photos FROM persons p JOIN rooms r ON r.id=p.room_id "
                    "WHERE p.id=?",
                    (person_id,),
                ).fetchone()
                if row is None:
                    raise StoreError("unknown_person", "no such person")
                retain = bool(row["retain_photos"])
            else:
                retain = _owned_person(db, person_id, owner_id).retain_photos
            for embedding, photo, mime in faces:
                vector = np.asarray(embedding, np.float32).reshape(EMBEDDING_DIM)
                template_id = self._insert_template(db, person_id, vector, engine, now)
                photo_id = None
                if retain and photo is not None:
                    photo_id = uuid.uuid4().hex
                    db.execute(
                        "INSERT INTO photos VALUES (?,?,?,?,?,?)",
                        (
                            photo_id,
                            template_id,
                            person_id,
                            mime,
                            self._sealer.seal(photo, f"photo:{person_id}"),
                            now,
                        ),
                    )
                added.append(Face(template_id, person_id, engine, now, photo_id))
            _audit(
                db,
                "person.enrolled",
                {"photos": len(faces)},
                person_id=person_id,
                room_id=db.execute(
                    "SELECT room_id FROM persons WHERE id=?", (person_id,)
                ).fetchone()["room_id"],
            )
        return added

    def faces(self, person_id: str, owner_id: str | None = None) -> list[Face]:
        self.person(person_id, owner_id)
        rows = self._rows(
            "SELECT t.id, t.person_id, t.engine, t.created, ph.id AS photo_id FROM templates t "
            "LEFT JOIN photos ph ON ph.template_id=t.id WHERE t.person_id=? ORDER BY t.id",
            (person_id,),
        )
        return [
            Face(r["id"], r["person_id"], r["engine"], r["created"], r["photo_id"]) for r in rows
        ]

    def delete_face(self, person_id: str, face_id: int, owner_id: str) -> None:
        with self._tx() as db:
            _owned_person(db, person_id, owner_id)
            cur = db.execute(
                "DELETE FROM templates WHERE id=? AND person_id=?", (face_id, person_id)
            )
            if cur.rowcount == 0:
                raise StoreError("unknown_face", "no such face")

    def photo(self, person_id: str, photo_id: str, owner_id: str) -> tuple[bytes, str]:
        """A retained photo, decrypted: (bytes, mime type)."""
        self.person(person_id, owner_id)
        rows = self._rows(
            "SELECT mime, sealed FROM photos WHERE id=? AND person_id=?", (photo_id, person_id)
        )
        if not rows:
            raise StoreError("unknown_photo", "no such photo")
        return self._sealer.open(rows[0]["sealed"], f"photo:{person_id}"), str(rows[0]["mime"])

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
        name = clean_name(name, "person name")
        person = Person(uuid.uuid4().hex, room_id, name, clean_external_id(external_id))
        now = time.time()
        with self._tx() as db:
            if not db.execute("SELECT 1 FROM rooms WHERE id=?", (room_id,)).fetchone():
                raise StoreError("unknown_room", "no such room")
            db.execute(
                "INSERT INTO persons VALUES (?,?,?,?,?)",
                (person.id, room_id, person.name, person.external_id, now),
            )
            for vector in vectors:
                self._insert_template(db, person.id, vector, engine, now)
        return person

    def templates(self, person_id: str) -> np.ndarray:
        rows = self._rows(
            "SELECT sealed FROM templates WHERE person_id=? ORDER BY id", (person_id,)
        )
        return self._open_rows(person_id, rows)

    def gallery(self, room_id: str) -> dict[str, np.ndarray]:
        rows = self._rows(
            "SELECT t.person_id, t.sealed FROM templates t JOIN persons p "
            "ON p.id = t.person_id WHERE p.room_id=? ORDER BY t.id",
            (room_id,),
        )
        grouped: dict[str, list[sqlite3.Row]] = {}
        for row in rows:
            grouped.setdefault(row["person_id"], []).append(row)
        return {pid: self._open_rows(pid, group) for pid, group in grouped.items()}

    def gallery_version(self, room_id: str) -> tuple[int, int]:
        """(template count, newest template id) for the room: changes whenever the
        room's gallery does, so callers can cache the decrypted gallery."""
        row = self._rows(
            "SELECT COUNT(t.id), COALESCE(MAX(t.id), 0) FROM templates t JOIN persons p "
            "ON p.id = t.person_id WHERE p.room_id=?",
            (room_id,),
        )[0]
        return int(row[0]), int(row[1])

    def _open_rows(self, person_id: str, rows: list[sqlite3.Row]) -> np.ndarray:
        vectors = [
            np.frombuffer(self._sealer.open(r["sealed"], person_id), dtype=np.float32) for r in rows
        ]
        if not vectors:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        return np.stack(vectors)

    def delete_person(self, person_id: str, owner_id: str | None = None) -> None:
        """Remove the person with templates, photos and invites; the audit keeps a tombstone."""
        with self._tx() as db:
            if owner_id is None:
                row = db.execute("SELECT room_id FROM persons WHERE id=?", (person_id,)).fetchone()
                if row is None:
                    raise StoreError("unknown_person", "no such person")
                room_id = str(row["room_id"])
            else:
                room_id = _owned_person(db, person_id, owner_id).id
            db.execute("DELETE FROM persons WHERE id=?", (person_id,))
            _audit(db, "person.deleted", {}, room_id=room_id, person_id=person_id)

    # -- invites --

    def create_invite(
        self, room_id: str, person_id: str | None, ttl_s: float | None = 7 * 24 * 3600
    ) -> str:
        return self.issue_invite(room_id, person_id, ttl_s)[1]

    def issue_invite(
        self,
        room_id: str,
        person_id: str | None,
        ttl_s: float | None = 7 * 24 * 3600,
        *,
        owner_id: str | None = None,
    ) -> tuple[InviteInfo, str]:
        """A new invite and its token; the token is shown once and stored hashed."""
        token = secrets.token_urlsafe(24)
        token_hash = _hash_token(token)
        now = time.time()
        info = InviteInfo(
            token_hash[:16], room_id, person_id, now + ttl_s if ttl_s else None, False, now
        )
        with self._tx() as db:
            if owner_id is not None:
                _owned_room(db, room_id, owner_id)
            if person_id is not None:
                row = db.execute("SELECT room_id FROM persons WHERE id=?", (person_id,)).fetchone()
                if row is None or row["room_id"] != room_id:
                    raise StoreError("unknown_person", "no such person in this room")
            db.execute(
                "INSERT INTO invites (token_hash, room_id, person_id, expires, revoked, created,"
                " id) VALUES (?,?,?,?,0,?,?)",
                (token_hash, room_id, person_id, info.expires, now, info.id),
            )
        return info, token

    def invites(self, room_id: str) -> list[InviteInfo]:
        rows = self._rows("SELECT * FROM invites WHERE room_id=? ORDER BY created", (room_id,))
        return [_invite(r) for r in rows]

    def invite(self, invite_id: str, owner_id: str) -> InviteInfo:
        rows = self._rows(
            "SELECT i.* FROM invites i JOIN rooms r ON r.id=i.room_id "
            "WHERE i.id=? AND r.owner_id=?",
            (invite_id, owner_id),
        )
        if not rows:
            raise StoreError("unknown_invite", "no such invite")
        return _invite(rows[0])

    def revoke_invite(self, token: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE invites SET revoked=1 WHERE token_hash=?", (_hash_token(token),))

    def revoke_invite_id(self, invite_id: str, owner_id: str) -> InviteInfo:
        with self._tx() as db:
            row = db.execute(
                "SELECT i.* FROM invites i JOIN rooms r ON r.id=i.room_id "
                "WHERE i.id=? AND r.owner_id=?",
                (invite_id, owner_id),
            ).fetchone()
            if row is None:
                raise StoreError("unknown_invite", "no such invite")
            db.execute("UPDATE invites SET revoked=1 WHERE id=?", (invite_id,))
            _audit(
                db,
                "invite.revoked",
                {"invite": invite_id},
                room_id=row["room_id"],
                person_id=row["person_id"],
            )
        return InviteInfo(
            row["id"], row["room_id"], row["person_id"], row["expires"], True, row["created"]
        )

    def resolve_invite(self, slug: str, token: str, now: float | None = None) -> Invite:
        now = time.time() if now is None else now
        rows = self._rows(
            "SELECT i.*, r.slug FROM invites i JOIN rooms r ON r.id=i.room_id WHERE i.token_hash=?",
            (_hash_token(token),),
        )
        row = rows[0] if rows else None
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
            _audit(db, event, details, room_id, person_id, participant_id)

    def audit_log(self, room_id: str, limit: int | None = None) -> list[AuditRecord]:
        """The room's audit records, oldest first (the newest ``limit`` when given)."""
        if limit is None:
            rows = self._rows("SELECT * FROM audit WHERE room_id=? ORDER BY id", (room_id,))
        else:
            rows = self._rows(
                "SELECT * FROM (SELECT * FROM audit WHERE room_id=? ORDER BY id DESC LIMIT ?) "
                "ORDER BY id",
                (room_id, limit),
            )
        return [_audit_record(r) for r in rows]

    # -- meetings (certified presence) --

    def start_meeting(self, room_id: str, now: float | None = None) -> Meeting:
        """A new meeting of the room: its first participant arrived."""
        meeting = Meeting(uuid.uuid4().hex, room_id, time.time() if now is None else now, None)
        with self._tx() as db:
            db.execute(
                "INSERT INTO meetings (id, room_id, started, ended) VALUES (?,?,?,NULL)",
                (meeting.id, room_id, meeting.started),
            )
        return meeting

    def end_meeting(self, meeting_id: str, now: float | None = None) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE meetings SET ended=? WHERE id=? AND ended IS NULL",
                (time.time() if now is None else now, meeting_id),
            )

    def meetings(self, room_id: str, limit: int = 50) -> list[Meeting]:
        """The room's meetings, newest first."""
        rows = self._rows(
            "SELECT * FROM meetings WHERE room_id=? ORDER BY started DESC LIMIT ?",
            (room_id, limit),
        )
        return [_meeting(r) for r in rows]

    def meeting(self, meeting_id: str, room_id: str) -> Meeting:
        rows = self._rows(
            "SELECT * FROM meetings WHERE id=? AND room_id=?", (meeting_id, room_id)
        )
        if not rows:
            raise StoreError("unknown_meeting", "no such meeting")
        return _meeting(rows[0])

    def meeting_audit(self, meeting_id: str) -> list[AuditRecord]:
        """Every audit record of one meeting, oldest first (the report's raw material)."""
        rows = self._rows(
            "SELECT * FROM audit WHERE json_extract(details, '$.meeting')=? ORDER BY id",
            (meeting_id,),
        )
        return [_audit_record(r) for r in rows]

    # -- webhooks --

    def create_webhook(
        self,
        room_id: str,
        url: str,
        events: Sequence[str] | None = None,
        *,
        owner_id: str | None = None,
    ) -> tuple[Webhook, str]:
        """A webhook with a fresh secret; the secret is returned once and kept sealed."""
        clean_url, clean_events = clean_webhook(url, events)
        secret = "whsec_" + secrets.token_urlsafe(32)
        hook = Webhook(uuid.uuid4().hex[:16], room_id, clean_url, clean_events, time.time())
        with self._tx() as db:
            if owner_id is not None:
                _owned_room(db, room_id, owner_id)
            elif not db.execute("SELECT 1 FROM rooms WHERE id=?", (room_id,)).fetchone():
                raise StoreError("unknown_room", "no such room")
            db.execute(
                "INSERT INTO webhooks (id, room_id, url, sealed_secret, events, created) "
                "VALUES (?,?,?,?,?,?)",
                (
                    hook.id,
                    room_id,
                    hook.url,
                    self._sealer.seal(secret.encode(), f"webhook:{hook.id}"),
                    json.dumps(list(hook.events)),
                    hook.created,
                ),
            )
        return hook, secret

    def webhooks(self, room_id: str) -> list[Webhook]:
        rows = self._rows("SELECT * FROM webhooks WHERE room_id=? ORDER BY created", (room_id,))
        return [_webhook(r) for r in rows]

    def webhook(self, webhook_id: str, owner_id: str | None = None) -> Webhook:
        rows = self._rows(
            "SELECT w.*, r.owner_id AS room_owner FROM webhooks w JOIN rooms r "
            "ON r.id=w.room_id WHERE w.id=?",
            (webhook_id,),
        )
        if not rows or (owner_id is not None and rows[0]["room_owner"] != owner_id):
            raise StoreError("unknown_webhook", "no such webhook")
        return _webhook(rows[0])

    def delete_webhook(self, webhook_id: str, owner_id: str | None = None) -> None:
        self.webhook(webhook_id, owner_id)
        with self._tx() as db:
            db.execute("DELETE FROM webhooks WHERE id=?", (webhook_id,))

    def webhook_targets(self, room_id: str, event: str) -> list[tuple[Webhook, str]]:
        """The room's webhooks subscribed to ``event``, with their opened secrets."""
        rows = self._rows("SELECT * FROM webhooks WHERE room_id=?", (room_id,))
        out = []
        for row in rows:
            hook = _webhook(row)
            if event in hook.events:
                secret = self._sealer.open(row["sealed_secret"], f"webhook:{hook.id}")
                out.append((hook, secret.decode()))
        return out

    def record_delivery(self, webhook_id: str, room_id: str, event: str, status: str) -> str:
        delivery_id = uuid.uuid4().hex[:20]
        now = time.time()
        with self._tx() as db:
            db.execute(
                "INSERT INTO webhook_deliveries (id, webhook_id, room_id, event, status, "
                "attempts, created, updated) VALUES (?,?,?,?,?,0,?,?)",
                (delivery_id, webhook_id, room_id, event, status, now, now),
            )
        return delivery_id

    def update_delivery(
        self,
        delivery_id: str,
        status: str,
        attempts: int,
        last_code: int | None,
        last_error: str | None,
    ) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE webhook_deliveries SET status=?, attempts=?, last_code=?, "
                "last_error=?, updated=? WHERE id=?",
                (status, attempts, last_code, last_error, time.time(), delivery_id),
            )

    def deliveries(self, webhook_id: str, limit: int = 50) -> list[Delivery]:
        """The webhook's delivery log, newest first."""
        rows = self._rows(
            "SELECT * FROM webhook_deliveries WHERE webhook_id=? ORDER BY created DESC, "
            "rowid DESC LIMIT ?",
            (webhook_id, limit),
        )
        return [
            Delivery(
                r["id"],
                r["webhook_id"],
                r["room_id"],
                r["event"],
                r["status"],
                r["attempts"],
                r["last_code"],
                r["last_error"],
                r["created"],
                r["updated"],
            )
            for r in rows
        ]


def _audit_record(r: sqlite3.Row) -> AuditRecord:
    return AuditRecord(
        r["ts"], r["room_id"], r["person_id"], r["participant_id"], r["event"],
        json.loads(r["details"]),
    )  # fmt: skip


def _meeting(row: sqlite3.Row) -> Meeting:
    return Meeting(row["id"], row["room_id"], row["started"], row["ended"])


def _webhook(row: sqlite3.Row) -> Webhook:
    return Webhook(
        row["id"], row["room_id"], row["url"], tuple(json.loads(row["events"])), row["created"]
    )


def _audit(
    db: sqlite3.Connection,
    event: str,
    details: Mapping[str, Any],
    room_id: str | None = None,
    person_id: str | None = None,
    participant_id: str | None = None,
) -> None:
    db.execute(
        "INSERT INTO audit (ts, room_id, person_id, participant_id, event, details) "
        "VALUES (?,?,?,?,?,?)",
        (time.time(), room_id, person_id, participant_id, event, json.dumps(dict(details))),
    )


def _owned_room(db: sqlite3.Connection, room_id: str, owner_id: str) -> Room:
    row = db.execute(
        "SELECT * FROM rooms WHERE id=? AND owner_id=?", (room_id, owner_id)
    ).fetchone()
    if row is None:
        raise StoreError("unknown_room", "no such room")
    return _room(row)


def _owned_person(db: sqlite3.Connection, person_id: str, owner_id: str) -> Room:
    """The person's room, if the person exists and belongs to this owner."""
    row = db.execute(
        "SELECT r.* FROM persons p JOIN rooms r ON r.id=p.room_id WHERE p.id=? AND r.owner_id=?",
        (person_id, owner_id),
    ).fetchone()
    if row is None:
        raise StoreError("unknown_person", "no such person")
    return _room(row)


def _room(row: sqlite3.Row) -> Room:
    return Room(
        row["id"],
        row["slug"],
        row["name"],
        row["mode"],
        row["threshold"],
        owner_id=row["owner_id"],
        liveness_policy=row["liveness_policy"],
        max_attempts=row["max_attempts"],
        retain_photos=bool(row["retain_photos"]),
        engine=row["engine"],
        created=row["created"],
        presence_interval_s=row["presence_interval_s"],
        no_flashing=bool(row["no_flashing"]),
    )


def _person(row: sqlite3.Row) -> Person:
    return Person(row["id"], row["room_id"], row["name"], row["external_id"], row["created"])


def _invite(row: sqlite3.Row) -> InviteInfo:
    return InviteInfo(
        row["id"],
        row["room_id"],
        row["person_id"],
        row["expires"],
        bool(row["revoked"]),
        row["created"],
    )


def _api_key(row: sqlite3.Row) -> ApiKey:
    return ApiKey(
        row["id"],
        row["owner_id"],
        row["name"],
        row["created"],
        row["last_used"],
        bool(row["revoked"]),
    )
