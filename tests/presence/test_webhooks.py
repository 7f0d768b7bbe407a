"""Webhook delivery: signed bodies, retries with backoff, the delivery log, no blocking."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from server.config import WebhookSettings
from server.store import SqliteStore, StoreError
from server.store.records import WEBHOOK_EVENTS
from server.webhooks import SIGNATURE_HEADER, WebhookDispatcher, sign_body, verify_signature
from tests.store_backends import Backend


@dataclass
class Receiver:
    url: str
    fail_first: int = 0
    got: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    tries: int = 0


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    state = Receiver("")

    async def hook(request: web.Request) -> web.Response:
        state.tries += 1
        if state.tries <= state.fail_first:
            return web.Response(status=503)
        state.got.append((dict(request.headers), await request.read()))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    state.url = str(server.make_url("/hook"))
    yield state
    await server.close()


@pytest.fixture
def store(backend: Backend) -> SqliteStore:
    """The dispatcher's store on SQLite and PostgreSQL (closed by ``backend``)."""
    s: SqliteStore = backend.open()
    return s


FAST = WebhookSettings(max_attempts=3, backoff_s=0.05, timeout_s=2.0, allow_networks="127.0.0.0/8")


def test_signature_round_trip() -> None:
    body = b'{"a":1}'
    header = sign_body("s3cret", 1000, body)
    assert verify_signature("s3cret", header, body, now=1010)
    assert not verify_signature("s3cret", header, body + b" ", now=1010)
    assert not verify_signature("other", header, body, now=1010)
    assert not verify_signature("s3cret", header, body, now=1000 + 301)  # replayed late
    assert not verify_signature("s3cret", "garbage", body, now=1000)


async def test_signed_event_is_delivered_and_logged(store: SqliteStore, receiver: Receiver) -> None:
    room = store.create_room("Hooks")
    hook, secret = store.create_webhook(room.id, receiver.url, ["participant.admitted"])
    hub = WebhookDispatcher(store, FAST)
    try:
        assert hub.emit(room.id, "presence.lost", {}) == 0  # not subscribed
        assert hub.emit(room.id, "participant.admitted", {"name": "Ada"}) == 1
        await hub.drain(5)
    finally:
        await hub.close()
    ((headers, body),) = receiver.got
    assert verify_signature(secret, headers[SIGNATURE_HEADER], body, time.time())
    payload = json.loads(body)
    assert payload["event"] == "participant.admitted" and payload["data"] == {"name": "Ada"}
    log = store.deliveries(hook.id)
    assert [(d.status, d.attempts, d.last_code) for d in log] == [("delivered", 1, 204)]


async def test_failing_receiver_is_retried_with_backoff(
    store: SqliteStore, receiver: Receiver
) -> None:
    room = store.create_room("Hooks")
    hook, _ = store.create_webhook(room.id, receiver.url)
    receiver.fail_first = 2
    hub = WebhookDispatcher(store, FAST)
    try:
        started = time.monotonic()
        hub.emit(room.id, "meeting.ended", {})
        await hub.drain(5)
        took = time.monotonic() - started
    finally:
        await hub.close()
    assert receiver.tries == 3 and len(receiver.got) == 1
    assert took >= 0.05 + 0.1  # backoff 0.05 then 0.1
    (delivery,) = store.deliveries(hook.id)
    assert (delivery.status, delivery.attempts) == ("delivered", 3)


async def test_dead_receiver_fails_after_max_attempts_without_blocking(store: SqliteStore) -> None:
    room = store.create_room("Hooks")
    hook, _ = store.create_webhook(room.id, "http://127.0.0.1:9/nothing-listens")
    hub = WebhookDispatcher(store, FAST)
    try:
        started = time.monotonic()
        for _ in range(20):
            hub.emit(room.id, "participant.left", {})
        assert time.monotonic() - started < 0.5  # emit only queues
        await hub.drain(10)
    finally:
        await hub.close()
    log = store.deliveries(hook.id)
    assert len(log) == 20
    assert {(d.status, d.attempts) for d in log} == {("failed", 3)}
    assert all(d.last_error for d in log)


def test_webhook_validation(store: SqliteStore) -> None:
    room = store.create_room("Hooks")
    for url, events in (("ftp://x", None), ("http://a b", None), ("http://x", ["nope"]),
                        ("http://x", [])):  # fmt: skip
        with pytest.raises(StoreError):
            store.create_webhook(room.id, url, events)
    hook, secret = store.create_webhook(room.id, "https://example.test/h")
    # None = every event; presence.unverifiable included (issue 12)
    assert secret.startswith("whsec_") and hook.events == WEBHOOK_EVENTS
    assert "presence.unverifiable" in hook.events
    store.delete_webhook(hook.id)
    assert store.webhooks(room.id) == []


async def test_queue_full_drops_and_logs(store: SqliteStore) -> None:
    room = store.create_room("Hooks")
    hook, _ = store.create_webhook(room.id, "http://127.0.0.1:9/x")
    settings = WebhookSettings(
        max_attempts=1, queue_max=1, timeout_s=1.0, allow_networks="127.0.0.0/8"
    )
    hub = WebhookDispatcher(store, settings)
    try:
        queued = sum(hub.emit(room.id, "participant.left", {}) for _ in range(5))
        await asyncio.sleep(0)
        assert queued < 5
        assert any(d.status == "dropped" for d in store.deliveries(hook.id))
    finally:
        await hub.close()
