"""Deliver room events to webhooks: a bounded queue, a worker, retries with backoff.

Why this shape: events are raised on the media and admission paths (gate actions,
presence checks), which must never wait for someone else's HTTP server. ``emit``
only reads the room's webhooks, writes a ``pending`` row to the delivery log and
puts the delivery on a bounded queue (a full queue drops it, logged as
``dropped``). A worker hands each delivery to its own task, at most
``CONCURRENCY`` at a time, so one slow receiver retrying does not hold back the
others. Each try is logged (attempts, last status code or error); after
``max_attempts`` the delivery is ``failed``.
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
from ..store import SqliteStore
from .signing import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign_body

log = logging.getLogger(__name__)

CONCURRENCY = 4
ERROR_MAX = 200


@dataclass(frozen=True)
class _Delivery:
    id: str
    url: str
    secret: str
    event: str
    body: bytes


class WebhookDispatcher:
    def __init__(self, store: SqliteStore, settings: WebhookSettings) -> None:
        self.store = store
        self.settings = settings
        self._queue: asyncio.Queue[_Delivery] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots: asyncio.Semaphore | None = None
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    def emit(self, room_id: str, event: str, data: dict[str, Any]) -> int:
        """Queue ``event`` for every webhook of the room that wants it; never blocks.

        Returns the number of deliveries queued.
        """
        if self._closed:
            return 0
        try:
            targets = self.store.webhook_targets(room_id, event)
        except Exception:  # a store or key problem must not reach the media path
            log.exception("webhook lookup failed for %s", event)
            return 0
        if not targets:
            return 0
        try:
            self._ensure_worker()
        except RuntimeError:  # no running loop (CLI use): nothing can be delivered
            return 0
        assert self._queue is not None
        queued = 0
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
            try:
                self._queue.put_nowait(_Delivery(delivery_id, hook.url, secret, event, body))
                queued += 1
            except asyncio.QueueFull:
                self.store.update_delivery(delivery_id, "dropped", 0, None, "queue full")
        return queued

    def _ensure_worker(self) -> None:
        asyncio.get_running_loop()
        if self._queue is None:
            self._queue = asyncio.Queue(maxsize=self.settings.queue_max)
            self._slots = asyncio.Semaphore(CONCURRENCY)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._work(), name="webhooks")

    async def _work(self) -> None:
        assert self._queue is not None and self._slots is not None
        while True:
            delivery = await self._queue.get()
            await self._slots.acquire()
            task = asyncio.create_task(self._deliver(delivery), name=f"webhook-{delivery.id}")
            self._tasks.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if self._slots is not None:
            self._slots.release()

    async def _deliver(self, delivery: _Delivery) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.settings.timeout_s)
            )
        attempts = self.settings.max_attempts
        for attempt in range(1, attempts + 1):
            code: int | None = None
            error: str | None = None
            timestamp = int(time.time())
            headers = {
                "Content-Type": "application/json",
                "User-Agent": "videogate-webhooks/1",
                EVENT_HEADER: delivery.event,
                DELIVERY_HEADER: delivery.id,
                TIMESTAMP_HEADER: str(timestamp),
                SIGNATURE_HEADER: sign_body(delivery.secret, timestamp, delivery.body),
            }
            try:
                async with self._session.post(
                    delivery.url, data=delivery.body, headers=headers, allow_redirects=False
                ) as response:
                    code = response.status
                    if 200 <= code < 300:
                        self._log(delivery.id, "delivered", attempt, code, None)
                        return
                    error = f"HTTP {code}"
            except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
                error = (f"{type(exc).__name__}: {exc}")[:ERROR_MAX]
            final = attempt == attempts
            self._log(delivery.id, "failed" if final else "retrying", attempt, code, error)
            if not final:
                await asyncio.sleep(self.settings.backoff_s * 2 ** (attempt - 1))

    def _log(
        self, delivery_id: str, status: str, attempts: int, code: int | None, error: str | None
    ) -> None:
        try:
            self.store.update_delivery(delivery_id, status, attempts, code, error)
        except Exception:
            log.exception("webhook delivery log write failed")

    async def drain(self, timeout: float) -> None:
        """Wait until the queue is empty and no delivery is in flight (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (self._queue is None or self._queue.empty()) and not self._tasks:
                return
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        self._closed = True
        tasks = [t for t in (self._worker, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._session is not None:
            await self._session.close()
