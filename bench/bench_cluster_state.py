"""What a cluster adds to a join: the Redis round trips, beside the in-memory state.

A private ``redis-server`` on loopback (started and stopped here) and, in the same
run, the single-node objects for the same operations:

- lockout: the shared locks of a join's three keys (before its first attempt) and a
  counted failure (after a refusal);
- rejoin grace: store a token at admission, claim it at the rejoin;
- placement: where a join's room lives (live nodes + the atomic placement);
- API rate limit: one request of one key.

Prints a table (median and p95, microseconds) and writes JSON to bench/out/.

    .venv/bin/python bench/bench_cluster_state.py [--n 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import redis.asyncio as aioredis  # noqa: E402

from server.api.ratelimit import KeyedRateLimiter  # noqa: E402
from server.cluster import (  # noqa: E402
    GraceRecord,
    LocalCounter,
    RedisCounter,
    RedisGrace,
    Registry,
)
from server.cluster.limits import LocalRequestLimit, RedisRequestLimit  # noqa: E402
from server.devserver import run_redis  # noqa: E402
from server.lockout import LockoutTracker  # noqa: E402

KEYS = ("invite:tok", "ip:room:198.51.100.7", "device:dev")


async def timed(n: int, op: Callable[[int], Awaitable[Any]]) -> dict[str, float]:
    for i in range(min(50, n)):  # warm up (scripts loaded, connections open)
        await op(i)
    samples = []
    for i in range(n):
        start = time.perf_counter()
        await op(i)
        samples.append((time.perf_counter() - start) * 1e6)
    samples.sort()
    return {"p50_us": statistics.median(samples), "p95_us": samples[int(0.95 * (n - 1))]}


async def run(url: str, n: int) -> dict[str, dict[str, float]]:
    redis: Any = aioredis.Redis.from_url(url, decode_responses=True)
    now = time.monotonic
    memory = LocalCounter(LockoutTracker(10**9, 180.0, 1800.0))
    shared = RedisCounter(redis, 10**9, 180.0, 1800.0)
    grace = RedisGrace(redis)
    record = GraceRecord("room", "198.51.100.7", None, "p1", "Ada", 0.3, 1e9, 0.5, 0.04)
    memory_grace: dict[str, GraceRecord] = {}
    registry = Registry(redis, "a", "http://127.0.0.1:1", 30.0)
    await Registry(redis, "b", "http://127.0.0.1:2", 30.0).heartbeat(0, [])
    await registry.heartbeat(0, [])
    api_memory = LocalRequestLimit(KeyedRateLimiter(1e9, 10**9))
    api_shared = RedisRequestLimit(redis, 1e9, 10**9, KeyedRateLimiter(1e9, 10**9))

    async def memory_grace_op(i: int) -> None:
        memory_grace[f"t{i}"] = record
        memory_grace.pop(f"t{i}")

    async def shared_grace_op(i: int) -> None:
        await grace.put(f"t{i}", record, 30.0)
        await grace.claim(f"t{i}")

    rows = {
        "lockout locks, memory": await timed(n, lambda i: memory.locks(KEYS, now())),
        "lockout locks, redis": await timed(n, lambda i: shared.locks(KEYS, now())),
        "lockout failure, memory": await timed(n, lambda i: memory.record(KEYS, now())),
        "lockout failure, redis": await timed(n, lambda i: shared.record(KEYS, now())),
        "grace put+claim, memory": await timed(n, memory_grace_op),
        "grace put+claim, redis": await timed(n, shared_grace_op),
        "placement, redis": await timed(n, lambda i: registry.place(f"room{i % 50}")),
        "api request, memory": await timed(n, lambda i: api_memory.retry_after("k", now())),
        "api request, redis": await timed(n, lambda i: api_shared.retry_after("k", now())),
    }
    await redis.aclose()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, run_redis(Path(tmp)) as url:
        rows = asyncio.run(run(url, args.n))
    print(f"{'operation':28} {'p50 µs':>9} {'p95 µs':>9}")
    for name, row in rows.items():
        print(f"{name:28} {row['p50_us']:9.1f} {row['p95_us']:9.1f}")
    join = sum(rows[k]["p50_us"] for k in ("lockout locks, redis", "placement, redis"))
    print(f"a join's added Redis time (placement + locks), p50: {join:.0f} µs")
    out = REPO / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_cluster.json").write_text(json.dumps({"n": args.n, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
