"""Resource attacks through the media path, over real WebRTC (aiortc client peers).

* Decoder memory bomb: VP8 keyframes whose header claims 16383x16383 (38 bytes each)
  made libvpx reserve ~0.9 GB per decoder. The size is now read from the header
  first: the participant gets a fatal ``bad_media`` and is freed, and RSS stays flat.
* ICE candidates: malformed ones crashed the websocket handler; internal addresses
  made the server probe them; there was no cap. Now: ``bad_candidate`` (the session
  goes on), loopback/private addresses dropped outside loopback mode, a cap.
"""

from __future__ import annotations

import asyncio
import ctypes
import fractions
import gc
import json
import struct
from pathlib import Path
from typing import Any

import aiohttp
import av
import numpy as np
from aiortc import MediaStreamTrack, RTCPeerConnection

from server.app import HUB
from server.client import GateClient, StillTrack
from server.face.engine import FaceEngine
from server.participant import Participant
from server.rtc.peer import create_peer_connection
from server.store import SqliteStore
from tests.integration.conftest import Gatekeeper, video_frame

from .conftest import serve
from .wsutil import drain, live_participants, recv_json, send_recv, wait_until

MB = 1024 * 1024
# A real 640x480 session (decoder, buffers, jitter) costs a few tens of MB; one bomb
# keyframe cost ~925 MB before the fix. The bound sits far from both.
RSS_BOUND_MB = 250


def rss_mb() -> float:
    """Resident set of this process (the server runs in it) after giving back free heap."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:  # pragma: no cover - not glibc
        pass
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * 4096 / MB


def vp8_keyframe(width: int, height: int) -> bytes:
    """A 38-byte VP8 keyframe claiming ``width`` x ``height`` (RFC 6386 9.1)."""
    tag = (1 << 4) | (10 << 5)  # keyframe, version 0, shown, first partition 10 bytes
    return (
        tag.to_bytes(3, "little") + b"\x9d\x01\x2a" + struct.pack("<HH", width, height) + bytes(28)
    )


class CraftedVp8Track(MediaStreamTrack):
    """A "camera" that sends pre-encoded VP8 frames: ``honest`` real frames, then bombs.

    aiortc's sender only packetises an ``av.Packet`` (no encoding), so the server
    receives exactly these bytes.
    """

    kind = "video"

    def __init__(self, honest: list[bytes], bomb: bytes, fps: float = 10.0) -> None:
        super().__init__()
        self._frames = honest
        self._bomb = bomb
        self._fps = fps
        self._index = 0
        self.bombs_sent = 0

    async def recv(self) -> av.Packet:
        await asyncio.sleep(1 / self._fps)
        if self._index < len(self._frames):
            data = self._frames[self._index]
        else:
            data = self._bomb
            self.bombs_sent += 1
        packet = av.Packet(data)
        packet.pts = self._index * 9000
        packet.time_base = fractions.Fraction(1, 90_000)
        self._index += 1
        return packet


def encode_vp8(frames: list[np.ndarray]) -> list[bytes]:
    context = av.CodecContext.create("libvpx", "w")
    height, width = frames[0].shape[:2]
    context.width, context.height, context.pix_fmt = width, height, "yuv420p"
    context.time_base = fractions.Fraction(1, 10)
    context.thread_count = 1  # PyAV's automatic threading is far slower on a busy machine
    context.options = {"lag-in-frames": "0", "deadline": "realtime"}
    out: list[bytes] = []
    for index, rgb in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
        frame.pts = index
        out += [bytes(p) for p in context.encode(frame)]
    out += [bytes(p) for p in context.encode(None)]
    return out


async def test_vp8_keyframe_claiming_16383_squared_is_refused_before_decoding(
    robust_engine: FaceEngine, robust_store: SqliteStore, tmp_path: Path, faces_dir: Path
) -> None:
    async with serve(robust_engine, robust_store, tmp_path) as gk:
        invite = enrol_d9(gk, faces_dir)
        hub = gk.app[HUB]
        honest = encode_vp8([video_frame(faces_dir / "videos" / "liveportrait_d9.mp4", 0.5)] * 5)
        track = CraftedVp8Track(honest, vp8_keyframe(16383, 16383))
        before = rss_mb()
        client = GateClient(
            gk.base_url, gk.room_slug, invite=invite, video=track, video_codec="video/VP8"
        )
        try:
            await client.join()
            participant = None
            await wait_until(lambda: bool(hub.rooms.get(gk.room_id)), timeout=10)
            runtime = hub.rooms[gk.room_id]
            participant = next(iter(runtime.participants.values()))
            # Three bombs reach the server (or the session ends first), then measure.
            await wait_until(lambda: track.bombs_sent >= 3 or participant.closed, timeout=20)
            await wait_until(lambda: client.result.of_type("bye"), timeout=5)
        except TimeoutError:
            pass
        finally:
            grown = rss_mb() - before
            await client.close()
        print(f"RSS growth with three bomb keyframes: {grown:.0f} MB")  # shown with -s
        assert grown < RSS_BOUND_MB, f"RSS grew by {grown:.0f} MB"
        errors = client.result.of_type("error")
        assert [(e["code"], e["fatal"]) for e in errors] == [("bad_media", True)], errors
        assert client.result.of_type("bye"), client.result.messages
        assert participant is not None and participant.closed
        assert participant.publisher is not None and participant.publisher.bad_media is not None
        assert participant.publisher.stats().frames_decoded <= len(honest)
        await wait_until(lambda: live_participants(gk) == 0)
        assert not hub.rooms


async def test_an_admitted_participant_sending_a_bomb_is_removed(
    gate: Gatekeeper, faces_dir: Path, d9_frames: list[np.ndarray]
) -> None:
    """After admission nothing is decoded, but every frame is still checked before it is
    forwarded: viewers' decoders are not exposed either."""
    invite = enrol_d9(gate, faces_dir)
    honest = encode_vp8(d9_frames * 20)  # 10 s of the enrolled person, then bombs
    track = CraftedVp8Track(honest, vp8_keyframe(16383, 16383))
    client = GateClient(
        gate.base_url, gate.room_slug, invite=invite, video=track, video_codec="video/VP8"
    )
    try:
        await client.join()
        assert (await client.wait_verdict(20))["admitted"] is True
        (participant,) = gate.app[HUB].rooms[gate.room_id].participants.values()
        assert participant.publisher is not None and not participant.publisher.decoding
        await client.wait_for(lambda r: bool(r.of_type("bye")), 30)
    finally:
        await client.close()
    errors = client.result.of_type("error")
    assert [(e["code"], e["fatal"]) for e in errors] == [("bad_media", True)], errors
    assert participant.closed and participant.publisher.bad_media is not None
    await wait_until(lambda: live_participants(gate) == 0)


