"""Server -> client messages of the participant websocket, as typed values.

One dataclass per message ``type`` and one encoder, so what the server can say is
listed in one place and checked against docs/protocol.md by a test
(tests/test_messages.py). Client -> server messages are parsed in
``server/signalling.py``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True)
class Welcome:
    TYPE: ClassVar[str] = "welcome"
    participant_id: str
    room: str
    person: str | None
    attempts_left: int
    rejoin: str
    resumed: bool
    # STUN/TURN for this join; TURN credentials expire ([ice] credential_ttl_s).
    ice_servers: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class SdpAnswer:
    TYPE: ClassVar[str] = "answer"
    sdp: str


@dataclass(frozen=True)
class SdpOffer:
    TYPE: ClassVar[str] = "offer"
    sdp: str


@dataclass(frozen=True)
class StateMessage:
    TYPE: ClassVar[str] = "state"
    state: str


@dataclass(frozen=True)
class ProgressMessage:
    TYPE: ClassVar[str] = "progress"
    frames: int
    required: int
    hold: str | None
    message: str


@dataclass(frozen=True)
class PromptMessage:
    TYPE: ClassVar[str] = "prompt"
    text: str
    action: str | None
    step: int
    steps: int
    time_limit_s: float


@dataclass(frozen=True)
class Verdict:
    TYPE: ClassVar[str] = "verdict"
    admitted: bool
    reason: str | None
    message: str
    attempts_left: int
    final: bool


@dataclass(frozen=True)
class Peer:
    id: str
    name: str
    mids: list[str]
    audio: bool
    video: bool


@dataclass(frozen=True)
class Peers:
    TYPE: ClassVar[str] = "peers"
    peers: list[Peer] = field(default_factory=list)


@dataclass(frozen=True)
class Error:
    TYPE: ClassVar[str] = "error"
    code: str
    message: str
    fatal: bool = False


@dataclass(frozen=True)
class Bye:
    TYPE: ClassVar[str] = "bye"
    reason: str


@dataclass(frozen=True)
class FlashStep:
    color: str  # CSS #rrggbb
    ms: int


@dataclass(frozen=True)
class FlashMessage:
    TYPE: ClassVar[str] = "flash"
    sequence: list[FlashStep]
    lead_ms: int


@dataclass(frozen=True)
class Reverify:
    TYPE: ClassVar[str] = "reverify"
    paused: bool


@dataclass(frozen=True)
class HostLobby:
    """The host sent this person back to the lobby or gave back their attempts: the
    page shows the lobby with ``message`` and lets them start the check again."""

    TYPE: ClassVar[str] = "lobby"
    message: str
    attempts_left: int


@dataclass(frozen=True)
class Redirect:
    """Cluster: the room lives on another node; send the same ``join`` to ``url``."""

    TYPE: ClassVar[str] = "redirect"
    url: str


@dataclass(frozen=True)
class JanusJoin:
    """Admitted in a room whose media Janus forwards (docs/janus.md): one pass to enter
    the Janus room once, as ``feed``, with ``token``; a new one after a re-verification."""

    TYPE: ClassVar[str] = "janus"
    url: str
    room: int
    token: str
    feed: int
    display: str


OutMessage = (
    Welcome | SdpAnswer | SdpOffer | StateMessage | ProgressMessage | PromptMessage | Verdict
    | Peers | Error | Bye | Reverify | FlashMessage | HostLobby | Redirect | JanusJoin
)  # fmt: skip
MESSAGE_TYPES: tuple[type[Any], ...] = (
    Welcome, SdpAnswer, SdpOffer, StateMessage, ProgressMessage, PromptMessage, Verdict,
    Peers, Error, Bye, Reverify, FlashMessage, HostLobby, Redirect, JanusJoin,
)  # fmt: skip


def encode(message: OutMessage) -> dict[str, Any]:
    """The JSON object sent on the socket: ``type`` first, then the fields."""
    return {"type": message.TYPE, **dataclasses.asdict(message)}
