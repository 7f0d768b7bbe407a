"""Everything that can happen to a participant, as values on its one input queue.

The socket reader, the frame sampler, the presence prober, the room (asking for a
renegotiation) and the host (asking for a re-verification, or deciding: let in,
send back to the lobby, give attempts back) only *put* these; the
participant's own task takes them one at a time, in order, and is the only code
that changes the participant's state (``server/participant.py``).
Client messages (``server/signalling.py``) travel on the same queue unchanged.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .gate import Observation
from .presence import PresenceCheck
from .roles import CloseReason
from .signalling import ClientMessage

if TYPE_CHECKING:
    from .rtc.forward import Publisher


@dataclass(frozen=True)
class FrameResult:
    """One sampled frame analysed in the executor."""

    now: float
    observation: Observation


@dataclass(frozen=True)
class AnalysisError:
    """The analysis of a frame raised (already logged with its traceback)."""

    now: float
    detail: str


@dataclass(frozen=True)
class PresenceResult:
    check: PresenceCheck


@dataclass(frozen=True)
class PcStateChanged:
    state: str


@dataclass(frozen=True)
class RenegotiateRequest:
    """The room changed this participant's forwarded tracks: offer, await the answer."""

    done: asyncio.Future[None]


@dataclass(frozen=True)
class ReverifyRequest:
    """The host asks for a re-verification; ``done`` says whether it started."""

    done: asyncio.Future[bool]


@dataclass(frozen=True)
class HostAdmit:
    """The host lets this person in without (or despite) the gate's decision."""

    reason: str
    host: str  # who decided (the owner's email), for the audit record
    done: asyncio.Future[bool]


@dataclass(frozen=True)
class HostSendToLobby:
    """The host takes this admitted person out of the room: verify again to come back."""

    reason: str
    host: str
    done: asyncio.Future[bool]


@dataclass(frozen=True)
class HostReset:
    """The host gives back every attempt and lifts the locks on this person's keys."""

    reason: str
    host: str
    done: asyncio.Future[bool]


HostDecision = HostAdmit | HostSendToLobby | HostReset


@dataclass(frozen=True)
class CloseRequest:
    reason: CloseReason
    grace: bool = True
    code: str | None = None  # an ``error`` to send first (fatal), e.g. ``replaced``
    message: str = ""


@dataclass(frozen=True)
class PresenceSource:
    """The server's own subscription to this participant's feed on Janus: presence
    checks judge what Janus forwards to the others (docs/janus.md)."""

    publisher: Publisher


Input = (
    ClientMessage | FrameResult | AnalysisError | PresenceResult | PcStateChanged
    | RenegotiateRequest | ReverifyRequest | HostAdmit | HostSendToLobby | HostReset
    | CloseRequest | PresenceSource
)  # fmt: skip
