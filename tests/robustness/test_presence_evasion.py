"""Presence evasion with a crafted encoder (aiortc client sending pre-encoded VP8).

* Face only in keyframes: the checks used to decode just the requested keyframe, so
  a stream whose keyframes show the enrolled face and whose other frames show nobody
  passed every check. Now a run of consecutive frames is decoded and a random
  non-key frame of it is checked: ``presence.lost``.
* Keyframe requests ignored: every check was counted as skipped and nothing was
  raised. Now consecutive unanswered checks raise ``presence.unverifiable``.
"""

from __future__ import annotations

import asyncio
import fractions
from pathlib import Path

import av
import numpy as np
from aiortc import MediaStreamTrack

from server.app import HUB
from server.client import GateClient
from server.face.engine import FaceEngine
from server.store import SqliteStore
from tests.integration.conftest import Gatekeeper, video_frame

from .conftest import serve
from .wsutil import wait_until

PRESENCE = {"interval_s": 1.0, "keyframe_timeout_s": 1.0}
VERDICT_S = 30.0
EVENT_S = 20.0


class EvasiveTrack(MediaStreamTrack):
    """A camera with its own VP8 encoder, so the test decides what keyframes show.

    Modes: ``honest`` (the face in every frame, a keyframe every ``key_every``
    frames), ``key_only`` (keyframes show the face, every other frame an empty
    room), ``no_keys`` (an empty room, and no keyframe ever again, whatever the
    server asks).
    """

    kind = "video"

    def __init__(self, face: list[np.ndarray], fps: float = 10.0, key_every: int = 5) -> None:
        super().__init__()
        height, width = face[0].shape[:2]
        self._codec = av.CodecContext.create("libvpx", "w")
        self._codec.width, self._codec.height, self._codec.pix_fmt = width, height, "yuv420p"
        self._codec.time_base = fractions.Fraction(1, int(fps))
        self._codec.gop_size = 100_000  # keyframes only where this track forces them
        self._codec.bit_rate = 600_000
        # Like a browser: no look-ahead (each frame out at once), real-time speed.
        self._codec.options = {"lag-in-frames": "0", "deadline": "realtime", "cpu-used": "8"}
        self._codec.thread_count = 1  # PyAV's automatic threading is ~100x slower here
        self._face = [av.VideoFrame.from_ndarray(f, format="rgb24") for f in face]
        self._empty = av.VideoFrame.from_ndarray(np.full_like(face[0], 110), format="rgb24")
        self._fps = fps
        self._key_every = key_every
        self._index = 0
        self._pending: list[av.Packet] = []
        self.mode = "honest"

    async def recv(self) -> av.Packet:
        while not self._pending:
            await asyncio.sleep(1 / self._fps)
            key = self.mode != "no_keys" and self._index % self._key_every == 0
            show_face = self.mode == "honest" or (self.mode == "key_only" and key)
            source = self._face[self._index % len(self._face)] if show_face else self._empty
            frame = source.reformat(format="yuv420p")
            frame.pts = self._index
            frame.time_base = self._codec.time_base
            frame.pict_type = (
                av.video.frame.PictureType.I if key else av.video.frame.PictureType.NONE
            )
            self._pending = list(self._codec.encode(frame))
            self._index += 1
        packet = self._pending.pop(0)
        packet.pts = (self._index - 1) * int(90_000 / self._fps)
        packet.time_base = fractions.Fraction(1, 90_000)
        return packet


def events(gk: Gatekeeper) -> list[str]:
    return [r.event for r in gk.store.audit_log(gk.room_id)]


async def admitted(gk: Gatekeeper, faces_dir: Path, frames: list[np.ndarray]) -> tuple[
    GateClient, EvasiveTrack
]:  # fmt: skip
    invite = gk.enrol_frame("D9", video_frame(faces_dir / "videos" / "liveportrait_d9.mp4", 0.5))
    track = EvasiveTrack(frames)
    client = GateClient(
        gk.base_url, gk.room_slug, invite=invite, video=track, video_codec="video/VP8"
    )
    await client.join()
    verdict = await client.wait_verdict(VERDICT_S)
    assert verdict["admitted"] is True, verdict
    return client, track


async def test_face_only_in_keyframes_is_caught(
    robust_engine: FaceEngine,
    robust_store: SqliteStore,
    tmp_path: Path,
    faces_dir: Path,
    d9_frames: list[np.ndarray],
) -> None:
    async with serve(robust_engine, robust_store, tmp_path, presence=PRESENCE) as gk:
        client, track = await admitted(gk, faces_dir, d9_frames)
        try:
            (participant,) = gk.app[HUB].rooms[gk.room_id].participants.values()
            await wait_until(lambda: participant.presence.stats.passed >= 1, EVENT_S)
            track.mode = "key_only"
            await wait_until(lambda: "presence.lost" in events(gk), EVENT_S)
            assert participant.presence.flags == ("presence.lost",)
        finally:
            await client.close()


async def test_ignoring_keyframe_requests_is_unverifiable(
    robust_engine: FaceEngine,
    robust_store: SqliteStore,
    tmp_path: Path,
    faces_dir: Path,
    d9_frames: list[np.ndarray],
) -> None:
    async with serve(robust_engine, robust_store, tmp_path, presence=PRESENCE) as gk:
        client, track = await admitted(gk, faces_dir, d9_frames)
        try:
            (participant,) = gk.app[HUB].rooms[gk.room_id].participants.values()
            await wait_until(lambda: participant.presence.stats.passed >= 1, EVENT_S)
            track.mode = "no_keys"
            await wait_until(lambda: "presence.unverifiable" in events(gk), EVENT_S)
            assert "presence.unverifiable" in participant.presence.flags
            snapshot = gk.app[HUB].dashboard_snapshot(gk.room_id)
            assert "presence.unverifiable" in snapshot["participants"][0]["presence"]["flags"]
            # Keyframes again (the camera "recovers"): the flag clears.
            track.mode = "honest"
            await wait_until(lambda: "presence.restored" in events(gk), EVENT_S)
            assert participant.presence.flags == ()
        finally:
            await client.close()
