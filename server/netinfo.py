"""The client's connectivity report (``netinfo``) into the audit log.

Why the client reports it: only the browser knows which candidate pair it selected
and whether its TURN allocation worked; the server sees a remote address, which
looks the same for a relay and for a NAT. The audit record lets an owner answer
"why could this person not join?" (``media.failed`` with a cause) and see how
many joins need the relay (``media.connected`` with the path).

The participant's task calls ``record_netinfo(participant, msg)`` on each
``NetInfo`` message. A client gets a few reports per participant
(``MAX_REPORTS``); more are dropped silently, so a page cannot flood the audit log.
"""

from __future__ import annotations

import logging
import weakref
from typing import TYPE_CHECKING, Any

from .signalling import NetInfo

if TYPE_CHECKING:
    from .participant import Participant

log = logging.getLogger(__name__)

MAX_REPORTS = 8
_reports: weakref.WeakKeyDictionary[Participant, int] = weakref.WeakKeyDictionary()


def audit_event(msg: NetInfo) -> tuple[str, dict[str, Any]]:
    """The audit event name and details for one report (pure)."""
    details: dict[str, Any] = {
        key: value
        for key, value in (
            ("path", msg.path),
            ("local", msg.local),
            ("remote", msg.remote),
            ("protocol", msg.protocol),
            ("relay_protocol", msg.relay_protocol),
            ("cause", msg.cause),
            ("elapsed_ms", msg.elapsed_ms),
        )
        if value is not None
    }
    return f"media.{msg.state}", details


def record_netinfo(participant: Participant, msg: NetInfo) -> None:
    """Audit one report (at most ``MAX_REPORTS`` per participant)."""
    count = _reports.get(participant, 0)
    if count >= MAX_REPORTS:
        return
    _reports[participant] = count + 1
    event, details = audit_event(msg)
    log.info("participant %s: %s %s", participant.id, event, details)
    participant.services.audit(participant, event, details)
