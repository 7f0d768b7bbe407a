"""Presence spot checks: decode a short run of a forwarded stream, pick a random frame.

Why not just the keyframe: a presence check used to request a keyframe, decode it
and stop. A crafted encoder can show the enrolled face in keyframes only (and
anyone, or nobody, in the frames between), and every check passed. A check now
requests a keyframe, decodes on from it, and returns a picture drawn at a random
offset ``1 <= k < run_frames`` into the run, never one decoded from a keyframe (if
the frame at ``k`` came from a keyframe, the next inter frame is taken, within
another ``run_frames``). The encoder cannot know which frame will be judged.
Decoding stops as soon as the picture is chosen: between checks nothing of the
participant is decoded (docs/presence.md).

A check that cannot be made says why (``status``): the keyframe never came, or the
stream stopped before the chosen frame (a camera ignoring keyframe requests, or
sending keyframes only when asked and nothing after them). The presence monitor
counts such checks towards ``presence.unverifiable``.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

import av
from aiortc.mediastreams import MediaStreamError
from av.video.frame import PictureType

if TYPE_CHECKING:
    from .forward import Publisher

OK = "ok"
BUSY = "busy"  # decoding is on for someone else (the gate), or nothing to decode
NO_KEYFRAME = "no_keyframe"
SHORT = "short"


@dataclass(frozen=True)
class SpotFrame:
    frame: av.VideoFrame | None
    status: str
    #: pictures decoded for this check
    decoded: int = 0
    #: the chosen frame's position in the run (0 = the keyframe)
    offset: int = 0


def choose_offset(rng: random.Random, run_frames: int) -> int:
    """Which frame of the run (after the keyframe) is judged."""
    return rng.randrange(1, max(2, run_frames))


async def decode_run(
    publisher: Publisher, timeout: float, run_frames: int, rng: random.Random
) -> SpotFrame:
    """One picture for a presence check, from a run started at a requested keyframe.

    ``timeout`` bounds the wait for the keyframe, and again the run after it.
    """
    if publisher.closed or publisher.decoding or not publisher.has_video:
        return SpotFrame(None, BUSY)
    offset = choose_offset(rng, run_frames)
    track = publisher.start_decoding()
    decoded = 0
    try:
        try:
            picked = await asyncio.wait_for(track.recv(), timeout)
        except (TimeoutError, MediaStreamError):
            return SpotFrame(None, NO_KEYFRAME)
        decoded = 1
        position = 0
        try:
            async with asyncio.timeout(timeout):
                while position < offset or picked.pict_type == PictureType.I:
                    if position >= offset + run_frames:
                        break  # keyframes only: every frame is a full picture anyway
                    picked = await track.recv()
                    decoded += 1
                    position += 1
        except (TimeoutError, MediaStreamError):
            return SpotFrame(None, SHORT, decoded)
        return SpotFrame(picked, OK, decoded, position)
    finally:
        if publisher.decoded_video is track:
            publisher.stop_decoding()
