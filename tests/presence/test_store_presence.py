"""Store migration 3: meetings, webhooks (sealed secrets), deliveries, presence interval."""

from __future__ import annotations

import pytest

from server.store import StoreError
from tests.store_backends import Backend


def test_meetings_and_their_audit(backend: Backend) -> None:
    store = backend.open()
    room = store.create_room("R")
    first = store.start_meeting(room.id, now=10.0)
    second = store.start_meeting(room.id, now=20.0)
    store.audit("participant.joined", {"meeting": first.id}, room_id=room.id)
    store.audit("participant.joined", {"meeting": second.id}, room_id=room.id)
    store.audit("person.enrolled", {}, room_id=room.id)
    assert [r.details["meeting"] for r in store.meeting_audit(first.id)] == [first.id]
    store.end_meeting(first.id, now=15.0)
    store.end_meeting(first.id, now=99.0)  # ending twice keeps the first end
    assert store.meeting(first.id, room.id).ended == 15.0
    assert [m.id for m in store.meetings(room.id)] == [second.id, first.id]
    with pytest.raises(StoreError) as err:
        store.meeting(first.id, "another-room")
    assert err.value.code == "unknown_meeting"
    store.close()


def test_webhook_secret_is_sealed_and_room_delete_cascades(backend: Backend) -> None:
    store = backend.open()
    owner = store.create_owner("o@example.org", "x")
    room = store.create_room("R", owner_id=owner.id)
    hook, secret = store.create_webhook(room.id, "https://h.example/x", owner_id=owner.id)
    assert store.webhook_targets(room.id, "meeting.ended") == [(hook, secret)]
    delivery = store.record_delivery(hook.id, room.id, "meeting.ended", "pending")
    store.update_delivery(delivery, "delivered", 1, 200, None)
    assert store.deliveries(hook.id)[0].status == "delivered"
    store.close()
    assert secret.encode() not in backend.raw_bytes()
    store = backend.open()
    other = store.create_owner("p@example.org", "x")
    with pytest.raises(StoreError):
        store.create_webhook(room.id, "https://h.example/y", owner_id=other.id)
    with pytest.raises(StoreError):
        store.delete_webhook(hook.id, other.id)
    store.start_meeting(room.id)
    store.delete_room(room.id, owner.id)
    for table in ("meetings", "webhooks", "webhook_deliveries"):
        assert store._rows(f"SELECT COUNT(*) FROM {table}")[0][0] == 0, table
    store.close()


def test_presence_interval_setting_is_validated(backend: Backend) -> None:
    store = backend.open()
    owner = store.create_owner("o@example.org", "x")
    room = store.create_room("R", owner_id=owner.id)
    assert room.presence_interval_s is None
    assert store.update_room(room.id, owner.id, {"presence_interval_s": 5}).presence_interval_s == 5
    for bad in (0, 0.5, 4000, True, "10", float("nan")):
        with pytest.raises(StoreError):
            store.update_room(room.id, owner.id, {"presence_interval_s": bad})
    store.close()
