"""One seat per person: a second admitted session of the same person replaces the first.

Policy (docs/security.md, "one session per invite"): an invite may be opened from
a second browser -- a new laptop, a crashed tab whose socket the server has not
noticed yet -- and that session is verified like any other. Only when it is
*admitted* (the face matched the enrolled person, liveness passed) does it take
the seat: every other admitted session of the same person in that room gets a
``replaced`` error and ``bye`` and is closed **without** a rejoin window, so the
old device cannot bounce back in without verifying. Someone holding a stolen
invite therefore cannot kick the rightful person out: they would have to pass
the gate as that person first. Sessions still in the lobby are left alone (each
must verify on its own), so two lobbies of one invite can coexist until one
admission wins.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .hub import RoomRuntime
    from .participant import Participant

REPLACED_MESSAGE = "You joined this room from another device; this session was closed."


async def take_seat(runtime: RoomRuntime, newcomer: Participant) -> list[str]:
    """Close the other admitted sessions of ``newcomer``'s person; return their ids."""
    person = newcomer.gate.person_id or newcomer.claimed_person
    if person is None:
        return []
    replaced = [
        p
        for p in list(runtime.participants.values())
        if p is not newcomer and p.admitted and (p.gate.person_id or p.claimed_person) == person
    ]
    for old in replaced:
        runtime.hub.audit(old, "participant.replaced", {"by": newcomer.id}, person_id=person)
        await old.error("replaced", REPLACED_MESSAGE, fatal=True)
        await old.close(left=False, grace=False, reason="replaced")
    return [p.id for p in replaced]
