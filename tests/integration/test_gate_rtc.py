"""The gate over real WebRTC: aiortc client peers send the shared face videos."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np

from server.app import HUB
from server.client import GateClient, StillTrack
from server.face.imageio import decode_image

from .conftest import Gatekeeper, video_frame

VERDICT_TIMEOUT = 40.0


def lestari_stills(faces_dir: Path) -> list[Path]:
    return sorted((faces_dir / "videos" / "stills" / "lestari15_subject").glob("*.png"))


async def test_enrolled_person_is_admitted(gatekeeper: Gatekeeper, faces_dir: Path) -> None:
    invite = gatekeeper.enrol_photos("Lestari", lestari_stills(faces_dir))
    client = GateClient(
        gatekeeper.base_url,
        gatekeeper.room_slug,
        invite=invite,
        video=str(faces_dir / "videos" / "lestari_real.mp4"),
    )
    try:
        await client.join()
        verdict = await client.wait_verdict(VERDICT_TIMEOUT)
        assert verdict["admitted"] is True, verdict
        welcome = client.result.of_type("welcome")[0]
        assert welcome["person"] is None  # the invitee's name is not told before the check
    finally:
        await client.close()
    events = [r.event for r in gatekeeper.store.audit_log(gatekeeper.room_id)]
    assert "participant.admitted" in events


async def test_stranger_is_refused_not_recognised(gatekeeper: Gatekeeper, faces_dir: Path) -> None:
    invite = gatekeeper.enrol_photos("Lestari", lestari_stills(faces_dir))
    client = GateClient(
        gatekeeper.base_url,
        gatekeeper.room_slug,
        invite=invite,
        video=str(faces_dir / "videos" / "liveportrait_d10.mp4"),
    )
    try:
        await client.join()
        verdict = await client.wait_verdict(VERDICT_TIMEOUT)
        assert verdict["admitted"] is False
        assert verdict["reason"] == "not_recognised"
        assert verdict["attempts_left"] == 2
        # A refusal never leaks how close the face came.
        assert "distance" not in verdict
        assert client.video_frames_received() == 0
    finally:
        await client.close()
    denied = [r for r in gatekeeper.store.audit_log(gatekeeper.room_id) if r.event != "x"]
    assert any(r.event == "attempt.failed" and r.details["distance"] > 0.6 for r in denied)


async def test_two_faces_hold_with_reason(gatekeeper: Gatekeeper, faces_dir: Path) -> None:
    invite = gatekeeper.enrol_photos("Lestari", lestari_stills(faces_dir))
    group = decode_image((faces_dir / "group" / "two_people.jpg").read_bytes())
    client = GateClient(
        gatekeeper.base_url, gatekeeper.room_slug, invite=invite, video=StillTrack([group])
    )
    try:
        await client.join()
        await client.wait_for(
            lambda r: any(m.get("hold") == "multiple_faces" for m in r.of_type("progress")),
            VERDICT_TIMEOUT,
        )
        assert client.result.verdict is None
    finally:
        await client.close()


async def test_only_admitted_peers_receive_media(gatekeeper: Gatekeeper, faces_dir: Path) -> None:
    videos = faces_dir / "videos"
    lestari = gatekeeper.enrol_photos("Lestari", lestari_stills(faces_dir))
    d9 = gatekeeper.enrol_frame("D9", video_frame(videos / "liveportrait_d9.mp4", 0.5))
    a = GateClient(
        gatekeeper.base_url,
        gatekeeper.room_slug,
        invite=lestari,
        video=str(videos / "lestari_real.mp4"),
    )
    stranger = GateClient(
        gatekeeper.base_url,
        gatekeeper.room_slug,
        invite=d9,
        video=str(videos / "liveportrait_d3.mp4"),
    )
    b = GateClient(
        gatekeeper.base_url,
        gatekeeper.room_slug,
        invite=d9,
        video=str(videos / "liveportrait_d9.mp4"),
    )
    try:
        await a.join()
        assert (await a.wait_verdict(VERDICT_TIMEOUT))["admitted"] is True
        await stranger.join()
        verdict = await stranger.wait_verdict(VERDICT_TIMEOUT)
        assert verdict["admitted"] is False
        # The rightful person opens the same invite: one lobby session per invite, so
        # the stranger's (refused, still waiting) session is replaced.
        await b.join()
        assert (await b.wait_verdict(VERDICT_TIMEOUT))["admitted"] is True
        assert [e["code"] for e in stranger.result.of_type("error")] == ["replaced"]
        # Both admitted peers decode each other's video.
        for viewer in (a, b):
            await viewer.wait_for(
                lambda r: any(t.kind == "video" and t.frames >= 10 for t in r.received), 20
            )
            video = next(t for t in viewer.result.received if t.kind == "video")
            assert video.width > 0 and video.height > 0
        peers_a = a.result.of_type("peers")[-1]["peers"]
        assert [p["name"] for p in peers_a] == ["D9"]
        assert peers_a[0]["mids"]
        # The refused peer never got a forwarded track, and nobody got its media.
        assert stranger.result.received == []
        assert not stranger.result.of_type("peers")
        assert len([t for t in a.result.received if t.kind == "video"]) == 1
    finally:
        for client in (a, b, stranger):
            await client.close()


async def test_rejoin_within_grace_skips_verification_once(
    gatekeeper: Gatekeeper, faces_dir: Path
) -> None:
    invite = gatekeeper.enrol_photos("Lestari", lestari_stills(faces_dir))
    video = str(faces_dir / "videos" / "lestari_real.mp4")
    first = GateClient(gatekeeper.base_url, gatekeeper.room_slug, invite=invite, video=video)
    await first.join()
    assert (await first.wait_verdict(VERDICT_TIMEOUT))["admitted"] is True
    token = first.rejoin_token
    await first.close(leave=False)  # the network drops; no "leave"
    hub = gatekeeper.app[HUB]
    for _ in range(100):
        if hub.grace:
            break
        await asyncio.sleep(0.05)
    again = GateClient(
        gatekeeper.base_url, gatekeeper.room_slug, invite=invite, video=video, rejoin=token
    )
    replay = GateClient(
        gatekeeper.base_url, gatekeeper.room_slug, invite=invite, video=video, rejoin=token
    )
    try:
        await again.join()
        assert (await again.wait_verdict(VERDICT_TIMEOUT))["admitted"] is True
        assert again.result.of_type("welcome")[0]["resumed"] is True
        assert not again.result.of_type("progress")  # no frame was analysed
        # The token is single-use: a second rejoin with it is checked like anyone.
        await replay.join()
        await replay.wait_verdict(VERDICT_TIMEOUT)
        assert replay.result.of_type("welcome")[0]["resumed"] is False
        assert replay.result.of_type("progress")
    finally:
        await again.close()
        await replay.close()


async def test_open_room_identifies_among_enrolled(gatekeeper: Gatekeeper, faces_dir: Path) -> None:
    store = gatekeeper.store
    room = store.create_room("Open Door", mode="open", settings={"liveness_policy": "off"})
    embeddings = []
    for still in lestari_stills(faces_dir):
        result = gatekeeper.engine.enrol_photo(still.read_bytes())
        assert result.embedding is not None
        embeddings.append(result.embedding)
    store.enrol_person(room.id, "Lestari", np.stack(embeddings), "onnx")
    d9 = video_frame(faces_dir / "videos" / "liveportrait_d9.mp4", 0.5)
    d9_embedding = gatekeeper.engine.enrol_frame(d9).embedding
    assert d9_embedding is not None
    store.enrol_person(room.id, "Dee Nine", d9_embedding[None], "onnx")
    member = GateClient(
        gatekeeper.base_url, room.link, video=str(faces_dir / "videos" / "lestari_real.mp4")
    )
    stranger = GateClient(
        gatekeeper.base_url, room.link, video=str(faces_dir / "videos" / "liveportrait_d10.mp4")
    )
    try:
        await member.join()
        verdict = await member.wait_verdict(VERDICT_TIMEOUT)
        assert verdict["admitted"] is True
        assert verdict["message"] == "Welcome, Lestari."
        await stranger.join()
        refused = await stranger.wait_verdict(VERDICT_TIMEOUT)
        assert (refused["admitted"], refused["reason"]) == (False, "not_recognised")
    finally:
        await member.close()
        await stranger.close()
