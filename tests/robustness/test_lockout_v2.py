"""Gate security round 2 (issue 12), the session-layer holes, each attacked first:
parallel lobby sessions on one invite, one address locking an open room for
everyone, refusals that tell bystanders something untrue, and live sessions that
outlive their grant (deleted person, revoked invite).
"""

from __future__ import annotations

import time
from pathlib import Path

import aiohttp
import numpy as np

from server.app import HUB
from server.client import GateClient, StillTrack
from server.device import DeviceIds
from server.join import lockout_keys
from tests.integration.conftest import Gatekeeper, video_frame

from .test_bruteforce import attempt_until_final
from .wsutil import live_participants, wait_until

VERDICT_S = 30.0


async def test_a_second_lobby_session_on_an_invite_replaces_the_first(
    gate: Gatekeeper, faces_dir: Path, stranger_frames: list[np.ndarray]
) -> None:
    videos = faces_dir / "videos"
    invite = gate.enrol_frame("D9", video_frame(videos / "liveportrait_d9.mp4", 0.5))
    sessions = [
        GateClient(
            gate.base_url, gate.room_slug, invite=invite, video=StillTrack(stranger_frames, 2)
        )
        for _ in range(3)
    ]
    try:
        for client in sessions:
            await client.join()
            await client.wait_for(lambda r: bool(r.of_type("welcome")), 10)
        for old in sessions[:2]:
            await old.wait_for(lambda r: any(m["type"] == "bye" for m in r.messages), 10)
            errors = [m["code"] for m in old.result.of_type("error")]
            assert errors == ["replaced"], old.result.messages
        # Only one lobby session of that invite is left to make attempts.
        await wait_until(lambda: live_participants(gate) == 1)
    finally:
        for client in sessions:
            await client.close()


async def test_failures_in_an_open_room_never_lock_it_for_others(
    gate: Gatekeeper,
    faces_dir: Path,
    d9_frames: list[np.ndarray],
    stranger_frames: list[np.ndarray],
) -> None:
    videos = faces_dir / "videos"
    room = gate.store.create_room("Open Lobby", mode="open", settings={"liveness_policy": "off"})
    embedding = gate.engine.enrol_frame(video_frame(videos / "liveportrait_d9.mp4", 0.5)).embedding
    assert embedding is not None
    gate.store.enrol_person(room.id, "D9", embedding[None], "onnx")
    failures = 0
    while failures < 6:  # more than lockout_failures (5): the old room-wide lock
        stranger = GateClient(gate.base_url, room.link, video=StillTrack(stranger_frames, 10))
        try:
            verdicts = await attempt_until_final(stranger)
        finally:
            await stranger.close()
        assert all(v["reason"] == "not_recognised" for v in verdicts), verdicts
        failures += len(verdicts)
    # The enrolled person, from the same shared address, is still let in.
    member = GateClient(gate.base_url, room.link, video=StillTrack(d9_frames, 10))
    try:
        await member.join()
        verdict = await member.wait_verdict(VERDICT_S)
    finally:
        await member.close()
    assert verdict["admitted"] is True, verdict
    hub = gate.app[HUB]
    assert hub.lockout.locked_until((f"room:{room.id}",), time.monotonic()) is None


async def test_a_locked_invite_says_so_and_does_not_lock_the_address(
    gate: Gatekeeper, faces_dir: Path, stranger_frames: list[np.ndarray]
) -> None:
    videos = faces_dir / "videos"
    d9 = gate.enrol_frame("D9", video_frame(videos / "liveportrait_d9.mp4", 0.5))
    verdicts: list[dict[str, object]] = []
    while not verdicts or verdicts[-1]["reason"] != "locked_out":
        attacker = GateClient(
            gate.base_url, gate.room_slug, invite=d9, video=StillTrack(stranger_frames, 10)
        )
        try:
            verdicts = await attempt_until_final(attacker)
        finally:
            await attacker.close()
    message = str(verdicts[-1]["message"])
    assert "invite link is locked" in message and "min" in message
    hub = gate.app[HUB]
    now = time.monotonic()
    assert hub.lockout.locked_until((f"invite:{d9}",), now) is not None
    assert hub.lockout.locked_until((f"ip:{gate.room_id}:127.0.0.1",), now) is None


def test_lockout_keys_never_name_the_room_alone() -> None:
    assert lockout_keys("r1", "203.0.113.9", None, "dev") == ("ip:r1:203.0.113.9", "device:dev")
    assert lockout_keys("r1", "203.0.113.9", "tok", None) == ("invite:tok", "ip:r1:203.0.113.9")


