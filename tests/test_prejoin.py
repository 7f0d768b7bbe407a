"""The pre-join answer for each kind of link (server/prejoin.py): the same store
checks as the websocket join, decided before the page asks for the camera."""

from __future__ import annotations

import time
from pathlib import Path

from server.lockout import LockoutTracker
from server.prejoin import link_state
from server.store import open_store


def test_each_dead_link_is_named_and_the_person_never(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    room = store.create_room("Maths 101")
    person = store.add_person(room.id, "Ada Lovelace")
    good = store.create_invite(room.id, person.id)
    revoked = store.create_invite(room.id, person.id)
    store.revoke_invite(revoked)
    expired = store.create_invite(room.id, person.id, ttl_s=0.001)
    time.sleep(0.01)
    locked = store.create_invite(room.id, person.id)
    lockout = LockoutTracker(failures=1)
    lockout.record_failure([f"invite:{locked}"], time.monotonic())
    cases = {
        (room.link, good): ("ok", 200),
        (room.link, None): ("invite_required", 200),
        (room.link, "not-a-token"): ("unknown_invite", 404),
        (room.link, revoked): ("revoked_invite", 410),
        (room.link, expired): ("expired_invite", 410),
        (room.link, locked): ("locked_out", 423),
        ("no-such-room", good): ("unknown_room", 404),
    }
    for (link, invite), (code, status) in cases.items():
        state = link_state(store, lockout, link, invite)
        assert (state.code, state.status) == (code, status), (link, invite)
        assert "Ada" not in state.message + state.title
        if code != "ok":
            assert "organiser" in state.message and not state.ok
        if code != "unknown_room":
            assert state.room is not None and state.room.id == room.id
    # Another room's invite on this room's link is unknown here.
    other = store.create_room("Other")
    assert link_state(store, lockout, other.link, good).code == "unknown_invite"
    # An open room needs no invite.
    open_room = store.create_room("Open day", mode="open")
    assert link_state(store, lockout, open_room.link, None).ok
    store.close()