def enrol_d9(gate: Gatekeeper, faces_dir: Path) -> str:
    return gate.enrol_frame("D9", video_frame(faces_dir / "videos" / "liveportrait_d9.mp4", 0.5))


async def test_a_real_camera_over_the_limit_is_refused_and_freed(
    robust_engine: FaceEngine, robust_store: SqliteStore, tmp_path: Path, faces_dir: Path
) -> None:
    """An honest encoder at 2560x1440 under the default 1920x1080 limit: one fatal
    ``bad_media``, ``bye``, nothing decoded, everything freed."""
    async with serve(robust_engine, robust_store, tmp_path) as gk:
        invite = enrol_d9(gk, faces_dir)
        hub = gk.app[HUB]
        face = video_frame(faces_dir / "videos" / "liveportrait_d9.mp4", 0.5)
        canvas = np.zeros((1440, 2560, 3), np.uint8)
        canvas[: face.shape[0], : face.shape[1]] = face
        client = GateClient(gk.base_url, gk.room_slug, invite=invite, video=StillTrack([canvas], 4))
        try:
            await client.join()
            await client.wait_for(lambda r: bool(r.of_type("bye")), 20)
        finally:
            await client.close()
        errors = client.result.of_type("error")
        assert [(e["code"], e["fatal"]) for e in errors] == [("bad_media", True)], errors
        assert "2560x1440" in errors[0]["message"]
        assert client.result.verdict is None and client.video_frames_received() == 0
        await wait_until(lambda: live_participants(gk) == 0)
        assert not hub.rooms


def remote_candidates(participant: Participant) -> list[tuple[str, int]]:
    """The addresses the server's ICE agent would send connectivity checks to."""
    assert participant.pc is not None
    transport = participant.pc.getTransceivers()[0].receiver.transport.transport
    return [(c.ip, c.port) for c in transport.getRemoteCandidates()]


def candidate(text: str, mid: str | None = "0", index: int | None = 0) -> dict[str, Any]:
    return {"type": "candidate", "candidate": text, "sdpMid": mid, "sdpMLineIndex": index}


async def join_and_offer(
    ws: aiohttp.ClientWebSocketResponse, gk: Gatekeeper, invite: str, client_pc: RTCPeerConnection
) -> Participant:
    welcome = await send_recv(ws, {"type": "join", "room": gk.room_slug, "invite": invite})
    assert welcome["type"] == "welcome", welcome
    participant = gk.app[HUB].rooms[gk.room_id].participants[welcome["participant_id"]]
    client_pc.addTrack(StillTrack([np.zeros((480, 640, 3), np.uint8)]))
    await client_pc.setLocalDescription(await client_pc.createOffer())
    answer = await send_recv(ws, {"type": "offer", "sdp": client_pc.localDescription.sdp})
    assert answer["type"] == "answer", answer
    return participant


