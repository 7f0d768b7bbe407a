"""Owner pages for certified presence: re-verify, report downloads, webhooks, settings."""

from __future__ import annotations

import json

from server.report import verify_report
from server.report.keys import load_public_key
from tests.owner.conftest import World, owner_engine, world  # noqa: F401  (fixtures)


async def test_reverify_needs_csrf_and_reports_who_was_asked(world: World) -> None:  # noqa: F811
    owner = await world.owner()
    await owner.signup("host@example.org")
    room_id = await owner.create_room("Course")
    url = f"/owner/rooms/{room_id}/reverify"
    resp = await owner.client.post(url, json={}, headers={"Accept": "application/json"})
    assert resp.status == 403  # no CSRF token
    resp = await owner.client.post(
        url, json={"participant_id": None}, headers={"X-CSRF-Token": owner.csrf}
    )
    assert resp.status == 200 and await resp.json() == {"asked": []}
    other = await world.owner()
    await other.signup("other@example.org")
    resp = await other.client.post(url, json={}, headers={"X-CSRF-Token": other.csrf})
    assert resp.status == 404


async def test_report_downloads_are_signed_and_owner_only(world: World) -> None:  # noqa: F811
    owner = await world.owner()
    await owner.signup("host@example.org")
    room_id = await owner.create_room("Course")
    store = world.store
    meeting = store.start_meeting(room_id, now=1000.0)
    for ts_event in ("participant.joined", "participant.admitted", "participant.left"):
        store.audit(
            ts_event,
            {"name": "Ada", "meeting": meeting.id, "distance": 0.3},
            room_id=room_id,
            participant_id="p1",
        )
    store.end_meeting(meeting.id)
    page = await owner.page(f"/owner/rooms/{room_id}")
    assert f"/meetings/{meeting.id}/report.json" in page

    resp = await owner.client.get(f"/owner/rooms/{room_id}/meetings/{meeting.id}/report.json")
    assert resp.status == 200 and "attachment" in resp.headers["Content-Disposition"]
    envelope = json.loads(await resp.text())
    key_resp = await owner.client.get("/.well-known/videogate-signing-key")
    key = load_public_key(await key_resp.text())
    assert verify_report(envelope, key).ok
    (person,) = envelope["report"]["participants"]
    assert person["name"] == "Ada" and person["admitted"] and person["left"]

    resp = await owner.client.get(f"/owner/rooms/{room_id}/meetings/{meeting.id}/report.csv")
    assert resp.status == 200 and resp.content_type == "text/csv"
    assert "Ada" in await resp.text()

    resp = await owner.client.get(f"/owner/rooms/{room_id}/meetings/nope/report.json")
    assert resp.status == 404
    other = await world.owner()
    await other.signup("other@example.org")
    resp = await other.client.get(f"/owner/rooms/{room_id}/meetings/{meeting.id}/report.json")
    assert resp.status == 404


async def test_webhooks_add_list_delete(world: World) -> None:  # noqa: F811
    owner = await world.owner()
    await owner.signup("host@example.org")
    room_id = await owner.create_room("Course")
    resp = await owner.post(f"/owner/rooms/{room_id}/webhooks", {"url": "ftp://nope"})
    assert resp.status == 303 and world.store.webhooks(room_id) == []
    resp = await owner.post(
        f"/owner/rooms/{room_id}/webhooks", {"url": "https://hooks.example.org/vg"}
    )
    assert resp.status == 303
    page = await owner.page(f"/owner/rooms/{room_id}/settings")  # integrations: apart
    assert "whsec_" in page  # the secret, once, in the flash message
    (hook,) = world.store.webhooks(room_id)
    assert hook.url in page and "No deliveries yet" in page
    page = await owner.page(f"/owner/rooms/{room_id}/settings")
    assert "whsec_" not in page

    other = await world.owner()
    await other.signup("other@example.org")
    await other.page("/owner/rooms")
    resp = await other.post(f"/owner/webhooks/{hook.id}/delete")
    assert resp.status == 404 and world.store.webhooks(room_id)
    resp = await owner.post(f"/owner/webhooks/{hook.id}/delete")
    assert resp.status == 303 and world.store.webhooks(room_id) == []


async def test_presence_interval_setting(world: World) -> None:  # noqa: F811
    owner = await world.owner()
    await owner.signup("host@example.org")
    room_id = await owner.create_room("Course")
    form = {"name": "Course", "mode": "invite", "liveness_policy": "off", "engine": "dlib",
            "threshold": "", "max_attempts": "", "presence_interval_s": "30"}  # fmt: skip
    resp = await owner.post(f"/owner/rooms/{room_id}/settings", form)
    assert resp.status == 303 and world.store.room(room_id).presence_interval_s == 30.0
    resp = await owner.post(
        f"/owner/rooms/{room_id}/settings", {**form, "presence_interval_s": "0"}
    )
    assert world.store.room(room_id).presence_interval_s == 30.0  # refused: 1-3600 s
    resp = await owner.post(f"/owner/rooms/{room_id}/settings", {**form, "presence_interval_s": ""})
    assert world.store.room(room_id).presence_interval_s is None
