"""Audit events in a teacher's words, for the dashboard and the reports.

Why here and in Python: the room page's first paint (Jinja), the live dashboard's
pushes (``server/audit.py``) and the printable report all say the same sentence for
the same record; the raw event code stays available (the page shows it on hover).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Why an attempt or a visit was refused, completing "...: <reason>".
REASONS = {
    "no_face": "no face in front of the camera",
    "multiple_faces": "more than one face in the picture",
    "poor_quality": "the picture was too dark, blurred or far away",
    "no_movement": "the face did not move (a still picture?)",
    "not_recognised": "not recognised",
    "ambiguous": "looks like two enrolled people: check their photos",
    "liveness": "not a live person in front of the camera (a photo or a screen?)",
    "timed_out": "the check ran out of time",
    "internal": "a server error interrupted the check (not counted)",
    "locked_out": "locked after too many failed attempts",
}


def reason_text(code: object) -> str:
    return REASONS.get(str(code), str(code or "no reason given"))


def sentence(event: str, details: Mapping[str, Any], *, invited: bool = True) -> str:
    """One audit record as a sentence. ``invited``: the visitor came with a person's
    own link (so a refusal means someone else, or they, failed on *their* link)."""
    name = str(details.get("name") or "Someone")
    who = f"{name}'s link" if invited else name
    reason = reason_text(details.get("reason"))
    host = details.get("host") or "The host"
    said = f": “{details['host_reason']}”" if details.get("host_reason") else ""
    left = details.get("attempts_left")
    if event == "participant.admitted":
        kind = details.get("kind")
        if kind == "host_override":
            return f"{host} let {name} in without a passed check{said}"
        if kind == "rejoin":
            return f"{name} came back after a short connection drop"
        return f"{name} was recognised and let in"
    if event == "attempt.failed":
        if details.get("reason") == "not_recognised" and invited:
            text = f"{name}'s link was used by someone else: not recognised"
        else:
            text = f"{who} was not let in: {reason}"
        if isinstance(left, int):
            text += f" ({left} attempt{'' if left == 1 else 's'} left)"
        return text
    if event == "participant.denied":
        if details.get("reason") == "not_recognised" and invited:
            return f"{name}'s link was used by someone else and refused: not recognised"
        return f"{who} was refused: {reason}"
    if event == "participant.left":
        return f"{name} left" if details.get("by_choice") else f"{name}'s connection ended"
    if event == "participant.replaced":
        return f"{name} joined from another device; the older session was closed"
    if event == "reverify.requested":
        return f"{name} was asked to verify again"
    if event == "reverify.passed":
        return f"{name} verified again"
    if event == "reverify.failed":
        return f"{name} failed to verify again ({reason}) and was removed"
    if event == "presence.lost":
        return f"Nobody was in front of {name}'s camera"
    if event == "identity.mismatch":
        return f"Someone other than {name} was in front of {name}'s camera"
    if event == "extra.person":
        return f"{name} was not alone in front of the camera"
    if event == "presence.unverifiable":
        return f"{name}'s camera sent no picture that could be checked"
    if event == "presence.camera_off":
        return f"{name} switched their camera off"
    if event == "presence.restored":
        if tuple(details.get("cleared") or ()) == ("presence.camera_off",):
            return f"{name} switched their camera on again"
        return f"{name} was back in front of the camera"
    if event == "host.sent_to_lobby":
        return f"{host} sent {name} back to the lobby{said}"
    if event == "host.reset":
        return f"{host} gave {name} their attempts back{said}"
    if event == "lock.lifted":
        what = "an invite link" if details.get("kind") == "invite" else "an address"
        return f"{host} lifted the lock on {what} ({details.get('label', '')}){said}"
    if event == "person.enrolled":
        return f"Photos were enrolled for {name}"
    if event == "person.deleted":
        return f"{name} was removed from the room with their photos and templates"
    if event == "invite.revoked":
        return "An invite link was revoked"
    if event == "meeting.ended":
        return "The meeting ended (the room emptied)"
    return event
