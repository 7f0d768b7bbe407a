"""Signalling abuse against a real server: every bad input gets a typed error, no crash,
no effect on anyone else, and nothing is left behind (participant, pc, room).
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp
import numpy as np
from aiortc import AudioStreamTrack

from server.app import HUB
from server.client import GateClient, StillTrack
from server.limits import MessageRateLimiter
from tests.integration.conftest import Gatekeeper, video_frame

from .wsutil import drain, live_participants, recv_json, send_recv, wait_until

VERDICT_S = 30.0


def enrol_d9(gate: Gatekeeper, faces_dir: Path) -> str:
    return gate.enrol_frame("D9", video_frame(faces_dir / "videos" / "liveportrait_d9.mp4", 0.5))


async def healthy(gate: Gatekeeper) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(gate.base_url + "/healthz", timeout=aiohttp.ClientTimeout(5)) as r:
            assert r.status == 200 and (await r.json())["ok"] is True


async def test_malformed_json_and_wrong_shapes_get_typed_errors(
    gate: Gatekeeper, faces_dir: Path
) -> None:
    invite = enrol_d9(gate, faces_dir)
    cases: list[tuple[str | bytes, str]] = [
        ("{not json", "bad_json"),
        ("", "bad_json"),
        ('{"type": "join", "room": "\\ud800"}', "bad_field"),
        ("[" * 30_000 + "]" * 30_000, "bad_json"),  # 60 kB of nesting: a RecursionError
        ('{"type": "join", "room": ' + "[" * 20_000 + "]" * 20_000 + "}", "bad_json"),
        ("[1, 2]", "bad_message"),
        ("42", "bad_message"),
        ('"join"', "bad_message"),
        ("{}", "bad_message"),
        ('{"type": 7}', "bad_message"),
        ('{"type": "teleport"}', "unknown_type"),
        ('{"type": "' + "x" * 5000 + '"}', "unknown_type"),
        ('{"type": "join"}', "missing_field"),
        ('{"type": "join", "room": 5}', "bad_field"),
        ('{"type": "join", "room": ""}', "bad_field"),
        ('{"type": "join", "room": "' + "r" * 65 + '"}', "too_large"),
        ('{"type": "join", "room": "x", "invite": "' + "i" * 129 + '"}', "too_large"),
        ('{"type": "media", "audio": "yes", "video": true}', "bad_field"),
        ('{"type": "offer", "sdp": "v=0"}', "join_first"),
        (json.dumps({"type": "join", "room": "x", "name": "y" * 70_000}), "too_large"),
    ]
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(gate.base_url + "/ws") as ws:
            for raw, code in cases:
                reply = await send_recv(ws, raw)
                assert reply["type"] == "error" and reply["code"] == code, (raw[:80], reply)
                assert "fatal" not in reply or reply["fatal"] is False
            await ws.send_bytes(b"\x00\x01binary")
            assert (await recv_json(ws))["code"] == "bad_message"
            # The same socket still joins normally afterwards.
            welcome = await send_recv(
                ws, {"type": "join", "room": gate.room_slug, "invite": invite}
            )
            assert welcome["type"] == "welcome" and welcome["resumed"] is False
            # Joined: a second join, an answer nobody asked for, a stray candidate.
            assert (await send_recv(ws, {"type": "join", "room": gate.room_slug}))["code"] == (
                "already_joined"
            )
            reply = await send_recv(ws, {"type": "answer", "sdp": "v=0\r\n"})
            assert reply["code"] == "unexpected_answer"
            reply = await send_recv(
                ws, {"type": "candidate", "candidate": "x", "sdpMid": "0", "sdpMLineIndex": True}
            )
            assert reply["code"] == "bad_field"
    await healthy(gate)
    await wait_until(lambda: live_participants(gate) == 0)


async def test_flood_gets_one_error_and_the_socket_is_closed(
    gate: Gatekeeper, faces_dir: Path
) -> None:
    """1000 messages in one second from one socket: one ``rate_limited``, close 1008."""
    enrol_d9(gate, faces_dir)
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(gate.base_url + "/ws") as ws:
            started = time.monotonic()
            sent = 0
            with_error = None
            for _batch in range(10):
                for _ in range(100):
                    try:
                        await ws.send_str('{"type": "ready"}')
                        sent += 1
                    except (ConnectionResetError, aiohttp.ClientConnectionResetError) as exc:
                        with_error = exc
                        break
                if with_error is not None:
                    break
                await asyncio.sleep(0.1)
            messages, close = await drain(ws)
            assert close.type is aiohttp.WSMsgType.CLOSE, close
            assert close.data == aiohttp.WSCloseCode.POLICY_VIOLATION
            limited = [m for m in messages if m.get("code") == "rate_limited"]
            assert len(limited) == 1 and limited[0]["fatal"] is True
            # Only the burst was ever answered: the rest was never processed.
            assert len(messages) <= gate.app[HUB].settings.limits.message_burst + 1
            assert time.monotonic() - started < 5
    await healthy(gate)


def test_rate_limiter_allows_a_browser_burst_and_a_steady_trickle() -> None:
    limiter = MessageRateLimiter(rate=20.0, burst=60)
    # join + offer + 40 trickled candidates at once: fine.
    assert all(limiter.allow(0.0) for _ in range(42))
    # Then a message every 100 ms forever: fine.
    assert all(limiter.allow(1.0 + i * 0.1) for i in range(500))
    # A flood: the bucket runs dry within its burst.
    allowed = sum(limiter.allow(100.0 + i * 0.001) for i in range(1000))
    assert 60 <= allowed <= 61 + 20


async def test_garbage_and_absurd_sdp(gate: Gatekeeper, faces_dir: Path) -> None:
    invite = enrol_d9(gate, faces_dir)
    join = {"type": "join", "room": gate.room_slug, "invite": invite}
    async with aiohttp.ClientSession() as http:
        # Not an SDP at all, and over the SDP limit: refused by the parser, socket lives.
        async with http.ws_connect(gate.base_url + "/ws") as ws:
            assert (await send_recv(ws, join))["type"] == "welcome"
            reply = await send_recv(ws, {"type": "offer", "sdp": "hello"})
            assert reply["code"] == "bad_sdp"
            reply = await send_recv(ws, {"type": "offer", "sdp": "v=0\r\n" + "a=x\r\n" * 8000})
            assert reply["code"] == "too_large"
        # Starts like an SDP, is garbage: aiortc refuses it; fatal, freed, socket closed.
        for sdp in (
            "v=0\r\ngarbage\r\n",
            "v=0\r\no=- 1 1 IN IP4 0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n"
            + "a=rtpmap:96 VP8/90000\r\n" * 1200,
            "v=0\r\n" + "\x00\xff" * 100,
        ):
            async with http.ws_connect(gate.base_url + "/ws") as ws:
                assert (await send_recv(ws, join))["type"] == "welcome"
                await ws.send_str(json.dumps({"type": "offer", "sdp": sdp}))
                messages, close = await drain(ws)
                errors = [m for m in messages if m["type"] == "error"]
                # aiortc rejects it (bad_sdp) or finds no media in it (no_video): one
                # fatal error either way.
                assert [e["code"] for e in errors] in (["bad_sdp"], ["no_video"]), messages
                assert errors[0]["fatal"] is True
                assert messages[-1] == {"type": "bye", "reason": "closed"}
                assert close.type is aiohttp.WSMsgType.CLOSE
    await wait_until(lambda: live_participants(gate) == 0)
    await healthy(gate)


async def test_offer_without_video_is_refused_and_freed(gate: Gatekeeper, faces_dir: Path) -> None:
    invite = enrol_d9(gate, faces_dir)
    client = GateClient(gate.base_url, gate.room_slug, invite=invite, video=AudioStreamTrack())
    try:
        await client.join()
        await client.wait_for(lambda r: bool(r.of_type("bye")), 15)
        errors = client.result.of_type("error")
        assert [e["code"] for e in errors] == ["no_video"] and errors[0]["fatal"] is True
        await wait_until(lambda: live_participants(gate) == 0)
        assert not gate.app[HUB].rooms
    finally:
        await client.close()


async def test_unknown_rooms_expired_and_revoked_invites_are_fatal(
    gate: Gatekeeper, faces_dir: Path
) -> None:
    invite = enrol_d9(gate, faces_dir)
    person = gate.store.resolve_invite(gate.store.room(gate.room_id).slug, invite).person
    assert person is not None
    expired = gate.store.create_invite(gate.room_id, person.id, ttl_s=0.001)
    revoked = gate.store.create_invite(gate.room_id, person.id)
    gate.store.revoke_invite(revoked)
    other_room = gate.store.create_room("Other Room")
    other_invite = gate.store.create_invite(other_room.id, None)
    await asyncio.sleep(0.01)
    cases = [
        ({"room": "no-such-room", "invite": invite}, "unknown_room"),
        ({"room": gate.room_slug, "invite": expired}, "expired_invite"),
        ({"room": gate.room_slug, "invite": revoked}, "revoked_invite"),
        ({"room": gate.room_slug, "invite": "forged-token"}, "unknown_invite"),
        # A valid invite of another room does not open this one.
        ({"room": gate.room_slug, "invite": other_invite}, "unknown_invite"),
        ({"room": gate.room_slug}, "invite_required"),
    ]
    async with aiohttp.ClientSession() as http:
        for fields, code in cases:
            async with http.ws_connect(gate.base_url + "/ws") as ws:
                await ws.send_str(json.dumps({"type": "join", **fields}))
                messages, close = await drain(ws)
                assert [m.get("code") for m in messages] == [code], (fields, messages)
                assert messages[0]["fatal"] is True
                assert close.type is aiohttp.WSMsgType.CLOSE
    assert live_participants(gate) == 0


async def test_another_persons_rejoin_token_neither_resumes_nor_is_burnt(
    gate: Gatekeeper, faces_dir: Path, d9_frames: list[np.ndarray]
) -> None:
    """Ids and tokens of other participants give nothing: the welcome says not resumed,
    the stranger is verified like anyone, and the owner's token still works after."""
    d9 = enrol_d9(gate, faces_dir)
    other = gate.enrol_frame("D10", video_frame(faces_dir / "videos" / "liveportrait_d10.mp4", 0.5))
    first = GateClient(gate.base_url, gate.room_slug, invite=d9, video=StillTrack(d9_frames, 10))
    await first.join()
    assert (await first.wait_verdict(VERDICT_S))["admitted"] is True
    token = first.rejoin_token
    pid = first.result.of_type("welcome")[0]["participant_id"]
    await first.close(leave=False)
    await wait_until(lambda: bool(gate.app[HUB].grace))
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(gate.base_url + "/ws") as ws:
            welcome = await send_recv(
                ws, {"type": "join", "room": gate.room_slug, "invite": other, "rejoin": token}
            )
            assert welcome["type"] == "welcome" and welcome["resumed"] is False
            assert welcome["person"] is None and welcome["participant_id"] != pid
            # Fields naming someone else's participant id are ignored, not obeyed.
            reply = await send_recv(ws, {"type": "leave", "participant_id": pid})
            assert reply["type"] in ("state", "bye")
    again = GateClient(
        gate.base_url, gate.room_slug, invite=d9, video=StillTrack(d9_frames, 10), rejoin=token
    )
    try:
        await again.join()
        assert (await again.wait_verdict(VERDICT_S))["admitted"] is True
        assert again.result.of_type("welcome")[0]["resumed"] is True
    finally:
        await again.close()


