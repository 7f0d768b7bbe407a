"""Room links cannot be guessed from the room's name; links made before keep working.

Before: ``/r/daily-standup`` was the whole link of an open room, so anyone who
guessed the name reached its gate (and, for open rooms, the 1:N search over its
people). Now every link is ``/r/<slug>-<16 hex>``; a bare slug only answers for a
room that existed before the migration, until its owner makes a new link.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import aiohttp
import numpy as np
import pytest

from server.store import SqliteStore, StoreError, open_store
from server.store.migrations import MIGRATIONS
from server.store.sqlite import split_room_link
from tests.integration.conftest import Gatekeeper

from .wsutil import send_recv


async def page_status(gk: Gatekeeper, path: str) -> int:
    async with aiohttp.ClientSession() as http, http.get(gk.base_url + path) as resp:
        await resp.read()
        return resp.status


async def join_reply(gk: Gatekeeper, room: str, invite: str | None = None) -> dict[str, object]:
    async with aiohttp.ClientSession() as http, http.ws_connect(gk.base_url + "/ws") as ws:
        return await send_recv(ws, {"type": "join", "room": room, "invite": invite, "name": "X"})


async def test_a_guessed_room_name_reaches_nothing(gate: Gatekeeper) -> None:
    store = gate.store
    room = store.create_room("Daily Standup", mode="open")
    person = store.enrol_person(room.id, "Ada", np.zeros((1, 128), np.float32), "dlib")
    assert room.slug == "daily-standup" and room.link.startswith("daily-standup-")
    # The attack: the name alone, as a page and as a websocket join.
    assert await page_status(gate, "/r/daily-standup") == 404
    reply = await join_reply(gate, "daily-standup")
    assert (reply["type"], reply["code"], reply["fatal"]) == ("error", "unknown_room", True)
    # Near misses of the token do not work either.
    _slug, token = split_room_link(room.link)
    assert token is not None
    for wrong in (
        f"daily-standup-{'0' * 16}",
        f"other-room-{token}",
        f"daily-standup-{token[:-1]}",
    ):
        assert await page_status(gate, f"/r/{wrong}") == 404, wrong
    # The real link works, for the page and the join; invites ride on it.
    assert await page_status(gate, f"/r/{room.link}") == 200
    assert (await join_reply(gate, room.link))["type"] == "welcome"
    invite = store.create_invite(room.id, person.id)
    assert (await join_reply(gate, room.link, invite))["type"] == "welcome"
    reply = await join_reply(gate, "daily-standup", invite)
    assert reply["code"] == "unknown_room"


def make_pre_token_database(data_dir: Path) -> None:
    """A database as the previous release left it: schema 3, one open room."""
    db = sqlite3.connect(data_dir / "videogate.sqlite3")
    for script in MIGRATIONS[:3]:
        db.executescript(script)
    db.execute(
        "INSERT INTO rooms (id, slug, name, mode, threshold, created) "
        "VALUES ('r1', 'old-standup', 'Old Standup', 'open', NULL, 0)"
    )
    db.execute("PRAGMA user_version=3")
    db.commit()
    db.close()


def test_links_made_before_the_migration_keep_working_until_renewed(tmp_path: Path) -> None:
    make_pre_token_database(tmp_path)
    store: SqliteStore = open_store(tmp_path)
    try:
        old = store.room_by_link("old-standup")  # the link people already have
        assert old.legacy_link and len(old.link_token) == 16
        assert store.room_by_link(old.link).id == old.id  # the new form works too
        renewed = store.renew_room_link(old.id)
        assert not renewed.legacy_link and renewed.link_token != old.link_token
        for gone in ("old-standup", old.link):
            with pytest.raises(StoreError) as err:
                store.room_by_link(gone)
            assert err.value.code == "unknown_room"
        assert store.room_by_link(renewed.link).id == old.id
        fresh = store.create_room("Old Standup", mode="open", owner_id=None, slug="new-standup")
        assert not fresh.legacy_link
        with pytest.raises(StoreError):
            store.room_by_link("new-standup")
        tokens = {store.room(r.id).link_token for r in store.rooms()}
        assert len(tokens) == 2
    finally:
        store.close()


def test_split_room_link() -> None:
    assert split_room_link("a-b-0123456789abcdef") == ("a-b", "0123456789abcdef")
    assert split_room_link("daily-standup") == ("daily-standup", None)
    assert split_room_link("x-0123456789ABCDEF") == ("x-0123456789ABCDEF", None)
    assert split_room_link("-0123456789abcdef") == ("-0123456789abcdef", None)
