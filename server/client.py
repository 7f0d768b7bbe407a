"""A Python participant: websocket + aiortc peer sending video from a file.

Used by the integration tests and by the load generator: it speaks the same
protocol as web/static/room.js (docs/protocol.md), answers the server's
renegotiation offers, and counts the media it receives from the room.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import av
import numpy as np
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
    VideoStreamTrack,
)
from aiortc.contrib.media import MediaPlayer
from aiortc.mediastreams import MediaStreamError

from .iceservers import turn_kind
from .rtc.peer import create_peer_connection
from .rtc.tap import ReceiverTap

VIDEO_CLOCK = 90_000


class StillTrack(VideoStreamTrack):
    """Loops a list of RGB frames at ``fps``: a photo held to the camera, or a slideshow."""

    def __init__(self, frames: Sequence[np.ndarray], fps: float = 15.0) -> None:
        super().__init__()
        self._frames = [av.VideoFrame.from_ndarray(f, format="rgb24") for f in frames]
        self._fps = fps
        self._index = 0
        self._t0: float | None = None

    async def recv(self) -> av.VideoFrame:
        if self._t0 is None:
            self._t0 = time.monotonic()
        due = self._t0 + self._index / self._fps
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        frame = self._frames[self._index % len(self._frames)]
        out = frame.reformat(format="yuv420p")
        out.pts = int(self._index * VIDEO_CLOCK / self._fps)
        out.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        self._index += 1
        return out


class SwitchableTrack(StillTrack):
    """A ``StillTrack`` whose pictures can be swapped mid-call: clip A, then clip B.

    Tests use it to change what the camera shows after admission (another person,
    nobody, two people) without renegotiating; timing continues seamlessly.
    """

    def show(self, frames: Sequence[np.ndarray]) -> None:
        self._frames = [av.VideoFrame.from_ndarray(f, format="rgb24") for f in frames]


def clip_frames(
    path: str, seconds: float, fps: float = 10.0, start_s: float = 0.0
) -> list[np.ndarray]:
    """RGB frames of a video file from ``start_s`` for ``seconds``, about ``fps`` a second."""
    frames: list[np.ndarray] = []
    next_t = start_s
    with av.open(path) as container:
        for frame in container.decode(video=0):
            t = frame.time or 0.0
            if t < next_t:
                continue
            if t > start_s + seconds:
                break
            frames.append(frame.to_ndarray(format="rgb24"))
            next_t = t + 1.0 / fps
    return frames


def timed_clip_frames(path: Path, fps: float, count: int) -> list[tuple[float, np.ndarray]]:
    """The first ``count`` RGB frames at about ``fps``, each with the clip's own
    timestamp (what the sampler's clock sees: benches and tests of per-frame stages)."""
    out: list[tuple[float, np.ndarray]] = []
    next_t = 0.0
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            t = float(frame.time or 0.0)
            if t + 1e-6 >= next_t:
                out.append((t, frame.to_ndarray(format="rgb24")))
                next_t += 1.0 / fps
            if len(out) >= count:
                break
    return out


MAX_REDIRECTS = 3


@dataclass
class ReceivedTrack:
    kind: str
    mid: str | None
    frames: int = 0
    width: int = 0
    height: int = 0


@dataclass
class ClientResult:
    messages: list[dict[str, Any]] = field(default_factory=list)
    received: list[ReceivedTrack] = field(default_factory=list)
    joined_at: float | None = None
    first_frame_at: float | None = None
    verdict_at: float | None = None
    redirects: list[str] = field(default_factory=list)  # cluster: nodes the join was sent to

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("type") == kind]

    @property
    def verdict(self) -> dict[str, Any] | None:
        verdicts = self.of_type("verdict")
        return verdicts[-1] if verdicts else None


