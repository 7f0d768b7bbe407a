"""End to end with the session hooks of verify.py's contract: a fused open room admits
its member and refuses a stranger; an sface room refuses a dlib-only person."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import numpy as np

from server.client import GateClient

from .conftest import Gatekeeper, video_frame
from .test_gate_rtc import VERDICT_TIMEOUT, lestari_stills


async def test_fused_open_room_and_sface_refusal(gatekeeper: Gatekeeper, faces_dir: Path) -> None:
    store, engine = gatekeeper.store, gatekeeper.engine
    room = store.create_room(
        "Fused Door", mode="open", settings={"liveness_policy": "off", "engine": "fused"}
    )
    per_engine: dict[str, list[np.ndarray]] = {"dlib": [], "sface": []}
    for still in lestari_stills(faces_dir):
        result = engine.enrol_photo(still.read_bytes())
        for name in per_engine:
            per_engine[name].append(result.embeddings[name])
    store.enrol_person(room.id, "Lestari", {k: np.stack(v) for k, v in per_engine.items()}, "dlib")
    d9 = engine.enrol_frame(video_frame(faces_dir / "videos" / "liveportrait_d9.mp4", 0.5))
    store.enrol_person(room.id, "Dee Nine", {k: v[None] for k, v in d9.embeddings.items()}, "dlib")
    member = GateClient(
        gatekeeper.base_url, room.link, video=str(faces_dir / "videos" / "lestari_real.mp4")
    )
    stranger = GateClient(
        gatekeeper.base_url, room.link, video=str(faces_dir / "videos" / "liveportrait_d10.mp4")
    )
    try:
        await member.join()
        verdict = await member.wait_verdict(VERDICT_TIMEOUT)
        assert verdict["admitted"] is True and verdict["message"] == "Welcome, Lestari."
        await stranger.join()
        refused = await stranger.wait_verdict(VERDICT_TIMEOUT)
        assert (refused["admitted"], refused["reason"]) == (False, "not_recognised")
    finally:
        await member.close()
        await stranger.close()

    sface_room = store.create_room(
        "SFace Door", settings={"liveness_policy": "off", "engine": "sface"}
    )
    legacy = store.enrol_person(sface_room.id, "Legacy", np.stack(per_engine["dlib"]), "dlib")
    invite = store.create_invite(sface_room.id, legacy.id)
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"{gatekeeper.base_url}/ws") as ws:
            await ws.send_json({"type": "join", "room": sface_room.link, "invite": invite})
            reply = await ws.receive_json(timeout=10)
    assert (reply["type"], reply["code"]) == ("error", "not_enrolled")
