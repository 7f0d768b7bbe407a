"""Bounded, drop-oldest frame sampling from a decoded WebRTC video track.

The reader drains the track as fast as frames arrive (an undrained aiortc track
queues without bound) and keeps only the newest frame; the worker hands that
frame to the analyser at most ``fps`` times a second. When analysis is slower
than the camera, old frames are dropped rather than queued: a decision on a
fresh frame beats a complete one on stale frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
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
    ) -> None:
        self._source = source
        self._interval = 1.0 / fps
        self._boost_interval = self._interval
        self._boost_until = float("-inf")
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

    def boost(self, fps: float, until: float) -> None:
        """Analyse up to ``fps`` frames a second until ``until`` (this sampler's clock),
        then fall back to the normal rate: the screen-light challenge needs several
        frames per colour for a few seconds (docs/liveness.md)."""
        self._boost_interval = 1.0 / fps
        self._boost_until = until

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
            if self._clock() < self._boost_until:
                interval = min(interval, self._boost_interval)
            if took < interval:
                await asyncio.sleep(interval - took)
