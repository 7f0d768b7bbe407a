"""The audit trail of live sessions: one writer thread, webhooks, the dashboard's recent list.

Why a writer thread: every gate decision, presence event and join writes a
record; SQLite commits (fsync) on the event loop would stall media and every
other participant. Records are handed to one thread in order (so the log keeps
its order) and the loop moves on. ``flush`` waits for what was handed over, for
shutdown and tests. A failed write is logged with its traceback, never raised
into the media path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from .report.sentences import sentence
from .store.records import WEBHOOK_EVENTS
from .store.repository import AuditStore
from .webhooks import WebhookDispatcher

log = logging.getLogger(__name__)

# Events the owner dashboard lists as "recent".
DASHBOARD_EVENTS = ("participant.admitted", "participant.denied", "attempt.failed",
                    "participant.left", "reverify.requested", "reverify.passed",
                    "reverify.failed", "presence.lost", "identity.mismatch", "extra.person",
                    "presence.restored", "presence.unverifiable", "presence.camera_off",
                    "host.sent_to_lobby", "host.reset", "lock.lifted")  # fmt: skip
# Audit details that stay in the audit log: never sent to a webhook.
PRIVATE_DETAILS = ("ip",)
RECENT_PER_ROOM = 20


class AuditTrail:
    def __init__(self, store: AuditStore, webhooks: WebhookDispatcher) -> None:
        self._store = store
        self._webhooks = webhooks
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit")
        self._last: Future[None] | None = None

    def record(
        self,
        event: str,
        record: dict[str, Any],
        *,
        room_id: str,
        person_id: str | None,
        participant_id: str | None,
    ) -> None:
        """Hand one record to the writer; its webhooks are prepared there too (their
        ``pending`` rows are store writes) and queued back on the event loop."""
        hook: dict[str, Any] | None = None
        if event in WEBHOOK_EVENTS:
            # Webhooks get the event without the client address (privacy).
            hook = {k: v for k, v in record.items() if k not in PRIVATE_DETAILS}
            hook.update(participant_id=participant_id, person_id=person_id)
        self._submit(event, record, room_id, person_id, participant_id, hook)

    def room_event(
        self, event: str, details: dict[str, Any], room_id: str, hook: dict[str, Any] | None
    ) -> None:
        """A record of the room itself (no participant); ``hook`` = webhook data or None."""
        self._submit(event, details, room_id, None, None, hook)

    def _submit(
        self,
        event: str,
        record: dict[str, Any],
        room_id: str,
        person_id: str | None,
        participant_id: str | None,
        hook: dict[str, Any] | None,
    ) -> None:
        loop: asyncio.AbstractEventLoop | None = None
        if hook is not None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no loop (CLI use): nothing could be delivered
                hook = None
        self._last = self._writer.submit(
            self._write, event, record, room_id, person_id, participant_id, hook, loop
        )

    def _write(
        self,
        event: str,
        record: dict[str, Any],
        room_id: str,
        person_id: str | None,
        participant_id: str | None,
        hook: dict[str, Any] | None,
        loop: asyncio.AbstractEventLoop | None,
    ) -> None:
        try:
            self._store.audit(
                event, record, room_id=room_id, person_id=person_id, participant_id=participant_id
            )
        except Exception:  # the audit must never take the media path down
            log.exception("audit write failed for %s", event)
        if hook is None or loop is None:
            return
        owner, deliveries = self._webhooks.prepare(room_id, event, hook)
        if deliveries:
            with contextlib.suppress(RuntimeError):  # the loop closed: shutting down
                loop.call_soon_threadsafe(self._webhooks.enqueue, owner, deliveries)

    async def recent(self, room_id: str) -> list[dict[str, Any]]:
        """The room's latest dashboard events, newest first, read on the writer thread
        (after every record handed over before: the list is never behind the log)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._writer, self.recent_now, room_id)

    def recent_now(self, room_id: str) -> list[dict[str, Any]]:
        try:
            records = self._store.audit_log(room_id, limit=100)
        except Exception:  # the dashboard must never take the media path down
            log.exception("dashboard audit read failed")
            return []
        recent: list[dict[str, Any]] = []
        for record in reversed(records):
            if record.event not in DASHBOARD_EVENTS:
                continue
            distance = record.details.get("distance")
            recent.append(
                {
                    "ts": round(record.ts, 1),
                    "event": record.event,
                    "name": record.details.get("name"),
                    "reason": record.details.get("reason"),
                    "distance": None if distance is None else round(float(distance), 3),
                    "participant_id": record.participant_id,
                    # in the owner's words; the page shows ``event`` on hover
                    "text": sentence(
                        record.event, record.details, invited=record.person_id is not None
                    ),
                }
            )
            if len(recent) >= RECENT_PER_ROOM:
                break
        return recent

    async def settled(self) -> None:
        """Wait (without blocking the loop) until what was handed over is written: a
        session does this before its ``bye``, so whoever saw the bye sees the records."""
        last = self._last
        if last is not None:
            await asyncio.wrap_future(last)

    def flush(self, timeout_s: float = 10.0) -> None:
        """Block until every record handed over so far is written (one thread: in order)."""
        last = self._last
        if last is not None:
            last.result(timeout_s)

    def close(self) -> None:
        self._writer.shutdown(wait=True)
