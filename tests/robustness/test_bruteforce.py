"""Brute force end to end: failed verifications lock the invite (never the shared
address), and no refusal, hold or error ever reveals a distance or who the nearest
enrolled person is.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from server.app import HUB
from server.client import GateClient, StillTrack
from tests.integration.conftest import Gatekeeper, video_frame

from .wsutil import assert_no_leak, live_participants, wait_until

VERDICT_S = 30.0


async def attempt_until_final(client: GateClient) -> list[dict[str, object]]:
    """Join, and after each non-final refusal press "ready" again; all verdicts seen."""
    await client.join()
    while True:
        seen = len(client.result.of_type("verdict"))
        await client.wait_for(lambda r, n=seen: len(r.of_type("verdict")) > n, VERDICT_S)
        verdict = client.result.of_type("verdict")[-1]
        if verdict["final"] or verdict["admitted"]:
            return client.result.of_type("verdict")
        await client.send({"type": "ready"})


async def test_failures_lock_the_invite_and_the_address(
    gate: Gatekeeper,
    faces_dir: Path,
    d9_frames: list[np.ndarray],
    stranger_frames: list[np.ndarray],
) -> None:
    videos = faces_dir / "videos"
    d9 = gate.enrol_frame("D9", video_frame(videos / "liveportrait_d9.mp4", 0.5))
    lestari = gate.enrol_photos(
        "Lestari", sorted((videos / "stills" / "lestari15_subject").glob("*.png"))[:3]
    )
    hub = gate.app[HUB]
    policy = hub.settings.gate
    assert (policy.max_attempts, policy.lockout_failures) == (3, 5)

    def attacker(invite: str) -> GateClient:
        return GateClient(
            gate.base_url, gate.room_slug, invite=invite, video=StillTrack(stranger_frames, 10)
        )

    # Session 1: three wrong faces -> denied for this join, not yet locked.
    first = attacker(d9)
    try:
        verdicts = await attempt_until_final(first)
    finally:
        await first.close()
    assert [v["reason"] for v in verdicts] == ["not_recognised"] * 3
    assert [v["attempts_left"] for v in verdicts] == [2, 1, 0]
    assert verdicts[-1]["final"] is True
    # Session 2: the fifth failure in the window locks the invite (not the address:
    # people behind one address must not pay for one person's failures; issue 12).
    second = attacker(d9)
    try:
        verdicts = await attempt_until_final(second)
    finally:
        await second.close()
    assert [v["reason"] for v in verdicts] == ["not_recognised", "locked_out"]
    assert verdicts[-1]["final"] is True and verdicts[-1]["attempts_left"] == 0
    assert "invite link is locked" in str(verdicts[-1]["message"])
    now = time.monotonic()
    until = hub.lockout.locked_until((f"invite:{d9}",), now)
    assert until is not None and until - now > policy.lockout_duration_s - 60
    assert hub.lockout.locked_until((f"ip:{gate.room_id}:127.0.0.1",), now) is None
    # Locked: even the right face on the locked invite is refused at its first frame,
    # with no frame analysed.
    rightful = GateClient(gate.base_url, gate.room_slug, invite=d9, video=StillTrack(d9_frames, 10))
    try:
        await rightful.join()
        verdict = await rightful.wait_verdict(VERDICT_S)
    finally:
        await rightful.close()
    assert verdict["admitted"] is False and verdict["reason"] == "locked_out"
    assert verdict["final"] is True
    assert not [m for m in rightful.result.of_type("progress") if m["frames"]]
    # A bystander on another invite, from the same address, is checked as usual.
    # (Not D9's face: dlib puts D9 within 0.51-0.55 of Lestari's stills, under its 0.60
    # threshold, a real false match the second engine of issue 14 is for.)
    bystander = GateClient(
        gate.base_url, gate.room_slug, invite=lestari, video=StillTrack(stranger_frames, 10)
    )
    try:
        await bystander.join()
        verdict = await bystander.wait_verdict(VERDICT_S)
    finally:
        await bystander.close()
    assert verdict["reason"] == "not_recognised", verdict
    for client, others in ((first, ["Lestari"]), (second, ["Lestari"]), (rightful, ["Lestari"])):
        assert client.video_frames_received() == 0
        assert_no_leak(client.result.messages, others)
    events = [r.event for r in gate.store.audit_log(gate.room_id)]
    assert events.count("attempt.failed") + events.count("participant.denied") >= 5
    await wait_until(lambda: live_participants(gate) == 0)


async def test_open_room_refusals_never_name_the_nearest_person(
    gate: Gatekeeper, faces_dir: Path, stranger_frames: list[np.ndarray]
) -> None:
    """1:N: a stranger resembling nobody (or somebody) learns neither who nor how close."""
    videos = faces_dir / "videos"
    room = gate.store.create_room("Open Room", mode="open", settings={"liveness_policy": "off"})
    names = ["D9", "D3", "D13"]
    for name, clip in zip(
        names, ("liveportrait_d9", "liveportrait_d3", "liveportrait_d13"), strict=True
    ):
        embedding = gate.engine.enrol_frame(video_frame(videos / f"{clip}.mp4", 0.5)).embedding
        assert embedding is not None
        gate.store.enrol_person(room.id, name, embedding[None], "dlib")
    client = GateClient(
        gate.base_url, room.link, name="Mallory", video=StillTrack(stranger_frames, 10)
    )
    try:
        verdicts = await attempt_until_final(client)
    finally:
        await client.close()
    assert all(v["admitted"] is False for v in verdicts)
    assert {v["reason"] for v in verdicts} <= {"not_recognised", "ambiguous", "locked_out"}
    assert client.result.of_type("welcome")[0]["person"] is None
    assert_no_leak(client.result.messages, names)
    # The owner still gets the figures, in the audit log only.
    failed = [r for r in gate.store.audit_log(room.id) if r.event == "attempt.failed"]
    assert failed and all(isinstance(r.details["distance"], float) for r in failed)
