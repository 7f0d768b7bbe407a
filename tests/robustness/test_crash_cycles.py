"""Browser crashes: clients that vanish without ``leave`` (pc and socket closed abruptly),
in the lobby and after admission. Each cycle must free the participant, its pc, its
tasks and its memory: task count returns to its baseline every cycle, no peer
connection or participant object survives, and RSS stays flat over the cycles.

The 10-cycle case runs in the default suite; the 100-cycle measurement is ``slow``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import gc
import time
from pathlib import Path

import numpy as np
import pytest
from aiortc import RTCPeerConnection

from server.app import HUB
from server.client import GateClient, StillTrack
from server.participant import Participant
from tests.integration.conftest import Gatekeeper, video_frame

from .wsutil import live_participants, wait_until

LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")


def settle() -> int:
    """Collect garbage and hand freed heap back to the OS; the live Python object count.

    Without ``malloc_trim`` glibc keeps freed arenas (one per executor / decoder
    thread), so RSS would mostly measure the allocator, not what we still hold.
    """
    count = len(gc.get_objects()) if gc.collect() >= 0 else 0
    LIBC.malloc_trim(0)
    return count


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def live_objects(kind: type) -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, kind))


async def crash_cycles(
    gate: Gatekeeper, faces_dir: Path, frames: list[np.ndarray], cycles: int
) -> dict[str, list[float]]:
    invite = gate.enrol_frame("D9", video_frame(faces_dir / "videos" / "liveportrait_d9.mp4", 0.5))
    hub = gate.app[HUB]
    figures: dict[str, list[float]] = {"rss_mb": [], "tasks": [], "cycle_s": [], "objects": []}
    baseline_tasks = len(asyncio.all_tasks())
    for cycle in range(cycles):
        started = time.monotonic()
        client = GateClient(gate.base_url, gate.room_slug, invite=invite,
                            video=StillTrack(frames, 10))  # fmt: skip
        await client.join()
        if cycle % 3 == 2:
            # Crash in the lobby, mid-check.
            await client.wait_for(lambda r: bool(r.of_type("progress")), 20)
        else:
            assert (await client.wait_verdict(20))["admitted"] is True
        await client.close(leave=False)  # the tab dies: no leave, pc and socket just go
        del client  # the test's own reference to the client's pc
        await wait_until(lambda: live_participants(gate) == 0 and not hub.rooms, timeout=15)
        await wait_until(lambda: len(asyncio.all_tasks()) <= baseline_tasks, timeout=15)
        figures["cycle_s"].append(time.monotonic() - started)
        figures["tasks"].append(len(asyncio.all_tasks()))
        figures["objects"].append(settle())
        figures["rss_mb"].append(rss_mb())
    # Closing a pc finishes in aiortc's own tasks: give teardown its moment, then
    # nothing of any participant may be left.
    with contextlib.suppress(TimeoutError):
        await wait_until(lambda: live_objects(RTCPeerConnection) == 0, timeout=10)
    assert live_objects(RTCPeerConnection) == 0
    assert live_objects(Participant) == 0
    return figures


async def test_ten_crashes_free_everything(
    gate: Gatekeeper, faces_dir: Path, d9_frames: list[np.ndarray]
) -> None:
    figures = await crash_cycles(gate, faces_dir, d9_frames, 10)
    assert max(figures["tasks"]) <= figures["tasks"][0]


@pytest.mark.slow
async def test_hundred_crash_cycles_keep_rss_and_tasks_flat(
    gate: Gatekeeper, faces_dir: Path, d9_frames: list[np.ndarray]
) -> None:
    figures = await crash_cycles(gate, faces_dir, d9_frames, 100)
    rss, objects = figures["rss_mb"], figures["objects"]
    # Warm-up (allocator arenas, codec contexts, caches) settles in the first cycles;
    # after it, nothing a participant held may accumulate.
    early, late = float(np.median(rss[15:25])), float(np.median(rss[-10:]))
    objects_early, objects_late = float(np.median(objects[15:25])), float(np.median(objects[-10:]))
    print(
        f"\n100 crash cycles: RSS {rss[0]:.1f} -> {early:.1f} (cycles 15-25) -> {late:.1f} MB "
        f"(last 10); Python objects {objects_early:.0f} -> {objects_late:.0f}; tasks min "
        f"{min(figures['tasks'])} max {max(figures['tasks'])}; cycle p50 "
        f"{np.median(figures['cycle_s']):.2f} s, total {sum(figures['cycle_s']):.0f} s"
    )
    # Measured: about 0.08 MB per cycle of native heap after trimming (allocator
    # fragmentation across threads); a leaked participant (pc, publisher, frames)
    # would cost several MB each.
    assert late - early < 12.0, rss
    assert objects_late - objects_early < 3000, objects
    assert max(figures["tasks"]) <= figures["tasks"][0]
