"""The frame sampler drops old frames instead of queueing them."""

from __future__ import annotations

import asyncio
import time

import pytest

from server.rtc.sampler import FrameSampler, SamplerClock


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


async def test_rate_raised_by_the_gate_takes_effect_and_falls_back() -> None:
    """The gate asks for more frames during its light and expression steps
    (``Gate.sample_fps``); the sampler reads that after every analysis."""
    count = 0
    boosted_until = time.monotonic() + 0.4

    async def analyse(_frame: int, _t: float) -> None:
        nonlocal count
        count += 1

    def rate(now: float) -> float:
        return 50.0 if now < boosted_until else 0.5

    sampler = FrameSampler(FastSource(10_000), fps=0.5, analyse=analyse, rate=rate)
    sampler.start()
    await asyncio.sleep(0.4)
    raised = count
    await asyncio.sleep(0.6)
    await sampler.stop()
    # At 0.5 fps only the first frame would be analysed in 0.4 s.
    assert raised >= 2
    # Back at 0.5 fps: at most the one frame in flight when the boost ended.
    assert count - raised <= 1


def test_sampler_clock_takes_the_newest_frame_or_waits_for_the_next() -> None:
    """The offline copy of the sampler's rule (eval, benches): the newest frame that
    arrived by the wake-up and is newer than the last taken, else the next one."""
    times = [k / 30 for k in range(30)]  # a 30 fps camera, 1 s
    clock = SamplerClock(times)
    assert clock.take(0.0) == (0, 0.0)
    assert clock.take(0.25) == (7, 0.25)  # frame 7 arrived at 0.233
    assert clock.take(0.25) == (8, pytest.approx(8 / 30))  # none newer yet: wait
    taken = [n for n, _ in clock.frames(0.3, lambda: 15.0)]
    assert taken[:4] == [9, 11, 13, 15] and taken[-1] == 29  # every other frame
    # A looping clip goes on: frame n is clip frame n % 30, one period later.
    loop = SamplerClock(times, period=1.0)
    assert loop.take(1.5) == (45, 1.5)
    assert loop.time_of(45) == pytest.approx(1.5)
