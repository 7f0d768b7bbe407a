"""Server CPU per extra viewer: encoded forwarding (server.rtc) vs aiortc's MediaRelay.

What is measured: the CPU time (user + system, all threads) of a *server process*
that holds one publisher peer connection receiving a 640x480 30 fps VP8 stream and
N viewer peer connections it forwards that stream to, for N in 0, 1, 2, 4, in two
modes, interleaved in the same run:

* ``forward``: ``Publisher`` + ``SfuRoom`` from ``server.rtc`` (tap before the
  decoder, packets re-packetised per viewer; decoding off, as after admission);
* ``relay``: aiortc's ``MediaRelay`` (aiortc decodes once, each viewer's sender
  re-encodes VP8).

The clients run in this (parent) process and are kept cheap so that they disturb the
server as little as possible on a 2-core machine: the publisher streams a
pre-encoded VP8 file (``MediaPlayer(decode=False)``: no encoding; keyframe every
second, which also bounds how long a new forward viewer waits), and viewers count
reassembled frames through the same receiver tap instead of decoding. Each trial
runs in a fresh server subprocess; signalling is JSON lines over its stdin/stdout.

Usage: ``.venv/bin/python bench/bench_forward.py [--measure 5] [--viewers 0,1,2,4]``
Prints a table and writes ``bench/out/bench_forward-<timestamp>.json``.
Timings never go into pass/fail tests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import aiortc  # noqa: E402
import av  # noqa: E402
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription  # noqa: E402
from aiortc.contrib.media import MediaPlayer, MediaRelay  # noqa: E402

from server.rtc import Publisher, SfuRoom, create_peer_connection  # noqa: E402
from server.rtc.tap import ReceiverTap  # noqa: E402

DATA_ROOT = Path(os.environ.get("VIDEOGATE_TEST_DATA", REPO.parent / "shared" / "data"))
SOURCE = DATA_ROOT / "faces" / "videos" / "liveportrait_d0.mp4"
OUT_DIR = REPO / "bench" / "out"
TRIAL_TIMEOUT = 40.0

Message = dict[str, Any]


# --------------------------------------------------------------------------- wire


class Channel:
    """JSON-lines request/response plus server-initiated renegotiation offers."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        write: Callable[[bytes], None],
        handler: Callable[[Message], Awaitable[Message | None]],
    ) -> None:
        self._reader = reader
        self._write = write
        self._handler = handler
        self._pending: dict[int, asyncio.Future[Message]] = {}
        self._next_id = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.closed = asyncio.Event()

    def send(self, message: Message) -> None:
        self._write((json.dumps(message) + "\n").encode())

    async def request(self, message: Message) -> Message:
        self._next_id += 1
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._pending[self._next_id] = future
        self.send({**message, "id": self._next_id})
        return await future

    async def run(self) -> None:
        while line := await self._reader.readline():
            message: Message = json.loads(line)
            if "reply_to" in message:
                future = self._pending.pop(message["reply_to"])
                if not future.done():  # the requester may have given up (timeout)
                    future.set_result(message)
            else:
                task = asyncio.ensure_future(self._handle(message))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        self.closed.set()

    async def _handle(self, message: Message) -> None:
        reply = await self._handler(message)
        if reply is not None and "id" in message:
            self.send({**reply, "reply_to": message["id"]})


def _desc(pc: RTCPeerConnection) -> Message:
    return {"sdp": pc.localDescription.sdp, "type": pc.localDescription.type}


# ------------------------------------------------------------------------- server


