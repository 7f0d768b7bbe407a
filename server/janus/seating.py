"""A live room's side of the Janus plane: passes for its admitted members, removal.

``RoomRuntime`` (``server/room_runtime.py``) calls these where it would attach to or
detach from its own SFU; every Janus request runs in the room's background tasks
(``spawn``), so no participant's task waits on Janus.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from ..messages import JanusJoin
from ..roles import CloseReason, RoomMember
from ..store import Room
from .plane import JanusPlane

log = logging.getLogger(__name__)

Spawn = Callable[[Coroutine[Any, Any, None], str], None]
UNAVAILABLE = "The room's media server cannot be reached right now. Try again in a minute."


class JanusSeating:
    def __init__(self, plane: JanusPlane, room: Room, spawn: Spawn) -> None:
        self.plane = plane
        self.room = room
        self._spawn = spawn

    def admit(self, member: RoomMember) -> None:
        """Admitted (or passed a re-verification): a fresh one-time pass."""
        self._spawn(self._grant(member), "janus-pass")

    def remove(self, member: RoomMember, *, last: bool) -> None:
        """Out of the room (or re-verifying): token removed, then the feed kicked."""
        self._spawn(self._revoke(member.id, last), "janus-revoke")

    def presence_mismatch(self, member: RoomMember) -> None:
        """Someone else is on the camera: out of the Janus room at once (the pass goes
        with the re-verification that starts), back in only by verifying again."""
        self._spawn(self._reverify(member), "janus-mismatch")

    async def _grant(self, member: RoomMember) -> None:
        try:
            granted = await self.plane.admit(
                self.room.id, self.room.name, member.id, on_watch=member.watch_presence
            )
        except Exception:
            log.exception("janus: no pass for %s in room %s", member.id, self.room.id)
            member.request_close(
                CloseReason.DISCONNECTED, grace=False, code="media_unavailable", message=UNAVAILABLE
            )
            return
        if member.closed or not member.admitted:
            # Removed while the pass was being made: it must not outlive the session.
            await self.plane.revoke(self.room.id, member.id)
            return
        member.send(JanusJoin(granted.url, granted.room, granted.token, granted.feed, member.id))

    async def _revoke(self, participant_id: str, last: bool) -> None:
        await self.plane.revoke(self.room.id, participant_id)
        if last:
            await self.plane.forget(self.room.id)

    async def _reverify(self, member: RoomMember) -> None:
        if not await member.request_reverify():
            await self.plane.revoke(self.room.id, member.id)