class GateClient:
    def __init__(
        self,
        base_url: str,
        room: str,
        *,
        invite: str | None = None,
        video: str | MediaStreamTrack | None = None,
        name: str | None = None,
        rejoin: str | None = None,
        loopback: bool = True,
        video_codec: str | None = None,
        ice_from_welcome: bool = False,
        turn_transport: str | None = None,
        count_encoded: bool = False,
    ) -> None:
        """``ice_from_welcome``: build the peer connection with the welcome's
        ``ice_servers`` (like the page) instead of host candidates only; aiortc uses
        one TURN URL, the first of kind ``turn_transport`` (udp, tcp, tls) if given.
        ``count_encoded``: count received frames before the decoder (server/rtc/tap.py)
        instead of decoding them, so many load-test viewers cost the machine little
        (``width``/``height`` stay 0)."""
        self.base_url = base_url.rstrip("/")
        self.room = room
        self.invite = invite
        self.name = name
        self.rejoin = rejoin
        self.video_codec = video_codec
        self.loopback = loopback
        self._video_source = video
        self.result = ClientResult()
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._player: MediaPlayer | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._changed = asyncio.Condition()
        self.ice_from_welcome = ice_from_welcome
        self.turn_transport = turn_transport
        self.count_encoded = count_encoded
        self.pc: RTCPeerConnection = (
            RTCPeerConnection(RTCConfiguration(iceServers=[]))
            if ice_from_welcome
            else create_peer_connection(loopback=loopback)
        )

    def _configure_ice(self, servers: list[dict[str, Any]]) -> None:
        """Replace the (unused) pc with one using the welcome's ICE servers."""
        ice: list[RTCIceServer] = []
        for server in servers:
            urls = [
                u
                for u in server["urls"]
                if not u.startswith("turn")
                or self.turn_transport is None
                or turn_kind(u) == self.turn_transport
            ]
            if urls:
                ice.append(RTCIceServer(urls, server.get("username"), server.get("credential")))
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=ice))

    def connection_path(self) -> dict[str, str] | None:
        """The selected candidate pair as the page reports it in ``netinfo``
        (aiortc has no candidate-pair stats: read aioice's nominated pair).

        ``relay`` if either end is a relay; ``nat`` if either end is reflexive, or if
        STUN showed this side is behind a NAT (a server-reflexive address differs
        from every host address), since a host pair is then translated; else
        ``direct``."""
        for transceiver in self.pc.getTransceivers():
            connection: Any = transceiver.sender.transport.transport.iceGatherer._connection
            pair = connection._nominated.get(1)
            if pair is None:
                continue
            local, remote = pair.local_candidate.type, pair.remote_candidate.type
            gathered = connection.local_candidates
            hosts = {c.host for c in gathered if c.type == "host"}
            behind_nat = any(c.type == "srflx" and c.host not in hosts for c in gathered)
            if "relay" in (local, remote):
                path = "relay"
            elif {local, remote} & {"srflx", "prflx"} or behind_nat:
                path = "nat"
            else:
                path = "direct"
            return {"path": path, "local": local, "remote": remote, "protocol": "udp"}
        return None

    async def join(self) -> None:
        self.result.joined_at = time.monotonic()
        self._session = aiohttp.ClientSession()
        ws_url = self.base_url.replace("http", "ws", 1) + "/ws"
        first: dict[str, Any] | None = None
        for _ in range(MAX_REDIRECTS + 1):
            self._ws = await self._session.ws_connect(ws_url, max_msg_size=0)
            await self.send(
                {
                    "type": "join",
                    "room": self.room,
                    "invite": self.invite,
                    "name": self.name,
                    "rejoin": self.rejoin,
                }
            )
            reply = await self._ws.receive()
            first = json.loads(reply.data) if reply.type is aiohttp.WSMsgType.TEXT else None
            if first is None or first.get("type") != "redirect":
                break
            # Cluster: the room lives on another node; the same join goes there.
            self.result.redirects.append(str(first["url"]))
            await self._ws.close()
            ws_url = str(first["url"])
        if first is not None:
            await self._handle(first)
        self._spawn(self._read_loop())
        if self.ice_from_welcome:
            await self.wait_for(lambda r: bool(r.of_type("welcome") or r.of_type("error")), 30)
            welcome = self.result.of_type("welcome")
            if not welcome:
                return
            self._configure_ice(welcome[0].get("ice_servers") or [])
        for track in self._make_tracks():
            sender = self.pc.addTrack(track)
            if self.video_codec and track.kind == "video":
                self._prefer(sender, self.video_codec)

        @self.pc.on("track")
        def _on_track(remote: MediaStreamTrack) -> None:
            mid = next(
                (t.mid for t in self.pc.getTransceivers() if t.receiver.track is remote), None
            )
            record = ReceivedTrack(remote.kind, mid)
            self.result.received.append(record)
            if self.count_encoded:
                self._tap(remote, record)
            else:
                self._spawn(self._consume(remote, record))

        await self.pc.setLocalDescription(await self.pc.createOffer())
        await self.send({"type": "offer", "sdp": self.pc.localDescription.sdp})

    def _prefer(self, sender: RTCRtpSender, mime: str) -> None:
        """Offer only ``mime`` (+RTX): a pre-encoded track can send nothing else."""
        wanted = {mime.lower(), "video/rtx"}
        codecs = [
            c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType.lower() in wanted
        ]
        for transceiver in self.pc.getTransceivers():
            if transceiver.sender is sender:
                transceiver.setCodecPreferences(codecs)

    def _make_tracks(self) -> list[MediaStreamTrack]:
        source = self._video_source
        if source is None:
            return []
        if isinstance(source, MediaStreamTrack):
            return [source]
        self._player = MediaPlayer(source, loop=True)
        return [t for t in (self._player.audio, self._player.video) if t is not None]

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def send(self, message: dict[str, Any]) -> None:
        assert self._ws is not None
        await self._ws.send_str(json.dumps(message))

    async def _read_loop(self) -> None:
        assert self._ws is not None
        async for msg in self._ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                continue
            await self._handle(json.loads(msg.data))

    async def _handle(self, data: dict[str, Any]) -> None:
        if data.get("type") == "offer":
            await self._answer(data["sdp"])
        elif data.get("type") == "answer":
            await self.pc.setRemoteDescription(RTCSessionDescription(data["sdp"], "answer"))
        if data.get("type") == "verdict" and self.result.verdict_at is None:
            self.result.verdict_at = time.monotonic()
        if (
            data.get("type") == "state"
            and data.get("state") == "checking"
            and self.result.first_frame_at is None
        ):
            # The server sends "checking" when its sampler has the first frame.
            self.result.first_frame_at = time.monotonic()
        self.result.messages.append(data)
        async with self._changed:
            self._changed.notify_all()

    async def _answer(self, sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        await self.send({"type": "answer", "sdp": self.pc.localDescription.sdp})

    def _tap(self, track: MediaStreamTrack, record: ReceivedTrack) -> None:
        def count(_codec: object, _frame: object) -> None:
            record.frames += 1

        for transceiver in self.pc.getTransceivers():
            if transceiver.receiver.track is track:
                ReceiverTap(transceiver.receiver, on_frame=count, on_end=lambda: None)

    async def _consume(self, track: MediaStreamTrack, record: ReceivedTrack) -> None:
        with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
            while True:
                frame = await track.recv()
                record.frames += 1
                if isinstance(frame, av.VideoFrame):
                    record.width, record.height = frame.width, frame.height
                async with self._changed:
                    self._changed.notify_all()

    async def wait_for(self, predicate: Callable[[ClientResult], bool], timeout: float) -> None:
        async def _wait() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: predicate(self.result))

        await asyncio.wait_for(_wait(), timeout)

    async def wait_verdict(self, timeout: float) -> dict[str, Any]:
        await self.wait_for(lambda r: r.verdict is not None, timeout)
        verdict = self.result.verdict
        assert verdict is not None
        return verdict

    def video_frames_received(self) -> int:
        return sum(t.frames for t in self.result.received if t.kind == "video")

    @property
    def rejoin_token(self) -> str | None:
        welcome = self.result.of_type("welcome")
        return str(welcome[0]["rejoin"]) if welcome else None

    async def close(self, *, leave: bool = True) -> None:
        """Leave and free everything; ``leave=False`` drops the line like a network blip."""
        with contextlib.suppress(Exception):
            if leave and self._ws is not None and not self._ws.closed:
                await self.send({"type": "leave"})
                # The server's goodbye: the session is torn down and its records written.
                await self.wait_for(lambda r: any(m.get("type") == "bye" for m in r.messages), 3)
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await self.pc.close()
        if self._player is not None:
            for t in (self._player.audio, self._player.video):
                if t is not None:
                    t.stop()
        if self._ws is not None:
            await self._ws.close()
        if self._session is not None:
            await self._session.close()
