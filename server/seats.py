"""One seat per person: a second admitted session of the same person replaces the first.

Policy (docs/security.md, "one session per invite"): an invite may be opened from
a second browser -- a new laptop, a crashed tab whose socket the server has not
noticed yet -- and that session is verified like any other. Only when it is
*admitted* (the face matched the enrolled person, liveness passed) does it take
the seat: every other admitted session of the same person in that room gets a
``replaced`` error and ``bye`` and is closed **without** a rejoin window, so the
old device cannot bounce back in without verifying. Someone holding a stolen
invite therefore cannot kick the rightful person out: they would have to pass
the gate as that person first. The person is the *admitted identity*
(``server/identity.py``), so in open rooms too a seat belongs to whoever the
gate identified.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .roles import CloseReason, RoomMember

if TYPE_CHECKING:
    from .room_runtime import RoomRuntime

REPLACED_MESSAGE = "You joined this room from another device; this session was closed."


def person_of(member: RoomMember) -> str | None:
    return member.identity.person_id if member.identity is not None else None


def take_seat(runtime: RoomRuntime, newcomer: RoomMember) -> list[RoomMember]:
    """Ask the other admitted sessions of ``newcomer``'s person to close; return them."""
    person = person_of(newcomer)
    if person is None:
        return []
    replaced = [
        p
        for p in list(runtime.participants.values())
        if p is not newcomer and p.admitted and person_of(p) == person
    ]
    for old in replaced:
        runtime.hub.audit(old, "participant.replaced", {"by": newcomer.id}, person_id=person)
        old.request_close(
            CloseReason.REPLACED, grace=False, code="replaced", message=REPLACED_MESSAGE
        )
    return replaced
