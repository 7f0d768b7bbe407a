"""The per-room ``no_flashing`` setting (photosensitive participants): store, owner UI,
REST API, and the policy the gate then runs (the pose challenge, never the flashes)."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from server.liveness import LivenessPolicy
from server.store import StoreError, open_store
from server.store.migrations import MIGRATIONS
from server.store.records import LIVENESS_POLICIES
from tests.api.conftest import ApiWorld, face_engine  # noqa: F401  (fixtures)
from tests.api.conftest import world as api_world  # noqa: F401
from tests.owner.conftest import World, owner_engine, world  # noqa: F401  (fixtures)


def test_store_keeps_and_validates_the_setting(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    owner = store.create_owner("o@example.org", "hash")
    room = store.create_room("Course", owner_id=owner.id, settings={"liveness_policy": "light"})
    assert room.no_flashing is False and room.liveness_policy == "light"
    assert store.update_room(room.id, owner.id, {"no_flashing": True}).no_flashing is True
    with pytest.raises(StoreError) as err:
        store.update_room(room.id, owner.id, {"no_flashing": "yes"})
    assert err.value.code == "bad_no_flashing"
    store.close()
    reopened = open_store(tmp_path)
    assert reopened.room(room.id).no_flashing is True
    assert reopened.schema_version == len(MIGRATIONS)
    reopened.close()


def test_an_older_database_migrates_with_flashing_allowed(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    room = store.create_room("Old room")
    store.close()
    db_file = tmp_path / "videogate.sqlite3"
    # Back to the schema before the no_flashing migration (columns of later ones too).
    first = next(i for i, m in enumerate(MIGRATIONS) if "no_flashing" in m)
    with sqlite3.connect(db_file) as db:
        for later in MIGRATIONS[first:]:
            for table, column in re.findall(r"ALTER TABLE (\w+) ADD COLUMN (\w+)", later):
                db.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        db.execute(f"PRAGMA user_version={first}")
    migrated = open_store(tmp_path)
    assert migrated.room(room.id).no_flashing is False
    migrated.close()


def test_every_store_policy_is_a_gate_policy() -> None:
    assert set(LIVENESS_POLICIES) == {p.value for p in LivenessPolicy}


async def test_owner_turns_flashing_off_and_the_gate_runs_the_pose_challenge(
    world: World,  # noqa: F811
) -> None:
    owner = await world.owner()
    await owner.signup("host@example.org")
    room_id = await owner.create_room("Course")
    page = await owner.page(f"/owner/rooms/{room_id}/settings")
    assert 'name="no_flashing"' in page and "photosensitive" in page
    form = {"name": "Course", "mode": "invite", "liveness_policy": "active+light+passive",
            "engine": "dlib", "threshold": "", "max_attempts": "", "presence_interval_s": "",
            "no_flashing": "on"}  # fmt: skip
    resp = await owner.post(f"/owner/rooms/{room_id}/settings", form)
    room = world.store.room(room_id)
    assert (
        resp.status == 303 and room.no_flashing and room.liveness_policy == form["liveness_policy"]
    )
    assert world.hub.gate_policy(room).liveness is LivenessPolicy.ACTIVE_PASSIVE
    # The lobby tells nobody about flashes that will not come, and flash.js stays off.
    # (Opened with a person's invite: an invite room's link without one is answered as
    # a dead link before any lobby, server/prejoin.py.)
    person = world.store.add_person(room_id, "Ada")
    lobby_url = f"/r/{room.link}?invite={world.store.create_invite(room_id, person.id)}"
    lobby = await (await owner.client.get(lobby_url)).text()
    assert "data-no-flashing" in lobby and "flash colours" not in lobby

    form.pop("no_flashing")  # an unticked checkbox is not sent
    await owner.post(f"/owner/rooms/{room_id}/settings", form)
    room = world.store.room(room_id)
    assert not room.no_flashing
    assert world.hub.gate_policy(room).liveness is LivenessPolicy.ACTIVE_LIGHT_PASSIVE
    lobby = await (await owner.client.get(lobby_url)).text()
    assert "data-no-flashing" not in lobby and "flash colours" in lobby


async def test_api_room_field(api_world: ApiWorld) -> None:  # noqa: F811
    alice = api_world.alice
    status, room = await alice.call(
        "POST", "/rooms", json={"name": "Course", "liveness_policy": "light", "no_flashing": True}
    )
    assert status == 201 and room["no_flashing"] is True and room["liveness_policy"] == "light"
    status, room = await alice.call("PATCH", f"/rooms/{room['id']}", json={"no_flashing": False})
    assert status == 200 and room["no_flashing"] is False
    status, body = await alice.call("PATCH", f"/rooms/{room['id']}", json={"no_flashing": 1})
    assert status == 422 and body["error"]["code"] == "bad_no_flashing"
