"""Per-participant admission state machine, sans-IO.

Like aioquic's ``QuicConnection``, the gate never reads a clock, a socket or a
model: the caller feeds it events (with the time they happened) and carries out
the actions it returns. That keeps every path -- timeouts, lockout, re-verify --
a fast, deterministic unit test, and keeps asyncio/aiortc at the edges. Like
aioquic's ``get_timer()``, :meth:`Gate.next_deadline` tells the edge when the gate
next needs a ``Tick``; the edge schedules exactly that instead of polling.

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
"""

from __future__ import annotations

import math
import random
import secrets
import statistics
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .gate_types import (
    MESSAGES,
    Action,
    Admitted,
    AnalysisFailed,
    Event,
    FrameAnalysed,
    Leave,
    LockedOut,
    Match,
    Observation,
    Progress,
    Prompt,
    Reason,
    Refused,
    ReverifyRequested,
    Start,
    State,
    StateChanged,
    Tick,
)
from .liveness.challenge import PROMPTS, ActiveConfig, Challenge, StepStatus
from .liveness.passive import PassiveCheck, PassiveConfig
from .liveness.sample import LivenessPolicy, LivenessSample
from .lockout import LockoutTracker, key_scope

__all__ = [  # the vocabulary is re-exported: callers import it from here
    "MESSAGES", "Action", "Admitted", "AnalysisFailed", "Event", "FrameAnalysed", "Gate",
    "GatePolicy", "Leave", "LockedOut", "LockoutTracker", "Match", "Observation", "Progress",
    "Prompt", "Reason", "Refused", "ReverifyRequested", "Start", "State", "StateChanged",
    "Tick",
]  # fmt: skip


# ---- policy -----------------------------------------------------------------


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
    start_embedding: np.ndarray | None = None
    confirm_deadline: float | None = None
    reverify: bool = False
    # Re-verification is pinned to the admitted person: nobody else can pass it.
    pinned: str | None = None


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

    def next_deadline(self) -> float | None:
        """When the gate next needs a ``Tick`` (None: nothing is timed now)."""
        attempt = self._attempt
        if attempt is None:
            return None
        if self.state is State.CHALLENGE and attempt.challenge is not None:
            if attempt.confirm_deadline is not None:
                return attempt.confirm_deadline
            return attempt.challenge.deadline
        if self.state in (State.CHECKING, State.REVERIFYING):
            return attempt.deadline
        return None

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
            self._attempt.pinned = self.person_id
            return self._go(State.REVERIFYING)
        if isinstance(event, Tick):
            return self._tick(event.now)
        if isinstance(event, AnalysisFailed):
            return self._internal(event.detail)
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
        lock = self.lockout.lock_of(self.lockout_keys, now)
        if lock is not None:
            return [*self._go(State.LOCKED), LockedOut(lock[0], key_scope(lock[1]))]
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
        if attempt is not None and not attempt.reverify:
            # Checked on every frame, not only when an attempt starts: a parallel session
            # on the same invite must not finish an attempt after the invite got locked.
            lock = self.lockout.lock_of(self.lockout_keys, now)
            if lock is not None:
                self._attempt = None
                return [*self._go(State.LOCKED), LockedOut(lock[0], key_scope(lock[1]))]
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
            # Not evidence of identity, but still evidence of the presentation: a blurred
            # screen is still a screen (passive cues see every single-face frame).
            if obs.liveness is not None and self.policy.liveness.passive:
                attempt.passive.add(obs.liveness, now)
                verdict = attempt.passive.verdict()
                if verdict.live is False:
                    return self._fail(now, Reason.LIVENESS, None, f"passive:{verdict.cue}")
            return self._hold(attempt, Reason.POOR_QUALITY, held, "; ".join(obs.quality))
        match = obs.match
        if match.ambiguous:
            return self._fail(now, Reason.AMBIGUOUS, match.distance)
        expected = attempt.pinned or attempt.person_id
        if not match.accepted or (expected is not None and match.person_id != expected):
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
        if liveness.active:
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
        challenge = Challenge.draw(self.rng, self.policy.active)
        baseline = attempt.samples[-self.policy.active.baseline_frames :]
        challenge.start(baseline, now)
        attempt.challenge = challenge
        attempt.start_embedding = next(
            (s.embedding for s in attempt.samples if s.embedding is not None), None
        )
        steps = len(challenge.actions)
        return [*self._go(State.CHALLENGE), Progress(0, steps), self._prompt(challenge)]

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
        challenge = attempt.challenge
        assert challenge is not None
        if attempt.confirm_deadline is not None:
            if now >= attempt.confirm_deadline:
                return self._fail(now, Reason.LIVENESS, None, "no matching face after challenge")
            return []
        outcome = challenge.tick(now)
        if outcome.status is StepStatus.WAITING:
            return []
        return self._fail(now, Reason.LIVENESS, None, f"{outcome.status.value}:{outcome.detail}")

    def _challenge_frame(self, now: float, obs: Observation, attempt: _Attempt) -> list[Action]:
        challenge = attempt.challenge
        assert challenge is not None
        steps = len(challenge.actions)
        timed = self._challenge_tick(now, attempt)
        if timed:
            return timed
        if obs.faces == 0:
            return [Progress(challenge.step, steps, Reason.NO_FACE)]
        if obs.faces > 1:
            return [Progress(challenge.step, steps, Reason.MULTIPLE_FACES)]
        sample = obs.liveness
        if sample is None:
            return [Progress(challenge.step, steps, Reason.POOR_QUALITY, "face not measurable")]
        if self.policy.liveness.passive:
            attempt.passive.add(sample, now)
        if attempt.confirm_deadline is not None:
            return self._confirm(now, obs, attempt)
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

    def _internal(self, detail: str) -> list[Action]:
        """End the attempt on our own failure: no attempt used, nothing toward lockout.

        A re-verification cannot be retried (one attempt, the room waits), so it ends
        as a final refusal; the audit record says ``internal``.
        """
        attempt = self._attempt
        if attempt is None or self.state not in (
            State.CHECKING, State.CHALLENGE, State.REVERIFYING
        ):  # fmt: skip
            return []
        self._attempt = None
        final = attempt.reverify
        left = 0 if final else self.attempts_left
        refused = Refused(Reason.INTERNAL, left, final, None, detail)
        return [refused, *self._go(State.DENIED if final else State.FAILED)]

    def _fail(
        self, now: float, reason: Reason, distance: float | None, detail: str = ""
    ) -> list[Action]:
        reverify = self._attempt is not None and self._attempt.reverify
        self._attempt = None
        self.failures += 1
        lock = self.lockout.record(self.lockout_keys, now)
        if lock is not None:
            return [
                Refused(Reason.LOCKED_OUT, 0, True, distance, detail),
                *self._go(State.LOCKED),
                LockedOut(lock[0], key_scope(lock[1])),
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
