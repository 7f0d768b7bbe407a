"""Per-participant admission state machine, sans-IO.

Like aioquic's ``QuicConnection``, the gate never reads a clock, a socket or a
model: the caller feeds it events (with the time they happened) and carries out
the actions it returns. That keeps every path -- timeouts, lockout, re-verify --
a fast, deterministic unit test, and keeps asyncio/aiortc at the edges.

States::

    lobby --start--> checking --enough matching frames--> challenge --all steps--> admitted
                        |  \\--wrong person / timeout--> failed --ready--> checking
                        |           challenge --wrong/late/lost, passive cue--> failed
                        |                                  \\--no attempts left--> denied
                        \\--lockout reached--> locked
    admitted --reverify--> reverifying --(challenge)--> admitted
                                        \\--fail--> denied

Liveness follows the room's policy (``GatePolicy.liveness``): ``off`` keeps the old
stand-in (enough matching frames with some head movement), ``passive`` adds the
passive cues over a few seconds, ``active`` runs a random challenge of 2-3 actions
prompted one at a time (``Prompt`` actions, each with a time limit) after identity is
established, ``active+passive`` (the default) does both. The challenge must be done by
the same face throughout: the face track must stay continuous and the embedding at
the end must match the one at the start. Failures are ``Reason.LIVENESS``.

Policies with ``light`` first run the screen-light challenge (``liveness/flash.py``): a
``Flash`` action asks the page to show a random colour sequence and the face's skin
must answer it; the pose challenge (``active``) follows, then the same final check.
"""

from __future__ import annotations

import enum
import math
import random
import secrets
import statistics
from collections import deque
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from .liveness.challenge import PROMPTS, ActiveConfig, Challenge, StepStatus
from .liveness.flash import FlashConfig, FlashStep, LightChallenge
from .liveness.passive import PassiveCheck, PassiveConfig
from .liveness.sample import LivenessPolicy, LivenessSample


