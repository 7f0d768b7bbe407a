"""Deliver room events to webhooks: per-owner queues, fair slots, retries, SSRF guard.

Why this shape: events are raised on the media and admission paths (gate actions,
presence checks), which must never wait for someone else's HTTP server. ``emit``
(``prepare`` off the event loop, then ``enqueue`` on it) only reads the room's
webhooks, writes a ``pending`` row to the delivery log and queues the delivery under
the room's owner (a full queue drops it, logged as
``dropped``). A :class:`~.fair.FairScheduler` starts tries round-robin across owners,
at most ``concurrency`` at once and ``owner_concurrency`` per owner; a try that fails
frees its slot and the delivery is parked until its backoff is due, so one tenant's
hanging or failing receiver cannot stall the others. Every try resolves the target
and refuses non-public addresses (``guard``); the log records coarse error classes
only. After ``max_attempts`` the delivery is ``failed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from ..config import WebhookSettings
from ..store import Repository, StoreError
from .fair import FairScheduler
from .guard import DeliveryRefused, error_class, parse_networks, pinned_session, resolve_target
from .signing import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign_body

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Delivery:
    id: str
    url: str
    secret: str
    event: str
    body: bytes
    attempt: int = 1


class WebhookDispatcher:
    def __init__(self, store: Repository, settings: WebhookSettings) -> None:
        self.store = store
        self.settings = settings
        self._allow = parse_networks(settings.allow_networks)
        self._fair: FairScheduler[_Delivery] = FairScheduler(
            slots=settings.concurrency,
            owner_slots=settings.owner_concurrency,
            owner_max=settings.owner_queue_max,
            total_max=settings.queue_max,
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self._wakeup: asyncio.TimerHandle | None = None
        self._closed = False

    def emit(self, room_id: str, event: str, data: dict[str, Any]) -> int:
        """Queue ``event`` for every webhook of the room that wants it; never blocks on
        a receiver. Returns the number of deliveries queued.

        Touches the store (the room's webhooks, the ``pending`` rows): callers on the
        media path use :meth:`prepare` off the event loop and :meth:`enqueue` on it.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # no running loop (CLI use): nothing can be delivered
            return 0
        owner, deliveries = self.prepare(room_id, event, data)
        return self.enqueue(owner, deliveries)

    def prepare(
        self, room_id: str, event: str, data: dict[str, Any]
    ) -> tuple[str, list[_Delivery]]:
        """The store part of :meth:`emit` (any thread): the room's webhooks that want
        ``event``, each with a ``pending`` row in the delivery log and its signed body."""
        if self._closed:
            return "", []
        try:
            targets = self.store.webhook_targets(room_id, event)
        except Exception:  # a store or key problem must not reach the media path
            log.exception("webhook lookup failed for %s", event)
            return "", []
        if not targets:
            return "", []
        deliveries = []
        for hook, secret in targets:
            delivery_id = self.store.record_delivery(hook.id, room_id, event, "pending")
            body = json.dumps(
                {
                    "id": delivery_id,
                    "event": event,
                    "room_id": room_id,
                    "ts": round(time.time(), 3),
                    "data": data,
                },
                separators=(",", ":"),
            ).encode()
            deliveries.append(_Delivery(delivery_id, hook.url, secret, event, body))
        return self._owner_of(room_id), deliveries

    def enqueue(self, owner: str, deliveries: list[_Delivery]) -> int:
        """The event-loop part of :meth:`emit`: queue what :meth:`prepare` made."""
        if self._closed or not deliveries:
            return 0
        queued = 0
        for delivery in deliveries:
            if self._fair.push(owner, delivery):
                queued += 1
            else:
                self.store.update_delivery(delivery.id, "dropped", 0, None, "queue_full")
        self._pump()
        return queued

    @property
    def backlog(self) -> int:
        """Deliveries waiting (retries included) or in flight (/metrics)."""
        return len(self._fair)

    def _owner_of(self, room_id: str) -> str:
        """Queues are per owner; CLI rooms (no owner) each count as their own tenant."""
        try:
            return self.store.room(room_id).owner_id or f"room:{room_id}"
        except StoreError:
            return f"room:{room_id}"

    def _pump(self) -> None:
        """Start every try the scheduler allows now; look again when a retry is due."""
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        while (started := self._fair.take(time.monotonic())) is not None:
            owner, delivery = started
            task = loop.create_task(self._try(owner, delivery), name=f"webhook-{delivery.id}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if self._wakeup is not None:
            self._wakeup.cancel()
            self._wakeup = None
        due = self._fair.next_due()
        if due is not None:
            self._wakeup = loop.call_later(max(0.0, due - time.monotonic()), self._pump)

    async def _try(self, owner: str, delivery: _Delivery) -> None:
        retry = False
        try:
            retry = await self._attempt(delivery)
        except asyncio.CancelledError:
            raise
        except Exception:  # never let one delivery take the scheduler down
            log.exception("webhook delivery %s crashed", delivery.id)
            self._log(delivery.id, "failed", delivery.attempt, None, "bad_response")
        if self._closed:
            return
        if retry:
            due = time.monotonic() + self.settings.backoff_s * 2 ** (delivery.attempt - 1)
            nxt = _Delivery(
                delivery.id,
                delivery.url,
                delivery.secret,
                delivery.event,
                delivery.body,
                delivery.attempt + 1,
            )
            self._fair.retry_at(owner, nxt, due)
        else:
            self._fair.finish(owner)
        self._pump()

    async def _attempt(self, delivery: _Delivery) -> bool:
        """One try; logs it and returns True when another try should follow."""
        attempt = delivery.attempt
        code: int | None = None
        error: str | None = None
        final = attempt >= self.settings.max_attempts
        try:
            addresses = await resolve_target(delivery.url, self._allow)
            timestamp = int(time.time())
            headers = {
                "Content-Type": "application/json",
                "User-Agent": "videogate-webhooks/1",
                EVENT_HEADER: delivery.event,
                DELIVERY_HEADER: delivery.id,
                TIMESTAMP_HEADER: str(timestamp),
                SIGNATURE_HEADER: sign_body(delivery.secret, timestamp, delivery.body),
            }
            async with (
                pinned_session(addresses, self.settings.timeout_s) as session,
                session.post(
                    delivery.url, data=delivery.body, headers=headers, allow_redirects=False
                ) as response,
            ):
                code = response.status
                if 200 <= code < 300:
                    self._log(delivery.id, "delivered", attempt, code, None)
                    return False
                error = "http_status"
        except DeliveryRefused as exc:
            error = exc.error_class
            final = final or exc.error_class in ("blocked_address", "bad_url")
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            error = error_class(exc)
        if error in ("blocked_address", "bad_url"):
            log.warning("webhook delivery %s refused: %s", delivery.id, error)
        self._log(delivery.id, "failed" if final else "retrying", attempt, code, error)
        return not final

    def _log(
        self, delivery_id: str, status: str, attempts: int, code: int | None, error: str | None
    ) -> None:
        try:
            self.store.update_delivery(delivery_id, status, attempts, code, error)
        except Exception:
            log.exception("webhook delivery log write failed")

    async def drain(self, timeout: float) -> None:
        """Wait until nothing is queued, parked or in flight (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self._fair) == 0 and not self._tasks:
                return
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        self._closed = True
        if self._wakeup is not None:
            self._wakeup.cancel()
        for delivery in self._fair.drop_all():
            self._log(delivery.id, "dropped", delivery.attempt - 1, None, "shutdown")
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
