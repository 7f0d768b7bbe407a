"""Webhook abuse: SSRF into the operator's network, port scanning through the delivery
log, and one tenant's receiver stalling every other tenant's events."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from server.config import WebhookSettings
from server.store import SqliteStore, open_store
from server.webhooks import WebhookDispatcher
from server.webhooks.fair import FairScheduler
from server.webhooks.guard import (
    ERROR_CLASSES,
    DeliveryRefused,
    address_allowed,
    parse_networks,
    resolve_target,
)

LOOPBACK_ALLOWED = "127.0.0.0/8"
GUARD_S = 10.0  # a hang guard, not a timing assertion


@dataclass
class Receiver:
    url: str = ""
    tries: int = 0
    seen: asyncio.Event = field(default_factory=asyncio.Event)
    behaviour: str = "ok"  # ok | fail | hang
    release: asyncio.Event = field(default_factory=asyncio.Event)


Factory = Callable[[str], Awaitable[Receiver]]


@pytest.fixture
async def receivers() -> AsyncIterator[Factory]:
    servers: list[TestServer] = []
    made: list[Receiver] = []

    async def make(behaviour: str) -> Receiver:
        state = Receiver(behaviour=behaviour)

        async def hook(request: web.Request) -> web.Response:
            state.tries += 1
            state.seen.set()
            await request.read()
            if state.behaviour == "hang":
                await state.release.wait()
            if state.behaviour == "fail":
                return web.Response(status=503)
            return web.Response(status=204)

        app = web.Application()
        app.router.add_post("/hook", hook)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        made.append(state)
        state.url = str(server.make_url("/hook"))
        return state

    yield make
    for state in made:
        state.release.set()
    for server in servers:
        await server.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = open_store(tmp_path)
    yield s
    s.close()


async def test_internal_targets_are_never_contacted(store: SqliteStore, receivers: Factory) -> None:
    """A tenant points webhooks at the server's own loopback, a name that resolves to
    it, an IPv4-mapped IPv6 spelling and the cloud metadata address: no request is
    made to any of them and the log says ``blocked_address``, nothing more."""
    target = await receivers("ok")
    port = target.url.split(":")[2].split("/")[0]
    room = store.create_room("Hooks")
    urls = [
        target.url,
        f"http://localhost:{port}/hook",
        f"http://[::ffff:127.0.0.1]:{port}/hook",
        f"http://2130706433:{port}/hook",  # 127.0.0.1 as one decimal number
        "http://169.254.169.254/latest/meta-data/",
        "http://100.100.100.200/latest/meta-data/",
        "http://10.1.2.3:6379/",
    ]
    hooks = [store.create_webhook(room.id, url)[0] for url in urls]
    dispatcher = WebhookDispatcher(store, WebhookSettings(max_attempts=2, backoff_s=0.01))
    try:
        assert dispatcher.emit(room.id, "meeting.ended", {}) == len(urls)
        await dispatcher.drain(GUARD_S)
    finally:
        await dispatcher.close()
    assert target.tries == 0
    for hook in hooks:
        (delivery,) = store.deliveries(hook.id)
        assert (delivery.status, delivery.last_error) == ("failed", "blocked_address"), hook.url
        assert delivery.attempts == 1  # a refused address is not retried


async def test_delivery_log_carries_classes_not_raw_errors(
    store: SqliteStore, receivers: Factory
) -> None:
    """With loopback allowed (on-premises receivers), a closed port and an error status
    are logged as coarse classes: no socket message an owner could scan ports with."""
    failing = await receivers("fail")
    room = store.create_room("Hooks")
    closed, _ = store.create_webhook(room.id, "http://127.0.0.1:9/nothing-listens")
    erroring, _ = store.create_webhook(room.id, failing.url)
    settings = WebhookSettings(max_attempts=1, allow_networks=LOOPBACK_ALLOWED, timeout_s=2.0)
    dispatcher = WebhookDispatcher(store, settings)
    try:
        dispatcher.emit(room.id, "meeting.ended", {})
        await dispatcher.drain(GUARD_S)
    finally:
        await dispatcher.close()
    (refused,) = store.deliveries(closed.id)
    (answered,) = store.deliveries(erroring.id)
    assert refused.last_error == "connect_error" and refused.last_code is None
    assert (answered.last_error, answered.last_code) == ("http_status", 503)
    assert {refused.last_error, answered.last_error} <= set(ERROR_CLASSES)


async def _two_tenants(store: SqliteStore) -> tuple[str, str]:
    rooms = []
    for name in ("a", "b"):
        owner = store.create_owner(f"{name}@example.org", "x")
        rooms.append(store.create_room(f"Room {name}", owner_id=owner.id).id)
    return rooms[0], rooms[1]


async def test_a_hanging_receiver_does_not_stall_other_owners(
    store: SqliteStore, receivers: Factory
) -> None:
    """Owner A's receiver accepts connections and never answers; A's room emits many
    events. Owner B's event is still delivered (A cannot hold every slot)."""
    hanging, quick = await receivers("hang"), await receivers("ok")
    room_a, room_b = await _two_tenants(store)
    store.create_webhook(room_a, hanging.url)
    store.create_webhook(room_b, quick.url)
    settings = WebhookSettings(max_attempts=1, timeout_s=60.0, allow_networks=LOOPBACK_ALLOWED)
    dispatcher = WebhookDispatcher(store, settings)
    try:
        for _ in range(10):
            dispatcher.emit(room_a, "participant.left", {})
        await asyncio.wait_for(hanging.seen.wait(), GUARD_S)
        dispatcher.emit(room_b, "participant.left", {})
        await asyncio.wait_for(quick.seen.wait(), GUARD_S)
    finally:
        await dispatcher.close()
    assert quick.tries == 1