class State(enum.Enum):
    LOBBY = "lobby"
    CHECKING = "checking"
    CHALLENGE = "challenge"
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
    ``liveness`` is the single face's sample for the liveness checks (when the mesh ran).
    ``taken_at`` is when the frame reached the server (gate clock), if the edge knows:
    the light challenge times the skin's answer by it rather than by the end of analysis.
    """

    faces: int
    match: Match | None = None
    center: tuple[float, float] = (0.5, 0.5)
    width: float = 0.0
    quality: tuple[str, ...] = ()
    liveness: LivenessSample | None = None
    taken_at: float | None = None


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
    """One attempt failed; ``final`` means no further attempt is allowed.

    ``detail`` says which liveness check failed (for the audit log, not the person).
    """

    reason: Reason
    attempts_left: int
    final: bool
    distance: float | None = None
    detail: str = ""


@dataclass(frozen=True)
class Prompt:
    """Show one challenge instruction; ``text`` empty clears it.

    ``time_limit_s`` is relative (the client's clock is not ours); ``deadline`` is the
    gate's own time for the step, for the edge's bookkeeping.
    """

    text: str
    action: str | None
    step: int
    steps: int
    time_limit_s: float
    deadline: float


@dataclass(frozen=True)
class LockedOut:
    until: float


@dataclass(frozen=True)
class Flash:
    """Fill the participant's screen with ``steps`` from ``lead_s`` after this action.

    The light check decides at gate time ``deadline`` (for the edge's timers); until
    then the edge should analyse ``sample_fps`` frames a second.
    """

    steps: tuple[FlashStep, ...]
    lead_s: float
    deadline: float
    sample_fps: float


Action = StateChanged | Progress | Admitted | Refused | LockedOut | Prompt | Flash


# ---- policy and lockout -----------------------------------------------------


@dataclass(frozen=True)
class GatePolicy:
    attempt_timeout_s: float = 20.0
    max_attempts: int = 3
    frames_required: int = 3
    min_motion: float = 0.02
    mismatch_frames: int = 3
    liveness: LivenessPolicy = LivenessPolicy.ACTIVE_PASSIVE
    active: ActiveConfig = field(default_factory=ActiveConfig)
    passive: PassiveConfig = field(default_factory=PassiveConfig)
    flash: FlashConfig = field(default_factory=FlashConfig)


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
    samples: list[LivenessSample] = field(default_factory=list)
    passive: PassiveCheck = field(default_factory=PassiveCheck)
    challenge: Challenge | None = None
    light: LightChallenge | None = None
    start_embedding: np.ndarray | None = None
    confirm_deadline: float | None = None
    reverify: bool = False


class Gate:
    """Admission decisions for one participant."""

    def __init__(
        self,
        policy: GatePolicy,
        lockout: LockoutTracker,
        lockout_keys: Sequence[Hashable] = (),
        rng: random.Random | None = None,
    ) -> None:
        self.policy = policy
        # Challenges must be unpredictable: a CSPRNG unless a test injects a seeded one.
        self.rng = rng if rng is not None else secrets.SystemRandom()
        self.lockout = lockout
        self.lockout_keys = tuple(lockout_keys)
        self.state = State.LOBBY
        self.failures = 0
        self.person_id: str | None = None
        self.distance: float | None = None
        self._attempt: _Attempt | None = None

    @property
    def wants_embedding(self) -> bool:
        """Whether the next frame needs an embedding (skipped mid-challenge: ~7 ms, ONNX)."""
        attempt = self._attempt
        if self.state is not State.CHALLENGE or attempt is None:
            return True
        return attempt.confirm_deadline is not None

    @property
    def challenge(self) -> Challenge | None:
        return self._attempt.challenge if self._attempt is not None else None

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
            self._attempt.reverify = True
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
        return _Attempt(
            started=now,
            deadline=now + self.policy.attempt_timeout_s,
            passive=PassiveCheck(self.policy.passive),
        )

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
        if attempt is not None and self.state is State.CHALLENGE:
            return self._challenge_tick(now, attempt)
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
        if attempt is not None and self.state is State.CHALLENGE:
            return self._challenge_frame(now, obs, attempt)
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
            attempt.samples.clear()
            attempt.passive.reset()
            attempt.person_id = None
            if attempt.mismatches >= self.policy.mismatch_frames:
                return self._fail(now, Reason.NOT_RECOGNISED, match.distance)
            return [Progress(0, required)]
        attempt.person_id = match.person_id
        attempt.distances.append(match.distance)
        attempt.centers.append(obs.center)
        attempt.widths.append(obs.width)
        attempt.hold = None
        liveness = self.policy.liveness
        if obs.liveness is not None:
            attempt.samples.append(obs.liveness)
            if liveness.passive:
                attempt.passive.add(obs.liveness, now)
        elif liveness is not LivenessPolicy.OFF:
            # Liveness cannot be judged on this frame: do not count it as evidence.
            attempt.distances.pop()
            attempt.centers.pop()
            attempt.widths.pop()
            held = len(attempt.distances)
            return self._hold(attempt, Reason.POOR_QUALITY, held, "face not measurable")
        if len(attempt.distances) < required:
            return [Progress(len(attempt.distances), required)]
        if liveness.active or liveness.light:
            return self._start_challenge(now, attempt)
        if _motion(attempt.centers, attempt.widths) < self.policy.min_motion:
            attempt.hold = Reason.NO_MOVEMENT
            # Keep a sliding window of the latest frames so a later movement still counts.
            del attempt.distances[0], attempt.centers[0], attempt.widths[0]
            return [Progress(required - 1, required, Reason.NO_MOVEMENT)]
        if liveness.passive:
            verdict = attempt.passive.verdict()
            if verdict.live is False:
                return self._fail(now, Reason.LIVENESS, match.distance, f"passive:{verdict.cue}")
            if verdict.live is None or attempt.passive.span_s < self.policy.passive.static_window_s:
                # Passive cues need a few seconds of the face; keep the latest frames.
                del attempt.distances[0], attempt.centers[0], attempt.widths[0]
                return [Progress(required - 1, required)]
        return self._admit(attempt)

    # -- the active challenge --

    def _start_challenge(self, now: float, attempt: _Attempt) -> list[Action]:
        attempt.start_embedding = next(
            (s.embedding for s in attempt.samples if s.embedding is not None), None
        )
        if self.policy.liveness.light:
            light = attempt.light = LightChallenge.draw(self.rng, now, self.policy.flash)
            flash = Flash(light.sequence.steps, light.start - now, light.decide_at,
                          self.policy.flash.sample_fps)  # fmt: skip
            return [*self._go(State.CHALLENGE), flash]
        return self._start_pose(now, attempt)

    def _start_pose(self, now: float, attempt: _Attempt) -> list[Action]:
        challenge = Challenge.draw(self.rng, self.policy.active)
        baseline = attempt.samples[-self.policy.active.baseline_frames :]
        challenge.start(baseline, now)
        attempt.challenge = challenge
        steps = len(challenge.actions)
        return [*self._go(State.CHALLENGE), Progress(0, steps), self._prompt(challenge)]

    def _light_frame(self, now: float, obs: Observation, attempt: _Attempt) -> list[Action]:
        """A frame while the screen flashes: collect the skin's answer, judge at the end."""
        light = attempt.light
        assert light is not None
        sample = obs.liveness if obs.faces == 1 else None
        if sample is not None:
            attempt.samples.append(sample)
            if self.policy.liveness.passive:
                # The flashes tint the face on purpose: keep them from the pixel cues.
                lit = light.in_window(now)
                attempt.passive.add(replace(sample, pixels=None) if lit else sample, now)
        at = obs.taken_at if obs.taken_at is not None else now
        if light.feed(sample.light if sample is not None else None, at) is not None:
            return self._after_light(now, attempt)
        hold = (
            Reason.NO_FACE if obs.faces == 0 else Reason.MULTIPLE_FACES if obs.faces > 1 else None
        )
        return [Progress(0, 1, hold)] if hold is not None else []

    def _after_light(self, now: float, attempt: _Attempt) -> list[Action]:
        verdict = attempt.light.verdict if attempt.light is not None else None
        assert verdict is not None
        if not verdict.passed:
            return self._fail(now, Reason.LIVENESS, None, f"light:{verdict.detail}")
        if self.policy.liveness.active:
            return self._start_pose(now, attempt)
        attempt.confirm_deadline = now + self.policy.active.step_time_s
        return [
            Progress(1, 1),
            Prompt("Look at the camera", None, 1, 1, 0.0, attempt.confirm_deadline),
        ]

    def _prompt(self, challenge: Challenge) -> Prompt:
        action = challenge.current
        return Prompt(
            PROMPTS[action],
            action.value,
            challenge.step + 1,
            len(challenge.actions),
            self.policy.active.step_time_s,
            challenge.deadline,
        )

    def _challenge_tick(self, now: float, attempt: _Attempt) -> list[Action]:
        if attempt.confirm_deadline is not None:
            if now >= attempt.confirm_deadline:
                return self._fail(now, Reason.LIVENESS, None, "no matching face after challenge")
            return []
        light = attempt.light
        if light is not None and light.verdict is None:
            return self._after_light(now, attempt) if light.tick(now) is not None else []
        challenge = attempt.challenge
        assert challenge is not None
        outcome = challenge.tick(now)
        if outcome.status is StepStatus.WAITING:
            return []
        return self._fail(now, Reason.LIVENESS, None, f"{outcome.status.value}:{outcome.detail}")

    def _challenge_frame(self, now: float, obs: Observation, attempt: _Attempt) -> list[Action]:
        timed = self._challenge_tick(now, attempt)
        if timed or self.state is not State.CHALLENGE:
            return timed
        if attempt.light is not None and attempt.light.verdict is None:
            return self._light_frame(now, obs, attempt)
        challenge = attempt.challenge
        step, steps = (challenge.step, len(challenge.actions)) if challenge else (1, 1)
        if obs.faces == 0:
            return [Progress(step, steps, Reason.NO_FACE)]
        if obs.faces > 1:
            return [Progress(step, steps, Reason.MULTIPLE_FACES)]
        sample = obs.liveness
        if sample is None:
            return [Progress(step, steps, Reason.POOR_QUALITY, "face not measurable")]
        if self.policy.liveness.passive:
            attempt.passive.add(sample, now)
        if attempt.confirm_deadline is not None:
            return self._confirm(now, obs, attempt)
        assert challenge is not None
        outcome = challenge.feed(sample, now)
        if outcome.status is StepStatus.WAITING:
            return []
        if outcome.status is StepStatus.PASSED:
            return [Progress(challenge.step, steps), self._prompt(challenge)]
        if outcome.status is StepStatus.DONE:
            attempt.confirm_deadline = now + self.policy.active.step_time_s
            actions: list[Action] = [
                Progress(steps, steps),
                Prompt("Look at the camera", None, steps, steps, 0.0, attempt.confirm_deadline),
            ]
            if obs.match is not None:
                actions += self._confirm(now, obs, attempt)
            return actions
        detail = f"{outcome.status.value}:{outcome.detail}"
        return self._fail(now, Reason.LIVENESS, None, detail)

    def _confirm(self, now: float, obs: Observation, attempt: _Attempt) -> list[Action]:
        """After the last step: the same, enrolled face must still be there."""
        match, sample = obs.match, obs.liveness
        if match is None or sample is None or sample.embedding is None:
            return []  # e.g. still turned away: wait for a frontal frame
        if not match.accepted or match.person_id != attempt.person_id:
            return self._fail(now, Reason.NOT_RECOGNISED, match.distance, "face changed")
        start = attempt.start_embedding
        if start is not None:
            moved = float(np.linalg.norm(sample.embedding - start))
            if moved > self.policy.active.same_face_distance:
                return self._fail(now, Reason.LIVENESS, match.distance, "face changed")
        attempt.distances.append(match.distance)
        if self.policy.liveness.passive:
            verdict = attempt.passive.verdict()
            if verdict.live is False:
                return self._fail(now, Reason.LIVENESS, match.distance, f"passive:{verdict.cue}")
        return self._admit(attempt)

    def _hold(self, attempt: _Attempt, reason: Reason, held: int, detail: str = "") -> list[Action]:
        attempt.hold = reason
        return [Progress(held, self.policy.frames_required, reason, detail)]

    def _admit(self, attempt: _Attempt) -> list[Action]:
        distance = statistics.median(attempt.distances)
        reverify = attempt.reverify
        self.person_id, self.distance = attempt.person_id, distance
        self._attempt = None
        return [*self._go(State.ADMITTED), Admitted(attempt.person_id, distance, reverify)]

    def _fail(
        self, now: float, reason: Reason, distance: float | None, detail: str = ""
    ) -> list[Action]:
        reverify = self._attempt is not None and self._attempt.reverify
        self._attempt = None
        self.failures += 1
        lock_until = self.lockout.record_failure(self.lockout_keys, now)
        if lock_until is not None:
            return [
                Refused(Reason.LOCKED_OUT, 0, True, distance, detail),
                *self._go(State.LOCKED),
                LockedOut(lock_until),
            ]
        final = reverify or self.attempts_left == 0
        refused = Refused(reason, 0 if final else self.attempts_left, final, distance, detail)
        return [refused, *self._go(State.DENIED if final else State.FAILED)]


def _motion(centers: Sequence[tuple[float, float]], widths: Sequence[float]) -> float:
    """Largest movement across the window, in face widths: a still photo scores ~0."""
    scale = max(statistics.median(widths), 1e-6)
    spread = max(math.dist(a, b) for a in centers for b in centers)
    size_change = (max(widths) - min(widths)) / scale
    return max(spread / scale, size_change)
