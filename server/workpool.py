"""The CPU worker pool: capacity reserved for the gate, bounded lanes for everything else.

Why: gate frames, API verify/search and photo uploads used to share one two-thread
executor with an unbounded queue. An owner posting 40-megapixel photos in a loop
filled both threads and the queue, so participants' frames waited behind the uploads,
their attempts ran into ``no_face`` and timeouts, and those failures counted towards
the lockout. Here:

- ``submit`` (the :class:`concurrent.futures.Executor` interface, so ``run_in_executor``
  call sites stay as they are) is the **gate** lane: unbounded (the gate's sampler
  already drops old frames), served first, and it may use every worker;
- every other lane (``api``, ``upload``) runs on at most ``workers - gate_reserved``
  threads at once, so ``gate_reserved`` workers are always free for the gate, and
  waits in a bounded queue: over the bound :meth:`WorkPool.submit_to` raises
  :class:`Busy` at once (the handlers answer 503 ``busy`` with ``Retry-After``)
  instead of queueing work nobody will wait for.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from .config import WorkerSettings

T = TypeVar("T")
GATE = "gate"
API = "api"
UPLOAD = "upload"


class Busy(Exception):
    """A lane's queue is full: refuse now and tell the client when to come back."""

    def __init__(self, lane: str, retry_after_s: int) -> None:
        super().__init__(f"the {lane} queue is full; retry in {retry_after_s} s")
        self.lane = lane
        self.retry_after_s = retry_after_s


@dataclass
class _Job:
    lane: str
    future: Future[Any]
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    queued_at: float = 0.0


@dataclass
class LaneStats:
    queued: int = 0
    running: int = 0
    refused: int = 0
    done: int = 0
    mean_s: float = 1.0  # running mean of job time, for Retry-After


class WorkPool(Executor):
    def __init__(
        self,
        workers: int = 2,
        gate_reserved: int = 1,
        queue_max: Mapping[str, int] | None = None,
        thread_name_prefix: str = "face",
    ) -> None:
        if workers < 1 or not 0 <= gate_reserved < workers:
            raise ValueError("need workers >= 1 and 0 <= gate_reserved < workers")
        self.workers = workers
        self.shared = workers - gate_reserved  # threads the other lanes may use at once
        self.queue_max = dict(queue_max or {API: 4, UPLOAD: 4})
        self._cond = threading.Condition()
        self._queues: dict[str, deque[_Job]] = {GATE: deque()}
        self._queues.update({lane: deque() for lane in self.queue_max})
        self._stats = {lane: LaneStats() for lane in self._queues}
        self._other_running = 0
        self._turn = deque(lane for lane in self._queues if lane != GATE)
        self._shutdown = False
        # Called from the worker threads after each job: (lane, wait s, run s) (/metrics).
        self.on_job_done: Callable[[str, float, float], None] | None = None
        self._threads = [
            threading.Thread(target=self._work, name=f"{thread_name_prefix}-{i}", daemon=True)
            for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    @classmethod
    def from_settings(cls, settings: WorkerSettings) -> WorkPool:
        return cls(
            settings.count,
            settings.gate_reserved,
            {API: settings.api_queue, UPLOAD: settings.upload_queue},
        )

    # -- submitting --

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        """The gate lane (and anything that calls the pool as a plain executor)."""
        return self._enqueue(GATE, fn, args, kwargs)

    def submit_to(self, lane: str, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        """Queue ``fn`` on a bounded lane, or raise :class:`Busy` when it is full."""
        if lane not in self.queue_max:
            raise KeyError(f"unknown lane {lane!r}")
        return self._enqueue(lane, fn, args, kwargs)

    def lane(self, name: str) -> LaneExecutor:
        """An executor view of one lane, for code that takes an ``Executor``."""
        return LaneExecutor(self, name)

    def _enqueue(
        self, lane: str, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Future[T]:
        future: Future[T] = Future()
        with self._cond:
            if self._shutdown:
                raise RuntimeError("the work pool is shut down")
            queue = self._queues[lane]
            stats = self._stats[lane]
            if lane != GATE and len(queue) >= self.queue_max[lane]:
                stats.refused += 1
                raise Busy(lane, self._retry_after(lane))
            queue.append(_Job(lane, future, fn, args, kwargs, time.monotonic()))
            stats.queued += 1
            self._cond.notify_all()
        return future

    def _retry_after(self, lane: str) -> int:
        stats = self._stats[lane]
        backlog = stats.queued + stats.running
        return max(1, min(60, math.ceil(backlog * stats.mean_s / max(1, self.shared))))

    # -- the workers --

    def _next(self) -> _Job | None:
        """Called with the lock held: gate work first, then the other lanes in turn."""
        if self._queues[GATE]:
            return self._queues[GATE].popleft()
        if self._other_running >= self.shared:
            return None
        for _ in range(len(self._turn)):
            lane = self._turn[0]
            self._turn.rotate(-1)
            if self._queues[lane]:
                self._other_running += 1
                return self._queues[lane].popleft()
        return None

    def _work(self) -> None:
        while True:
            with self._cond:
                job = self._next()
                while job is None:
                    if self._shutdown:
                        return
                    self._cond.wait()
                    job = self._next()
                stats = self._stats[job.lane]
                stats.queued -= 1
                stats.running += 1
            started = time.monotonic()
            if job.future.set_running_or_notify_cancel():
                try:
                    result = job.fn(*job.args, **job.kwargs)
                except BaseException as exc:
                    job.future.set_exception(exc)
                else:
                    job.future.set_result(result)
            elapsed = time.monotonic() - started
            observe = self.on_job_done
            if observe is not None:
                try:
                    observe(job.lane, started - job.queued_at, elapsed)
                except Exception:  # metrics must never take a worker thread down
                    pass
            with self._cond:
                stats.running -= 1
                stats.done += 1
                stats.mean_s += (elapsed - stats.mean_s) * 0.2
                if job.lane != GATE:
                    self._other_running -= 1
                self._cond.notify_all()

    # -- introspection and shutdown --

    def stats(self) -> dict[str, dict[str, float]]:
        """Per lane: queued, running, refused, done, mean job seconds (for /metrics)."""
        with self._cond:
            return {lane: dict(vars(s)) for lane, s in self._stats.items()}

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._cond:
            self._shutdown = True
            if cancel_futures:
                for queue in self._queues.values():
                    while queue:
                        job = queue.popleft()
                        self._stats[job.lane].queued -= 1
                        job.future.cancel()
            self._cond.notify_all()
        if wait:
            for thread in self._threads:
                thread.join()


class LaneExecutor(Executor):
    """``submit`` goes to one bounded lane; :class:`Busy` propagates to the caller."""

    def __init__(self, pool: WorkPool, lane: str) -> None:
        self.pool = pool
        self.name = lane

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        return self.pool.submit_to(self.name, fn, *args, **kwargs)


def lane(executor: Executor | None, name: str) -> Executor | None:
    """The ``name`` lane of a :class:`WorkPool`, or ``executor`` itself if it is not one."""
    return executor.lane(name) if isinstance(executor, WorkPool) else executor
