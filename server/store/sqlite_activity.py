"""Audit log, meetings, webhooks and their deliveries, in the SQLite store."""

from __future__ import annotations

import json
import secrets
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from .records import (
    AuditRecord,
    Delivery,
    Meeting,
    StoreError,
    Webhook,
    clean_webhook,
)
from .sql import StoreBase
from .sqlite_rows import (
    _audit,
    _audit_record,
    _meeting,
    _owned_room,
    _webhook,
)


class ActivityMixin(StoreBase):
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
                "AS newest ORDER BY id",
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
        rows = self._rows("SELECT * FROM meetings WHERE id=? AND room_id=?", (meeting_id, room_id))
        if not rows:
            raise StoreError("unknown_meeting", "no such meeting")
        return _meeting(rows[0])

    def meeting_audit(self, meeting_id: str) -> list[AuditRecord]:
        """Every audit record of one meeting, oldest first (the report's raw material)."""
        rows = self._rows(
            f"SELECT * FROM audit WHERE {self.dialect.details_meeting}=? ORDER BY id",
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
            f"{self.dialect.insertion_order} DESC LIMIT ?",
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
