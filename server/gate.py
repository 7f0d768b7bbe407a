"""Per-participant admission state machine, sans-IO.

Like aioquic's ``QuicConnection``, the gate never reads a clock, a socket or a
model: the caller feeds it events (with the time they happened) and carries out
the actions it returns. That keeps every path -- timeouts, lockout, re-verify --
a fast, deterministic unit test, and keeps asyncio/aiortc at the edges.

States::

    lobby --start--> checking --enough matching, moving frames--> admitted
                        |  \\--wrong person / timeout--> failed --ready--> checking
                        |                                  \\--no attempts left--> denied
                        \\--lockout reached--> locked
    admitted --reverify--> reverifying --pass--> admitted
                                        \\--fail--> denied
"""

from __future__ import annotations

import enum
import math
import statistics
from collections import deque
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field


class State(enum.Enum):
    LOBBY = "lobby"
    CHECKING = "checking"
    FAILED = "failed"
    ADMITTED = "admitted"
    REVERIFYING = "reverifying"
    DENIED = "denied"
    LOCKED = "locked"
    LEFT = "left"


class Reason(enum.Enum):
    """Why a frame is held or an attempt refused; each maps to advice a person can act on."""

    NO_FACE = "no_face"
    MULTIPLE_FACES = "multiple_faces"
    POOR_QUALITY = "poor_quality"
    NOT_RECOGNISED = "not_recognised"
    AMBIGUOUS = "ambiguous"
    NO_MOVEMENT = "no_movement"
    LIVENESS = "liveness"
    TIMED_OUT = "timed_out"
    LOCKED_OUT = "locked_out"
    NOT_ENROLLED = "not_enrolled"


MESSAGES: dict[Reason, str] = {
    Reason.NO_FACE: "No face found. Face the camera in good light.",
    Reason.MULTIPLE_FACES: "More than one face in view. Only the person joining may be in frame.",
    Reason.POOR_QUALITY: "The picture is not good enough. Move closer and add light.",
    Reason.NOT_RECOGNISED: "Not recognised as an enrolled person for this room.",
    Reason.AMBIGUOUS: "Could not tell enrolled people apart. Ask the owner to check enrolment.",
    Reason.NO_MOVEMENT: "No movement seen. Move your head slightly; a still picture is refused.",
    Reason.LIVENESS: "Liveness check failed. A live person must be in front of the camera.",
    Reason.TIMED_OUT: "Timed out before a decision. Check your camera and try again.",
    Reason.LOCKED_OUT: "Too many failed attempts. Try again later.",
    Reason.NOT_ENROLLED: "Nobody is enrolled for this invite yet. Ask the room owner.",
}


@dataclass(frozen=True)
class Match:
    """Result of comparing one frame's face with the templates the gate is checking against."""

    person_id: str | None
    distance: float
    accepted: bool
    ambiguous: bool = False


@dataclass(frozen=True)
class Observation:
    """What the face pipeline saw in one sampled frame.

    ``center`` and ``width`` are fractions of the frame so motion is resolution-free.
    ``quality`` holds human-readable problems (empty = good enough to judge).
    """

    faces: int
    match: Match | None = None
    center: tuple[float, float] = (0.5, 0.5)
    width: float = 0.0
    quality: tuple[str, ...] = ()


# ---- events -----------------------------------------------------------------


@dataclass(frozen=True)
class Start:
    """Media is flowing and the participant is ready for an attempt."""

    now: float


@dataclass(frozen=True)
class FrameAnalysed:
    now: float
    observation: Observation


@dataclass(frozen=True)
class Tick:
    now: float


@dataclass(frozen=True)
class ReverifyRequested:
    now: float


@dataclass(frozen=True)
class Leave:
    now: float


Event = Start | FrameAnalysed | Tick | ReverifyRequested | Leave


# ---- actions ----------------------------------------------------------------


@dataclass(frozen=True)
class StateChanged:
    state: State


@dataclass(frozen=True)
class Progress:
    frames: int
    required: int
    hold: Reason | None = None
    detail: str = ""


@dataclass(frozen=True)
class Admitted:
    person_id: str | None
    distance: float
    reverify: bool = False


@dataclass(frozen=True)
class Refused:
    """One attempt failed; ``final`` means no further attempt is allowed."""

    reason: Reason
    attempts_left: int
    final: bool
    distance: float | None = None


