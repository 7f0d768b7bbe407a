"""The Janus side of the gate against a real Janus: only a pass opens the room, once;
removal and the sweep put people out (server/janus/plane.py, docs/janus.md)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from server.janus import JanusPlane, Member
from server.janus import protocol as jp
from server.janus.local import LocalJanus
from server.media_settings import MediaSettings

from .rawjanus import RawJanus

UNAUTHORIZED = jp.ERR_UNAUTHORIZED


@pytest.fixture
async def plane(janus: LocalJanus) -> AsyncIterator[JanusPlane]:
    media = MediaSettings(
        backend="janus", janus_urls=janus.url, janus_admin_key=janus.admin_key,
        janus_token_ttl_s=10.0, janus_sweep_s=3600.0,
    )  # fmt: skip
    plane = JanusPlane(media, on_intruder=lambda room, m: intruders.append((room, m)))
    intruders.clear()
    plane.start()
    try:
        yield plane
    finally:
        await plane.close()


intruders: list[tuple[str, Member]] = []


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _browser(http: aiohttp.ClientSession, url: str) -> RawJanus:
    raw = RawJanus(http, url)
    await raw.open()
    return raw


async def _until_used(plane: JanusPlane, room_id: str, token: str) -> None:
    for _ in range(40):  # the watcher removes a used token within a poll or two
        grant = plane._rooms[room_id].grants.get("p1")
        if grant is None or grant.used:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"token {token[:4]}… was never marked used")


async def test_no_token_or_a_wrong_one_is_refused_by_janus(
    plane: JanusPlane, http: aiohttp.ClientSession, janus: LocalJanus
) -> None:
    granted = await plane.admit("room-a", "Room A", "p1")
    for token in (None, "guessed-token", granted.token[:-1]):
        reply = await (await _browser(http, janus.url)).join(granted.room, 77, token)
        assert reply.get("error_code") == UNAUTHORIZED, reply
    assert await plane.members("room-a") == []


async def test_a_pass_opens_the_room_once(
    plane: JanusPlane, http: aiohttp.ClientSession, janus: LocalJanus
) -> None:
    granted = await plane.admit("room-b", "Room B", "p1")
    assert granted.url == janus.url
    joined = await (await _browser(http, janus.url)).join(granted.room, granted.feed, granted.token)
    assert joined.get("videoroom") == "joined", joined
    await _until_used(plane, "room-b", granted.token)
    # The same token again, under another id: Janus itself refuses it now.
    again = await (await _browser(http, janus.url)).join(granted.room, 12345, granted.token)
    assert again.get("error_code") == UNAUTHORIZED, again
    assert [m.feed for m in await plane.members("room-b")] == [granted.feed]


async def test_revoke_kicks_and_the_old_token_cannot_rejoin(
    plane: JanusPlane, http: aiohttp.ClientSession, janus: LocalJanus
) -> None:
    granted = await plane.admit("room-c", "Room C", "p1")
    browser = await _browser(http, janus.url)
    joined = await browser.join(granted.room, granted.feed, granted.token)
    assert joined.get("videoroom") == "joined"
    # Revoked before the watcher consumed the token: revoke removes it itself.
    assert await plane.revoke("room-c", "p1")
    assert await plane.members("room-c") == []
    rejoin = await (await _browser(http, janus.url)).join(granted.room, granted.feed, granted.token)
    assert rejoin.get("error_code") == UNAUTHORIZED, rejoin


async def test_subscribing_needs_a_publishers_private_id(
    plane: JanusPlane, http: aiohttp.ClientSession, janus: LocalJanus
) -> None:
    granted = await plane.admit("room-d", "Room D", "p1")
    joined = await (await _browser(http, janus.url)).join(granted.room, granted.feed, granted.token)
    stranger = await _browser(http, janus.url)
    reply = await stranger.join_subscriber(granted.room, granted.feed, None)
    assert "error_code" in reply, reply
    reply = await stranger.join_subscriber(granted.room, granted.feed, 424242)
    assert "error_code" in reply, reply
    assert isinstance(joined.get("private_id"), int)


async def test_a_pass_used_under_another_id_is_kicked_while_it_is_open(
    plane: JanusPlane, http: aiohttp.ClientSession, janus: LocalJanus
) -> None:
    granted = await plane.admit("room-e", "Room E", "p1")
    # Someone uses the pass under an id of their own choosing (Janus does not bind
    # tokens to ids): the pass's watcher finds a feed that holds no pass and kicks it.
    joined = await (await _browser(http, janus.url)).join(granted.room, 999, granted.token)
    assert joined.get("videoroom") == "joined"
    for _ in range(40):
        if intruders:
            break
        await asyncio.sleep(0.05)
    assert [(room, m.feed) for room, m in intruders] == [("room-e", 999)]
    assert await plane.members("room-e") == []


async def test_sweep_kicks_a_feed_without_a_pass_and_reports_it(
    plane: JanusPlane, http: aiohttp.ClientSession, janus: LocalJanus
) -> None:
    granted = await plane.admit("room-f", "Room F", "p1")
    joined = await (await _browser(http, janus.url)).join(granted.room, granted.feed, granted.token)
    assert joined.get("videoroom") == "joined"
    await _until_used(plane, "room-f", granted.token)
    # A token the server never issued (added on Janus by someone holding the room
    # secret): no pass watcher runs any more, the periodic sweep finds the feed.
    room = plane._rooms["room-f"]
    await room.client.request(jp.allowed(room.number, room.secret, "add", ["foreign"]))
    foreign = await (await _browser(http, janus.url)).join(granted.room, 999, "foreign")
    assert foreign.get("videoroom") == "joined"
    kicked = await plane.sweep("room-f")
    assert [m.feed for m in kicked] == [999]
    assert intruders == [("room-f", kicked[0])]
    assert [m.feed for m in await plane.members("room-f")] == [granted.feed]