async def test_malformed_and_internal_candidates_neither_crash_nor_get_probed(
    robust_engine: FaceEngine, robust_store: SqliteStore, tmp_path: Path, faces_dir: Path
) -> None:
    """Not in loopback mode: the offer's 127.0.0.1 candidate and trickled loopback
    addresses (a Redis port, the resolver, ssh on ::1) are never handed to the ICE
    agent; malformed candidates get ``bad_candidate`` and the session goes on."""
    async with serve(robust_engine, robust_store, tmp_path, server={"loopback": False}) as gk:
        invite = enrol_d9(gk, faces_dir)
        client_pc = create_peer_connection(loopback=True)
        try:
            async with aiohttp.ClientSession() as http, http.ws_connect(gk.base_url + "/ws") as ws:
                participant = await join_and_offer(ws, gk, invite, client_pc)
                malformed = [
                    candidate("candidate:1 1 udp 2122260223 127.0.0.1 5000"),  # no typ
                    candidate("candidate:1 1 udp 2122260223 10.0.0.5 5000 typ host", None, None),
                    candidate("candidate:1 1 udp 2122260223 10.0.0.5 99999 typ host"),
                    candidate("candidate:1 1 udp 2122260223 redis.internal 6379 typ host"),
                ]
                codes = []
                for message in malformed:
                    await ws.send_str(json.dumps(message))
                    reply = await recv_json(ws)
                    codes.append((reply.get("code"), reply.get("fatal")))
                assert codes == [("bad_candidate", False)] * len(malformed)
                for probe in ("127.0.0.1 6379", "127.0.0.53 53", "::1 22"):
                    await ws.send_str(
                        json.dumps(candidate(f"candidate:9 1 udp 2122260223 {probe} typ host"))
                    )
                # The socket still answers: the handler did not crash.
                reply = await send_recv(ws, {"type": "join", "room": gk.room_slug})
                assert reply["code"] == "already_joined", reply
                assert not participant.closed
                assert remote_candidates(participant) == []
                await ws.send_str(json.dumps({"type": "leave"}))
                await drain(ws)
        finally:
            await client_pc.close()
        await wait_until(lambda: live_participants(gk) == 0)


async def test_trickled_candidates_are_capped_per_connection(
    robust_engine: FaceEngine, robust_store: SqliteStore, tmp_path: Path, faces_dir: Path
) -> None:
    cap = 8
    async with serve(
        robust_engine, robust_store, tmp_path, limits={"max_ice_candidates": cap}
    ) as gk:
        invite = enrol_d9(gk, faces_dir)
        client_pc = create_peer_connection(loopback=True)
        try:
            async with aiohttp.ClientSession() as http, http.ws_connect(gk.base_url + "/ws") as ws:
                participant = await join_and_offer(ws, gk, invite, client_pc)
                for port in range(40000, 40050):
                    text = f"candidate:{port} 1 udp 2122260223 127.0.0.1 {port} typ host"
                    await ws.send_str(json.dumps(candidate(text)))
                reply = await send_recv(ws, {"type": "join", "room": gk.room_slug})
                assert reply["code"] == "too_many_candidates" and reply["fatal"] is False
                reply = await recv_json(ws)
                assert reply["code"] == "already_joined", reply
                assert len(remote_candidates(participant)) <= cap
                await ws.send_str(json.dumps({"type": "leave"}))
                await drain(ws)
        finally:
            await client_pc.close()
        await wait_until(lambda: live_participants(gk) == 0)


async def test_nothing_is_decoded_between_attempts(
    gate: Gatekeeper, faces_dir: Path, stranger_frames: list[np.ndarray]
) -> None:
    """After a non-final refusal nothing is checked until "ready": the decoder is off
    (no CPU, no decoder memory to attack); "ready" starts it again for the next attempt."""
    invite = enrol_d9(gate, faces_dir)
    client = GateClient(
        gate.base_url, gate.room_slug, invite=invite, video=StillTrack(stranger_frames, 10)
    )
    try:
        await client.join()
        await client.wait_for(lambda r: bool(r.of_type("verdict")), 30)
        first = client.result.of_type("verdict")[0]
        assert first["admitted"] is False and first["final"] is False, first
        (participant,) = gate.app[HUB].rooms[gate.room_id].participants.values()
        assert participant.publisher is not None
        await wait_until(lambda: not participant.publisher.decoding, timeout=5)  # type: ignore[union-attr]
        assert participant.sampler is None
        frozen = participant.publisher.stats()
        await wait_until(
            lambda: participant.publisher.stats().video_frames > frozen.video_frames + 10
        )  # type: ignore[union-attr]
        assert participant.publisher.stats().frames_decoded == frozen.frames_decoded
        await client.send({"type": "ready"})
        await client.wait_for(lambda r: len(r.of_type("verdict")) >= 2, 30)
        assert participant.publisher.stats().frames_decoded > frozen.frames_decoded
        assert client.result.of_type("verdict")[1]["attempts_left"] == 1
    finally:
        await client.close()
