"""The host decides: let a waiting or refused person in, send an admitted one back to
the lobby, give back attempts (docs/owner.md, "The host decides").

Called from the participant's own task only (``HostAdmit`` / ``HostSendToLobby`` /
``HostReset`` inputs, ``server/inputs.py``), like every other change to a participant.
Every decision is audited with the host and the reason they typed: a host override is
never mistaken for a face match (``kind: host_override``, no distance, liveness "not
judged").
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import gate as g
from .inputs import HostAdmit, HostDecision, HostSendToLobby
from .messages import HostLobby, Verdict
from .session_actions import apply_actions, pin_identity

if TYPE_CHECKING:
    from .participant import Participant

REASON_MAX = 300


def clean_reason(text: str) -> str:
    """The host's reason as audited: one line, bounded."""
    return " ".join(text.split())[:REASON_MAX]


async def apply_host_decision(p: Participant, decision: HostDecision) -> bool:
    if p.closed:
        return False
    if isinstance(decision, HostAdmit):
        return await _admit(p, decision)
    if isinstance(decision, HostSendToLobby):
        return await _to_lobby(p, decision)
    return await _reset(p, decision.reason, decision.host)


async def _admit(p: Participant, decision: HostAdmit) -> bool:
    if p.media.pc is None or p.media.publisher is None:
        return False  # no media yet: nothing could be forwarded
    before = p.gate.state
    distance = p.gate.last_distance
    actions = p.gate.host_admit(p.claimed_person)
    if not actions:
        return False
    await p.media.stop_sampling()
    p.arm_idle(False)
    # The identity presence checks use: the claimed person (invite rooms) or nobody.
    fallback = distance if distance is not None else p.checker.target.threshold
    p.identity = pin_identity(p, g.Admitted(p.claimed_person, fallback))
    p.name = p.identity.name
    p.services.audit(
        p,
        "participant.admitted",
        {
            "distance": None if distance is None else round(distance, 4),
            "reverify": False,
            "kind": "host_override",
            "liveness": "not judged",
            "host": decision.host,
            "host_reason": decision.reason,
            "gate_state": before.value,
            "failures": p.gate.failures,
        },
        person_id=p.claimed_person,
    )
    p.reverifying = False
    p.ever_admitted = True
    await p.services.audit_settled()
    await apply_actions(p, actions)  # state {admitted}
    p.send(Verdict(True, None, f"The host let you in. Welcome, {p.name}.", 0, False))
    p.runtime.admit(p)
    p.presence.start(time.monotonic())
    return True


async def _to_lobby(p: Participant, decision: HostSendToLobby) -> bool:
    actions = p.gate.send_to_lobby()
    if not actions:
        return False
    await p.media.stop_probe()
    p.runtime.unseat(p)
    p.services.audit(
        p, "host.sent_to_lobby", {"host": decision.host, "host_reason": decision.reason}
    )
    await p.services.audit_settled()
    await apply_actions(p, actions)  # state {failed}
    message = "The host sent you back to the lobby. Start the check again to come back in."
    if decision.reason:
        message = f"{message} The host said: “{decision.reason}”"
    p.send(HostLobby(message, p.gate.attempts_left))
    p.arm_idle()
    return True


async def _reset(p: Participant, reason: str, host: str) -> bool:
    if p.admitted:
        return False
    used = p.gate.failures
    p.gate.reset_attempts()
    p.services.audit(
        p, "host.reset", {"host": host, "host_reason": reason, "failures_cleared": used}
    )
    await p.services.audit_settled()
    if p.gate.state is g.State.FAILED:
        p.send(HostLobby("The host gave you your attempts back: try again.", p.gate.attempts_left))
        p.arm_idle()
    return True


# -- locks of people no longer connected (a lock ends the visit) --


@dataclass(frozen=True)
class Lock:
    """A lockout the owner may lift: an invite link or an address in this room."""

    id: str  # opaque: a digest of the key, never the invite token itself
    kind: str  # "invite" or "address"
    label: str  # the invite id (as on the invites list) or the client address
    until: float  # time.monotonic() clock


def lock_id(key: Hashable) -> str:
    return hashlib.sha256(str(key).encode()).hexdigest()[:16]


def invite_id_of(token: str) -> str:
    """The stored id of an invite (first 16 hex of its token's SHA-256, migration 2)."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def room_locks(
    locks: Mapping[Hashable, float], room_id: str, invite_ids: set[str]
) -> list[Lock]:
    """The locks that concern this room: its invites and its per-room address keys."""
    found: list[Lock] = []
    for key, until in locks.items():
        if not isinstance(key, str):
            continue
        scope, _, rest = key.partition(":")
        if scope == "invite" and invite_id_of(rest) in invite_ids:
            found.append(Lock(lock_id(key), "invite", invite_id_of(rest), until))
        elif scope == "ip" and rest.startswith(f"{room_id}:"):
            found.append(Lock(lock_id(key), "address", rest[len(room_id) + 1 :], until))
    return sorted(found, key=lambda lock: lock.until)


def key_of_lock(locks: Mapping[Hashable, float], wanted: str) -> Hashable | None:
    return next((key for key in locks if lock_id(key) == wanted), None)
