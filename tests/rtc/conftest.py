"""In-process WebRTC fixtures: aiortc "browser" clients talking to server pcs on loopback.

Each participant is a pair of peer connections in this process: a client pc that
publishes a clip through aiortc's ``MediaPlayer`` (it really encodes VP8/H.264 and
Opus, and answers PLIs with keyframes) and the server pc the room works with. The
room's renegotiation callback runs offer/answer between the two directly, as the
lead's websocket signalling will between server and browser.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription, sdp
from aiortc.contrib.media import MediaPlayer
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcrtpsender import RTCRtpSender
from av import AudioFrame, VideoFrame

from server.rtc import Publisher, SfuRoom, create_peer_connection, restrict_answer_codecs

CLIP_SIZE = (320, 240)
WAIT = 10.0  # upper bound for any single wait in these tests


async def wait_until(predicate: Callable[[], bool], timeout: float = WAIT, what: str = "") -> None:
    """Poll ``predicate`` every 50 ms; fail the test after ``timeout`` seconds."""
    try:
        async with asyncio.timeout(timeout):
            while not predicate():
                await asyncio.sleep(0.05)
    except TimeoutError:
        pytest.fail(f"timed out after {timeout}s waiting for {what or predicate}")


# Chromium's numbering differs from aiortc's defaults (opus 96, VP8 97/rtx 98, ...;
# extmap mid 1, audio-level 2, abs-send-time 3).
CHROMIUM_PAYLOAD_TYPES = {96: 111, 97: 96, 98: 97, 99: 102, 100: 103, 101: 108, 102: 109}
CHROMIUM_EXTENSION_IDS = {1: 4, 2: 1, 3: 2}


def renumber_like_chromium(description: str) -> str:
    """Rewrite an aiortc client's offer with a browser's payload types and extmap ids.

    The aiortc client then adopts this numbering from the server's answer, exactly as
    a browser that numbered things this way would keep using it.
    """
    parsed = sdp.SessionDescription.parse(description)
    for media in parsed.media:
        for codec in media.rtp.codecs:
            assert codec.payloadType is not None
            codec.payloadType = CHROMIUM_PAYLOAD_TYPES.get(codec.payloadType, codec.payloadType)
            apt = codec.parameters.get("apt")
            if isinstance(apt, int):
                codec.parameters["apt"] = CHROMIUM_PAYLOAD_TYPES[apt]
        media.fmt = [c.payloadType for c in media.rtp.codecs]
        for extension in media.rtp.headerExtensions:
            extension.id = CHROMIUM_EXTENSION_IDS[extension.id]
    return str(parsed)


def assert_bundle_numbering_consistent(description: str) -> None:
    """Within one SDP, a payload type / extension id means one thing on every m-line."""
    payload_types: dict[int, str] = {}
    extension_ids: dict[int, str] = {}
    for media in sdp.SessionDescription.parse(description).media:
        for codec in media.rtp.codecs:
            assert codec.payloadType is not None
            what = f"{codec.mimeType}/{codec.clockRate} {sorted(codec.parameters.items())}"
            assert payload_types.setdefault(codec.payloadType, what) == what, description
        for extension in media.rtp.headerExtensions:
            assert extension_ids.setdefault(extension.id, extension.uri) == extension.uri


@pytest.fixture(scope="session")
def clip(faces_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 12 s 320x240 15 fps clip with a 440 Hz tone, made from a shared face video.

    Long enough that no test needs MediaPlayer's loop (which restarts timestamps).
    """
    source = faces_dir / "videos" / "liveportrait_d0.mp4"
    # faces_dir already skips when the shared data is absent; ffmpeg is installed by
    # scripts/setup.sh --with-browser, so its absence is a set-up error, not a skip.
    assert source.is_file(), f"{source} is missing from the shared data"
    assert shutil.which("ffmpeg"), "ffmpeg is missing: run scripts/setup.sh --with-browser"
    out = tmp_path_factory.mktemp("rtc") / "clip.mp4"
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-y",
            "-stream_loop",
            "3",
            "-i",
            str(source),
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-t",
            "12",
            "-vf",
            "scale=240:240,pad=320:240:40:0,fps=15",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "30",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-shortest",
            str(out),
        ],
        check=True,
        timeout=60,
    )
    return out


@dataclass
class Received:
    """What a client got on one incoming track, counted by a consumer task."""

    track: MediaStreamTrack
    frames: int = 0
    sizes: set[tuple[int, int]] = field(default_factory=set)
    sample_rates: set[int] = field(default_factory=set)
    ended: bool = False
    task: asyncio.Task[None] | None = None

    async def consume(self) -> None:
        try:
            while True:
                frame = await self.track.recv()
                self.frames += 1
                if isinstance(frame, VideoFrame):
                    self.sizes.add((frame.width, frame.height))
                elif isinstance(frame, AudioFrame):
                    self.sample_rates.add(frame.sample_rate)
        except MediaStreamError:
            self.ended = True


