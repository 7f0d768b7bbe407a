"""Each piece of shared state against a real Redis; the lockout counters against the
in-memory tracker too (same tests, parametrized): one behaviour, two backends."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
import redis.asyncio as aioredis

from server.cluster import (
    FailureCounter,
    GraceRecord,
    LocalCounter,
    MirroredLockout,
    RedisCounter,
    RedisGrace,
    Registry,
)
from server.lockout import LockoutTracker

INVITE, IP, DEVICE = "invite:tok", "ip:room1:198.51.100.7", "device:dev1"


Factory = Callable[[int, float, float], FailureCounter]


@pytest.fixture(params=["memory", "redis"])
def make_counter(request: pytest.FixtureRequest, redis_client: aioredis.Redis) -> Factory:
    """Counters with given thresholds (failures, window, duration) on either backend."""

    def memory(failures: int, window_s: float, duration_s: float) -> FailureCounter:
        return LocalCounter(LockoutTracker(failures, window_s, duration_s, thresholds={"ip": 4}))

    def shared(failures: int, window_s: float, duration_s: float) -> FailureCounter:
        return RedisCounter(redis_client, failures, window_s, duration_s, thresholds={"ip": 4})

    return memory if request.param == "memory" else shared


async def test_failures_lock_the_strict_key_and_not_the_address(make_counter: Factory) -> None:
    counter = make_counter(2, 60.0, 30.0)
    now = time.monotonic()
    assert await counter.record((INVITE, IP), now) is None
    lock = await counter.record((INVITE, IP), now)
    assert lock is not None and lock[1] == INVITE
    assert 25.0 < lock[0] - now <= 30.0
    locks = await counter.locks((INVITE, IP, DEVICE), now)
    assert set(locks) == {INVITE}
    # The address has its own, higher threshold (4): two more failures from it lock it.
    await counter.record((IP,), now)
    lock = await counter.record((IP,), now)
    assert lock is not None and lock[1] == IP
    assert set(await counter.locks((IP, DEVICE), now)) == {IP}


async def test_a_lifted_lock_is_gone_with_its_failures(make_counter: Factory) -> None:
    """The host lifts a lock: on a cluster the shared lock must go too, or the next
    join on any node would bring it back; its failures go with it."""
    counter = make_counter(2, 60.0, 30.0)
    now = time.monotonic()
    await counter.record((INVITE,), now)
    assert await counter.record((INVITE,), now) is not None
    await counter.clear((INVITE,))
    assert await counter.locks((INVITE,), now) == {}
    assert await counter.record((INVITE,), now) is None  # the count starts again


async def test_failures_outside_the_window_do_not_count(make_counter: Factory) -> None:
    counter = make_counter(2, 0.3, 30.0)
    assert await counter.record((INVITE,), time.monotonic()) is None
    await asyncio.sleep(0.45)  # the first failure leaves the window
    assert await counter.record((INVITE,), time.monotonic()) is None
    assert await counter.locks((INVITE,), time.monotonic()) == {}
    assert await counter.record((INVITE,), time.monotonic()) is not None


async def test_a_lock_ends_after_its_duration(make_counter: Factory) -> None:
    counter = make_counter(1, 60.0, 0.3)
    assert await counter.record((DEVICE,), time.monotonic()) is not None
    assert DEVICE in await counter.locks((DEVICE,), time.monotonic())
    await asyncio.sleep(0.45)
    assert await counter.locks((DEVICE,), time.monotonic()) == {}


async def test_two_nodes_count_into_one_window(redis_client: aioredis.Redis) -> None:
    """A failure on each of two nodes reaches a threshold of two: the second locks."""
    node_a = RedisCounter(redis_client, 2, 60.0, 30.0)
    node_b = RedisCounter(redis_client, 2, 60.0, 30.0)
    assert await node_a.record((INVITE,), time.monotonic()) is None
    assert await node_b.record((INVITE,), time.monotonic()) is not None
    assert INVITE in await node_a.locks((INVITE,), time.monotonic())
    assert await redis_client.ttl("vg:lockout:" + INVITE) > 0  # keys expire by themselves


def test_the_gates_tracker_mirrors_shared_locks() -> None:
    tracker = MirroredLockout(5, 180.0, 1800.0)
    now = time.monotonic()
    assert tracker.lock_of((INVITE, IP), now) is None
    tracker.remember({INVITE: now + 60})
    assert tracker.lock_of((INVITE, IP), now) == (now + 60, INVITE)
    tracker.forget_expired(now + 61)
    assert tracker.lock_of((INVITE,), now + 61) is None and not tracker.remote


def record(room: str = "r1", person: str | None = "p1") -> GraceRecord:
    return GraceRecord(room, "198.51.100.7", "dev", person, "Ada", 0.31, 1.0e9, 0.5, 0.04)


async def test_rejoin_tokens_are_single_use_and_expire(redis_client: aioredis.Redis) -> None:
    grace = RedisGrace(redis_client)
    await grace.put("t1", record(), 30.0)
    await grace.put("t2", record(), 0.2)
    assert await grace.claim("t1") == record()
    assert await grace.claim("t1") is None  # single use, on every node
    await asyncio.sleep(0.35)
    assert await grace.claim("t2") is None
    # Renewing never brings back a claimed token.
    await grace.renew(["t1"], 30.0)
    assert await grace.claim("t1") is None


async def test_revocation_drops_the_tokens_of_a_room_or_person(
    redis_client: aioredis.Redis,
) -> None:
    grace = RedisGrace(redis_client)
    await grace.put("a", record("r1", "p1"), 30.0)
    await grace.put("b", record("r1", "p2"), 30.0)
    await grace.put("c", record("r2", "p1"), 30.0)
    await grace.put("d", record("r2", "p3"), 30.0)
    assert await grace.drop(room_id="r1") == 2
    assert await grace.claim("a") is None and await grace.claim("b") is None
    assert await grace.drop(person_id="p1") == 1
    assert await grace.claim("c") is None
    assert await grace.claim("d") == record("r2", "p3")


async def test_nodes_agree_on_a_rooms_janus_instance(redis_client: aioredis.Redis) -> None:
    """Issue 18: with Redis the room -> Janus instance mapping is the registry's, so
    nodes whose janus_urls differ in order (or a node that learned of a new instance)
    still send a room's people to one Janus; an instance no longer configured is
    replaced."""
    a = Registry(redis_client, "a", "http://127.0.0.1:1", lease_s=30.0)
    b = Registry(redis_client, "b", "http://127.0.0.1:2", lease_s=30.0)
    urls = ["http://j1/janus", "http://j2/janus", "http://j3/janus"]
    for room in ("r1", "r2", "r3", "r4", "r5"):
        first = urls[await a.janus_instance(room, urls)]
        reordered = list(reversed(urls))
        assert reordered[await b.janus_instance(room, reordered)] == first
        assert await redis_client.ttl(f"vg:janus:{room}") > 0
    # The instance r1 lives on is gone from b's configuration: placed again, for all.
    placed = urls[await a.janus_instance("r1", urls)]
    remaining = [u for u in urls if u != placed]
    moved = remaining[await b.janus_instance("r1", remaining)]
    assert moved != placed and urls[await a.janus_instance("r1", urls)] == moved


async def test_rooms_go_to_the_least_loaded_live_node_and_stay(
    redis_client: aioredis.Redis,
) -> None:
    a = Registry(redis_client, "a", "http://127.0.0.1:1", lease_s=30.0)
    b = Registry(redis_client, "b", "http://127.0.0.1:2", lease_s=30.0)
    await a.heartbeat(load=5, rooms=[])
    await b.heartbeat(load=1, rooms=[])
    owner = await a.place("room1")
    assert owner.node_id == "b" and owner.ws_url == "ws://127.0.0.1:2/ws"
    await b.heartbeat(load=9, rooms=["room1"])
    assert (await a.place("room1")).node_id == "b"  # placed: load no longer matters
    assert (await b.place("room2")).node_id == "a"
    # Equal load: the node the join reached keeps it (no redirect for nothing).
    await a.heartbeat(load=0, rooms=[])
    await b.heartbeat(load=0, rooms=["room1"])
    assert (await b.place("room3")).node_id == "b"
    # An emptied room is released and placed again by load.
    await b.release("room1")
    await b.heartbeat(load=3, rooms=[])
    assert (await b.place("room1")).node_id == "a"


async def test_a_dead_nodes_rooms_are_placed_again(redis_client: aioredis.Redis) -> None:
    a = Registry(redis_client, "a", "http://127.0.0.1:1", lease_s=0.3)
    b = Registry(redis_client, "b", "http://127.0.0.1:2", lease_s=30.0)
    await a.heartbeat(load=0, rooms=[])
    await b.heartbeat(load=4, rooms=[])
    assert (await b.place("room1")).node_id == "a"
    await asyncio.sleep(0.45)  # a stops renewing: its node and room leases expire
    assert [n.node_id for n in await b.live_nodes()] == ["b"]
    assert (await b.place("room1")).node_id == "b"
    # a comes back: the room stays where it is now.
    await a.heartbeat(load=0, rooms=["room1"])
    assert (await a.place("room1")).node_id == "b"


async def test_two_processes_with_one_node_id_are_reported(
    redis_client: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    first = Registry(redis_client, "a", "http://127.0.0.1:1", lease_s=30.0)
    second = Registry(redis_client, "a", "http://127.0.0.1:1", lease_s=30.0)
    await first.heartbeat(0, [])
    await second.heartbeat(0, [])  # its first beat: may follow its own crash, no error
    assert "another process" not in caplog.text
    await first.heartbeat(0, [])
    assert "another process announces itself as node a" in caplog.text
