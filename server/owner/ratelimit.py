"""Sign-in throttling: failures per client address and per account in a sliding window.

Pure (time passed in) so it is unit-tested without sleeping. Limits both guessing many
passwords for one account from many addresses and many accounts from one address.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass
class SignInLimiter:
    max_failures: int = 5
    window_s: float = 300.0
    _failures: dict[str, deque[float]] = field(default_factory=dict)

    def _recent(self, key: str, now: float) -> deque[float]:
        history = self._failures.setdefault(key, deque())
        while history and history[0] <= now - self.window_s:
            history.popleft()
        return history

    def retry_after(self, keys: Iterable[str], now: float) -> float | None:
        """Seconds until a blocked key frees up, or None when every key may try."""
        waits = [
            history[0] + self.window_s - now
            for key in keys
            if len(history := self._recent(key, now)) >= self.max_failures
        ]
        return max(waits) if waits else None

    def failure(self, keys: Iterable[str], now: float) -> None:
        for key in keys:
            self._recent(key, now).append(now)
        if len(self._failures) > 10_000:  # bound memory under a spray of addresses
            for key in [k for k, v in self._failures.items() if not v]:
                del self._failures[key]

    def success(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._failures.pop(key, None)
