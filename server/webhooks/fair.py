"""Fair scheduling of webhook tries across owners (sans-IO: time is passed in).

Why: deliveries used to share one queue and four slots, and a slot stayed taken while
its delivery slept between retries. One owner with a receiver that hangs or fails
could so take every slot and stall every other owner's events. Here each owner has
its own queue (bounded), owners are served round-robin, one owner holds at most
``owner_slots`` of the ``slots`` at once, and a delivery waiting to retry is parked
with its due time and holds no slot.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass
class _OwnerQueue(Generic[T]):
    ready: deque[T] = field(default_factory=deque)
    # (due, sequence, item): a heap of deliveries waiting to retry
    parked: list[tuple[float, int, T]] = field(default_factory=list)
    running: int = 0

    def size(self) -> int:
        return len(self.ready) + len(self.parked) + self.running


class FairScheduler(Generic[T]):
    """Round-robin over owners with ready work, within global and per-owner slot caps."""

    def __init__(self, slots: int, owner_slots: int, owner_max: int, total_max: int) -> None:
        if slots < 1 or owner_slots < 1 or owner_max < 1 or total_max < 1:
            raise ValueError("slots, owner_slots, owner_max and total_max must be >= 1")
        self.slots = slots
        self.owner_slots = min(owner_slots, slots)
        self.owner_max = owner_max
        self.total_max = total_max
        self._owners: dict[str, _OwnerQueue[T]] = {}
        self._turn: deque[str] = deque()  # owners in round-robin order
        self._running = 0
        self._seq = itertools.count()

    def __len__(self) -> int:
        """Deliveries held: waiting, parked for a retry or running."""
        return sum(q.size() for q in self._owners.values())

    @property
    def running(self) -> int:
        return self._running

    def owner_size(self, owner: str) -> int:
        queue = self._owners.get(owner)
        return queue.size() if queue else 0

    def push(self, owner: str, item: T) -> bool:
        """Queue a new delivery; False when the owner's or the server's bound is reached."""
        if self.owner_size(owner) >= self.owner_max or len(self) >= self.total_max:
            return False
        self._queue(owner).ready.append(item)
        return True

    def take(self, now: float) -> tuple[str, T] | None:
        """The next try to start (counted as running), or None when none may start now."""
        if self._running >= self.slots:
            return None
        for _ in range(len(self._turn)):
            owner = self._turn[0]
            self._turn.rotate(-1)
            queue = self._owners[owner]
            self._unpark(queue, now)
            if queue.ready and queue.running < self.owner_slots:
                queue.running += 1
                self._running += 1
                return owner, queue.ready.popleft()
        return None

    def finish(self, owner: str) -> None:
        """A try ended and the delivery is done (delivered or given up)."""
        queue = self._owners[owner]
        queue.running -= 1
        self._running -= 1
        self._forget_if_idle(owner)

    def retry_at(self, owner: str, item: T, due: float) -> None:
        """A try failed: free its slot and park the delivery until ``due``."""
        queue = self._owners[owner]
        queue.running -= 1
        self._running -= 1
        heapq.heappush(queue.parked, (due, next(self._seq), item))

    def next_due(self) -> float | None:
        """The earliest parked retry, so the adapter knows when to look again."""
        dues = [q.parked[0][0] for q in self._owners.values() if q.parked]
        return min(dues) if dues else None

    def drop_all(self) -> list[T]:
        """Everything not running (shutdown)."""
        items: list[T] = []
        for queue in self._owners.values():
            items.extend(queue.ready)
            items.extend(item for _, _, item in queue.parked)
            queue.ready.clear()
            queue.parked.clear()
        return items

    def _queue(self, owner: str) -> _OwnerQueue[T]:
        queue = self._owners.get(owner)
        if queue is None:
            queue = self._owners[owner] = _OwnerQueue()
            self._turn.append(owner)
        return queue

    @staticmethod
    def _unpark(queue: _OwnerQueue[T], now: float) -> None:
        while queue.parked and queue.parked[0][0] <= now:
            queue.ready.append(heapq.heappop(queue.parked)[2])

    def _forget_if_idle(self, owner: str) -> None:
        queue = self._owners[owner]
        if queue.size() == 0:
            del self._owners[owner]
            self._turn.remove(owner)