async def server_main(mode: str) -> None:
    """The measured process: publisher pc + viewer pcs, forwarding or relaying."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    out = sys.stdout.buffer

    def write(data: bytes) -> None:
        out.write(data)
        out.flush()

    pcs: dict[str, RTCPeerConnection] = {}
    publishers: dict[str, Publisher] = {}
    relay = MediaRelay()
    relay_source: list[MediaStreamTrack] = []
    channel: Channel

    async def renegotiate(pid: str) -> None:
        pc = pcs[pid]
        await pc.setLocalDescription(await pc.createOffer())
        answer = await channel.request({"op": "offer", "pid": pid, **_desc(pc)})
        await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], answer["type"]))

    room = SfuRoom(renegotiate)

    async def handle(message: Message) -> Message | None:
        op = message["op"]
        if op == "join":
            pid = message["pid"]
            pc = create_peer_connection(loopback=True)
            pcs[pid] = pc
            if mode == "forward":
                publishers[pid] = Publisher(pid, pc, decode_video=False)
            else:
                pc.on("track", lambda track: relay_source.append(track))
            await pc.setRemoteDescription(RTCSessionDescription(message["sdp"], "offer"))
            await pc.setLocalDescription(await pc.createAnswer())
            return _desc(pc)
        if op == "admit":
            pid = message["pid"]
            if mode == "forward":
                await room.admit(pid, pcs[pid], publishers[pid])
            elif message.get("viewer"):
                pcs[pid].addTransceiver(relay.subscribe(relay_source[0]), direction="sendonly")
                await renegotiate(pid)
            return {"ok": True}
        if op == "cpu":
            return {"cpu": time.process_time(), "wall": time.monotonic()}
        if op == "quit":
            await room.close()
            for publisher in publishers.values():
                await publisher.close()
            for pc in pcs.values():
                await pc.close()
            return {"ok": True}
        raise ValueError(op)

    channel = Channel(reader, write, handle)
    await channel.run()


# ------------------------------------------------------------------------- client


class Trial:
    """One server subprocess, one publisher client, ``n`` counting viewer clients."""

    def __init__(self, mode: str, viewers: int, clip: Path) -> None:
        self.mode = mode
        self.viewers = viewers
        self.clip = clip
        self.pcs: dict[str, RTCPeerConnection] = {}
        self.frames: dict[str, int] = {}
        self.player: MediaPlayer | None = None

    async def handle(self, message: Message) -> Message | None:
        if message["op"] == "offer":  # the server renegotiates one of our pcs
            pc = self.pcs[message["pid"]]
            await pc.setRemoteDescription(RTCSessionDescription(message["sdp"], "offer"))
            await pc.setLocalDescription(await pc.createAnswer())
            return _desc(pc)
        raise ValueError(message)

    async def _join(self, channel: Channel, pid: str, publish: bool) -> None:
        pc = create_peer_connection(loopback=True)
        self.pcs[pid] = pc
        if publish:
            self.player = MediaPlayer(str(self.clip), decode=False)
            assert self.player.video is not None
            pc.addTrack(self.player.video)
        else:
            pc.addTransceiver("video", direction="recvonly")
            self.frames[pid] = 0

            @pc.on("track")
            def on_track(track: MediaStreamTrack) -> None:
                for t in pc.getTransceivers():
                    if t.receiver.track is track:
                        ReceiverTap(t.receiver, on_frame=lambda c, f: self._count(pid), on_end=noop)

        await pc.setLocalDescription(await pc.createOffer())
        answer = await channel.request({"op": "join", "pid": pid, **_desc(pc)})
        await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], answer["type"]))

    def _count(self, pid: str) -> None:
        self.frames[pid] += 1

    async def run(self, warmup: float, measure: float) -> dict[str, Any]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--server",
            self.mode,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert proc.stdin is not None and proc.stdout is not None
        stdin = proc.stdin
        channel = Channel(proc.stdout, stdin.write, self.handle)
        pump = asyncio.ensure_future(channel.run())
        try:
            async with asyncio.timeout(TRIAL_TIMEOUT):
                await self._join(channel, "pub", publish=True)
                await channel.request({"op": "admit", "pid": "pub"})
                for i in range(self.viewers):
                    await self._join(channel, f"v{i}", publish=False)
                    await channel.request({"op": "admit", "pid": f"v{i}", "viewer": True})
                while not all(n > 0 for n in self.frames.values()):
                    await asyncio.sleep(0.05)
                await asyncio.sleep(warmup)
                start = await channel.request({"op": "cpu"})
                frames0 = dict(self.frames)
                await asyncio.sleep(measure)
                end = await channel.request({"op": "cpu"})
                frames1 = dict(self.frames)
                await channel.request({"op": "quit"})
        finally:
            for pc in self.pcs.values():
                await pc.close()
            stdin.close()
            try:
                async with asyncio.timeout(5):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
            pump.cancel()
        wall = end["wall"] - start["wall"]
        fps = [(frames1[p] - frames0[p]) / wall for p in frames1]
        return {
            "mode": self.mode,
            "viewers": self.viewers,
            "server_cpu_pct": 100.0 * (end["cpu"] - start["cpu"]) / wall,
            "seconds": wall,
            "viewer_fps": fps,
        }


def noop() -> None:
    pass


# -------------------------------------------------------------------------- main


def make_clip(out: Path) -> Path:
    """16 s of the shared face clip at 640x480 30 fps, VP8 ~1 Mbit/s, keyframe each second."""
    if out.exists():
        return out
    if not SOURCE.is_file():
        raise SystemExit(f"missing {SOURCE} (set VIDEOGATE_TEST_DATA)")
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-stream_loop", "6", "-i", str(SOURCE), "-t", "16",
         "-vf", "scale=480:480,pad=640:480:80:0,fps=30", "-c:v", "libvpx",
         "-deadline", "realtime", "-cpu-used", "8", "-b:v", "1M", "-g", "30", "-an", str(out)],
        check=True,
        timeout=120,
    )  # fmt: skip
    return out


def slope(points: list[tuple[int, float]]) -> float:
    """Least-squares CPU%% per extra viewer."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu_model": model,
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "aiortc": aiortc.__version__,
        "av": av.__version__,
    }


