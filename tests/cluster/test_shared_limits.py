"""API request and sign-in failure limits, in memory and in Redis (same tests)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
import redis.asyncio as aioredis

from server.api.ratelimit import KeyedRateLimiter
from server.cluster.limits import (
    FailureLimit,
    LocalFailureLimit,
    LocalRequestLimit,
    RedisFailureLimit,
    RedisRequestLimit,
    RequestLimit,
)
from server.owner.ratelimit import SignInLimiter

Requests = Callable[[float, int], RequestLimit]
Failures = Callable[[int, float], FailureLimit]


@pytest.fixture(params=["memory", "redis"])
def requests(request: pytest.FixtureRequest, redis_client: aioredis.Redis) -> Requests:
    if request.param == "memory":
        return lambda rate, burst: LocalRequestLimit(KeyedRateLimiter(rate, burst))
    return lambda rate, burst: RedisRequestLimit(
        redis_client, rate, burst, KeyedRateLimiter(rate, burst)
    )


@pytest.fixture(params=["memory", "redis"])
def failures(request: pytest.FixtureRequest, redis_client: aioredis.Redis) -> Failures:
    if request.param == "memory":
        return lambda most, window: LocalFailureLimit(SignInLimiter(most, window))
    return lambda most, window: RedisFailureLimit(
        redis_client, most, window, "t:", SignInLimiter(most, window)
    )


async def test_a_key_gets_its_burst_then_waits(requests: Requests) -> None:
    limit = requests(0.5, 3)  # a token every 2 s
    now = time.monotonic()
    assert [await limit.retry_after("k1", now) for _ in range(3)] == [None, None, None]
    wait = await limit.retry_after("k1", now)
    assert wait is not None and 1 <= wait <= 2
    assert await limit.retry_after("k2", now) is None  # another key has its own bucket


async def test_the_bucket_refills(requests: Requests) -> None:
    limit = requests(10.0, 1)
    assert await limit.retry_after("k", time.monotonic()) is None
    assert await limit.retry_after("k", time.monotonic()) == 1
    await asyncio.sleep(0.15)  # one token back after 0.1 s
    assert await limit.retry_after("k", time.monotonic()) is None


async def test_failures_block_until_the_window_passes(failures: Failures) -> None:
    limit = failures(2, 0.4)
    keys = ["ip:198.51.100.7", "email:a@example.org"]
    assert await limit.retry_after(keys, time.monotonic()) is None
    await limit.failure(keys, time.monotonic())
    await limit.failure(["email:a@example.org"], time.monotonic())
    wait = await limit.retry_after(keys, time.monotonic())
    assert wait is not None and 0 < wait <= 0.4
    assert await limit.retry_after(["ip:198.51.100.7"], time.monotonic()) is None
    await asyncio.sleep(0.5)
    assert await limit.retry_after(keys, time.monotonic()) is None


async def test_success_clears_the_key(failures: Failures) -> None:
    limit = failures(1, 60.0)
    await limit.failure(["email:a@example.org"], time.monotonic())
    assert await limit.retry_after(["email:a@example.org"], time.monotonic()) is not None
    await limit.success(["email:a@example.org"])
    assert await limit.retry_after(["email:a@example.org"], time.monotonic()) is None


async def test_nodes_share_one_bucket(redis_client: aioredis.Redis) -> None:
    a = RedisRequestLimit(redis_client, 0.1, 2, KeyedRateLimiter(0.1, 2))
    b = RedisRequestLimit(redis_client, 0.1, 2, KeyedRateLimiter(0.1, 2))
    now = time.monotonic()
    assert await a.retry_after("k", now) is None
    assert await b.retry_after("k", now) is None
    assert await a.retry_after("k", now) is not None
    assert await redis_client.pttl("vg:rate:api:k") > 0


async def test_redis_away_the_node_counts_alone(redis_url: str) -> None:
    """No 500 for a limit: with Redis unreachable each node limits on its own."""
    gone = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    try:
        requests = RedisRequestLimit(gone, 0.1, 1, KeyedRateLimiter(0.1, 1))
        now = time.monotonic()
        assert await requests.retry_after("k", now) is None
        assert await requests.retry_after("k", now) is not None
        failures = RedisFailureLimit(gone, 1, 60.0, "t:", SignInLimiter(1, 60.0))
        await failures.failure(["ip:x"], now)
        assert await failures.retry_after(["ip:x"], now) is not None
    finally:
        await gone.aclose()
