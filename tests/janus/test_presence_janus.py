"""Presence checks judge the stream Janus forwards, not the one sent to the gate: a
client that shows the enrolled face to the gate and someone else to Janus is flagged
(identity.mismatch), taken out of the Janus room and asked to verify again."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
from aiortc import RTCPeerConnection, RTCSessionDescription

from server.app import HUB
from server.client import GateClient, StillTrack, clip_frames
from server.face.engine import FaceEngine
from server.janus.local import LocalJanus
from server.store import SqliteStore

from ..integration.conftest import serve_gate
from .rawjanus import RawJanus

VERDICT_S = 40.0


async def test_a_different_face_sent_to_janus_is_a_presence_mismatch(
    janus: LocalJanus, engine: FaceEngine, store: SqliteStore, tmp_path: Path, faces_dir: Path
) -> None:
    media = {"janus_urls": janus.url, "janus_admin_key": janus.admin_key}
    presence = {"check_jitter": 0.0, "mismatch_checks": 2, "keyframe_timeout_s": 3.0}
    async with serve_gate(
        engine, store, tmp_path, "unused", {"policy": "off"}, media=media, presence=presence
    ) as gk:
        owner = store.create_owner("presence@example.org", "x")
        room = store.create_room(
            "Janus presence", owner_id=owner.id,
            settings={"liveness_policy": "off", "media_backend": "janus",
                      "presence_interval_s": 1.0},
        )  # fmt: skip
        videos = faces_dir / "videos"
        d9 = clip_frames(str(videos / "liveportrait_d9.mp4"), 1.0, 10.0, 0.5)
        d10 = clip_frames(str(videos / "liveportrait_d10.mp4"), 1.0, 10.0, 0.5)
        embedding = engine.enrol_frame(d9[0]).embedding
        assert embedding is not None
        person = store.enrol_person(room.id, "D9", embedding[None], "onnx")
        _, token = store.issue_invite(room.id, person.id)
        client = GateClient(gk.base_url, room.link, invite=token, video=StillTrack(d9, 10))
        janus_pc = RTCPeerConnection()
        async with aiohttp.ClientSession() as http:
            try:
                await client.join()
                assert (await client.wait_verdict(VERDICT_S))["admitted"] is True
                await client.wait_for(lambda r: bool(r.of_type("janus")), 10)
                granted = client.result.of_type("janus")[0]
                # The same client publishes another person's face to Janus.
                browser = RawJanus(http, granted["url"])
                await browser.open()
                joined = await browser.join(granted["room"], granted["feed"], granted["token"])
                assert joined.get("videoroom") == "joined", joined
                janus_pc.addTrack(StillTrack(d10, 10))
                await janus_pc.setLocalDescription(await janus_pc.createOffer())
                answer = await browser.publish(janus_pc.localDescription.sdp)
                await janus_pc.setRemoteDescription(
                    RTCSessionDescription(answer["jsep"]["sdp"], "answer")
                )
                await client.wait_for(lambda r: bool(r.of_type("reverify")), 30)
                plane = gk.app[HUB].janus
                assert plane is not None
                for _ in range(40):  # out of the Janus room (the re-verification's pass)
                    if granted["feed"] not in [m.feed for m in await plane.members(room.id)]:
                        break
                    await asyncio.sleep(0.05)
                else:
                    raise AssertionError("still in the Janus room")
            finally:
                await janus_pc.close()
                await client.close()
    events = [r for r in store.audit_log(room.id)]
    kinds = [r.event for r in events]
    assert "identity.mismatch" in kinds, kinds
    assert "reverify.requested" in kinds
