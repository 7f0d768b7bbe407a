"""The gate in front of Janus, end to end with aiortc peers and a real Janus: only an
admitted participant gets a pass; revoking the invite takes them out of the Janus room
and the old token no longer opens it (docs/janus.md)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import numpy as np

from server.app import HUB
from server.client import GateClient, StillTrack, clip_frames
from server.face.engine import FaceEngine
from server.janus import protocol as jp
from server.janus.local import LocalJanus
from server.store import SqliteStore

from ..integration.conftest import serve_gate
from .rawjanus import RawJanus

VERDICT_S = 40.0


def _frames(faces_dir: Path, clip: str) -> list[np.ndarray]:
    return clip_frames(str(faces_dir / "videos" / clip), 1.0, 10.0, 0.5)


async def _until(predicate_async: object, timeout_s: float) -> float:
    """Seconds until the async predicate holds; AssertionError past ``timeout_s``."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if await predicate_async():  # type: ignore[operator]
            return time.monotonic() - start
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {timeout_s} s")


async def test_pass_only_after_admission_and_revocation_puts_out(
    janus: LocalJanus, engine: FaceEngine, store: SqliteStore, tmp_path: Path, faces_dir: Path
) -> None:
    media = {"janus_urls": janus.url, "janus_admin_key": janus.admin_key}
    async with serve_gate(engine, store, tmp_path, "unused", {"policy": "off"}, media=media) as gk:
        owner = store.create_owner("janus@example.org", "x")
        room = store.create_room(
            "Big room", owner_id=owner.id,
            settings={"liveness_policy": "off", "media_backend": "janus"},
        )  # fmt: skip
        d9 = _frames(faces_dir, "liveportrait_d9.mp4")
        embedding = engine.enrol_frame(d9[0]).embedding
        assert embedding is not None
        person = store.enrol_person(room.id, "D9", embedding[None], "onnx")
        info, token = store.issue_invite(room.id, person.id)
        stranger_frames = _frames(faces_dir, "liveportrait_d3.mp4")
        # A second admitted participant keeps the Janus room alive throughout.
        d10 = _frames(faces_dir, "liveportrait_d10.mp4")
        other = engine.enrol_frame(d10[0]).embedding
        assert other is not None
        _, other_token = store.issue_invite(
            room.id, store.enrol_person(room.id, "D10", other[None], "onnx").id
        )
        stays = GateClient(gk.base_url, room.link, invite=other_token, video=StillTrack(d10, 10))

        stranger = GateClient(gk.base_url, room.link, invite=token,
                              video=StillTrack(stranger_frames, 10))  # fmt: skip
        try:
            await stranger.join()
            verdict = await stranger.wait_verdict(VERDICT_S)
            assert verdict["admitted"] is False, verdict
            assert stranger.result.of_type("janus") == []
        finally:
            await stranger.close()

        client = GateClient(gk.base_url, room.link, invite=token, video=StillTrack(d9, 10))
        async with aiohttp.ClientSession() as http:
            try:
                await stays.join()
                assert (await stays.wait_verdict(VERDICT_S))["admitted"] is True
                await client.join()
                assert (await client.wait_verdict(VERDICT_S))["admitted"] is True
                await client.wait_for(lambda r: bool(r.of_type("janus")), 10)
                granted = client.result.of_type("janus")[0]
                welcome = client.result.of_type("welcome")[0]
                assert granted["url"] == janus.url
                assert granted["display"] == welcome["participant_id"]
                # Our SFU forwards nothing in a Janus room: no server offer, no peers' mids.
                assert client.result.of_type("offer") == []
                browser = RawJanus(http, granted["url"])
                await browser.open()
                joined = await browser.join(granted["room"], granted["feed"], granted["token"])
                assert joined.get("videoroom") == "joined", joined
                plane = gk.app[HUB].janus
                assert plane is not None
                assert [m.feed for m in await plane.members(room.id)] == [granted["feed"]]
                assert len(stays.result.of_type("janus")) == 1  # the other's pass, unused

                store.revoke_invite_id(info.id, owner.id)
                assert gk.app[HUB].invite_revoked(info.id) == 1

                async def out() -> bool:
                    return await plane.members(room.id) == []

                await _until(out, 2.0)
                again = RawJanus(http, granted["url"])
                await again.open()
                rejoin = await again.join(granted["room"], granted["feed"], granted["token"])
                assert rejoin.get("error_code") == jp.ERR_UNAUTHORIZED, rejoin
            finally:
                await client.close()
                await stays.close()
    events = [r.event for r in store.audit_log(room.id)]
    assert "participant.admitted" in events and "participant.left" in events