async def test_second_browser_with_the_same_invite_replaces_the_first_once_verified(
    gate: Gatekeeper,
    faces_dir: Path,
    d9_frames: list[np.ndarray],
    stranger_frames: list[np.ndarray],
) -> None:
    invite = enrol_d9(gate, faces_dir)
    first = GateClient(
        gate.base_url, gate.room_slug, invite=invite, video=StillTrack(d9_frames, 10)
    )
    thief = GateClient(
        gate.base_url, gate.room_slug, invite=invite, video=StillTrack(stranger_frames, 10)
    )
    second = GateClient(
        gate.base_url, gate.room_slug, invite=invite, video=StillTrack(d9_frames, 10)
    )
    hub = gate.app[HUB]
    try:
        await first.join()
        assert (await first.wait_verdict(VERDICT_S))["admitted"] is True
        # Someone else with the stolen link: refused, and the first session is untouched.
        await thief.join()
        assert (await thief.wait_verdict(VERDICT_S))["admitted"] is False
        assert not first.result.of_type("bye")
        # The same person from a second browser: verified, then takes the seat.
        await second.join()
        assert (await second.wait_verdict(VERDICT_S))["admitted"] is True
        await first.wait_for(lambda r: bool(r.of_type("bye")), 15)
        errors = first.result.of_type("error")
        assert [e["code"] for e in errors] == ["replaced"] and errors[0]["fatal"] is True
        assert first.result.of_type("bye")[-1]["reason"] == "replaced"
        runtime = hub.rooms[gate.room_id]
        admitted = [p for p in runtime.participants.values() if p.admitted]
        assert [p.id for p in admitted] == [second.result.of_type("welcome")[0]["participant_id"]]
        # The replaced session gets no rejoin window: it cannot bounce back unverified.
        assert first.rejoin_token not in hub.grace
        events = [r.event for r in gate.store.audit_log(gate.room_id)]
        assert "participant.replaced" in events
    finally:
        for client in (first, thief, second):
            await client.close()
    await wait_until(lambda: live_participants(gate) == 0)