@dataclass
class Participant:
    pid: str
    client: RTCPeerConnection
    server: RTCPeerConnection
    publisher: Publisher
    player: MediaPlayer | None
    received: list[Received] = field(default_factory=list)
    #: PLI/FIR that reached the client's own senders (i.e. the publisher side)
    keyframe_requests: int = 0

    def incoming(self, kind: str) -> list[Received]:
        return [r for r in self.received if r.track.kind == kind]


class Harness:
    """Creates participants, a room whose renegotiation runs in-process, and cleans up."""

    def __init__(self, clip: Path | None) -> None:
        self.clip = clip
        self.participants: dict[str, Participant] = {}
        self.negotiations: list[str] = []
        self.offers: list[str] = []  # every server re-offer, for SDP checks
        self.room = SfuRoom(self.renegotiate, negotiation_timeout=WAIT)

    async def renegotiate(self, pid: str) -> None:
        self.negotiations.append(pid)
        p = self.participants[pid]
        await p.server.setLocalDescription(await p.server.createOffer())
        self.offers.append(p.server.localDescription.sdp)
        await p.client.setRemoteDescription(p.server.localDescription)
        await p.client.setLocalDescription(await p.client.createAnswer())
        await p.server.setRemoteDescription(p.client.localDescription)

    async def join(
        self,
        pid: str,
        *,
        publish: bool = True,
        decode_video: bool = True,
        video_codec: str | None = None,
        late_publisher: bool = False,
        restrict_to_vp8: bool = False,
        browser_numbering: bool = False,
    ) -> Participant:
        """Connect a client publishing the clip (audio + video) to a fresh server pc."""
        server = create_peer_connection(loopback=True)
        publisher = None if late_publisher else Publisher(pid, server, decode_video=decode_video)
        client = create_peer_connection(loopback=True)
        player = MediaPlayer(str(self.clip)) if publish and self.clip else None
        p = Participant(pid, client, server, publisher, player)  # type: ignore[arg-type]
        self.participants[pid] = p

        @client.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            received = Received(track)
            received.task = asyncio.ensure_future(received.consume())
            p.received.append(received)

        if player is not None:
            assert player.audio is not None and player.video is not None
            client.addTrack(player.audio)
            video_sender = client.addTrack(player.video)
            if video_codec is not None:
                transceiver = next(t for t in client.getTransceivers() if t.sender is video_sender)
                caps = RTCRtpSender.getCapabilities("video").codecs
                transceiver.setCodecPreferences(
                    sorted(
                        (c for c in caps if c.mimeType.lower() != "video/rtx"),
                        key=lambda c: c.mimeType.lower() != video_codec.lower(),
                    )
                    + [c for c in caps if c.mimeType.lower() == "video/rtx"]
                )
            for sender in client.getSenders():
                self._count_keyframe_requests(p, sender)
        else:
            client.addTransceiver("video", direction="recvonly")

        await client.setLocalDescription(await client.createOffer())
        offer = client.localDescription
        if browser_numbering:
            offer = RTCSessionDescription(renumber_like_chromium(offer.sdp), "offer")
        await server.setRemoteDescription(offer)
        if publisher is None:
            p.publisher = Publisher(pid, server, decode_video=decode_video)
        if restrict_to_vp8:
            restrict_answer_codecs(server, ["video/VP8"])
        await server.setLocalDescription(await server.createAnswer())
        await client.setRemoteDescription(server.localDescription)
        await wait_until(
            lambda: server.connectionState == "connected" and client.connectionState == "connected",
            what=f"{pid} to connect",
        )
        return p

    @staticmethod
    def _count_keyframe_requests(p: Participant, sender: RTCRtpSender) -> None:
        """Wrap the client sender's keyframe hook to count PLIs reaching the publisher."""
        original = sender._send_keyframe

        def send_keyframe() -> None:
            p.keyframe_requests += 1
            original()

        sender._send_keyframe = send_keyframe  # type: ignore[method-assign]

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(WAIT):
                await self.room.close()
        for p in self.participants.values():
            await p.publisher.close()
            await p.client.close()
            await p.server.close()
            for r in p.received:
                if r.task is not None:
                    r.task.cancel()
            if p.player is not None:
                for track in (p.player.audio, p.player.video):
                    if track is not None:
                        track.stop()


def _decoder_threads() -> list[threading.Thread]:
    names = ("videogate-decoder", "video-decoder", "audio-decoder")
    return [t for t in threading.enumerate() if t.name in names]


@pytest.fixture
async def harness(clip: Path) -> AsyncIterator[Harness]:
    h = Harness(clip)
    try:
        yield h
    finally:
        await h.close()
    # ours and aiortc's decoder threads all exit once publishers and pcs are closed
    await wait_until(lambda: not _decoder_threads(), timeout=5, what="decoder threads to exit")
