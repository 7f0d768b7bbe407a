"""Owner web UI: accounts, CSRF, rooms, people, photo verdicts, invites, isolation,
and the live dashboard websocket."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import aiohttp
import numpy as np
import pytest
from PIL import Image

from server.store import StoreError

from .conftest import PASSWORD, World

STILLS = "videos/stills/lestari15_subject"
# aiohttp-session 2.12 stores its state under plain string keys.
pytestmark = pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning")
NASTY = "<script>alert(1)</script>'; DROP TABLE persons; --"


async def test_signup_signin_signout_and_cookie_flags(world: World) -> None:
    owner = await world.owner()
    await owner.page("/owner/signup")
    resp = await owner.post("/owner/signup", {"email": "Ann@Example.org", "password": PASSWORD})
    # Sign-up does not sign in: its answer is the same for new and taken emails.
    assert resp.status == 303 and resp.headers["Location"] == "/owner/signin"
    await owner.page("/owner/signin")
    resp = await owner.post("/owner/signin", {"email": "ann@example.org", "password": PASSWORD})
    assert resp.status == 303 and resp.headers["Location"] == "/owner/rooms"
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/owner" in cookie
    text = await owner.page("/owner/rooms")
    assert "ann@example.org" in text
    stored_hash = world.store.owner_credentials("ann@example.org")[1]
    assert stored_hash.startswith("$argon2id$") and PASSWORD not in stored_hash
    resp = await owner.post("/owner/signout")
    assert resp.status == 303
    resp = await owner.client.get("/owner/rooms", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/owner/signin"

    # Validation and duplicates.
    await owner.page("/owner/signup")
    for email, password in (("not-an-email", PASSWORD), ("b@example.org", "short")):
        resp = await owner.post("/owner/signup", {"email": email, "password": password})
        assert resp.status == 422
    # A taken email gets the generic answer (tests/robustness/test_owner_accounts.py).
    resp = await owner.post("/owner/signup", {"email": "ann@example.org", "password": PASSWORD})
    assert resp.status == 303 and resp.headers["Location"] == "/owner/signin"

    await owner.page("/owner/signin")
    resp = await owner.post("/owner/signin", {"email": "ann@example.org", "password": "nope-nope"})
    assert resp.status == 401
    resp = await owner.post("/owner/signin", {"email": "ann@example.org", "password": PASSWORD})
    assert resp.status == 303


async def test_signin_is_rate_limited(world: World) -> None:
    owner = await world.owner()
    await owner.signup("rate@example.org")
    await owner.post("/owner/signout")
    await owner.page("/owner/signin")
    statuses = []
    for _ in range(6):
        resp = await owner.post("/owner/signin", {"email": "rate@example.org", "password": "x" * 9})
        statuses.append(resp.status)
    assert statuses == [401] * 5 + [429]
    # Even the right password waits out the window.
    resp = await owner.post("/owner/signin", {"email": "rate@example.org", "password": PASSWORD})
    assert resp.status == 429 and int(resp.headers["Retry-After"]) > 0


async def test_every_form_needs_the_csrf_token(world: World) -> None:
    owner = await world.owner()
    await owner.signup("csrf@example.org")
    resp = await owner.post("/owner/rooms", {"name": "No token"}, csrf=False)
    assert resp.status == 403
    resp = await owner.client.post(
        "/owner/rooms", data={"name": "Bad token", "_csrf": "forged"}, allow_redirects=False
    )
    assert resp.status == 403
    resp = await owner.client.post(
        "/owner/rooms", json={"name": "JSON"}, headers={"X-CSRF-Token": "forged"}
    )
    assert resp.status == 403
    assert world.store.rooms() == []
    room_id = await owner.create_room("With token")
    person = world.store.add_person(room_id, "P")
    form = aiohttp.FormData()
    form.add_field("photos", b"x", filename="a.png")
    resp = await owner.client.post(f"/owner/people/{person.id}/photos", data=form)
    assert resp.status == 403
    # The sign-in form itself is protected (login CSRF).
    fresh = await world.owner()
    resp = await fresh.client.post(
        "/owner/signin",
        data={"email": "csrf@example.org", "password": PASSWORD},
        allow_redirects=False,
    )
    assert resp.status == 403


def photo_form(csrf: str, files: list[tuple[str, bytes]]) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("_csrf", csrf)
    for name, data in files:
        form.add_field("photos", data, filename=name, content_type="application/octet-stream")
    return form


async def test_room_people_enrolment_invites_and_escaping(world: World, faces_dir: Path) -> None:
    owner = await world.owner()
    await owner.signup("own@example.org")
    room_id = await owner.create_room("Board <b>meeting</b>")
    resp = await owner.post(f"/owner/rooms/{room_id}/people", {"name": NASTY, "external_id": "e1"})
    assert resp.status == 303
    text = await owner.page(f"/owner/rooms/{room_id}")
    assert "<script>alert(1)" not in text and "&lt;script&gt;alert(1)" in text
    assert "<b>meeting</b>" not in text
    (person,) = world.store.persons(room_id)

    stills = sorted((faces_dir / STILLS).glob("*.png"))
    blank = io.BytesIO()
    Image.new("RGB", (200, 200), (90, 90, 90)).save(blank, format="PNG")
    files = [(p.name, p.read_bytes()) for p in stills] + [
        ("notes.txt", b"not an image"),
        ("group.jpg", (faces_dir / "group" / "two_people.jpg").read_bytes()),
        ("blank.png", blank.getvalue()),
        ("<img src=x onerror=alert(1)>.png", b"\x89PNG broken"),
    ]
    resp = await owner.client.post(
        f"/owner/people/{person.id}/photos",
        data=photo_form(owner.csrf, files),
        headers={"Accept": "application/json"},
    )
    body = await resp.json()
    assert resp.status == 200, body
    codes = [v["code"] for v in body["verdicts"]]
    assert codes == ["ok", "ok", "ok", "not_an_image", "multiple_faces", "no_face", "not_an_image"]
    assert body["enrolled"] == 3 and body["faces"] == 3
    assert all(v["thumbnail"].startswith("data:image/jpeg") for v in body["verdicts"][:3])
    assert body["verdicts"][4]["thumbnail"] and "2 faces" in body["verdicts"][4]["reasons"][0]
    assert len(world.store.templates(person.id)) == 3

    # An oversized file gets its own verdict; the others still count.
    big = b"\xff\xd8\xff" + b"\0" * (20 * 1024 * 1024 + 10)
    resp = await owner.client.post(
        f"/owner/people/{person.id}/photos",
        data=photo_form(owner.csrf, [("big.jpg", big)]),
        headers={"X-CSRF-Token": owner.csrf},
    )
    body = await resp.json()
    assert [v["code"] for v in body["verdicts"]] == ["too_large"] and body["faces"] == 3

    # Invite: shown once, works at the door, revocable.
    resp = await owner.post(
        f"/owner/rooms/{room_id}/invites", {"person_id": person.id, "ttl_days": "7"}
    )
    text = await resp.text()
    assert resp.status == 200 and 'id="invite-link"' in text
    link = text.split('id="invite-link" readonly value="', 1)[1].split('"', 1)[0]
    room = world.store.room(room_id)
    token = link.split("invite=", 1)[1]
    assert world.store.resolve_invite(room.slug, token).person.id == person.id  # type: ignore[union-attr]
    (invite,) = world.store.invites(room_id)
    resp = await owner.post(f"/owner/invites/{invite.id}/revoke")
    assert resp.status == 303
    try:
        world.store.resolve_invite(room.slug, token)
        raise AssertionError("revoked invite still resolves")
    except StoreError as err:
        assert err.code == "revoked_invite"

    # Settings.
    resp = await owner.post(
        f"/owner/rooms/{room_id}/settings",
        {
            "name": "Board",
            "mode": "open",
            "threshold": "0.5",
            "liveness_policy": "passive",
            "max_attempts": "2",
            "engine": "dlib",
            "retain_photos": "on",
        },
    )
    assert resp.status == 303
    room = world.store.room(room_id)
    assert (
        room.name,
        room.mode,
        room.threshold,
        room.liveness_policy,
        room.max_attempts,
        room.retain_photos,
    ) == ("Board", "open", 0.5, "passive", 2, True)
    resp = await owner.post(
        f"/owner/rooms/{room_id}/settings",
        {
            "name": "Board",
            "mode": "open",
            "threshold": "9",
            "liveness_policy": "passive",
            "max_attempts": "",
            "engine": "dlib",
        },
    )
    assert resp.status == 303 and world.store.room(room_id).threshold == 0.5  # refused
    text = await owner.page(f"/owner/rooms/{room_id}")
    assert "threshold must be" in text

    # Delete the person: templates, invites gone; the audit keeps a tombstone.
    resp = await owner.post(f"/owner/people/{person.id}/delete")
    assert resp.status == 303
    assert world.store.gallery(room_id) == {}
    assert world.store.audit_log(room_id)[-1].event == "person.deleted"
    resp = await owner.post(f"/owner/rooms/{room_id}/delete")
    assert resp.status == 303 and world.store.rooms() == []


async def test_retained_photos_are_encrypted_and_served_to_their_owner_only(
    world: World, faces_dir: Path
) -> None:
    alice, bob = await world.owner(), await world.owner()
    await alice.signup("alice@example.org")
    await bob.signup("bob@example.org")
    room_id = await alice.create_room("Kept")
    world.store.update_room(
        room_id, world.store.room(room_id).owner_id or "", {"retain_photos": True}
    )
    person = world.store.add_person(room_id, "L")
    still = sorted((faces_dir / STILLS).glob("*.png"))[0].read_bytes()
    resp = await alice.client.post(
        f"/owner/people/{person.id}/photos",
        data=photo_form(alice.csrf, [("1.png", still)]),
        headers={"Accept": "application/json"},
    )
    assert (await resp.json())["enrolled"] == 1
    (face,) = world.store.faces(person.id)
    assert face.photo_id is not None
    assert still[100:164] not in world.store.path.read_bytes()  # sealed at rest
    url = f"/owner/people/{person.id}/photos/{face.photo_id}"
    resp = await alice.client.get(url)
    assert resp.status == 200 and await resp.read() == still
    assert resp.headers["Content-Type"] == "image/png"
    resp = await bob.client.get(url)
    assert resp.status == 404


async def test_owners_cannot_see_or_touch_each_others_rooms(world: World) -> None:
    alice, bob = await world.owner(), await world.owner()
    await alice.signup("alice@example.org")
    await bob.signup("bob@example.org")
    room_id = await alice.create_room("Private")
    person = world.store.add_person(room_id, "Secret Person")
    info, _ = world.store.issue_invite(room_id, person.id)
    text = await bob.page("/owner/rooms")
    assert "Private" not in text
    resp = await bob.client.get(f"/owner/rooms/{room_id}")
    missing = await bob.client.get("/owner/rooms/" + "f" * 32)
    assert resp.status == missing.status == 404
    assert "Secret Person" not in await resp.text()
    for path, data in (
        (f"/owner/rooms/{room_id}/settings", {"name": "pwned", "mode": "open"}),
        (f"/owner/rooms/{room_id}/delete", {}),
        (f"/owner/rooms/{room_id}/people", {"name": "Mallory"}),
        (f"/owner/rooms/{room_id}/invites", {"person_id": person.id}),
        (f"/owner/people/{person.id}/delete", {}),
        (f"/owner/invites/{info.id}/revoke", {}),
    ):
        resp = await bob.post(path, data)
        assert resp.status == 404, path
    form = photo_form(bob.csrf, [("a.png", b"x")])
    resp = await bob.client.post(f"/owner/people/{person.id}/photos", data=form)
    assert resp.status == 404
    resp = await bob.client.get(f"/owner/rooms/{room_id}/live")
    assert resp.status == 404
    assert world.store.room(room_id).name == "Private"
    assert [p.name for p in world.store.persons(room_id)] == ["Secret Person"]
    assert world.store.invite(info.id, world.store.room(room_id).owner_id or "").revoked is False


async def test_api_keys_are_created_shown_once_and_revoked(world: World) -> None:
    owner = await world.owner()
    await owner.signup("keys@example.org")
    await owner.page("/owner/keys")
    resp = await owner.post("/owner/keys", {"name": "CI"})
    text = await resp.text()
    secret = text.split('id="new-key" readonly value="', 1)[1].split('"', 1)[0]
    assert secret.startswith("vg_")
    api = await owner.client.get("/api/v1/rooms", headers={"Authorization": f"Bearer {secret}"})
    assert api.status == 200
    assert secret not in await owner.page("/owner/keys")
    (key,) = world.store.api_keys(world.store.owner_credentials("keys@example.org")[0].id)
    resp = await owner.post(f"/owner/keys/{key.id}/revoke")
    assert resp.status == 303
    api = await owner.client.get("/api/v1/rooms", headers={"Authorization": f"Bearer {secret}"})
    assert api.status == 401
    # Cookies alone never authenticate the API.
    api = await owner.client.get("/api/v1/rooms")
    assert api.status == 401


async def test_live_dashboard_pushes_room_state(world: World) -> None:
    owner = await world.owner()
    await owner.signup("live@example.org")
    room_id = await owner.create_room("Live")
    resp = await owner.client.get(
        f"/owner/rooms/{room_id}/live", headers={"Origin": "http://evil.example"}
    )
    assert resp.status == 403
    ws = await owner.client.ws_connect(f"/owner/rooms/{room_id}/live")
    first = await asyncio.wait_for(ws.receive_json(), 5)
    assert first == {"type": "room", "participants": [], "recent": []}
    world.store.audit(
        "participant.denied",
        {"name": "Stranger", "reason": "not_recognised", "distance": 0.81234},
        room_id=room_id,
    )
    await world.hub.push_dashboard(room_id)
    pushed = await asyncio.wait_for(ws.receive_json(), 5)
    assert pushed["recent"][0]["name"] == "Stranger" and pushed["recent"][0]["distance"] == 0.812
    assert world.hub.dashboard.sinks.get(room_id)
    await ws.close()
    for _ in range(50):
        if not world.hub.dashboard.sinks.get(room_id):
            break
        await asyncio.sleep(0.02)
    assert not world.hub.dashboard.sinks.get(room_id)
    signed_out = await world.owner()
    resp = await signed_out.client.get(f"/owner/rooms/{room_id}/live")
    assert resp.status == 401
    assert json.loads(await resp.text())["error"]["code"] == "signed_out"


async def test_engine_calibration_and_reenrol_flag_on_the_room_page(world: World) -> None:
    owner = await world.owner()
    await owner.signup("engines@example.org")
    room_id = await owner.create_room("Engines")
    vector = np.full((1, 128), 0.05, np.float32)
    world.store.enrol_person(room_id, "Legacy", vector, "dlib_resnet_v1")
    page = await owner.page(f"/owner/rooms/{room_id}")
    assert 'data-reenrol="sface"' in page and "re-enrol for sface" in page
    page = await owner.page(f"/owner/rooms/{room_id}/settings")  # settings: a page apart
    for engine in ("dlib", "sface", "both", "fused"):
        assert f'<tr data-engine="{engine}"' in page
    assert "0.53%" in page and "0.13%" in page  # dlib and fused FAR at 0.60 on LFW
    resp = await owner.post(
        f"/owner/rooms/{room_id}/settings",
        {"name": "Engines", "mode": "invite", "liveness_policy": "off", "engine": "fused"},
    )
    assert resp.status == 303
    page = await owner.page(f"/owner/rooms/{room_id}/settings")
    assert "fused (this room)" in page
    page = await owner.page(f"/owner/rooms/{room_id}")
    assert 'class="reenrol pending"' in page  # the fused room needs SFace templates now


async def test_room_page_shows_the_unguessable_link_and_renews_it(world: World) -> None:
    owner = await world.owner()
    await owner.signup("links@example.org")
    room_id = await owner.create_room("Daily Standup", mode="open")
    room = world.store.room(room_id)
    page = await owner.page(f"/owner/rooms/{room_id}")
    assert f"/r/{room.link}" in page and room.link.startswith("daily-standup-")
    assert 'id="legacy-link"' not in page
    resp = await owner.post(f"/owner/rooms/{room_id}/link")
    assert resp.status == 303
    renewed = world.store.room(room_id)
    assert renewed.link != room.link
    page = await owner.page(f"/owner/rooms/{room_id}")
    assert f"/r/{renewed.link}" in page and f"/r/{room.link}" not in page
