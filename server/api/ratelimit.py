"""Requests per API key: a token bucket per key, pure (time passed in).

Why: an API key is a program, and a runaway or hostile one could otherwise make the
server parse, authenticate and query without bound. Over the rate the API answers
429 ``rate_limited`` with ``Retry-After`` (seconds until a token is back), so a
well-behaved client knows exactly when to continue.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

MAX_KEYS = 10_000


@dataclass
class _Bucket:
    tokens: float
    last: float


@dataclass
class KeyedRateLimiter:
    rate: float
    burst: int
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    def retry_after(self, key: str, now: float) -> int | None:
        """Spend one token of ``key``; None when allowed, else whole seconds to wait."""
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= MAX_KEYS:
                self._prune(now)
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.last) * self.rate)
        bucket.last = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return None
        return max(1, math.ceil((1.0 - bucket.tokens) / self.rate))

    def _prune(self, now: float) -> None:
        """Forget keys whose bucket has refilled (they start full again anyway)."""
        full_after = self.burst / self.rate
        for key in [k for k, b in self._buckets.items() if now - b.last >= full_after]:
            del self._buckets[key]
