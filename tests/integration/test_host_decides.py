"""The host decides (issue 15), over real WebRTC: a refused person let in by the host
(audited as a host override with the reason), an admitted person sent back to the
lobby (out of the SFU, verified again to come back), attempts given back, and camera
off reported as such, not as "no face"."""

from __future__ import annotations

from pathlib import Path

from server.client import GateClient, SwitchableTrack
from server.hostdesk import host_decide

from . import test_presence as presence
from .test_presence import (
    VERDICT_TIMEOUT,
    Gatekeeper,
    Scenes,
    admitted_client,
    events,
    hub_of,
    lestari_stills,
    participants,
    until,
)

# the presence tests' fixtures: a gate server with presence checks every second, and
# the scenes its fake camera shows
gk = presence.gk
scenes = presence.scenes


async def test_host_admits_a_refused_person_with_the_reason_audited(
    gk: Gatekeeper, faces_dir: Path, scenes: Scenes
) -> None:
    invite = gk.enrol_photos("Lestari", lestari_stills(faces_dir))
    track = SwitchableTrack(scenes.other, fps=10)  # someone else holds Lestari's link
    client = GateClient(gk.base_url, gk.room_slug, invite=invite, video=track)
    try:
        await client.join()
        verdict = await client.wait_verdict(VERDICT_TIMEOUT)
        assert verdict["admitted"] is False and verdict["final"] is False
        assert verdict["reason"] == "not_recognised"
        (p,) = participants(gk)
        row = hub_of(gk).dashboard_snapshot(gk.room_id)["participants"][0]
        assert row["state"] == "failed" and row["can_admit"] and row["distance"] > 0.6
        assert row["failures"] == 1 and row["attempts_left"] == 2
        # Attempts given back first: the page is told, the audit says who and why.
        assert await host_decide(hub_of(gk), gk.room_id, p.id, "reset", "bad light", "h@x")
        await client.wait_for(lambda r: bool(r.of_type("lobby")), 5)
        assert client.result.of_type("lobby")[0]["attempts_left"] == 3
        assert p.gate.failures == 0 and "host.reset" in events(gk)
        applied = await host_decide(
            hub_of(gk), gk.room_id, p.id, "admit", "  Lestari's new glasses\n", "host@example.org"
        )
        assert applied is True
        await client.wait_for(lambda r: (r.verdict or {}).get("admitted") is True, 10)
        assert client.result.verdict is not None
        assert client.result.verdict["message"] == "The host let you in. Welcome, Lestari."
        assert p.admitted and p.runtime.sfu.is_admitted(p.id)  # type: ignore[attr-defined]
        hub_of(gk).audit_trail.flush()
        record = next(
            r for r in gk.store.audit_log(gk.room_id) if r.event == "participant.admitted"
        )
        assert record.details["kind"] == "host_override"
        assert record.details["host_reason"] == "Lestari's new glasses"
        assert record.details["host"] == "host@example.org"
        assert record.details["liveness"] == "not judged"
        assert record.details["gate_state"] == "failed" and record.details["failures"] == 0
        # A second "admit" has nothing to do: the person is in.
        assert not await host_decide(hub_of(gk), gk.room_id, p.id, "admit", "x", "h")
    finally:
        await client.close()


async def test_host_sends_back_to_the_lobby_and_the_person_verifies_again(
    gk: Gatekeeper, faces_dir: Path, scenes: Scenes
) -> None:
    client, track = await admitted_client(gk, faces_dir, scenes)
    try:
        (p,) = participants(gk)
        sfu = p.runtime.sfu  # type: ignore[attr-defined]
        assert sfu.is_admitted(p.id)
        assert await host_decide(hub_of(gk), gk.room_id, p.id, "lobby", "wrong group", "h@x")
        await client.wait_for(lambda r: bool(r.of_type("lobby")), 5)
        lobby = client.result.of_type("lobby")[0]
        assert "wrong group" in lobby["message"] and lobby["attempts_left"] == 3
        assert not p.admitted and not sfu.is_admitted(p.id)
        assert p.gate.state.value == "failed"
        assert "host.sent_to_lobby" in events(gk)
        # Back through the gate: verified again, seated again.
        await client.send({"type": "ready"})
        await client.wait_for(
            lambda r: [v["admitted"] for v in r.of_type("verdict")] == [True, True], 30
        )
        await until(lambda: sfu.is_admitted(p.id))
        log = gk.store.audit_log(gk.room_id)
        admissions = [r for r in log if r.event == "participant.admitted"]
        assert [r.details["kind"] for r in admissions] == ["admission", "admission"]
    finally:
        await client.close()


async def test_reset_gives_attempts_back_and_camera_off_is_not_absence(
    gk: Gatekeeper, faces_dir: Path, scenes: Scenes
) -> None:
    client, track = await admitted_client(gk, faces_dir, scenes)
    try:
        (p,) = participants(gk)
        # An admitted person has nothing to reset.
        assert not await host_decide(hub_of(gk), gk.room_id, p.id, "reset", "", "h")
        track.show(scenes.empty)  # the page switched the camera off: black/empty frames
        await client.send({"type": "media", "audio": True, "video": False})
        await until(lambda: "presence.camera_off" in events(gk))
        await until(lambda: p.presence.stats.camera_off >= 3)
        seen = events(gk)
        assert "presence.lost" not in seen and "identity.mismatch" not in seen
        row = hub_of(gk).dashboard_snapshot(gk.room_id)["participants"][0]
        assert row["camera_off"] is True
        assert row["presence"]["flags"] == ["presence.camera_off"]
        track.show(scenes.lestari)
        await client.send({"type": "media", "audio": True, "video": True})
        await until(lambda: "presence.restored" in events(gk))
        assert not p.presence.camera_is_off
    finally:
        await client.close()