@dataclass(frozen=True)
class LockedOut:
    until: float


Action = StateChanged | Progress | Admitted | Refused | LockedOut


# ---- policy and lockout -----------------------------------------------------


@dataclass(frozen=True)
class GatePolicy:
    attempt_timeout_s: float = 20.0
    max_attempts: int = 3
    frames_required: int = 3
    min_motion: float = 0.02
    mismatch_frames: int = 3


@dataclass
class LockoutTracker:
    """Counts failures per key (invite, client IP) inside a sliding window.

    Shared by every gate of a server; pure like the gate itself: time is passed in.
    """

    failures: int = 5
    window_s: float = 180.0
    duration_s: float = 1800.0
    _history: dict[Hashable, deque[float]] = field(default_factory=dict)
    _locked_until: dict[Hashable, float] = field(default_factory=dict)

    def locked_until(self, keys: Sequence[Hashable], now: float) -> float | None:
        until = max((self._locked_until.get(k, 0.0) for k in keys), default=0.0)
        return until if until > now else None

    def record_failure(self, keys: Sequence[Hashable], now: float) -> float | None:
        """Remember a failure; return the lockout end if this failure triggers one."""
        triggered: float | None = None
        for key in keys:
            history = self._history.setdefault(key, deque())
            history.append(now)
            while history and history[0] <= now - self.window_s:
                history.popleft()
            if len(history) >= self.failures:
                self._locked_until[key] = now + self.duration_s
                history.clear()
                triggered = now + self.duration_s
        return triggered

    def forget_expired(self, now: float) -> None:
        """Drop stale entries so memory does not grow with every IP ever seen."""
        for key in [k for k, t in self._locked_until.items() if t <= now]:
            del self._locked_until[key]
        for key in [k for k, h in self._history.items() if not h or h[-1] <= now - self.window_s]:
            del self._history[key]


# ---- the machine ------------------------------------------------------------


@dataclass
class _Attempt:
    started: float
    deadline: float
    person_id: str | None = None
    distances: list[float] = field(default_factory=list)
    centers: list[tuple[float, float]] = field(default_factory=list)
    widths: list[float] = field(default_factory=list)
    mismatches: int = 0
    mismatch_distance: float | None = None
    hold: Reason | None = None
    seen_face: bool = False


