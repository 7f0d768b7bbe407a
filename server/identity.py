"""Who a participant was admitted as, fixed at admission.

Why a separate immutable value: presence checks, host re-verification and the
attendance report must all speak of the *same* person. In an open (1:N) room the
attempt identifies someone among everyone enrolled; from then on the session is
that person's, checked 1:1 against that person's templates only, with the room's
engines (a different enrolled person passing a re-verification must not silently
change who the session is). Rejoins inside the grace window carry it over unchanged.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .verify import CheckTarget


@dataclass(frozen=True)
class AdmittedIdentity:
    person_id: str | None
    name: str
    target: CheckTarget  # 1:1 on this person: their templates for every engine of the room
    distance: float
    admitted_at: float  # wall clock (time.time()), for the audit trail

    @property
    def checkable(self) -> bool:
        """Presence and re-verification need this person's templates to compare with."""
        return self.person_id is not None and self.target.enrolled


def pin_target(target: CheckTarget, person_id: str) -> CheckTarget:
    """A 1:1 target on ``person_id`` cut from a 1:1 or 1:N ``target`` (same engines,
    same threshold), independent of the room's later gallery changes."""
    if target.claimed == person_id:
        return target
    templates = target.templates_of(person_id)
    empty = np.empty((0, 128), np.float32)
    return CheckTarget(
        person_id,
        {person_id: templates.get("dlib", empty)},
        target.threshold,
        margin=target.margin,
        engine=target.engine,
        engine_templates={e: {person_id: t} for e, t in templates.items() if e != "dlib"},
    )


@dataclass(frozen=True)
class GraceEntry:
    """An admitted session that dropped: who it was, where, until when it may resume."""

    room_id: str
    ip: str
    identity: AdmittedIdentity
    device: str | None
    expires: float  # time.monotonic()

    def fits(self, room_id: str, ip: str, device: str | None) -> bool:
        """Unexpired, this room, this browser (its device cookie, else its address)."""
        if self.expires < time.monotonic() or self.room_id != room_id:
            return False
        return device == self.device if self.device is not None else ip == self.ip
