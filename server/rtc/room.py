"""SFU room: wires admitted publishers to every other admitted peer, and only those.

Why here and not in the signalling: what a peer may receive is a privacy rule
("nobody unadmitted receives a byte of room media"), so one small object owns the
full map of who receives whom. A peer that is not in the room has no forwarded
track on its peer connection, hence no sender and no RTP.

Mechanics (aiortc 1.16.0, which has no ``removeTrack``):

* admit: for each other admitted member, one ``sendonly`` transceiver per kind is
  added to the viewer's pc, carrying a ``ForwardedTrack`` from the publisher, with
  codec preferences pinned to the publisher's codec (+RTX for video). We always add
  a new transceiver (``addTransceiver``), never ``addTrack``: aiortc's ``addTrack``
  reuses a transceiver whose sender has no track, which after a removal is a
  stopped sender that would never send again.
* The leg's sender gets the publisher's stream id as its msid stream
  (``stream_id_for``), so the browser's ``ontrack`` event groups a publisher's audio
  and video and tells whose they are. ``SfuRoom.legs()`` also exposes the mids.
* remove: every leg from or to the participant is retired: its ``ForwardedTrack`` is
  stopped (the sender's RTP loop ends at once: no more media), the transceiver is set
  ``inactive`` and its sender is stopped (RTCP BYE: an aiortc viewer's track ends;
  a browser mutes the track and removes it from its stream when it applies the
  ``inactive`` m-line). The m-line itself stays (aiortc cannot recycle m-lines), so a
  long meeting with much churn accumulates inactive m-lines.
* Every change is followed by a renegotiation of each affected pc through the
  ``renegotiate(participant_id)`` callback, serialised per pc (``Negotiator``).
  Senders retired while an offer was in flight are stopped again after that round,
  in case the round's answer started them.

aiortc internals used: ``RTCRtpSender._send_keyframe`` (replaced per sender to
forward a viewer's PLI/FIR to the publisher), ``RTCRtpSender._stream_id`` (msid).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCPeerConnection, RTCRtpTransceiver

from .codecs import forwarding_preferences
from .forward import KINDS, Publisher
from .forwarded import ForwardedTrack
from .negotiation import Negotiator, Renegotiate, log_failures

logger = logging.getLogger(__name__)

_STREAM_ID_SAFE = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def stream_id_for(participant_id: str) -> str:
    """The msid stream id viewers see for ``participant_id``'s tracks.

    The participant id itself when it is a safe msid token, else a stable hash.
    """
    if _STREAM_ID_SAFE.fullmatch(participant_id):
        return participant_id
    return "vg-" + hashlib.sha256(participant_id.encode()).hexdigest()[:32]


@dataclass
class Leg:
    """One forwarded track: ``publisher_id``'s ``kind`` sent to ``viewer_id``."""

    publisher_id: str
    viewer_id: str
    kind: str
    track: ForwardedTrack
    transceiver: RTCRtpTransceiver

    @property
    def mid(self) -> str | None:
        """The viewer-side m-line id, known once the offer adding it was created."""
        return self.transceiver.mid


@dataclass(eq=False)
class _Member:
    participant_id: str
    pc: RTCPeerConnection
    publisher: Publisher
    negotiator: Negotiator
    retired: list[RTCRtpTransceiver] = field(default_factory=list)


def _usable(pc: RTCPeerConnection) -> bool:
    return pc.signalingState != "closed" and pc.connectionState not in ("closed", "failed")


