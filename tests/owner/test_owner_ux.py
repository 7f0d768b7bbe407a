"""Issue 15, owner side, in-process: the room page in the order of work, invites an
owner can tell apart, attendance in a teacher's words (page, CSV, certificate), the
host's endpoints (CSRF, a reason to let someone in, another owner's room is a 404),
and locks the owner lifts."""

from __future__ import annotations

import codecs
import re
import time

import numpy as np

from server.hostdesk import signed_report

from .conftest import World


async def test_room_page_order_invites_and_settings_apart(world: World) -> None:
    owner = await world.owner()
    await owner.signup("teacher@example.org")
    room_id = await owner.create_room("Biology 2")
    ada = world.store.enrol_person(room_id, "Ada", np.full((1, 128), 0.05, np.float32), "dlib")
    info, token = world.store.issue_invite(room_id, ada.id, 86400.0)
    revoked, _ = world.store.issue_invite(room_id, ada.id, 86400.0)
    world.store.revoke_invite(_)
    world.store.resolve_invite(world.store.room(room_id).slug, token)  # opened once
    page = await owner.page(f"/owner/rooms/{room_id}")
    # people and invites, then the live lobby, then reports; settings not on this page
    order = [page.index(f'id="{s}"') for s in ("people", "invites", "live", "reports")]
    assert order == sorted(order)
    assert 'id="settings-form"' not in page and 'id="delete-room"' not in page
    assert f"/owner/rooms/{room_id}/settings" in page
    # invites: named by the start of the code on the link, with last use and state
    assert info.hint and token.startswith(info.hint) and f"<code>{info.hint}…</code>" in page
    pattern = rf'<tr class="invite revoked" data-invite="{revoked.id}">(.*?)</tr>'
    row = re.search(pattern, page, re.S)
    assert row and ">revoked</td>" in row.group(1) and "days" not in row.group(1)
    used = re.search(rf'data-invite="{info.id}">(.*?)</tr>', page, re.S)
    assert used and 'data-label="Last used"><time' in used.group(1)
    # controls named in context
    assert 'aria-label="Create an invite link for Ada"' in page
    assert 'aria-label="Delete Ada"' in page
    settings = await owner.page(f"/owner/rooms/{room_id}/settings")
    assert 'id="settings-form"' in settings and "Recommended." in settings  # plain words
    delete = settings.index('id="delete-room"')
    assert settings.index("Save settings") < settings.index('id="delete"') < delete
    assert "Delete the room “Biology 2”" in settings[delete:]


async def test_photo_without_kept_image_shows_file_name_and_quality(world: World) -> None:
    owner = await world.owner()
    await owner.signup("photos@example.org")
    room_id = await owner.create_room("Photos")
    ada = world.store.enrol_person(room_id, "Ada", np.full((1, 128), 0.05, np.float32), "dlib")
    (face,) = world.store.faces(ada.id)
    world.store.label_faces([(face.id, "ada-2024.jpg", "accepted: one face, 212 px wide")])
    page = await owner.page(f"/owner/rooms/{room_id}")
    assert "ada-2024.jpg" in page and "212 px wide" in page
    assert 'aria-label="Remove photo 1 of Ada"' in page


def _meeting(world: World, room_id: str, person_id: str) -> str:
    store = world.store
    meeting = store.start_meeting(room_id)  # audit records are stamped now: on time

    def audit(event: str, pid: str, person: str | None, **details: object) -> None:
        store.audit(event, {"name": "Ada", "meeting": meeting.id, **details},
                    room_id=room_id, participant_id=pid, person_id=person)  # fmt: skip

    audit("participant.joined", "p1", person_id)
    audit("participant.admitted", "p1", person_id, distance=0.3, kind="admission")
    audit("participant.left", "p1", person_id, by_choice=True)
    store.end_meeting(meeting.id)
    return meeting.id


