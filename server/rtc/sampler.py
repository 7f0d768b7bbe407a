"""Bounded, drop-oldest frame sampling from a decoded WebRTC video track.

The reader drains the track as fast as frames arrive (an undrained aiortc track
queues without bound) and keeps only the newest frame; the worker hands that
frame to the analyser at most ``fps`` times a second (or at ``rate(now)``, which the
gate raises during its light and expression steps: ``Gate.sample_fps``). When analysis
is slower than the camera, old frames are dropped rather than queued: a decision on a
fresh frame beats a complete one on stale frames. :class:`SamplerClock` is the same
rule for offline runs (the liveness eval and benches), so they analyse the frames the
server would.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import math
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


class FrameSource(Protocol):
    async def recv(self) -> Any: ...


Analyse = Callable[[Any, float], Awaitable[None]]


@dataclass
class SamplerStats:
    received: int = 0
    analysed: int = 0
    dropped: int = 0
    last_analysis_ms: float = 0.0
    max_frame_age_ms: float = 0.0


class FrameSampler:
    def __init__(
        self,
        source: FrameSource,
        fps: float,
        analyse: Analyse,
        clock: Callable[[], float] = time.monotonic,
        rate: Callable[[float], float] | None = None,
    ) -> None:
        self._source = source
        self._interval = 1.0 / fps
        # Frames a second wanted at a time of ``clock`` (never below ``fps``).
        self._rate = rate
        self._analyse = analyse
        self._clock = clock
        self._latest: tuple[Any, float] | None = None
        self._fresh = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.stats = SamplerStats()
        self.first_frame_at: float | None = None
        self.ended = asyncio.Event()
        self._stopped = False

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._read(), name="sampler-read"),
            asyncio.create_task(self._work(), name="sampler-work"),
        ]

    async def stop(self) -> None:
        """Stop both loops; safe to call from inside ``analyse`` (the gate admits there)."""
        self._stopped = True
        current = asyncio.current_task()
        others = [t for t in self._tasks if t is not current]
        for task in others:
            task.cancel()
        for task in others:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []

    async def _read(self) -> None:
        try:
            while True:
                frame = await self._source.recv()
                now = self._clock()
                if self.first_frame_at is None:
                    self.first_frame_at = now
                self.stats.received += 1
                if self._latest is not None:
                    self.stats.dropped += 1
                self._latest = (frame, now)
                self._fresh.set()
        except asyncio.CancelledError:
            raise
        except Exception:
            # MediaStreamError: the track ended (peer left, stream stopped).
            self.ended.set()

    async def _work(self) -> None:
        while not self._stopped:
            await self._fresh.wait()
            self._fresh.clear()
            if self._latest is None:
                continue
            frame, received_at = self._latest
            self._latest = None
            started = self._clock()
            self.stats.max_frame_age_ms = max(
                self.stats.max_frame_age_ms, (started - received_at) * 1000
            )
            await self._analyse(frame, received_at)
            self.stats.analysed += 1
            if self._stopped:
                return
            took = self._clock() - started
            self.stats.last_analysis_ms = took * 1000
            interval = self._interval
            if self._rate is not None:
                interval = min(interval, 1.0 / self._rate(self._clock()))
            if took < interval:
                await asyncio.sleep(interval - took)


class SamplerClock:
    """Which frame :class:`FrameSampler` analyses next, and when, for offline runs.

    The sampler analyses a frame, waits until ``1 / rate`` after that analysis began,
    then takes the newest frame that arrived since the one it took last, or waits for
    the next to arrive. Here analysis takes no time and frame ``n`` arrives at
    ``times[n]`` (a looping camera when ``period`` is given: frame ``n`` is clip frame
    ``n % len(times)``, arriving ``n // len(times)`` periods later).
    """

    def __init__(self, times: Sequence[float], period: float | None = None) -> None:
        if not times:
            raise ValueError("no frames")
        self.times = list(times)
        self.period = period
        self.last = -1

    def time_of(self, n: int) -> float:
        loop, i = divmod(n, len(self.times))
        return self.times[i] + (loop * self.period if self.period is not None else 0.0)

    def take(self, wake: float) -> tuple[int, float] | None:
        """(frame number, time of its analysis) when the sampler wakes at ``wake``;
        None once a clip played once has no frame left."""
        count = len(self.times)
        loop = 0 if self.period is None else max(0, math.floor(wake / self.period))
        offset = loop * self.period if self.period is not None else 0.0
        newest = loop * count + bisect.bisect_right(self.times, wake - offset + 1e-9) - 1
        n = max(newest, self.last + 1)
        if self.period is None and n >= count:
            return None
        self.last = n
        return n, max(wake, self.time_of(n))

    def frames(self, start: float, rate: Callable[[], float]) -> Iterator[tuple[int, float]]:
        """(frame number, time) of each analysis from ``start`` while ``rate()`` (read
        after the caller has handled each frame, as the sampler reads the gate's) sets
        the pace; endless for a looping clip."""
        wake = start
        while (got := self.take(wake)) is not None:
            yield got
            wake = got[1] + 1.0 / rate()
