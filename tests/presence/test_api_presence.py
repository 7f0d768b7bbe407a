"""/api/v1 presence endpoints: meetings, signed reports, webhooks, re-verify (two owners)."""

from __future__ import annotations

from server.report import verify_report
from server.report.keys import load_public_key
from tests.api.conftest import ApiWorld, face_engine, world  # noqa: F401  (fixtures)


async def test_meetings_reports_webhooks_and_isolation(world: ApiWorld) -> None:  # noqa: F811
    alice, bob, store = world.alice, world.bob, world.store
    status, room = await alice.call("POST", "/rooms", json={"name": "Course",
                                                           "presence_interval_s": 5})  # fmt: skip
    assert status == 201 and room["presence_interval_s"] == 5
    meeting = store.start_meeting(room["id"], now=100.0)
    store.audit("participant.joined", {"name": "Ada", "meeting": meeting.id},
                room_id=room["id"], participant_id="p1")  # fmt: skip
    store.end_meeting(meeting.id, now=200.0)

    status, body = await alice.call("GET", f"/rooms/{room['id']}/meetings")
    assert status == 200 and [m["id"] for m in body["meetings"]] == [meeting.id]
    status, envelope = await alice.call("GET", f"/rooms/{room['id']}/meetings/{meeting.id}/report")
    assert status == 200
    async with alice.http.get(f"{world.base}/.well-known/videogate-signing-key") as resp:
        key = load_public_key(await resp.text())
    assert verify_report(envelope, key).ok
    async with alice.http.get(
        alice.url(f"/rooms/{room['id']}/meetings/{meeting.id}/report.csv"),
        headers={"Authorization": f"Bearer {alice.key}"},
    ) as resp:
        assert resp.status == 200 and "Ada" in await resp.text()

    status, hook = await alice.call(
        "POST", f"/rooms/{room['id']}/webhooks",
        json={"url": "https://hooks.example.org/x", "events": ["presence.lost"]},
    )  # fmt: skip
    assert status == 201 and hook["secret"].startswith("whsec_")
    assert hook["events"] == ["presence.lost"]
    status, body = await alice.call("GET", f"/rooms/{room['id']}/webhooks")
    assert [w["id"] for w in body["webhooks"]] == [hook["id"]] and "secret" not in body["webhooks"][
        0
    ]
    status, body = await alice.call("GET", f"/webhooks/{hook['id']}/deliveries")
    assert status == 200 and body == {"deliveries": []}
    status, body = await alice.call("POST", f"/rooms/{room['id']}/reverify", json={})
    assert status == 200 and body == {"asked": []}

    # Bob sees none of it, exactly like ids that do not exist.
    for method, path in (
        ("GET", f"/rooms/{room['id']}/meetings"),
        ("GET", f"/rooms/{room['id']}/meetings/{meeting.id}/report"),
        ("GET", f"/webhooks/{hook['id']}/deliveries"),
        ("DELETE", f"/webhooks/{hook['id']}"),
    ):
        status, body = await bob.call(method, path)
        assert status == 404, (method, path)
    status, body = await bob.call("POST", f"/rooms/{room['id']}/reverify", json={})
    assert status == 404
    status, body = await alice.call("POST", f"/rooms/{room['id']}/webhooks",
                                    json={"url": "javascript:alert(1)"})  # fmt: skip
    assert status == 422 and body["error"]["code"] == "bad_url"
    status, _ = await alice.call("DELETE", f"/webhooks/{hook['id']}")
    assert status == 204


async def test_host_decision_endpoint(world: ApiWorld) -> None:  # noqa: F811
    """The host decides over the API: a reason to let in, enum actions, owners' rooms only
    (the decisions themselves: tests/integration/test_host_decides.py)."""
    alice, bob = world.alice, world.bob
    status, room = await alice.call("POST", "/rooms", json={"name": "Hosted"})
    url = f"/rooms/{room['id']}/host"
    status, body = await alice.call("POST", url, json={"participant_id": "p", "action": "admit"})
    assert status == 422 and body["error"]["code"] == "missing_reason"
    status, body = await alice.call("POST", url, json={"participant_id": "p", "action": "kick"})
    assert status == 422 and body["error"]["code"] == "bad_field"
    decision = {"participant_id": "p", "action": "admit", "reason": "known to me"}
    status, body = await alice.call("POST", url, json=decision)
    assert status == 200 and body == {"applied": False}  # nobody of that id is here
    status, body = await bob.call("POST", url, json=decision)
    assert status == 404
