"""The per-room media plane (``rooms.media_backend``): store, owner form, REST API, and
which plane a room then gets (the server default; janus only when Janus is configured)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from server.config import ConfigError, load_settings
from server.media_settings import room_backend
from server.store import StoreError, open_store
from server.store.migrations import MIGRATIONS
from tests.api.conftest import ApiWorld, face_engine  # noqa: F401  (fixtures)
from tests.api.conftest import world as api_world  # noqa: F401
from tests.owner.conftest import World, owner_engine, world  # noqa: F401  (fixtures)


def test_store_keeps_validates_and_migrates_the_setting(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    owner = store.create_owner("o@example.org", "hash")
    room = store.create_room("Big", owner_id=owner.id, settings={"media_backend": "janus"})
    assert room.media_backend == "janus"
    assert store.update_room(room.id, owner.id, {"media_backend": None}).media_backend is None
    with pytest.raises(StoreError) as err:
        store.update_room(room.id, owner.id, {"media_backend": "mediasoup"})
    assert err.value.code == "bad_media_backend"
    store.close()
    with sqlite3.connect(tmp_path / "videogate.sqlite3") as db:
        db.execute("ALTER TABLE rooms DROP COLUMN media_backend")
        db.execute(f"PRAGMA user_version={len(MIGRATIONS) - 1}")
    migrated = open_store(tmp_path)
    assert migrated.room(room.id).media_backend is None
    migrated.close()


def test_janus_backend_needs_janus_urls() -> None:
    with pytest.raises(ConfigError):
        load_settings(env={}, overrides={"media": {"backend": "janus"}})
    env = {
        "VIDEOGATE_MEDIA_BACKEND": "janus",
        "VIDEOGATE_MEDIA_JANUS_URLS": "http://127.0.0.1:1/janus",
    }
    with pytest.raises(ConfigError):  # no admin key: room secrets would be guessable
        load_settings(env=env)
    env["VIDEOGATE_MEDIA_JANUS_ADMIN_KEY"] = "k" * 16
    assert load_settings(env=env).media.urls == ["http://127.0.0.1:1/janus"]


async def test_owner_form_and_api_set_the_plane(world: World) -> None:  # noqa: F811
    owner = await world.owner()
    await owner.signup("host@example.org")
    room_id = await owner.create_room("Course")
    page = await owner.page(f"/owner/rooms/{room_id}/settings")  # settings have their own page
    assert 'name="media_backend"' in page and "No Janus server is configured" in page
    form = {"name": "Course", "mode": "invite", "liveness_policy": "off", "engine": "dlib",
            "threshold": "", "max_attempts": "", "presence_interval_s": "",
            "media_backend": "janus"}  # fmt: skip
    resp = await owner.post(f"/owner/rooms/{room_id}/settings", form)
    room = world.store.room(room_id)
    assert resp.status == 303 and room.media_backend == "janus"
    # Janus is not configured on this server: the room falls back to the builtin SFU.
    assert world.hub.janus is None
    assert room_backend(room.media_backend, world.hub.settings.media, world.hub.janus) == "builtin"
    form["media_backend"] = ""
    await owner.post(f"/owner/rooms/{room_id}/settings", form)
    assert world.store.room(room_id).media_backend is None


async def test_api_field(api_world: ApiWorld) -> None:  # noqa: F811
    api = api_world.alice
    status, created = await api.call("POST", "/rooms", json={"name": "R", "media_backend": "janus"})
    assert status == 201 and created["media_backend"] == "janus", created
    path = f"/rooms/{created['id']}"
    status, changed = await api.call("PATCH", path, json={"media_backend": None})
    assert status == 200 and changed["media_backend"] is None, changed
    status, _ = await api.call("PATCH", path, json={"media_backend": "x"})
    assert status == 422
