"""Failure counters and lockouts that every node sees (docs/scale.md, "What is shared where").

Why an async interface beside the sync :class:`~server.lockout.LockoutTracker`: the
gate is sans-IO and asks a sync tracker (``server/gate.py``). On one node that
tracker *is* the state. In a cluster the gate still asks a local tracker, a
:class:`MirroredLockout`, and the participant layer does the Redis round trips
around the gate: before a join's first attempt it loads the locks of the
session's keys, and after each counted failure it adds the failure to the shared
counters (which may lock a key the local count has not reached yet).

:class:`FailureCounter` is that shared part; :class:`LocalCounter` adapts the
in-memory tracker to it (so one test-suite covers both) and :class:`RedisCounter`
keeps the sliding windows in Redis: one sorted set of failure times and one lock
key per lockout key, both expiring, updated atomically by one Lua script using
Redis's own clock (nodes' clocks never have to agree).
"""

from __future__ import annotations

import secrets
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..lockout import LockoutTracker, key_scope

Lock = tuple[float, str]  # (until, on the caller's monotonic clock; the key that holds it)


class FailureCounter(Protocol):
    async def record(self, keys: Sequence[str], now: float) -> Lock | None:
        """Count one failure on every key; the lock it triggers (None: none)."""

    async def locks(self, keys: Sequence[str], now: float) -> dict[str, float]:
        """Every locked key among ``keys`` and until when (caller's clock)."""

    async def clear(self, keys: Sequence[str]) -> None:
        """Forget the keys' failures and locks (the host lifted them)."""


@dataclass
class LocalCounter:
    """The one-process tracker seen through the shared interface."""

    tracker: LockoutTracker

    async def record(self, keys: Sequence[str], now: float) -> Lock | None:
        found = self.tracker.record(keys, now)
        return None if found is None else (found[0], str(found[1]))

    async def locks(self, keys: Sequence[str], now: float) -> dict[str, float]:
        out: dict[str, float] = {}
        for key in keys:
            until = self.tracker.locked_until((key,), now)
            if until is not None:
                out[key] = until
        return out

    async def clear(self, keys: Sequence[str]) -> None:
        self.tracker.clear(keys)


# KEYS: history, lock, history, lock, ...; ARGV: window_ms, duration_ms, member, limits...
# Returns each lock key's remaining ms (-2: none) and the 1-based index of the first key
# this failure locked (0: none).
_RECORD = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window, duration = tonumber(ARGV[1]), tonumber(ARGV[2])
local out, first = {}, 0
for i = 1, #KEYS / 2 do
  local hist, lock = KEYS[2 * i - 1], KEYS[2 * i]
  redis.call('ZADD', hist, now, ARGV[3] .. ':' .. i)
  redis.call('ZREMRANGEBYSCORE', hist, '-inf', now - window)
  redis.call('PEXPIRE', hist, window)
  if redis.call('ZCARD', hist) >= tonumber(ARGV[3 + i]) then
    redis.call('SET', lock, '1', 'PX', duration)
    redis.call('DEL', hist)
    if first == 0 then first = i end
  end
  out[i] = redis.call('PTTL', lock)
end
out[#out + 1] = first
return out
"""


@dataclass
class RedisCounter:
    """Sliding windows and locks in Redis; same thresholds as the local tracker."""

    redis: Any  # redis.asyncio.Redis (untyped at the boundary: redis-py's stubs are partial)
    failures: int = 5
    window_s: float = 180.0
    duration_s: float = 1800.0
    thresholds: Mapping[str, int] = field(default_factory=dict)
    prefix: str = "vg:lockout:"

    def __post_init__(self) -> None:
        self._script = self.redis.register_script(_RECORD)

    def _limit(self, key: Hashable) -> int:
        return self.thresholds.get(key_scope(key), self.failures)

    async def record(self, keys: Sequence[str], now: float) -> Lock | None:
        if not keys:
            return None
        redis_keys = [k for key in keys for k in (self.prefix + "h:" + key, self.prefix + key)]
        argv = [
            int(self.window_s * 1000),
            int(self.duration_s * 1000),
            secrets.token_hex(8),
            *(self._limit(k) for k in keys),
        ]
        result = [int(x) for x in await self._script(keys=redis_keys, args=argv)]
        first = result[-1]
        if first == 0:
            return None
        return (now + result[first - 1] / 1000.0, keys[first - 1])

    async def locks(self, keys: Sequence[str], now: float) -> dict[str, float]:
        if not keys:
            return {}
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.pttl(self.prefix + key)
            ttls = await pipe.execute()
        return {k: now + int(ms) / 1000.0 for k, ms in zip(keys, ttls, strict=True) if int(ms) > 0}

    async def clear(self, keys: Sequence[str]) -> None:
        if keys:
            await self.redis.delete(
                *(k for key in keys for k in (self.prefix + "h:" + key, self.prefix + key))
            )


class MirroredLockout(LockoutTracker):
    """The gate's sync tracker on a cluster node: this node's own counts (as on one node)
    plus the locks the shared counters reported (``remember``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.remote: dict[str, float] = {}

    def remember(self, locks: Mapping[str, float]) -> None:
        self.remote.update(locks)

    def clear(self, keys: Sequence[Hashable]) -> int:
        lifted = super().clear(keys)
        for key in keys:
            lifted += self.remote.pop(str(key), None) is not None
        return lifted

    def lock_of(self, keys: Sequence[Hashable], now: float) -> tuple[float, Hashable] | None:
        best = super().lock_of(keys, now)
        for key in keys:
            until = self.remote.get(str(key), 0.0)
            if until > now and (best is None or until > best[0]):
                best = (until, key)
        return best

    def forget_expired(self, now: float) -> None:
        super().forget_expired(now)
        self.remote = {k: t for k, t in self.remote.items() if t > now}
