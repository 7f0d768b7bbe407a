"""One live room: its participants, its SFU, its meeting, and who is told what.

Only admitted participants are handed to the SFU, so nobody unverified receives
room media. Changes to the SFU happen at once (forwarding starts or stops before
the call returns); the renegotiations they require run in background tasks owned
by the room, so no participant's task ever waits for its own answer (issue 11,
defect 3). After a viewer's renegotiation completes, that viewer alone is sent
its peer list (the mids are known only then): one admission costs O(N) messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from .janus.seating import JanusSeating
from .media_settings import room_backend
from .messages import Peer, Peers
from .presence.monitor import MISMATCH
from .roles import RoomMember
from .rtc.room import SfuRoom
from .seats import take_seat
from .store import Room
from .tasks import spawn_logged

if TYPE_CHECKING:
    from .hub import Hub

log = logging.getLogger(__name__)


class RoomRuntime:
    def __init__(self, hub: Hub, room: Room) -> None:
        self.hub = hub
        self.room = room
        self.participants: dict[str, RoomMember] = {}
        self.sfu = SfuRoom(self._renegotiate)
        # A meeting is one live session of the room: it ends when the room empties.
        self.meeting_id: str | None = hub.start_meeting(room.id)
        self.had_admission = False
        self._paused_viewers: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        # Media through Janus instead of our SFU (docs/janus.md); None = the builtin SFU.
        plane = (
            hub.janus
            if room_backend(room.media_backend, hub.settings.media, hub.janus) == "janus"
            else None
        )
        self.janus = JanusSeating(plane, room, self._spawn) if plane is not None else None

    def _spawn(self, coro: Coroutine[Any, Any, None], what: str) -> None:
        name = f"room-{self.room.id}-{what}"
        spawn_logged(self._tasks, coro, name, log, f"room {self.room.id}: {what} failed")

    async def _renegotiate(self, participant_id: str) -> None:
        member = self.participants.get(participant_id)
        if member is None:
            return
        await member.renegotiate()
        self.send_peers(member)

    def add(self, member: RoomMember) -> None:
        self.participants[member.id] = member
        self.hub.audit(member, "participant.joined", {})

    def admit(self, member: RoomMember) -> None:
        """Seat ``member`` (one admitted session per person) and start forwarding."""
        assert member.pc is not None and member.publisher is not None
        for old in take_seat(self, member):
            # Out of the SFU now; its own task finishes the teardown.
            self._spawn(self.sfu.detach(old.id), "detach")
        self.had_admission = True
        if self.hub.cluster is not None:  # its rejoin token, for any node (docs/scale.md)
            self.hub.cluster.seated(member, self.room.id)
        if self.janus is not None:
            self.janus.admit(member)  # a pass to Janus; our SFU forwards nothing here
            self.broadcast_peers()  # no renegotiation round sends the others their list
            return
        self._spawn(self.sfu.attach(member.id, member.pc, member.publisher), "admit")
        for viewer in self._paused_viewers:
            self.sfu.pause_viewer(viewer)  # new legs to someone being re-verified: held too
        self.send_peers(member)
        self.notify_dashboard()

    def remove(self, member: RoomMember, *, grace: bool) -> None:
        if self.participants.pop(member.id, None) is None:
            return
        self._paused_viewers.discard(member.id)
        if grace:
            self.hub.remember_for_rejoin(self, member)
        elif self.hub.cluster is not None:
            self.hub.cluster.ended(member.rejoin_token)
        if self.sfu.is_admitted(member.id):
            self._spawn(self.sfu.detach(member.id), "remove")
        if self.janus is not None:
            self.janus.remove(member, last=not self.participants)
        self.notify_dashboard()
        if not self.participants:
            self.hub.forget_room(self)

    def unseat(self, member: RoomMember) -> None:
        """The host sent ``member`` back to the lobby: out of the SFU now (forwarding both
        ways stops before this returns), still a participant who may be admitted again."""
        self._paused_viewers.discard(member.id)
        if self.sfu.is_admitted(member.id):
            self._spawn(self.sfu.detach(member.id), "unseat")
        self.broadcast_peers()

    def pause_viewer(self, member: RoomMember) -> None:
        """While ``member`` re-verifies, no room media reaches it."""
        self._paused_viewers.add(member.id)
        self.sfu.pause_viewer(member.id)
        if self.janus is not None:  # no pause on Janus: out, and a new pass after passing
            self.janus.remove(member, last=False)

    def resume_viewer(self, member: RoomMember) -> None:
        self._paused_viewers.discard(member.id)
        self.sfu.resume_viewer(member.id)
        if self.janus is not None:
            self.janus.admit(member)

    def presence_event(self, member: RoomMember, kind: str) -> None:
        """A presence event (server/presence): with Janus, someone else on the camera
        takes the participant out of the Janus room until they verify again."""
        if self.janus is not None and kind == MISMATCH:
            self.janus.presence_mismatch(member)

    def admitted(self) -> list[RoomMember]:
        return [p for p in self.participants.values() if p.admitted]

    def send_peers(self, viewer: RoomMember) -> None:
        """Tell one admitted participant who else is in, and which m-lines are theirs."""
        if not viewer.admitted:
            return
        mids: dict[str, list[str]] = {}
        for leg in self.sfu.legs(viewer_id=viewer.id):
            if leg.mid is not None:
                mids.setdefault(leg.publisher_id, []).append(leg.mid)
        peers = [
            Peer(other.id, other.name, mids.get(other.id, []), other.audio_on, other.video_on)
            for other in self.admitted()
            if other is not viewer
        ]
        viewer.send(Peers(peers))

    def broadcast_peers(self) -> None:
        for viewer in self.admitted():
            self.send_peers(viewer)
        self.notify_dashboard()

    def notify_dashboard(self) -> None:
        self.hub.dashboard.changed(self.room.id)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
