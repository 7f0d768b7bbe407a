"""A camera that sends a pre-encoded VP8 file: many synthetic participants, little CPU.

Encoding 640x480 video costs a large slice of a core per stream, so a load
generator that re-encodes per participant measures itself, not the server. The
clip is transcoded once to VP8 (a keyframe every second, so the server's PLI is
answered within a second), then each participant replays its packets in real
time; aiortc's sender only packetises ``av.Packet``s.
"""

from __future__ import annotations

import asyncio
import fractions
import time
from pathlib import Path
from typing import Any

import av
from aiortc import MediaStreamTrack

from ..fakecam import ffmpeg_cached

VIDEO_CLOCK = fractions.Fraction(1, 90_000)


def transcode_vp8(source: Path, target: Path, fps: int = 15, seconds: float = 20.0) -> Path:
    """640x480 VP8 in WebM with a keyframe every second (cached at ``target``)."""
    vf = (
        "scale=640:480:force_original_aspect_ratio=decrease,"
        f"pad=640:480:(ow-iw)/2:(oh-ih)/2,fps={fps}"
    )
    return ffmpeg_cached(
        source,
        target,
        seconds,
        "-vf",
        vf,
        "-an",
        "-c:v",
        "libvpx",
        "-b:v",
        "600k",
        "-g",
        str(fps),
        "-keyint_min",
        str(fps),
        "-deadline",
        "realtime",
        "-cpu-used",
        "8",
    )


def load_packets(path: Path) -> tuple[list[tuple[bytes, float, bool]], float]:
    """(payload, seconds, keyframe) for every video packet, and the clip length."""
    packets: list[tuple[bytes, float, bool]] = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if stream.codec_context.name != "vp8":
            raise ValueError(f"{path}: expected VP8, found {stream.codec_context.name}")
        for packet in container.demux(stream):
            if packet.size == 0 or packet.pts is None or packet.time_base is None:
                continue
            packets.append(
                (bytes(packet), float(packet.pts * packet.time_base), packet.is_keyframe)
            )
    if not packets:
        raise ValueError(f"{path}: no video packets")
    packets.sort(key=lambda p: p[1])
    start = packets[0][1]
    packets = [(data, t - start, key) for data, t, key in packets]
    frame_gap = packets[1][1] - packets[0][1] if len(packets) > 1 else 1 / 15
    return packets, packets[-1][1] + frame_gap


class EncodedFileTrack(MediaStreamTrack):
    """Loops the packets of one VP8 file in real time, starting at a keyframe."""

    kind = "video"

    def __init__(self, packets: list[tuple[bytes, float, bool]], duration: float) -> None:
        super().__init__()
        self._packets = packets
        self._duration = duration
        self._index = 0
        self._laps = 0
        self._t0: float | None = None

    async def recv(self) -> av.Packet[Any]:
        if self._t0 is None:
            self._t0 = time.monotonic()
        if self._index >= len(self._packets):
            self._index = 0
            self._laps += 1
        data, offset, _key = self._packets[self._index]
        self._index += 1
        at = self._laps * self._duration + offset
        await asyncio.sleep(max(0.0, self._t0 + at - time.monotonic()))
        packet = av.Packet(data)
        packet.pts = int(at / VIDEO_CLOCK)
        packet.time_base = VIDEO_CLOCK
        return packet
