"""Added end-to-end latency of forwarding: direct peer vs our SFU vs aiortc MediaRelay.

A publisher sends 640x480 30 fps frames whose picture encodes the frame number as
large black/white squares; the viewer decodes each frame and reads the number
back, so latency = time the viewer decoded frame n - time frame n was handed to
the publisher's encoder (one process, one clock). Three paths in the same run:

* direct: publisher pc -> viewer pc (the baseline: no server at all);
* forward: publisher -> server pc (``Publisher`` + ``SfuRoom``, encoded forwarding)
  -> viewer;
* relay: publisher -> server pc -> aiortc ``MediaRelay`` (decode + re-encode) -> viewer.

Everything runs in one process on loopback, so the figures include this process's
scheduling; the difference to "direct" is what the server hop adds.

    .venv/bin/python bench/bench_forward_latency.py [--seconds 8]
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from aiortc import MediaStreamTrack, RTCPeerConnection, VideoStreamTrack
from aiortc.contrib.media import MediaRelay
from av import VideoFrame

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from server.rtc import Publisher, SfuRoom, create_peer_connection  # noqa: E402

FPS = 30
BITS = 16
SQUARE = 40


class NumberedTrack(VideoStreamTrack):
    """Frames carrying their index as 16 squares; remembers when each was produced."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: dict[int, float] = {}
        self._n = 0
        self._t0: float | None = None

    async def recv(self) -> VideoFrame:
        if self._t0 is None:
            self._t0 = time.monotonic()
        await asyncio.sleep(max(0.0, self._t0 + self._n / FPS - time.monotonic()))
        img = np.full((480, 640, 3), 128, np.uint8)
        for bit in range(BITS):
            value = 255 if (self._n >> bit) & 1 else 0
            x, y = 40 + (bit % 8) * (SQUARE + 20), 160 + (bit // 8) * (SQUARE + 40)
            img[y : y + SQUARE, x : x + SQUARE] = value
        frame = VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts = int(self._n * 90_000 / FPS)
        frame.time_base = fractions.Fraction(1, 90_000)
        self.sent[self._n] = time.monotonic()
        self._n += 1
        return frame


def read_number(frame: VideoFrame) -> int:
    gray = frame.to_ndarray(format="gray")
    number = 0
    for bit in range(BITS):
        x, y = 40 + (bit % 8) * (SQUARE + 20), 160 + (bit // 8) * (SQUARE + 40)
        if gray[y + 10 : y + SQUARE - 10, x + 10 : x + SQUARE - 10].mean() > 128:
            number |= 1 << bit
    return number


async def connect(offerer: RTCPeerConnection, answerer: RTCPeerConnection) -> None:
    await offerer.setLocalDescription(await offerer.createOffer())
    await answerer.setRemoteDescription(offerer.localDescription)
    await answerer.setLocalDescription(await answerer.createAnswer())
    await offerer.setRemoteDescription(answerer.localDescription)


async def collect(track: MediaStreamTrack, source: NumberedTrack, seconds: float) -> list[float]:
    latencies: list[float] = []
    end = time.monotonic() + seconds
    warmup = time.monotonic() + 1.5
    while time.monotonic() < end:
        frame = await asyncio.wait_for(track.recv(), 5)
        now = time.monotonic()
        sent = source.sent.get(read_number(frame))
        if sent is not None and now > warmup:
            latencies.append((now - sent) * 1000)
    return latencies


async def path(mode: str, seconds: float) -> list[float]:
    source = NumberedTrack()
    publisher_pc = create_peer_connection(loopback=True)
    viewer_pc = create_peer_connection(loopback=True)
    pcs = [publisher_pc, viewer_pc]
    got: asyncio.Future[MediaStreamTrack] = asyncio.get_running_loop().create_future()
    viewer_pc.on("track", lambda t: got.done() or (t.kind == "video" and got.set_result(t)))
    try:
        publisher_pc.addTrack(source)
        if mode == "direct":
            viewer_pc.addTransceiver("video", direction="recvonly")
            await connect(viewer_pc, publisher_pc)
            return await collect(await asyncio.wait_for(got, 10), source, seconds)
        server_in = create_peer_connection(loopback=True)
        server_out = create_peer_connection(loopback=True)
        pcs += [server_in, server_out]
        if mode == "forward":
            pub = Publisher("pub", server_in, decode_video=False)
            await connect(publisher_pc, server_in)
            viewer_pc.addTransceiver("audio", direction="recvonly")
            await connect(viewer_pc, server_out)
            pub_out = Publisher("viewer", server_out, decode_video=False)

            async def renegotiate(pid: str) -> None:
                if pid == "viewer":
                    await connect(server_out, viewer_pc)

            room = SfuRoom(renegotiate)
            await room.admit("pub", server_in, pub)
            await room.admit("viewer", server_out, pub_out)
        else:
            relay = MediaRelay()
            incoming: asyncio.Future[MediaStreamTrack] = asyncio.get_running_loop().create_future()
            server_in.on("track", lambda t: incoming.done() or incoming.set_result(t))
            await connect(publisher_pc, server_in)
            server_out.addTrack(relay.subscribe(await asyncio.wait_for(incoming, 10)))
            await connect(server_out, viewer_pc)
        return await collect(await asyncio.wait_for(got, 10), source, seconds)
    finally:
        for pc in pcs:
            await pc.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument(
        "--json", type=Path, default=REPO / "bench" / "out" / "bench_forward_latency.json"
    )
    args = parser.parse_args()
    results: dict[str, Any] = {}
    for mode in ("direct", "forward", "relay"):
        values = asyncio.run(path(mode, args.seconds))
        results[mode] = {
            "frames": len(values),
            "p50_ms": statistics.median(values),
            "p95_ms": sorted(values)[int(0.95 * (len(values) - 1))],
        }
    for mode in ("forward", "relay"):
        results[mode]["added_p50_ms"] = results[mode]["p50_ms"] - results["direct"]["p50_ms"]
    machine = {"cpus": os.cpu_count(), "platform": platform.platform()}
    print(f"machine: {machine}; one process, loopback, 640x480 {FPS} fps VP8")
    print(f"{'path':8} {'frames':>7} {'p50 ms':>8} {'p95 ms':>8} {'added p50':>10}")
    for mode, row in results.items():
        added = f"{row['added_p50_ms']:+.1f}" if "added_p50_ms" in row else "-"
        print(f"{mode:8} {row['frames']:>7} {row['p50_ms']:8.1f} {row['p95_ms']:8.1f} {added:>10}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"machine": machine, "results": results}, indent=2))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
