"""What a room link can do, decided before the page asks for the camera.

The pre-join screen answers a dead link (unknown room or invite, expired, revoked,
locked after failures, or an invite-only room opened without its invite) on the page
itself: nobody is asked for their camera only to be told afterwards that the link
was useless. The same store checks as the websocket ``join`` (server/join.py) run
here, so the two never disagree about a link. The invitee's name is never part of
the answer: a stranger holding a link learns which room it is for, nothing more.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from .lockout import LockoutTracker
from .store import Repository, Room, StoreError

NEW_LINK = "Ask the organiser (the person who sent you this link) for a new link."


@dataclass(frozen=True)
class LinkState:
    """``code`` is ``ok`` or the join refusal code of docs/protocol.md; ``status`` the
    page's HTTP status (the room's own link without an invite is a page that exists,
    200; an unknown invite 404; revoked or expired 410; locked 423)."""

    code: str
    title: str
    message: str
    status: int
    room: Room | None = None

    @property
    def ok(self) -> bool:
        return self.code == "ok"


def _minutes(seconds: float) -> int:
    return max(1, round(seconds / 60))


def link_state(
    store: Repository,
    lockout: LockoutTracker,
    link: str,
    invite: str | None,
    now: float | None = None,
) -> LinkState:
    """The state of ``/r/<link>?invite=<invite>``; ``now`` is the lockout's monotonic clock."""
    try:
        room = store.room_by_link(link)
    except StoreError:
        return LinkState(
            "unknown_room", "This link does not lead to a room",
            f"The link may be incomplete or the room was deleted. {NEW_LINK}", 404,
        )  # fmt: skip
    if not invite:
        if room.mode == "open":
            return LinkState("ok", "", "", 200, room)
        return LinkState(
            "invite_required", "This room needs your personal link",
            "The room is entered with a personal invite link, and this link has no "
            f"invite in it. Open the whole link from your invitation, or: {NEW_LINK}", 200, room,
        )  # fmt: skip
    try:
        store.resolve_invite(room.slug, invite)
    except StoreError as err:
        texts = {
            "revoked_invite": ("This link was withdrawn", "The organiser revoked this invite."),
            "expired_invite": ("This link has expired", "The invite's time ran out."),
        }
        title, why = texts.get(
            err.code, ("This link is not valid", "The invite in the link is unknown or incomplete.")
        )
        status = 410 if err.code in texts else 404
        return LinkState(err.code, title, f"{why} {NEW_LINK}", status, room)
    mono = time.monotonic() if now is None else now
    lock = lockout.lock_of([f"invite:{invite}"], mono)
    if lock is not None:
        return LinkState(
            "locked_out", "This link is locked for now",
            "There were too many failed checks with this link. Try again in about "
            f"{_minutes(lock[0] - mono)} min, or ask the organiser for help.", 423, room,
        )  # fmt: skip
    return LinkState("ok", "", "", 200, room)