class Gate:
    """Admission decisions for one participant."""

    def __init__(
        self,
        policy: GatePolicy,
        lockout: LockoutTracker,
        lockout_keys: Sequence[Hashable] = (),
    ) -> None:
        self.policy = policy
        self.lockout = lockout
        self.lockout_keys = tuple(lockout_keys)
        self.state = State.LOBBY
        self.failures = 0
        self.person_id: str | None = None
        self.distance: float | None = None
        self._attempt: _Attempt | None = None

    @property
    def attempts_left(self) -> int:
        return max(0, self.policy.max_attempts - self.failures)

    def handle(self, event: Event) -> list[Action]:
        if self.state in (State.DENIED, State.LOCKED, State.LEFT):
            return []
        if isinstance(event, Leave):
            self._attempt = None
            return self._go(State.LEFT)
        if isinstance(event, Start):
            return self._start(event.now)
        if isinstance(event, ReverifyRequested):
            if self.state is not State.ADMITTED:
                return []
            self._attempt = self._new_attempt(event.now)
            return self._go(State.REVERIFYING)
        if isinstance(event, Tick):
            return self._tick(event.now)
        return self._frame(event.now, event.observation)

    def resume_admitted(self, person_id: str | None, distance: float) -> list[Action]:
        """Re-enter after a short network blip inside the rejoin grace window."""
        self.person_id, self.distance = person_id, distance
        return [*self._go(State.ADMITTED), Admitted(person_id, distance)]

    # -- internals --

    def _go(self, state: State) -> list[Action]:
        if state is self.state:
            return []
        self.state = state
        return [StateChanged(state)]

    def _new_attempt(self, now: float) -> _Attempt:
        return _Attempt(started=now, deadline=now + self.policy.attempt_timeout_s)

    def _start(self, now: float) -> list[Action]:
        if self.state not in (State.LOBBY, State.FAILED):
            return []
        until = self.lockout.locked_until(self.lockout_keys, now)
        if until is not None:
            return [*self._go(State.LOCKED), LockedOut(until)]
        self._attempt = self._new_attempt(now)
        return [*self._go(State.CHECKING), Progress(0, self.policy.frames_required)]

    def _tick(self, now: float) -> list[Action]:
        attempt = self._attempt
        if attempt is None or self.state not in (State.CHECKING, State.REVERIFYING):
            return []
        if now < attempt.deadline:
            return []
        if not attempt.seen_face:
            reason = Reason.NO_FACE
        elif attempt.hold is not None:
            reason = attempt.hold
        else:
            reason = Reason.TIMED_OUT
        return self._fail(now, reason, None)

    def _frame(self, now: float, obs: Observation) -> list[Action]:
        attempt = self._attempt
        if attempt is None or self.state not in (State.CHECKING, State.REVERIFYING):
            return []
        if now >= attempt.deadline:
            return self._tick(now)
        required = self.policy.frames_required
        held = len(attempt.distances)
        if obs.faces == 0:
            return self._hold(attempt, Reason.NO_FACE, held)
        attempt.seen_face = True
        if obs.faces > 1:
            return self._hold(attempt, Reason.MULTIPLE_FACES, held)
        if obs.quality or obs.match is None:
            return self._hold(attempt, Reason.POOR_QUALITY, held, "; ".join(obs.quality))
        match = obs.match
        if match.ambiguous:
            return self._fail(now, Reason.AMBIGUOUS, match.distance)
        if not match.accepted or (
            attempt.person_id is not None and match.person_id != attempt.person_id
        ):
            attempt.mismatches += 1
            attempt.mismatch_distance = match.distance
            # A different face replacing the first one mid-attempt restarts the evidence.
            attempt.distances.clear()
            attempt.centers.clear()
            attempt.widths.clear()
            attempt.person_id = None
            if attempt.mismatches >= self.policy.mismatch_frames:
                return self._fail(now, Reason.NOT_RECOGNISED, match.distance)
            return [Progress(0, required)]
        attempt.person_id = match.person_id
        attempt.distances.append(match.distance)
        attempt.centers.append(obs.center)
        attempt.widths.append(obs.width)
        attempt.hold = None
        if len(attempt.distances) < required:
            return [Progress(len(attempt.distances), required)]
        if _motion(attempt.centers, attempt.widths) < self.policy.min_motion:
            attempt.hold = Reason.NO_MOVEMENT
            # Keep a sliding window of the latest frames so a later movement still counts.
            del attempt.distances[0], attempt.centers[0], attempt.widths[0]
            return [Progress(required - 1, required, Reason.NO_MOVEMENT)]
        return self._admit(attempt)

    def _hold(self, attempt: _Attempt, reason: Reason, held: int, detail: str = "") -> list[Action]:
        attempt.hold = reason
        return [Progress(held, self.policy.frames_required, reason, detail)]

    def _admit(self, attempt: _Attempt) -> list[Action]:
        distance = statistics.median(attempt.distances)
        reverify = self.state is State.REVERIFYING
        self.person_id, self.distance = attempt.person_id, distance
        self._attempt = None
        return [*self._go(State.ADMITTED), Admitted(attempt.person_id, distance, reverify)]

    def _fail(self, now: float, reason: Reason, distance: float | None) -> list[Action]:
        reverify = self.state is State.REVERIFYING
        self._attempt = None
        self.failures += 1
        lock_until = self.lockout.record_failure(self.lockout_keys, now)
        if lock_until is not None:
            return [
                Refused(Reason.LOCKED_OUT, 0, True, distance),
                *self._go(State.LOCKED),
                LockedOut(lock_until),
            ]
        final = reverify or self.attempts_left == 0
        refused = Refused(reason, 0 if final else self.attempts_left, final, distance)
        return [refused, *self._go(State.DENIED if final else State.FAILED)]


def _motion(centers: Sequence[tuple[float, float]], widths: Sequence[float]) -> float:
    """Largest movement across the window, in face widths: a still photo scores ~0."""
    scale = max(statistics.median(widths), 1e-6)
    spread = max(math.dist(a, b) for a in centers for b in centers)
    size_change = (max(widths) - min(widths)) / scale
    return max(spread / scale, size_change)
