"""The frame sampler drops old frames instead of queueing them."""

from __future__ import annotations

import asyncio
import time

from server.rtc.sampler import FrameSampler


class FastSource:
    """A camera that produces numbered frames every millisecond, then ends."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.sent = 0

    async def recv(self) -> int:
        if self.sent >= self.count:
            raise RuntimeError("track ended")
        await asyncio.sleep(0.001)
        self.sent += 1
        return self.sent


async def test_slow_analysis_sees_only_fresh_frames() -> None:
    seen: list[int] = []

    async def analyse(frame: int, _t: float) -> None:
        seen.append(frame)
        await asyncio.sleep(0.05)

    source = FastSource(200)
    sampler = FrameSampler(source, fps=20, analyse=analyse)
    sampler.start()
    await asyncio.wait_for(sampler.ended.wait(), 5)
    await asyncio.sleep(0.1)
    await sampler.stop()
    assert sampler.stats.received == 200
    assert 2 <= len(seen) < 40
    assert seen == sorted(seen)
    assert sampler.stats.dropped > 100
    # Each analysed frame is the newest one available when the worker was free.
    gaps = [b - a for a, b in zip(seen, seen[1:], strict=False)]
    assert min(gaps) > 5


async def test_rate_is_capped_by_fps() -> None:
    count = 0

    async def analyse(_frame: int, _t: float) -> None:
        nonlocal count
        count += 1

    sampler = FrameSampler(FastSource(10_000), fps=10, analyse=analyse)
    sampler.start()
    await asyncio.sleep(0.55)
    await sampler.stop()
    # The cap is what matters; a slow machine may analyse fewer, never more.
    assert 1 <= count <= 7


async def test_stop_from_inside_analysis_does_not_cancel_the_caller() -> None:
    finished: list[str] = []
    sampler: FrameSampler

    async def analyse(_frame: int, _t: float) -> None:
        await sampler.stop()
        await asyncio.sleep(0.01)  # the rest of the admission still runs
        finished.append("after-stop")

    sampler = FrameSampler(FastSource(100), fps=50, analyse=analyse)
    sampler.start()
    await asyncio.sleep(0.2)
    assert finished == ["after-stop"]
    await sampler.stop()


async def test_boost_raises_the_rate_until_its_end() -> None:
    """The screen-light challenge asks for more frames for a few seconds (Flash action)."""
    count = 0

    async def analyse(_frame: int, _t: float) -> None:
        nonlocal count
        count += 1

    sampler = FrameSampler(FastSource(10_000), fps=0.5, analyse=analyse)
    sampler.boost(50.0, until=time.monotonic() + 60.0)
    sampler.start()
    await asyncio.sleep(0.4)
    await sampler.stop()
    # At 0.5 fps only the first frame would be analysed in 0.4 s.
    assert count >= 2