async def bench(viewer_counts: list[int], warmup: float, measure: float) -> dict[str, Any]:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    clip = make_clip(OUT_DIR / "bench_forward_640x480_30fps.webm")
    results = []
    for n in viewer_counts:
        for mode in ("forward", "relay"):  # interleaved: both see the same machine state
            result = await Trial(mode, n, clip).run(warmup, measure)
            fps = ", ".join(f"{x:.0f}" for x in result["viewer_fps"]) or "-"
            print(
                f"  {mode:8s} viewers={n}: server {result['server_cpu_pct']:5.1f}% CPU, "
                f"viewer fps [{fps}]",
                flush=True,
            )
            results.append(result)
    per_viewer = {
        mode: slope([(r["viewers"], r["server_cpu_pct"]) for r in results if r["mode"] == mode])
        for mode in ("forward", "relay")
    }
    return {
        "benchmark": "server CPU per extra viewer, 640x480 30 fps VP8",
        "script": "bench/bench_forward.py",
        "machine": machine(),
        "warmup_s": warmup,
        "measure_s": measure,
        "trials": results,
        "per_viewer_cpu_pct": per_viewer,
        "forward_over_relay_per_viewer": (
            per_viewer["forward"] / per_viewer["relay"] if per_viewer["relay"] else None
        ),
    }


def print_table(report: dict[str, Any]) -> None:
    m = report["machine"]
    print(f"\nmachine: {m['cpu_model']} x{m['cpus']}, {m['platform']}")
    print(f"python {m['python']}, aiortc {m['aiortc']}, av {m['av']}")
    print("server CPU (% of one core), 640x480 30 fps VP8, one publisher")
    print(f"{'viewers':>8} | {'forward':>8} | {'relay':>8} | {'relay/forward':>13}")
    by = {(r["mode"], r["viewers"]): r["server_cpu_pct"] for r in report["trials"]}
    for n in sorted({r["viewers"] for r in report["trials"]}):
        f, r = by[("forward", n)], by[("relay", n)]
        print(f"{n:>8} | {f:7.1f}% | {r:7.1f}% | {r / f:12.1f}x")
    pv = report["per_viewer_cpu_pct"]
    ratio = report["forward_over_relay_per_viewer"]
    print(
        f"per extra viewer (least squares): forward {pv['forward']:.2f}%, "
        f"relay {pv['relay']:.2f}%; forward costs "
        f"{100 * ratio:.1f}% of relay's per-viewer CPU"
        if ratio is not None
        else ""
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", choices=("forward", "relay"), help=argparse.SUPPRESS)
    parser.add_argument("--viewers", default="0,1,2,4")
    parser.add_argument("--warmup", type=float, default=1.5)
    parser.add_argument("--measure", type=float, default=5.0)
    args = parser.parse_args()
    if args.server:
        asyncio.run(server_main(args.server))
        return
    counts = [int(x) for x in args.viewers.split(",")]
    report = asyncio.run(bench(counts, args.warmup, args.measure))
    print_table(report)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = OUT_DIR / f"bench_forward-{stamp}.json"
    path.write_text(json.dumps(report, indent=2))
    print(f"wrote {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