def test_device_cookie_is_signed() -> None:
    ids = DeviceIds(b"k" * 32)
    cookie = ids.issue()
    device = ids.verify(cookie)
    assert device is not None and cookie.startswith(device)
    assert ids.verify(device + ".0123456789abcdef0123456789abcdef") is None  # forged mac
    assert DeviceIds(b"x" * 32).verify(cookie) is None  # another server's key
    assert ids.verify(None) is None and ids.verify("no-dot") is None


async def test_deleting_the_person_ends_their_live_session(
    gate: Gatekeeper, faces_dir: Path, d9_frames: list[np.ndarray]
) -> None:
    store = gate.store
    owner = store.create_owner("owner@example.org", "x")
    _, key = store.create_api_key(owner.id, "k")
    room = store.create_room("Owned", owner_id=owner.id, settings={"liveness_policy": "off"})
    embedding = gate.engine.enrol_frame(d9_frames[0]).embedding
    assert embedding is not None
    person = store.enrol_person(room.id, "D9", embedding[None], "onnx")
    invite = store.create_invite(room.id, person.id)
    client = GateClient(gate.base_url, room.link, invite=invite, video=StillTrack(d9_frames, 10))
    try:
        await client.join()
        assert (await client.wait_verdict(VERDICT_S))["admitted"] is True
        async with aiohttp.ClientSession() as http:
            async with http.delete(
                f"{gate.base_url}/api/v1/persons/{person.id}",
                headers={"Authorization": f"Bearer {key}"},
            ) as resp:
                assert resp.status == 204
        # Within a second, with a reason, and no rejoin window.
        await client.wait_for(lambda r: any(m["type"] == "bye" for m in r.messages), 1.5)
        errors = client.result.of_type("error")
        assert [e["code"] for e in errors] == ["revoked"] and errors[0]["fatal"] is True
        assert "removed your enrolment" in errors[0]["message"]
        assert not gate.app[HUB].grace
    finally:
        await client.close()


async def test_revoking_the_invite_ends_the_session_on_it(
    gate: Gatekeeper, faces_dir: Path, d9_frames: list[np.ndarray]
) -> None:
    store = gate.store
    owner = store.create_owner("owner2@example.org", "x")
    room = store.create_room("Owned 2", owner_id=owner.id, settings={"liveness_policy": "off"})
    embedding = gate.engine.enrol_frame(d9_frames[0]).embedding
    assert embedding is not None
    person = store.enrol_person(room.id, "D9", embedding[None], "onnx")
    info, token = store.issue_invite(room.id, person.id)
    client = GateClient(gate.base_url, room.link, invite=token, video=StillTrack(d9_frames, 10))
    try:
        await client.join()
        assert (await client.wait_verdict(VERDICT_S))["admitted"] is True
        store.revoke_invite_id(info.id, owner.id)
        assert gate.app[HUB].invite_revoked(info.id) == 1
        await client.wait_for(lambda r: any(m["type"] == "bye" for m in r.messages), 1.5)
        assert [e["code"] for e in client.result.of_type("error")] == ["revoked"]
    finally:
        await client.close()


async def test_a_refused_stranger_triggers_no_left_or_meeting_webhooks(
    gate: Gatekeeper, faces_dir: Path, stranger_frames: list[np.ndarray]
) -> None:
    videos = faces_dir / "videos"
    invite = gate.enrol_frame("D9", video_frame(videos / "liveportrait_d9.mp4", 0.5))
    hub = gate.app[HUB]
    emitted: list[str] = []
    real_prepare = hub.webhooks.prepare

    def recording_prepare(room_id: str, event: str, data: dict[str, object]) -> object:
        emitted.append(event)
        return real_prepare(room_id, event, data)

    hub.webhooks.prepare = recording_prepare  # type: ignore[method-assign,assignment]
    stranger = GateClient(
        gate.base_url, gate.room_slug, invite=invite, video=StillTrack(stranger_frames, 10)
    )
    try:
        verdicts = await attempt_until_final(stranger)
    finally:
        await stranger.close()
    assert verdicts[-1]["final"] is True and not any(v["admitted"] for v in verdicts)
    await wait_until(lambda: not hub.rooms)
    await hub.audit_settled()  # webhooks are prepared on the audit writer's thread
    assert "participant.denied" in emitted
    assert "participant.left" not in emitted and "meeting.ended" not in emitted
