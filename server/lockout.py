"""Failure counting and lockout per key (invite, client address), pure and bounded.

Shared by every gate of a server; time is passed in like everywhere in the gate.
Memory is bounded by pruning: every ``prune_every_s`` of the caller's clock the
tracker drops keys whose history left the window and locks that ended, so a
scanner trying 10 000 addresses leaves nothing behind once they expire. The hub
also calls :meth:`LockoutTracker.forget_expired` from its housekeeping, for quiet
periods with no calls at all.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field


@dataclass
class LockoutTracker:
    """Counts failures per key inside a sliding window; locks a key that reaches the count."""

    failures: int = 5
    window_s: float = 180.0
    duration_s: float = 1800.0
    prune_every_s: float = 60.0
    # Per kind of key (the part before ":"), a different failure count: an address is
    # shared by a school or an office, so it gets a far higher one than an invite.
    thresholds: dict[str, int] = field(default_factory=dict)
    _history: dict[Hashable, deque[float]] = field(default_factory=dict)
    _locked_until: dict[Hashable, float] = field(default_factory=dict)
    _pruned_at: float | None = None

    def __len__(self) -> int:
        """Keys remembered (failure histories and locks): what pruning keeps bounded."""
        return len(self._history.keys() | self._locked_until.keys())

    def locked_until(self, keys: Sequence[Hashable], now: float) -> float | None:
        found = self.lock_of(keys, now)
        return found[0] if found else None

    def lock_of(self, keys: Sequence[Hashable], now: float) -> tuple[float, Hashable] | None:
        """The latest lock among ``keys`` and which key holds it (None: none locked)."""
        self._maybe_prune(now)
        best: tuple[float, Hashable] | None = None
        for key in keys:
            until = self._locked_until.get(key, 0.0)
            if until > now and (best is None or until > best[0]):
                best = (until, key)
        return best

    def _limit(self, key: Hashable) -> int:
        return self.thresholds.get(key_scope(key), self.failures)

    def record_failure(self, keys: Sequence[Hashable], now: float) -> float | None:
        """Remember a failure; return the lockout end if this failure triggers one."""
        found = self.record(keys, now)
        return found[0] if found else None

    def record(self, keys: Sequence[Hashable], now: float) -> tuple[float, Hashable] | None:
        """Remember a failure; the lock it triggers and on which key (None: no lock)."""
        self._maybe_prune(now)
        triggered: tuple[float, Hashable] | None = None
        for key in keys:
            history = self._history.setdefault(key, deque())
            history.append(now)
            while history and history[0] <= now - self.window_s:
                history.popleft()
            if len(history) >= self._limit(key):
                self._locked_until[key] = now + self.duration_s
                history.clear()
                if triggered is None:
                    triggered = (now + self.duration_s, key)
        return triggered

    def clear(self, keys: Sequence[Hashable]) -> int:
        """Forget the failures and locks of ``keys`` (the host lifted them); how many locks."""
        lifted = 0
        for key in keys:
            self._history.pop(key, None)
            lifted += self._locked_until.pop(key, None) is not None
        return lifted

    def locks(self, now: float) -> dict[Hashable, float]:
        """Every key locked now and until when (the owner's list of locks to lift)."""
        return {k: t for k, t in self._locked_until.items() if t > now}

    def forget_expired(self, now: float) -> None:
        """Drop stale entries so memory does not grow with every IP ever seen."""
        for key in [k for k, t in self._locked_until.items() if t <= now]:
            del self._locked_until[key]
        for key in [k for k, h in self._history.items() if not h or h[-1] <= now - self.window_s]:
            del self._history[key]

    def _maybe_prune(self, now: float) -> None:
        if self._pruned_at is None or now - self._pruned_at >= self.prune_every_s:
            self._pruned_at = now
            self.forget_expired(now)


def key_scope(key: Hashable) -> str:
    """The kind of a lockout key: ``invite:<token>`` -> ``invite``."""
    return key.split(":", 1)[0] if isinstance(key, str) else ""
