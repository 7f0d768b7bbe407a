"""Rate limits every node counts into: API requests per key, sign-in and sign-up failures.

Behind a load balancer a client's requests spread over the nodes; limits kept per
node would multiply by the number of nodes. The interfaces are async (a Redis round
trip on a cluster); the in-memory limiters (``server/api/ratelimit.py``,
``server/owner/ratelimit.py``) are adapted to them unchanged, so one test-suite
covers both. The Redis versions use Redis's clock (``TIME``) inside Lua scripts,
atomically, with keys that expire once they would be back to their initial state.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger(__name__)


class SyncFailureLimit(Protocol):
    """``server/owner/ratelimit.SignInLimiter`` (not imported: the owner UI imports us)."""

    def retry_after(self, keys: Iterable[str], now: float) -> float | None: ...
    def failure(self, keys: Iterable[str], now: float) -> None: ...
    def success(self, keys: Iterable[str]) -> None: ...


class SyncRequestLimit(Protocol):
    def retry_after(self, key: str, now: float) -> int | None: ...


class RequestLimit(Protocol):
    async def retry_after(self, key: str, now: float) -> int | None:
        """Spend one request of ``key``: None when allowed, else whole seconds to wait."""


class FailureLimit(Protocol):
    async def retry_after(self, keys: Iterable[str], now: float) -> float | None: ...
    async def failure(self, keys: Iterable[str], now: float) -> None: ...
    async def success(self, keys: Iterable[str]) -> None: ...


@dataclass
class LocalRequestLimit:
    limiter: SyncRequestLimit

    async def retry_after(self, key: str, now: float) -> int | None:
        return self.limiter.retry_after(key, now)


@dataclass
class LocalFailureLimit:
    limiter: SyncFailureLimit

    async def retry_after(self, keys: Iterable[str], now: float) -> float | None:
        return self.limiter.retry_after(keys, now)

    async def failure(self, keys: Iterable[str], now: float) -> None:
        self.limiter.failure(keys, now)

    async def success(self, keys: Iterable[str]) -> None:
        self.limiter.success(keys)


# Token bucket: KEYS[1] hash {tokens, last_ms}; ARGV rate/s, burst. Returns -1 when
# allowed, else the milliseconds until a token is back.
_BUCKET = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local v = redis.call('HMGET', KEYS[1], 'tokens', 'last')
local tokens, last = tonumber(v[1]), tonumber(v[2])
if tokens == nil then tokens, last = burst, now end
tokens = math.min(burst, tokens + (now - last) / 1000 * rate)
local wait = -1
if tokens >= 1 then tokens = tokens - 1 else wait = math.ceil((1 - tokens) / rate * 1000) end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'last', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return wait
"""

# Sliding window of failures: KEYS[i] sorted sets; ARGV window ms, max failures.
# Returns the largest wait in ms among keys at their maximum (0: none).
_WINDOW_WAIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window, most = tonumber(ARGV[1]), tonumber(ARGV[2])
local wait = 0
for _, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  if redis.call('ZCARD', key) >= most then
    local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    wait = math.max(wait, tonumber(first[2]) + window - now)
  end
end
return wait
"""
_WINDOW_ADD = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, ARGV[2] .. ':' .. i)
  redis.call('PEXPIRE', key, ARGV[1])
end
return 0
"""


class RedisRequestLimit:
    """Redis unreachable: the node's own limiter (``fallback``) counts, as on one node."""

    def __init__(
        self,
        redis: Any,
        rate: float,
        burst: int,
        fallback: SyncRequestLimit,
        prefix: str = "vg:rate:api:",
    ) -> None:
        self.rate, self.burst, self.prefix, self.fallback = rate, burst, prefix, fallback
        self._script = redis.register_script(_BUCKET)

    async def retry_after(self, key: str, now: float) -> int | None:
        try:
            wait = int(await self._script(keys=[self.prefix + key], args=[self.rate, self.burst]))
        except Exception:  # Redis unreachable or failing: never a 500 for a limit
            log.warning("shared rate limit unavailable: counting on this node")
            return self.fallback.retry_after(key, now)
        return None if wait < 0 else max(1, -(-wait // 1000))


class RedisFailureLimit:
    """Redis unreachable: the node's own limiter (``fallback``) counts, as on one node."""

    def __init__(
        self,
        redis: Any,
        max_failures: int,
        window_s: float,
        prefix: str,
        fallback: SyncFailureLimit,
    ) -> None:
        self.redis, self.fallback = redis, fallback
        self.max_failures, self.window_ms, self.prefix = max_failures, int(window_s * 1000), prefix
        self._wait = redis.register_script(_WINDOW_WAIT)
        self._add = redis.register_script(_WINDOW_ADD)

    def _keys(self, keys: Iterable[str]) -> list[str]:
        return [self.prefix + k for k in keys]

    async def retry_after(self, keys: Iterable[str], now: float) -> float | None:
        keys = list(keys)
        try:
            wait = int(
                await self._wait(keys=self._keys(keys), args=[self.window_ms, self.max_failures])
            )
        except Exception:
            return self._local().retry_after(keys, now)
        return wait / 1000.0 if wait > 0 else None

    async def failure(self, keys: Iterable[str], now: float) -> None:
        keys = list(keys)
        try:
            await self._add(keys=self._keys(keys), args=[self.window_ms, secrets.token_hex(8)])
        except Exception:
            self._local().failure(keys, now)

    async def success(self, keys: Iterable[str]) -> None:
        keys = list(keys)
        try:
            await self.redis.delete(*self._keys(keys))
        except Exception:
            self._local().success(keys)

    def _local(self) -> SyncFailureLimit:
        log.warning("shared sign-in limit unavailable: counting on this node")
        return self.fallback
