"""REST API /api/v1: every endpoint, bad input, and isolation between two owners."""

from __future__ import annotations

import io
import time
import zlib
from pathlib import Path

import pytest
from PIL import Image

from server.store import StoreError

from .conftest import STILLS, ApiWorld

NASTY = "<script>alert(1)</script>'; DROP TABLE persons; --"


def lestari(faces_dir: Path) -> list[bytes]:
    return [p.read_bytes() for p in sorted((faces_dir / STILLS).glob("*.png"))]


def png_bomb() -> bytes:
    """A tiny PNG whose header claims 30000 x 30000 pixels (900 MP)."""
    import struct

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    side = 30000
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    row = b"\x00" + b"\x00" * (side // 8)
    idat = zlib.compress(row * 64, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def blank_png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (320, 240), (120, 120, 120)).save(out, format="PNG")
    return out.getvalue()


async def make_room(api, **settings: object) -> dict:  # type: ignore[no-untyped-def]
    status, room = await api.call("POST", "/rooms", json={"name": "Board", **settings})
    assert status == 201, room
    return room  # type: ignore[no-any-return]


async def make_person(api, room_id: str, name: str = "Lestari") -> dict:  # type: ignore[no-untyped-def]
    status, person = await api.call("POST", f"/rooms/{room_id}/persons", json={"name": name})
    assert status == 201, person
    return person  # type: ignore[no-any-return]


async def test_keys_are_required_and_checked(world: ApiWorld) -> None:
    alice = world.alice
    status, body = await alice.call("GET", "/rooms", auth=False)
    assert status == 401 and body["error"]["code"] == "unauthorized"
    status, body = await alice.call(
        "GET", "/rooms", headers={"Authorization": "Bearer vg_nope"}, auth=False
    )
    assert status == 401
    status, doc = await alice.call("GET", "/openapi.json", auth=False)
    assert status == 200 and doc["openapi"].startswith("3.")
    # A revoked key stops working at once.
    key, secret = world.store.create_api_key(alice.owner_id, "temp")
    status, _ = await alice.call(
        "GET", "/rooms", headers={"Authorization": f"Bearer {secret}"}, auth=False
    )
    assert status == 200
    world.store.revoke_api_key(alice.owner_id, key.id)
    status, _ = await alice.call(
        "GET", "/rooms", headers={"Authorization": f"Bearer {secret}"}, auth=False
    )
    assert status == 401
    status, body = await alice.call("GET", "/no/such/route")
    assert status == 404 and body["error"]["code"] == "not_found"


async def test_rooms_crud_and_validation(world: ApiWorld) -> None:
    api = world.alice
    room = await make_room(api, mode="open", threshold=0.5, max_attempts=2)
    assert room["mode"] == "open" and room["threshold"] == 0.5 and room["max_attempts"] == 2
    assert room["liveness_policy"] == "active+passive" and room["retain_photos"] is False
    assert room["link"].rsplit("/r/", 1)[1].startswith(f"{room['slug']}-")  # + unguessable token
    status, listed = await api.call("GET", "/rooms")
    assert status == 200 and [r["id"] for r in listed["rooms"]] == [room["id"]]
    status, changed = await api.call(
        "PATCH",
        f"/rooms/{room['id']}",
        json={"name": "Board 2", "liveness_policy": "passive", "threshold": None},
    )
    assert status == 200 and changed["name"] == "Board 2" and changed["threshold"] is None
    assert changed["slug"] == room["slug"]  # links stay valid across renames
    stored = world.store.room(room["id"])
    assert stored.liveness_policy == "passive" and stored.max_attempts == 2
    for bad, code in (
        ({"threshold": 5}, "bad_threshold"),
        ({"threshold": True}, "bad_threshold"),
        ({"max_attempts": 0}, "bad_max_attempts"),
        ({"liveness_policy": "maybe"}, "bad_liveness_policy"),
        ({"mode": "1:N"}, "bad_mode"),
        ({"engine": "cloud"}, "bad_engine"),
        ({"name": "   "}, "bad_name"),
        ({"owner_id": "x"}, "bad_field"),
    ):
        status, body = await api.call("PATCH", f"/rooms/{room['id']}", json=bad)
        assert (status, body["error"]["code"]) == (422, code), bad
    status, body = await api.call(
        "POST",
        "/rooms",
        data=b"name=x",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 415
    status, body = await api.call(
        "POST", "/rooms", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert (status, body["error"]["code"]) == (400, "bad_json")
    status, body = await api.call("POST", "/rooms", json={"mode": "open"})
    assert (status, body["error"]["code"]) == (422, "missing_field")
    assert world.store.room(room["id"]).name == "Board 2"  # nothing changed by refusals
    status, _ = await api.call("DELETE", f"/rooms/{room['id']}")
    assert status == 204
    status, body = await api.call("GET", f"/rooms/{room['id']}")
    assert (status, body["error"]["code"]) == (404, "unknown_room")
    assert [r.event for r in world.store.audit_log(room["id"])] == ["room.deleted"]


async def test_persons_crud_and_markup_in_names(world: ApiWorld) -> None:
    api = world.alice
    room = await make_room(api)
    person = await make_person(api, room["id"], NASTY)
    assert person["name"] == NASTY and person["faces"] == 0
    status, listed = await api.call("GET", f"/rooms/{room['id']}/persons")
    assert [p["name"] for p in listed["persons"]] == [NASTY]
    status, changed = await api.call(
        "PATCH", f"/persons/{person['id']}", json={"name": "Lestari", "external_id": "emp-7"}
    )
    assert status == 200 and changed["external_id"] == "emp-7"
    status, got = await api.call("GET", f"/persons/{person['id']}")
    assert got["name"] == "Lestari"
    status, body = await api.call("POST", f"/rooms/{room['id']}/persons", json={"name": 7})
    assert status == 422
    status, body = await api.call("POST", "/rooms/nope/persons", json={"name": "X"})
    assert (status, body["error"]["code"]) == (404, "unknown_room")


async def test_faces_quality_gate_and_bad_uploads(world: ApiWorld, faces_dir: Path) -> None:
    api = world.alice
    room = await make_room(api, retain_photos=True)
    person = await make_person(api, room["id"])
    pid = person["id"]
    status, added = await api.call("POST", f"/persons/{pid}/faces", data=lestari(faces_dir)[0])
    assert status == 201, added
    assert added["verdict"]["ok"] and added["verdict"]["thumbnail"].startswith("data:image/jpeg")
    assert added["face"]["photo_retained"] is True
    group = (faces_dir / "group" / "two_people.jpg").read_bytes()
    for data, status_code, code in (
        (b"hello, not an image", 422, "not_an_image"),
        (b"", 422, "empty"),
        (png_bomb(), 422, "too_large"),
        (blank_png(), 422, "no_face"),
        (group, 422, "multiple_faces"),
        (b"\xff\xd8\xff" + b"\0" * (20 * 1024 * 1024), 413, "too_large"),
    ):
        status, body = await api.call("POST", f"/persons/{pid}/faces", data=data)
        assert (status, body["error"]["code"]) == (status_code, code)
    status, body = await api.call("POST", f"/persons/{pid}/faces", data=group)
    assert body["error"]["details"]["thumbnail"].startswith("data:image/jpeg")
    status, faces = await api.call("GET", f"/persons/{pid}/faces")
    assert status == 200 and len(faces["faces"]) == 1  # refusals changed nothing
    # Switching retention off deletes the photos kept so far; templates stay.
    await api.call("PATCH", f"/rooms/{room['id']}", json={"retain_photos": False})
    status, faces = await api.call("GET", f"/persons/{pid}/faces")
    assert [f["photo_retained"] for f in faces["faces"]] == [False]
    face_id = faces["faces"][0]["id"]
    status, _ = await api.call("DELETE", f"/persons/{pid}/faces/{face_id}")
    assert status == 204
    status, _ = await api.call("DELETE", f"/persons/{pid}/faces/{face_id}")
    assert status == 404


async def test_verify_and_search(world: ApiWorld, faces_dir: Path) -> None:
    api = world.alice
    room = await make_room(api)
    person = await make_person(api, room["id"])
    pid = person["id"]
    stills = lestari(faces_dir)
    status, body = await api.call("POST", f"/persons/{pid}/verify", data=stills[2])
    assert (status, body["error"]["code"]) == (422, "not_enrolled")
    for photo in stills[:2]:
        status, _ = await api.call("POST", f"/persons/{pid}/faces", data=photo)
        assert status == 201
    status, same = await api.call("POST", f"/persons/{pid}/verify", data=stills[2])
    assert status == 200 and same["decision"] == "match", same
    assert same["distance"] <= same["threshold"]
    stranger = (faces_dir / "faces" / "biden" / "1.jpg").read_bytes()
    status, other = await api.call("POST", f"/persons/{pid}/verify", data=stranger)
    assert status == 200 and other["decision"] == "no_match"
    assert other["distance"] > other["threshold"]
    group = (faces_dir / "group" / "two_people.jpg").read_bytes()
    status, body = await api.call("POST", f"/persons/{pid}/verify", data=group)
    assert (status, body["error"]["code"]) == (422, "multiple_faces")

    status, found = await api.call("POST", f"/rooms/{room['id']}/search", data=stills[2])
    assert status == 200 and len(found["faces"]) == 1
    assert found["faces"][0]["status"] == "match" and found["faces"][0]["name"] == "Lestari"
    status, found = await api.call("POST", f"/rooms/{room['id']}/search", data=group)
    assert status == 200 and len(found["faces"]) == 2
    assert {f["status"] for f in found["faces"]} == {"unknown"}
    assert all(len(f["box"]) == 4 for f in found["faces"])
    status, body = await api.call("POST", f"/rooms/{room['id']}/search", data=blank_png())
    assert (status, body["error"]["code"]) == (422, "no_face")
    status, body = await api.call("POST", f"/rooms/{room['id']}/search", data=b"junk")
    assert (status, body["error"]["code"]) == (422, "not_an_image")


async def test_invites_create_list_revoke_and_delete_person(
    world: ApiWorld, faces_dir: Path
) -> None:
    api = world.alice
    room = await make_room(api)
    person = await make_person(api, room["id"])
    await api.call("POST", f"/persons/{person['id']}/faces", data=lestari(faces_dir)[0])
    status, inv = await api.call(
        "POST", f"/rooms/{room['id']}/invites", json={"person_id": person["id"], "ttl_s": 3600}
    )
    assert status == 201 and inv["status"] == "active" and inv["token"] in inv["url"]
    assert world.store.resolve_invite(room["slug"], inv["token"]).person.id == person["id"]  # type: ignore[union-attr]
    status, listed = await api.call("GET", f"/rooms/{room['id']}/invites")
    assert [i["id"] for i in listed["invites"]] == [inv["id"]]
    assert "token" not in listed["invites"][0]
    for bad in ({"ttl_s": 1}, {"ttl_s": "soon"}, {"person_id": 3}, {"extra": 1}):
        status, body = await api.call("POST", f"/rooms/{room['id']}/invites", json=bad)
        assert status == 422, bad
    status, body = await api.call(
        "POST", f"/rooms/{room['id']}/invites", json={"person_id": "not-a-person"}
    )
    assert status == 404
    status, _ = await api.call("DELETE", f"/invites/{inv['id']}")
    assert status == 204
    with pytest.raises(StoreError) as err:
        world.store.resolve_invite(room["slug"], inv["token"])
    assert err.value.code == "revoked_invite"
    status, listed = await api.call("GET", f"/rooms/{room['id']}/invites")
    assert listed["invites"][0]["status"] == "revoked"

    status, inv2 = await api.call(
        "POST", f"/rooms/{room['id']}/invites", json={"person_id": person["id"]}
    )
    status, _ = await api.call("DELETE", f"/persons/{person['id']}")
    assert status == 204
    assert world.store.gallery(room["id"]) == {}
    with pytest.raises(StoreError):
        world.store.resolve_invite(room["slug"], inv2["token"])
    events = [r.event for r in world.store.audit_log(room["id"])]
    assert events[-1] == "person.deleted"
    status, _ = await api.call("GET", f"/persons/{person['id']}")
    assert status == 404
    # An expired invite is refused at the door.
    info, token = world.store.issue_invite(room["id"], None, 60)
    with pytest.raises(StoreError) as err:
        world.store.resolve_invite(room["slug"], token, now=time.time() + 120)
    assert err.value.code == "expired_invite"


async def test_another_owners_ids_are_404_and_change_nothing(
    world: ApiWorld, faces_dir: Path
) -> None:
    alice, bob = world.alice, world.bob
    room = await make_room(alice)
    person = await make_person(alice, room["id"])
    photo = lestari(faces_dir)[0]
    status, added = await alice.call("POST", f"/persons/{person['id']}/faces", data=photo)
    _, inv = await alice.call("POST", f"/rooms/{room['id']}/invites", json={})
    rid, pid, fid = room["id"], person["id"], added["face"]["id"]
    attempts = [
        ("GET", f"/rooms/{rid}", None, None),
        ("PATCH", f"/rooms/{rid}", {"name": "pwned"}, None),
        ("DELETE", f"/rooms/{rid}", None, None),
        ("GET", f"/rooms/{rid}/persons", None, None),
        ("POST", f"/rooms/{rid}/persons", {"name": "Mallory"}, None),
        ("GET", f"/persons/{pid}", None, None),
        ("PATCH", f"/persons/{pid}", {"name": "pwned"}, None),
        ("DELETE", f"/persons/{pid}", None, None),
        ("GET", f"/persons/{pid}/faces", None, None),
        ("POST", f"/persons/{pid}/faces", None, photo),
        ("DELETE", f"/persons/{pid}/faces/{fid}", None, None),
        ("POST", f"/persons/{pid}/verify", None, photo),
        ("POST", f"/rooms/{rid}/search", None, photo),
        ("GET", f"/rooms/{rid}/invites", None, None),
        ("POST", f"/rooms/{rid}/invites", {}, None),
        ("DELETE", f"/invites/{inv['id']}", None, None),
    ]
    for method, path, json_body, data in attempts:
        status, body = await bob.call(method, path, json=json_body, data=data)
        unknown = await bob.call(
            method,
            path.replace(rid, "f" * 32).replace(pid, "e" * 32).replace(inv["id"], "d" * 16),
            json=json_body,
            data=data,
        )
        assert status == 404, (method, path, body)
        assert body == unknown[1], (method, path)  # indistinguishable from a missing id
    status, rooms = await bob.call("GET", "/rooms")
    assert rooms["rooms"] == []
    # Alice's things are untouched.
    assert world.store.room(rid).name == "Board"
    assert world.store.person(pid).name == "Lestari"
    assert len(world.store.faces(pid)) == 1
    assert world.store.invite(inv["id"], alice.owner_id).revoked is False


async def test_renewing_a_room_link_retires_the_old_one(world: ApiWorld) -> None:
    room = await make_room(world.alice, mode="open")
    old = room["link"].rsplit("/r/", 1)[1]
    assert room["legacy_link"] is False and world.store.room_by_link(old).id == room["id"]
    status, _ = await world.bob.call("POST", f"/rooms/{room['id']}/link")
    assert status == 404  # not Bob's room
    status, renewed = await world.alice.call("POST", f"/rooms/{room['id']}/link")
    assert status == 200 and renewed["link"] != room["link"]
    assert renewed["slug"] == room["slug"] and renewed["legacy_link"] is False
    new = renewed["link"].rsplit("/r/", 1)[1]
    assert world.store.room_by_link(new).id == room["id"]
    with pytest.raises(StoreError):
        world.store.room_by_link(old)
