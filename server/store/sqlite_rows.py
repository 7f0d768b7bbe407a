"""Rows to records, and the small helpers every part of the SQLite store shares."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from .records import (
    ApiKey,
    AuditRecord,
    InviteInfo,
    Meeting,
    Owner,
    Person,
    Room,
    StoreError,
    Webhook,
    engine_family,
)
from .sql import Conn, Row

EMBEDDING_DIM = 128
API_KEY_PREFIX = "vg_"

# (embedding, optional photo bytes, photo mime type); the embedding is one engine's
# vector or a mapping engine -> vector (one template per engine, dlib's first).
FaceInput = tuple[np.ndarray | Mapping[str, np.ndarray], bytes | None, str]


def _per_engine(
    embedding: np.ndarray | Mapping[str, np.ndarray], engine: str
) -> list[tuple[str, np.ndarray]]:
    """[(engine, vector)], the primary engine (dlib when present) first."""
    items = (
        [(engine_family(e), v) for e, v in embedding.items()]
        if isinstance(embedding, Mapping)
        else [(engine_family(engine), embedding)]
    )
    if not items:
        raise StoreError("no_templates", "a face needs at least one engine's template")
    items.sort(key=lambda item: item[0] != "dlib")
    return [(e, np.asarray(v, np.float32).reshape(EMBEDDING_DIM)) for e, v in items]


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


_LINK_TOKEN = re.compile(r"^[0-9a-f]{16}$")


def new_link_token() -> str:
    """64 random bits: the part of a room link nobody can guess from the room's name."""
    return secrets.token_hex(8)


def split_room_link(link: str) -> tuple[str, str | None]:
    """``"daily-standup-1f2e3d4c5b6a7988"`` -> ``("daily-standup", "1f2e3d4c5b6a7988")``;
    a link without a well-formed token -> ``(link, None)``."""
    slug, _, token = link.rpartition("-")
    if slug and _LINK_TOKEN.match(token):
        return slug, token
    return link, None


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug[:48] or "room"


def _owner(row: Row) -> Owner:
    return Owner(row["id"], row["email"], row["created"], int(row["session_version"]))


def _audit_record(r: Row) -> AuditRecord:
    return AuditRecord(
        r["ts"], r["room_id"], r["person_id"], r["participant_id"], r["event"],
        json.loads(r["details"]),
    )  # fmt: skip


def _meeting(row: Row) -> Meeting:
    return Meeting(row["id"], row["room_id"], row["started"], row["ended"])


def _webhook(row: Row) -> Webhook:
    return Webhook(
        row["id"], row["room_id"], row["url"], tuple(json.loads(row["events"])), row["created"]
    )


def _audit(
    db: Conn,
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


def _bump_gallery(db: Conn, person_id: str) -> None:
    """The person's room's gallery changed (``gallery_version``): call inside the change's
    transaction, before a delete removes the person."""
    db.execute(
        "UPDATE rooms SET gallery_rev = gallery_rev + 1 "
        "WHERE id = (SELECT room_id FROM persons WHERE id=?)",
        (person_id,),
    )


def _owned_room(db: Conn, room_id: str, owner_id: str) -> Room:
    row = db.execute(
        "SELECT * FROM rooms WHERE id=? AND owner_id=?", (room_id, owner_id)
    ).fetchone()
    if row is None:
        raise StoreError("unknown_room", "no such room")
    return _room(row)


def _owned_person(db: Conn, person_id: str, owner_id: str) -> Room:
    """The person's room, if the person exists and belongs to this owner."""
    row = db.execute(
        "SELECT r.* FROM persons p JOIN rooms r ON r.id=p.room_id WHERE p.id=? AND r.owner_id=?",
        (person_id, owner_id),
    ).fetchone()
    if row is None:
        raise StoreError("unknown_person", "no such person")
    return _room(row)


def _room(row: Row) -> Room:
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
        link_token=row["link_token"] or "",
        legacy_link=bool(row["legacy_link"]),
        no_flashing=bool(row["no_flashing"]),
        media_backend=row["media_backend"],
    )


def _person(row: Row) -> Person:
    return Person(row["id"], row["room_id"], row["name"], row["external_id"], row["created"])


def _invite(row: Row) -> InviteInfo:
    return InviteInfo(
        row["id"],
        row["room_id"],
        row["person_id"],
        row["expires"],
        bool(row["revoked"]),
        row["created"],
        row["hint"] if "hint" in row.keys() else None,
        row["last_used"] if "last_used" in row.keys() else None,
    )


def _api_key(row: Row) -> ApiKey:
    return ApiKey(
        row["id"],
        row["owner_id"],
        row["name"],
        row["created"],
        row["last_used"],
        bool(row["revoked"]),
    )
