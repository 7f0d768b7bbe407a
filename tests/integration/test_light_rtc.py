"""The screen-light challenge through the real server over WebRTC.

An aiortc client plays a bona fide clip as its camera. When the server's ``flash``
message arrives, the client's "camera" lights the face along that sequence from
``lead_ms`` on -- a SIMULATED reflection (tests/liveness/reflect.py) -- so every real
latency (encode, loopback network, decode, the sampler's boosted rate, analysis) lies
between the colour and the frame the gate judges. Unlit, the same clip is refused.
"""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from aiortc import VideoStreamTrack

from server.client import GateClient
from server.face.engine import FaceEngine
from server.liveness.flash import PALETTE, FlashSequence, FlashStep
from server.store import SqliteStore
from tests.liveness.reflect import Box, Camera, Reflection, read_clip

from .conftest import Gatekeeper, serve_gate, video_frame

CLIP = "liveportrait_d9.mp4"
VERDICT_TIMEOUT = 60.0
# Stronger than the 0.08 of the offline tests: VP8 at aiortc's bitrate roughly halves a
# subtle chroma change (docs/liveness.md, "Over WebRTC").
STRENGTH = 0.15
BY_CSS = {FlashStep(name, 0).css: name for name in PALETTE}


class LitCamera(VideoStreamTrack):
    """The clip as a camera; lit by the screen once the page would show the colours."""

    def __init__(self, clip: list[tuple[float, np.ndarray, Box]], lit: bool) -> None:
        super().__init__()
        self.clip = clip
        self.lit = lit
        self.client: GateClient | None = None
        refl = Reflection(strength=STRENGTH, lag_s=0.0, jitter_s=0.0)
        self.camera = Camera(refl, random.Random(3))
        self.started = time.monotonic()
        self.sequence: FlashSequence | None = None
        self.flash_at = 0.0

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        now = time.monotonic()
        if self.sequence is None and self.client is not None:
            flashes = self.client.result.of_type("flash")
            if flashes:
                msg = flashes[0]
                steps = tuple(FlashStep(BY_CSS[s["color"]], s["ms"]) for s in msg["sequence"])
                self.sequence = FlashSequence(steps)
                self.flash_at = now + msg["lead_ms"] / 1000
        t = (now - self.started) % self.clip[-1][0]
        _, rgb, box = self.clip[int(np.searchsorted([c[0] for c in self.clip], t)) - 1]
        shown = self.sequence if self.lit else None
        _, shot = self.camera.shoot(rgb, box, now, shown, self.flash_at)
        frame = av.VideoFrame.from_ndarray(shot, format="rgb24")
        frame.pts, frame.time_base = pts, Fraction(time_base)
        return frame


@pytest.fixture
async def light_gatekeeper(
    engine: FaceEngine, store: SqliteStore, tmp_path: Path
) -> AsyncIterator[Gatekeeper]:
    async with serve_gate(engine, store, tmp_path, "Light Room", {"policy": "light"},
                          gate={"attempt_timeout_s": 30.0}) as gatekeeper:  # fmt: skip
        yield gatekeeper


@pytest.fixture(scope="module")
def boxed_clip(engine: FaceEngine, faces_dir: Path) -> list[tuple[float, np.ndarray, Box]]:
    out = []
    for t, rgb in read_clip(faces_dir / "videos" / CLIP, 20.0)[::2]:
        faces = engine.analyse(rgb, mesh=False, embed=False).faces
        if faces:
            out.append((t, rgb, faces[0].box))
    return out


async def run(
    gatekeeper: Gatekeeper, faces_dir: Path, clip: list[tuple[float, np.ndarray, Box]], lit: bool
) -> tuple[dict[str, object], GateClient]:
    invite = gatekeeper.enrol_frame("D9", video_frame(faces_dir / "videos" / CLIP, 0.5))
    track = LitCamera(clip, lit)
    client = GateClient(gatekeeper.base_url, gatekeeper.room_slug, invite=invite, video=track)
    track.client = client
    await client.join()
    verdict = await client.wait_verdict(VERDICT_TIMEOUT)
    return verdict, client


async def test_a_face_lit_by_the_sequence_is_admitted_over_webrtc(
    light_gatekeeper: Gatekeeper, faces_dir: Path, boxed_clip: list[tuple[float, np.ndarray, Box]]
) -> None:
    verdict, client = await run(light_gatekeeper, faces_dir, boxed_clip, lit=True)
    try:
        audit = [r.details for r in light_gatekeeper.store.audit_log(light_gatekeeper.room_id)]
        assert verdict["admitted"] is True, [a.get("detail") for a in audit]
        flashes = client.result.of_type("flash")
        assert len(flashes) == 1 and 7 <= len(flashes[0]["sequence"]) <= 8
        assert any(a.get("liveness") == "light" for a in audit)
    finally:
        await client.close()


async def test_the_same_clip_unlit_is_refused_over_webrtc(
    light_gatekeeper: Gatekeeper, faces_dir: Path, boxed_clip: list[tuple[float, np.ndarray, Box]]
) -> None:
    verdict, client = await run(light_gatekeeper, faces_dir, boxed_clip, lit=False)
    try:
        assert verdict["admitted"] is False and verdict["reason"] == "liveness", verdict
        audit = [r.details for r in light_gatekeeper.store.audit_log(light_gatekeeper.room_id)]
        details = [a.get("detail") for a in audit if a.get("detail")]
        assert details and str(details[-1]).startswith("light:"), details
        assert client.video_frames_received() == 0
    finally:
        await client.close()