async def test_deliveries_waiting_to_retry_hold_no_slot(
    store: SqliteStore, receivers: Factory
) -> None:
    """Owner A's receiver fails at once and the backoff is long: A's deliveries wait to
    retry without holding a slot, so owner B's event goes out meanwhile."""
    failing, quick = await receivers("fail"), await receivers("ok")
    room_a, room_b = await _two_tenants(store)
    store.create_webhook(room_a, failing.url)
    store.create_webhook(room_b, quick.url)
    settings = WebhookSettings(max_attempts=3, backoff_s=60.0, allow_networks=LOOPBACK_ALLOWED)
    dispatcher = WebhookDispatcher(store, settings)
    try:
        for _ in range(10):
            dispatcher.emit(room_a, "participant.left", {})
        while failing.tries < 4:
            await asyncio.wait_for(failing.seen.wait(), GUARD_S)
            failing.seen.clear()
        dispatcher.emit(room_b, "participant.left", {})
        await asyncio.wait_for(quick.seen.wait(), GUARD_S)
    finally:
        await dispatcher.close()
    assert quick.tries == 1


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("10.20.30.40", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("100.100.100.200", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("::1", False),
        ("::", False),
        ("fe80::1", False),
        ("fd00:ec2::254", False),
        ("::ffff:10.0.0.1", False),
        ("64:ff9b::a9fe:a9fe", False),  # NAT64 spelling of 169.254.169.254
        ("2002:7f00:1::", False),  # 6to4 spelling of 127.0.0.1
        ("ff02::1", False),
    ],
)
def test_address_policy(address: str, allowed: bool) -> None:
    assert address_allowed(ipaddress.ip_address(address)) is allowed


def test_allow_list_opens_only_the_listed_networks() -> None:
    allow = parse_networks("10.1.0.0/16, 192.168.5.7")
    assert address_allowed(ipaddress.ip_address("10.1.2.3"), allow)
    assert address_allowed(ipaddress.ip_address("192.168.5.7"), allow)
    assert not address_allowed(ipaddress.ip_address("10.2.0.1"), allow)
    assert not address_allowed(ipaddress.ip_address("169.254.169.254"), allow)
    with pytest.raises(ValueError, match="nope"):
        parse_networks("10.0.0.0/8, nope")


async def test_one_private_answer_refuses_the_whole_name() -> None:
    """A DNS answer mixing a public and a private address is refused (no retry that
    might pick the private one)."""

    async def lookup(host: str, port: int) -> list[str]:
        return ["93.184.215.14", "10.0.0.7"]

    with pytest.raises(DeliveryRefused) as caught:
        await resolve_target("https://hooks.example.org/x", (), lookup)
    assert caught.value.error_class == "blocked_address"

    async def public(host: str, port: int) -> list[str]:
        return ["93.184.215.14"]

    assert await resolve_target("https://hooks.example.org/x", (), public) == ["93.184.215.14"]


def test_fair_scheduler_round_robin_caps_and_parking() -> None:
    fair: FairScheduler[str] = FairScheduler(slots=3, owner_slots=2, owner_max=5, total_max=8)
    for i in range(6):
        assert fair.push("a", f"a{i}") is (i < 5)  # per-owner bound
    assert fair.push("b", "b0") and fair.push("c", "c0")
    started = [fair.take(0.0) for _ in range(4)]
    assert started[3] is None  # three slots
    assert sorted(s[0] for s in started[:3] if s) == ["a", "b", "c"]  # one each first
    fair.retry_at("b", "b0", due=10.0)  # parked: frees the slot
    assert fair.running == 2
    nxt = fair.take(1.0)
    assert nxt is not None and nxt[0] == "a"
    assert fair.take(1.0) is None  # slots full again
    fair.finish("a")
    fair.finish("a")
    assert fair.take(5.0) == ("a", "a2")  # b is not due yet
    fair.finish("c")
    assert fair.take(10.0) == ("b", "b0")  # due now
    assert fair.next_due() is None
    for i in range(4):
        assert fair.push("d", f"d{i}")
    assert not fair.push("d", "d4")  # the server-wide bound (8) is reached
