"""The websocket edge: bad messages get typed errors and never break the session."""

from __future__ import annotations

import json
import time
from typing import Any

import aiohttp
import numpy as np

from server.app import HUB

from .conftest import Gatekeeper


async def exchange(ws: aiohttp.ClientWebSocketResponse, payload: Any) -> dict[str, Any]:
    await ws.send_str(payload if isinstance(payload, str) else json.dumps(payload))
    msg = await ws.receive(timeout=10)
    assert msg.type is aiohttp.WSMsgType.TEXT, msg
    data: dict[str, Any] = json.loads(msg.data)
    return data


async def test_invalid_messages_get_errors_and_the_socket_survives(
    gatekeeper: Gatekeeper,
) -> None:
    invite = gatekeeper.store.create_invite(gatekeeper.room_id, None)
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(gatekeeper.base_url + "/ws") as ws:
            assert (await exchange(ws, "{not json"))["code"] == "bad_json"
            assert (await exchange(ws, {"type": "offer", "sdp": "v=0\r\n"}))["code"] == (
                "join_first"
            )
            assert (await exchange(ws, {"type": "nope"}))["code"] == "unknown_type"
            big = {"type": "join", "room": "x", "name": "y" * 70_000}
            assert (await exchange(ws, big))["code"] == "too_large"
            # Still usable: a proper join goes through (nobody is enrolled yet: fatal).
            reply = await exchange(
                ws, {"type": "join", "room": gatekeeper.room_slug, "invite": invite}
            )
            assert reply == {
                "type": "error",
                "code": "not_enrolled",
                "message": reply["message"],
                "fatal": True,
            }


async def test_unknown_room_and_bad_invite_are_fatal(gatekeeper: Gatekeeper) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(gatekeeper.base_url + "/ws") as ws:
            reply = await exchange(ws, {"type": "join", "room": "no-such-room"})
            assert reply["code"] == "unknown_room" and reply["fatal"] is True
        async with session.ws_connect(gatekeeper.base_url + "/ws") as ws:
            reply = await exchange(
                ws, {"type": "join", "room": gatekeeper.room_slug, "invite": "forged"}
            )
            assert reply["code"] == "unknown_invite"
        async with session.ws_connect(gatekeeper.base_url + "/ws") as ws:
            reply = await exchange(ws, {"type": "join", "room": gatekeeper.room_slug})
            assert reply["code"] == "invite_required"


async def test_pages_and_headers(gatekeeper: Gatekeeper) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(gatekeeper.base_url + f"/r/{gatekeeper.room_slug}") as resp:
            assert resp.status == 200
            assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
            assert resp.headers["X-Content-Type-Options"] == "nosniff"
            assert resp.headers["Cache-Control"] == "no-store"
            assert "Integration Room" in await resp.text()
        async with session.get(gatekeeper.base_url + "/r/missing") as resp:
            assert resp.status == 404
        async with session.get(gatekeeper.base_url + "/healthz") as resp:
            assert (await resp.json())["ok"] is True


async def test_huge_frame_closes_with_1009(gatekeeper: Gatekeeper) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(gatekeeper.base_url + "/ws") as ws:
            await ws.send_str("x" * 1_000_000)
            msg = await ws.receive(timeout=10)
            assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == 1009


async def test_raised_errors_carry_security_headers(gatekeeper: Gatekeeper) -> None:
    async with aiohttp.ClientSession() as session:
        for path in ("/owner/no-such-page", "/static/missing.js"):
            async with session.get(gatekeeper.base_url + path) as resp:
                assert resp.status == 404
                assert resp.headers["X-Content-Type-Options"] == "nosniff"
                assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]


async def test_room_gallery_is_cached_until_enrolment_changes(gatekeeper: Gatekeeper) -> None:
    hub = gatekeeper.app[HUB]
    store = gatekeeper.store
    room = store.create_room("Open Cache", mode="open")
    empty = await hub.room_gallery(room)
    assert len(empty) == 0
    assert await hub.room_gallery(room) is empty
    person = store.enrol_person(room.id, "A", np.ones((2, 128), np.float32), "onnx")
    grown = await hub.room_gallery(room)
    assert len(grown) == 2 and grown.person_ids == [person.id]
    assert await hub.room_gallery(room) is grown
    store.delete_person(person.id)
    assert len(await hub.room_gallery(room)) == 0


async def test_room_gallery_cache_is_bounded_and_evicted(gatekeeper: Gatekeeper) -> None:
    """Issue 11, defect 5: caches and their locks do not grow with every room ever used."""
    from server import hub as hub_module

    hub = gatekeeper.app[HUB]
    store = gatekeeper.store
    rooms = [store.create_room(f"Many {i}", mode="open") for i in range(5)]
    for room in rooms:
        await hub.room_gallery(room)
    # A deleted room's cache and lock go at once (the owner deleting it ends sessions).
    hub.room_deleted(rooms[0].id)
    assert rooms[0].id not in hub._galleries and rooms[0].id not in hub._gallery_locks
    # Idle rooms with nobody live are dropped by housekeeping.
    hub.housekeeping(time.monotonic() + hub_module.GALLERY_IDLE_S + 1)
    assert not hub._galleries and not hub._gallery_locks
    # And the cache never holds more than its bound.
    bound = hub_module.GALLERY_CACHE_ROOMS
    many = [store.create_room(f"More {i}", mode="open") for i in range(bound + 3)]
    for room in many:
        await hub.room_gallery(room)
    assert len(hub._galleries) == bound
