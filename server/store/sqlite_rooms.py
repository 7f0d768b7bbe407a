"""Rooms, their links and invites, in the SQLite store."""

from __future__ import annotations

import dataclasses
import hmac
import secrets
import time
import uuid
from collections.abc import Mapping
from typing import Any

from .records import (
    Invite,
    InviteInfo,
    Room,
    StoreError,
    clean_room_settings,
)
from .sql import Conn, StoreBase
from .sqlite_rows import (
    _audit,
    _hash_token,
    _invite,
    _owned_room,
    _person,
    _room,
    new_link_token,
    slugify,
    split_room_link,
)

INVITE_HINT_CHARS = 6  # shown on the owner's list and at the start of the link's token


class RoomsMixin(StoreBase):
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
                "INSERT INTO rooms (id, slug, name, mode, threshold, created, owner_id, "
                "link_token) VALUES (?,?,?,?,?,?,?,?)",
                (
                    room_id,
                    chosen,
                    values.pop("name"),
                    values.pop("mode"),
                    None,
                    time.time(),
                    owner_id,
                    new_link_token(),
                ),
            )
            self._update_room_row(db, room_id, values)
            return _room(db.execute("SELECT * FROM rooms WHERE id=?", (room_id,)).fetchone())

    @staticmethod
    def _update_room_row(db: Conn, room_id: str, values: Mapping[str, Any]) -> None:
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

    def room_by_link(self, link: str) -> Room:
        """The room a ``/r/<link>`` path names: ``<slug>-<link_token>``, or the bare slug
        of a room that predates link tokens (until its owner makes a new link)."""
        slug, token = split_room_link(link)
        if token is not None:
            rows = self._rows("SELECT * FROM rooms WHERE link_token=?", (token,))
            if rows and hmac.compare_digest(rows[0]["slug"], slug):
                return _room(rows[0])
        rows = self._rows("SELECT * FROM rooms WHERE slug=? AND legacy_link=1", (link,))
        if not rows:
            raise StoreError("unknown_room", "no such room; check the link you were given")
        return _room(rows[0])

    def renew_room_link(self, room_id: str, owner_id: str | None = None) -> Room:
        """A new unguessable link for the room; the previous one (and a legacy bare
        ``/r/<slug>``) stops working. Invites stay valid with the new link."""
        room = self.room(room_id, owner_id)
        with self._tx() as db:
            db.execute(
                "UPDATE rooms SET link_token=?, legacy_link=0 WHERE id=?",
                (new_link_token(), room.id),
            )
            return _room(db.execute("SELECT * FROM rooms WHERE id=?", (room.id,)).fetchone())

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
            token_hash[:16], room_id, person_id, now + ttl_s if ttl_s else None, False, now,
            token[:INVITE_HINT_CHARS],
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
                " id, hint) VALUES (?,?,?,?,0,?,?,?)",
                (token_hash, room_id, person_id, info.expires, now, info.id, info.hint),
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
        return dataclasses.replace(_invite(row), revoked=True)

    def resolve_invite(self, slug: str, token: str, now: float | None = None) -> Invite:
        """The invite ``token`` for the room whose *slug* (not link) is ``slug``."""
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
        with self._tx() as db:  # "last used" on the owner's invites list
            db.execute("UPDATE invites SET last_used=? WHERE id=?", (now, row["id"]))
        room = self.room_by_slug(slug)
        found = self._rows("SELECT * FROM persons WHERE id=?", (row["person_id"],))
        person = _person(found[0]) if row["person_id"] and found else None
        return Invite(room, person, row["expires"], row["id"])
