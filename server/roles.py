"""What the room needs of a participant and what a participant needs of its room.

The room (``server/room_runtime.py``) and the participant session
(``server/participant.py``) know each other only through these small Protocols,
the way LiveKit's room depends on participant interfaces: each side is testable
with a fake of the other, and neither imports the other's module.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import random
    from concurrent.futures import Executor

    from aiortc import RTCPeerConnection

    from .config import Settings
    from .face.engine import FaceEngine
    from .identity import AdmittedIdentity
    from .lockout import LockoutTracker
    from .messages import OutMessage
    from .presence import PresenceConfig, PresenceMonitor
    from .rtc.forward import Publisher
    from .store import Room


class CloseReason(enum.Enum):
    """Why a session ended; ``bye`` tells the client the coarse form."""

    LEFT = "left"  # the participant chose to leave
    DISCONNECTED = "disconnected"  # socket or peer connection gone
    REFUSED = "refused"  # a final refusal (denied, locked, re-verification failed)
    REPLACED = "replaced"  # the same person was admitted from another session
    MEDIA_TIMEOUT = "media_timeout"
    IDLE = "idle"  # sat in the lobby or after a refusal without trying again
    BAD_REQUEST = "bad_request"  # unusable offer, no camera track
    BAD_MEDIA = "bad_media"  # the camera's stream was refused (e.g. a decoder bomb)
    SHUTDOWN = "shutdown"
    REVOKED = "revoked"  # the room or person was deleted, or the invite revoked

    @property
    def bye(self) -> str:
        if self is CloseReason.LEFT:
            return "left"
        if self is CloseReason.REPLACED:
            return "replaced"
        return "closed"


class RoomMember(Protocol):
    """A participant as its room sees it."""

    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def audio_on(self) -> bool: ...
    @property
    def video_on(self) -> bool: ...
    @property
    def admitted(self) -> bool: ...
    @property
    def ip(self) -> str: ...
    @property
    def rejoin_token(self) -> str: ...
    @property
    def identity(self) -> AdmittedIdentity | None: ...
    @property
    def pc(self) -> RTCPeerConnection | None: ...
    @property
    def publisher(self) -> Publisher | None: ...
    @property
    def runtime(self) -> RoomHandle: ...
    @property
    def claimed_person(self) -> str | None: ...
    @property
    def invite_id(self) -> str | None: ...
    @property
    def device(self) -> str | None: ...
    @property
    def closed(self) -> bool: ...
    @property
    def presence(self) -> PresenceMonitor: ...

    def send(self, message: OutMessage) -> None: ...
    def dashboard_row(self) -> dict[str, object]: ...
    async def renegotiate(self) -> None: ...
    async def request_reverify(self) -> bool: ...
    def watch_presence(self, publisher: Publisher) -> None: ...
    async def wait_closed(self, timeout_s: float) -> None: ...
    def request_close(
        self,
        reason: CloseReason,
        *,
        grace: bool = True,
        code: str | None = None,
        message: str = "",
    ) -> None: ...


class RoomHandle(Protocol):
    """A participant's room, as the participant sees it."""

    @property
    def room(self) -> Room: ...
    @property
    def meeting_id(self) -> str | None: ...

    def add(self, member: RoomMember) -> None: ...
    def admit(self, member: RoomMember) -> None: ...
    def remove(self, member: RoomMember, *, grace: bool) -> None: ...
    def send_peers(self, viewer: RoomMember) -> None: ...
    def pause_viewer(self, member: RoomMember) -> None: ...
    def resume_viewer(self, member: RoomMember) -> None: ...
    def broadcast_peers(self) -> None: ...
    def notify_dashboard(self) -> None: ...
    def presence_event(self, member: RoomMember, kind: str) -> None: ...


class SessionServices(Protocol):
    """What the server shares with every participant session (the hub provides it)."""

    @property
    def settings(self) -> Settings: ...
    @property
    def lockout(self) -> LockoutTracker: ...
    @property
    def executor(self) -> Executor: ...
    @property
    def engine(self) -> FaceEngine: ...

    def challenge_rng(self) -> random.Random | None: ...
    def presence_config(self, room: Room) -> PresenceConfig: ...
    def person_name(self, person_id: str, fallback: str) -> str: ...
    async def audit_settled(self) -> None: ...
    def audit(
        self,
        member: RoomMember,
        event: str,
        details: Mapping[str, object],
        person_id: str | None = None,
    ) -> None: ...
