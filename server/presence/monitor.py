"""The presence monitor: one per admitted participant, sans-IO.

Why a separate machine from the gate: the gate decides admission from a burst of
frames; presence is a slow, sparse signal (one keyframe every N seconds) whose
job is to *certify* attendance and flag changes, never to decide on one frame.
So each problem must persist for a few consecutive checks before an event is
raised, an event is raised once per episode (not every check), and a check that
could not be made (no keyframe arrived) counts neither for nor against the person.

Per check, from the keyframe: how many faces, and the smallest distance of any of
them to the participant's own templates. A check *passes* when the participant's
face is among the faces seen (so a visitor looking over their shoulder still
flags ``extra.person`` but does not make them absent).

Events (``PresenceEvent.kind``):

* ``presence.lost``: no face for ``lost_checks`` consecutive checks;
* ``identity.mismatch``: faces, none of them the participant's, for
  ``mismatch_checks`` checks (someone else sat down);
* ``extra.person``: more than one face for ``extra_checks`` checks;
* ``presence.unverifiable``: ``unverifiable_checks`` consecutive checks could not
  be made (the keyframe never came, or the run of frames after it stopped short). A
  camera that ignores keyframe requests used to collect only *skipped* checks,
  which count neither way: a crafted stream could sit out presence for good;
* ``presence.camera_off``: the participant switched their camera off (the ``media``
  message with ``video: false``). Not absence and not "no face": while it lasts,
  checks count as made and not passed (attendance needs the camera on) but raise
  no ``presence.lost`` / ``identity.mismatch``;
* ``presence.restored``: a flagged problem is gone (``cleared`` names which; the
  camera switched on again clears ``presence.camera_off``).

Checks come at ``interval_s`` spread by up to ``jitter`` (a fraction of the
interval, drawn from ``rng``), so a stream cannot time its good frames to them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

LOST = "presence.lost"
MISMATCH = "identity.mismatch"
EXTRA = "extra.person"
RESTORED = "presence.restored"
UNVERIFIABLE = "presence.unverifiable"
CAMERA_OFF = "presence.camera_off"
#: every event the monitor raises (for the dashboard, webhooks and the report)
EVENTS = (LOST, MISMATCH, EXTRA, UNVERIFIABLE, CAMERA_OFF, RESTORED)


@dataclass(frozen=True)
class PresenceConfig:
    interval_s: float = 10.0
    lost_checks: int = 2
    mismatch_checks: int = 2
    extra_checks: int = 2
    unverifiable_checks: int = 2
    jitter: float = 0.0


@dataclass(frozen=True)
class PresenceCheck:
    """What one keyframe showed. ``distance`` is the best face's distance to the
    participant's templates (None without a measurable face); ``matched`` whether it
    is under the room's threshold. ``made=False``: no keyframe arrived in time."""

    now: float
    faces: int = 0
    distance: float | None = None
    matched: bool = False
    made: bool = True


@dataclass(frozen=True)
class PresenceEvent:
    kind: str
    now: float
    checks: int  # consecutive checks the condition held
    faces: int
    distance: float | None = None
    cleared: tuple[str, ...] = ()


@dataclass
class PresenceStats:
    made: int = 0
    passed: int = 0
    skipped: int = 0
    camera_off: int = 0  # checks made while the participant's camera was off
    last_check: float | None = None

    @property
    def ratio(self) -> float | None:
        """Checks passed / checks made; None before the first check."""
        return None if self.made == 0 else self.passed / self.made


@dataclass
class PresenceMonitor:
    config: PresenceConfig = field(default_factory=PresenceConfig)
    stats: PresenceStats = field(default_factory=PresenceStats)
    rng: random.Random = field(default_factory=random.SystemRandom)
    _streaks: dict[str, int] = field(
        default_factory=lambda: {LOST: 0, MISMATCH: 0, EXTRA: 0, UNVERIFIABLE: 0}
    )
    _flagged: set[str] = field(default_factory=set)
    _next_due: float | None = None

    @property
    def flags(self) -> tuple[str, ...]:
        """The problems currently raised (for the dashboard)."""
        kinds = (CAMERA_OFF, LOST, MISMATCH, EXTRA, UNVERIFIABLE)
        return tuple(k for k in kinds if k in self._flagged)

    @property
    def camera_is_off(self) -> bool:
        return CAMERA_OFF in self._flagged

    def camera(self, on: bool, now: float) -> list[PresenceEvent]:
        """The participant switched their camera off or on (not a check): one event."""
        if not on and not self.camera_is_off:
            self._flagged.add(CAMERA_OFF)
            self._streaks[LOST] = self._streaks[MISMATCH] = 0
            # "no face" and "someone else" are not true of a camera that is off
            cleared = tuple(k for k in (LOST, MISMATCH) if k in self._flagged)
            self._flagged.difference_update(cleared)
            return [PresenceEvent(CAMERA_OFF, now, 1, 0, None, cleared)]
        if on and self.camera_is_off:
            self._flagged.discard(CAMERA_OFF)
            return [PresenceEvent(RESTORED, now, 1, 0, None, (CAMERA_OFF,))]
        return []

    @property
    def next_due(self) -> float | None:
        """When the next check is due (None: checks are off or not started)."""
        return None if self.config.interval_s <= 0 else self._next_due

    def due(self, now: float) -> bool:
        """Whether a check should be made now (the scheduler asks before each keyframe)."""
        if self.config.interval_s <= 0:
            return False
        return self._next_due is None or now >= self._next_due

    def start(self, now: float) -> None:
        """Admitted (again) at ``now``: the first check is one interval later."""
        self._next_due = now + self._interval()

    def _interval(self) -> float:
        spread = min(max(self.config.jitter, 0.0), 0.9)
        return self.config.interval_s * (1.0 + spread * self.rng.uniform(-1.0, 1.0))

    def feed(self, check: PresenceCheck) -> list[PresenceEvent]:
        self._next_due = check.now + self._interval()
        if not check.made:
            self.stats.skipped += 1
            self._streaks[UNVERIFIABLE] += 1
            streak = self._streaks[UNVERIFIABLE]
            if UNVERIFIABLE in self._flagged or streak < self.config.unverifiable_checks:
                return []
            self._flagged.add(UNVERIFIABLE)
            return [PresenceEvent(UNVERIFIABLE, check.now, streak, 0)]
        self.stats.made += 1
        self.stats.last_check = check.now
        if self.camera_is_off:
            self.stats.camera_off += 1
            return []
        if check.matched:
            self.stats.passed += 1
        conditions = {
            LOST: check.faces == 0,
            MISMATCH: check.faces > 0 and not check.matched,
            EXTRA: check.faces > 1,
            UNVERIFIABLE: False,  # this check was made
        }
        needed = {
            LOST: self.config.lost_checks,
            MISMATCH: self.config.mismatch_checks,
            EXTRA: self.config.extra_checks,
            UNVERIFIABLE: self.config.unverifiable_checks,
        }
        events: list[PresenceEvent] = []
        cleared: list[str] = []
        for kind, holds in conditions.items():
            if holds:
                self._streaks[kind] += 1
                if kind not in self._flagged and self._streaks[kind] >= needed[kind]:
                    self._flagged.add(kind)
                    events.append(
                        PresenceEvent(
                            kind, check.now, self._streaks[kind], check.faces, check.distance
                        )
                    )
            else:
                self._streaks[kind] = 0
                if kind in self._flagged:
                    self._flagged.discard(kind)
                    cleared.append(kind)
        if cleared:
            events.append(
                PresenceEvent(RESTORED, check.now, 1, check.faces, check.distance, tuple(cleared))
            )
        return events