class SfuRoom:
    """Admitted participants and the forwarding legs between them.

    :param renegotiate: ``await renegotiate(participant_id)`` must run one complete
        server-initiated offer/answer on that participant's pc (createOffer,
        setLocalDescription, send, await and apply the answer). The room never calls
        it concurrently for the same pc.
    :param negotiation_timeout: seconds allowed per renegotiation.
    """

    def __init__(self, renegotiate: Renegotiate, *, negotiation_timeout: float = 15.0) -> None:
        self._renegotiate = renegotiate
        self._timeout = negotiation_timeout
        self._members: dict[str, _Member] = {}
        self._legs: list[Leg] = []

    @property
    def participants(self) -> list[str]:
        return list(self._members)

    def is_admitted(self, participant_id: str) -> bool:
        return participant_id in self._members

    def legs(self, *, viewer_id: str | None = None, publisher_id: str | None = None) -> list[Leg]:
        """Current legs, optionally filtered (e.g. the lead maps mids to publishers)."""
        return [
            leg
            for leg in self._legs
            if (viewer_id is None or leg.viewer_id == viewer_id)
            and (publisher_id is None or leg.publisher_id == publisher_id)
        ]

    def pause_viewer(self, participant_id: str) -> None:
        """Stop every leg *to* ``participant_id`` (re-verification: no room media meanwhile)."""
        for leg in self.legs(viewer_id=participant_id):
            leg.track.pause_viewer()

    def resume_viewer(self, participant_id: str) -> None:
        for leg in self.legs(viewer_id=participant_id):
            leg.track.resume_viewer()

    async def admit(self, participant_id: str, pc: RTCPeerConnection, publisher: Publisher) -> None:
        """Add a verified participant: it receives everyone, everyone receives it.

        Returns once every affected pc finished a renegotiation carrying the change.
        A failed or timed-out renegotiation is logged, not raised: one slow viewer
        must not block another's admission.
        """
        await self.attach(participant_id, pc, publisher)

    def attach(
        self, participant_id: str, pc: RTCPeerConnection, publisher: Publisher
    ) -> Coroutine[Any, Any, None]:
        """``admit`` in two halves: the legs exist when this returns; the returned
        coroutine runs the renegotiations (the session layer runs it in the background,
        so no participant's own task ever waits for its own answer)."""
        if participant_id in self._members:
            raise ValueError(f"{participant_id} is already admitted")
        if publisher.participant_id != participant_id:
            raise ValueError("publisher belongs to another participant")
        if not _usable(pc):
            raise ValueError(f"{participant_id}: peer connection is closed")
        negotiator = Negotiator(
            participant_id,
            self._renegotiate,
            timeout=self._timeout,
            after_round=lambda: self._stop_retired(member),
        )
        member = _Member(participant_id, pc, publisher, negotiator)
        changed: dict[str, _Member] = {}
        for other in self._members.values():
            for kind in KINDS:
                if self._add_leg(other, member, kind):
                    changed[member.participant_id] = member
                if self._add_leg(member, other, kind):
                    changed[other.participant_id] = other
        self._members[participant_id] = member
        return self._negotiate(list(changed.values()))

    def _add_leg(self, publisher: _Member, viewer: _Member, kind: str) -> bool:
        if not (_usable(viewer.pc) and _usable(publisher.pc)):
            return False  # a member that hung up and awaits remove()
        codec = publisher.publisher.codec(kind)
        if codec is None:
            return False
        try:
            preferences = forwarding_preferences(codec)
        except ValueError:
            logger.warning("%s: cannot forward %s", publisher.participant_id, codec.mimeType)
            return False
        track = publisher.publisher.subscribe(kind)
        if track is None:
            return False
        transceiver = viewer.pc.addTransceiver(track, direction="sendonly")
        transceiver.setCodecPreferences(preferences)
        sender = transceiver.sender
        sender._stream_id = stream_id_for(publisher.participant_id)
        request = publisher.publisher.request_keyframe

        def forward_keyframe_request() -> None:
            request()

        # aiortc calls sender._send_keyframe() on PLI/FIR from the viewer; with
        # pre-encoded packets it would do nothing, so ask the publisher instead.
        sender._send_keyframe = forward_keyframe_request  # type: ignore[method-assign]
        self._legs.append(
            Leg(publisher.participant_id, viewer.participant_id, kind, track, transceiver)
        )
        return True

    async def remove(self, participant_id: str) -> None:
        """Take a participant out: its media stops reaching others and theirs stops
        reaching it, at once; then every affected pc is renegotiated.

        The publisher itself is left open (decoding may restart, e.g. back in the
        lobby); close it with ``Publisher.close()`` when the participant leaves.
        """
        await self.detach(participant_id)

    def detach(self, participant_id: str) -> Coroutine[Any, Any, None]:
        """``remove`` in two halves: forwarding has stopped when this returns; the
        returned coroutine stops the senders and renegotiates the affected pcs."""
        member = self._members.pop(participant_id, None)
        if member is None:
            return _nothing()
        affected: dict[str, _Member] = {}
        for leg in list(self._legs):
            if participant_id not in (leg.publisher_id, leg.viewer_id):
                continue
            self._legs.remove(leg)
            viewer = member if leg.viewer_id == participant_id else self._members[leg.viewer_id]
            leg.track.stop()
            leg.transceiver.direction = "inactive"
            viewer.retired.append(leg.transceiver)
            affected[viewer.participant_id] = viewer
        return self._after_detach(member, list(affected.values()))

    async def _after_detach(self, member: _Member, affected: list[_Member]) -> None:
        await asyncio.gather(*(self._stop_retired(m) for m in affected))
        others = [m for m in affected if m is not member]
        if member in affected and _usable(member.pc):
            others.append(member)
        await self._negotiate(others)
        await member.negotiator.close()

    async def _stop_retired(self, member: _Member) -> None:
        retired, member.retired = member.retired, []
        for transceiver in retired:
            await transceiver.sender.stop()
        # keep them listed for one more sweep if an in-flight round may start them
        if member.negotiator.busy:
            member.retired.extend(t for t in retired if t.currentDirection != "inactive")

    async def _negotiate(self, members: list[_Member]) -> None:
        members = [m for m in members if _usable(m.pc)]
        if not members:
            return
        results = await asyncio.gather(
            *(m.negotiator.negotiate() for m in members), return_exceptions=True
        )
        log_failures(list(results), "renegotiation")

    async def close(self) -> None:
        """Remove everyone (no renegotiation is awaited for pcs already closed)."""
        for participant_id in list(self._members):
            await self.remove(participant_id)


async def _nothing() -> None:
    return None