async def test_attendance_page_csv_and_certificate(world: World) -> None:
    owner = await world.owner()
    await owner.signup("report@example.org")
    room_id = await owner.create_room("Chemistry")
    vec = np.full((1, 128), 0.05, np.float32)
    ada = world.store.enrol_person(room_id, "Ada", vec, "dlib")
    world.store.enrol_person(room_id, "Zoë", vec, "dlib")  # invited, never came
    refused_only = world.store.start_meeting(room_id)  # a stranger's refused visit
    world.store.end_meeting(refused_only.id)
    meeting_id = _meeting(world, room_id, ada.id)
    room_page = await owner.page(f"/owner/rooms/{room_id}")
    assert f'/meetings/{meeting_id}"' in room_page
    assert f"/meetings/{refused_only.id}" not in room_page  # not a meeting
    assert 'id="refused-visits"' in room_page
    page = await owner.page(f"/owner/rooms/{room_id}/meetings/{meeting_id}")
    rows = dict(re.findall(r'<td data-label="Name">([^<]+)</td>\s*<td data-label="Status" '
                           r'class="status">(\w+)</td>', page))  # fmt: skip
    assert rows == {"Ada": "present", "Zoë": "absent"}
    assert "never came" in page
    resp = await owner.client.get(
        f"/owner/rooms/{room_id}/meetings/{meeting_id}/report.csv?tz=Europe/Paris"
    )
    body = await resp.read()
    assert resp.status == 200 and body.startswith(codecs.BOM_UTF8)
    assert resp.headers["Content-Type"] == "text/csv; charset=utf-8"
    text = body.decode("utf-8-sig")
    assert text.splitlines()[0].startswith('"Name","Status","Minutes present","Arrived (Europe/')
    assert '"Zoë","absent"' in text
    cert = await owner.page(f"/owner/rooms/{room_id}/meetings/{meeting_id}/certificate/{ada.id}")
    key_id = signed_report(world.hub, world.store.room(room_id), meeting_id)["signature"]["key_id"]
    assert "Certificate of attendance" in cert and "Ada" in cert and key_id in cert
    assert "python -m server verify-report" in cert
    # nobody who was absent gets a certificate; another owner sees nothing
    zoe = next(p for p in world.store.persons(room_id) if p.name == "Zoë")
    missing = f"/owner/rooms/{room_id}/meetings/{meeting_id}/certificate/{zoe.id}"
    assert (await owner.client.get(missing)).status == 404
    other = await world.owner()
    await other.signup("other@example.org")
    assert (await other.client.get(f"/owner/rooms/{room_id}/meetings/{meeting_id}")).status == 404


async def test_host_endpoint_needs_csrf_a_reason_and_the_owners_room(world: World) -> None:
    owner = await world.owner()
    await owner.signup("host@example.org")
    room_id = await owner.create_room("Host")
    url = f"/owner/rooms/{room_id}/host"
    body = {"participant_id": "nobody", "action": "admit", "reason": ""}
    resp = await owner.client.post(url, json=body)  # no CSRF header
    assert resp.status == 403
    headers = {"X-CSRF-Token": owner.csrf, "Accept": "application/json"}
    resp = await owner.client.post(url, json=body, headers=headers)
    assert resp.status == 400 and "reason" in (await resp.json())["message"]
    resp = await owner.client.post(url, json={**body, "reason": "known"}, headers=headers)
    assert resp.status == 409 and (await resp.json())["applied"] is False  # nobody there
    resp = await owner.client.post(url, json={**body, "action": "explode"}, headers=headers)
    assert resp.status == 400
    other = await world.owner()
    await other.signup("intruder@example.org")
    await other.page("/owner/rooms")
    resp = await other.client.post(
        url, json={**body, "reason": "x"}, headers={"X-CSRF-Token": other.csrf}
    )
    assert resp.status == 404


async def test_owner_lifts_a_lock_on_an_invite(world: World) -> None:
    owner = await world.owner()
    await owner.signup("locks@example.org")
    room_id = await owner.create_room("Locks")
    ada = world.store.enrol_person(room_id, "Ada", np.full((1, 128), 0.05, np.float32), "dlib")
    info, token = world.store.issue_invite(room_id, ada.id, 86400.0)
    tracker = world.hub.lockout
    keys = [f"invite:{token}"]
    for _ in range(tracker.failures):
        tracker.record(keys, time.monotonic())
    assert tracker.locked_until(keys, time.monotonic()) is not None
    page = await owner.page(f"/owner/rooms/{room_id}")
    found = re.search(r'data-lock="([0-9a-f]{16})"', page)
    assert found and info.id in page and token not in page
    resp = await owner.post(f"/owner/rooms/{room_id}/locks/{found.group(1)}/lift", {"reason": "ok"})
    assert resp.status == 303
    assert tracker.locked_until(keys, time.monotonic()) is None
    world.hub.audit_trail.flush()
    (record,) = [r for r in world.store.audit_log(room_id) if r.event == "lock.lifted"]
    assert record.details["label"] == info.id and record.details["host"] == "locks@example.org"
    page = await owner.page(f"/owner/rooms/{room_id}")
    assert "data-lock=" not in page and "lifted the lock on an invite link" in page
