"""Per-participant admission state machine, sans-IO.

Like aioquic's ``QuicConnection``, the gate never reads a clock, a socket or a
model: the caller feeds it events (with the time they happened) and carries out
the actions it returns. That keeps every path -- timeouts, lockout, re-verify --
a fast, deterministic unit test, and keeps asyncio/aiortc at the edges.
Policies with ``light`` first run the screen-light challenge (``liveness/flash.py``):
a ``Flash`` action asks the page for a random colour sequence the face's skin must
answer; the pose challenge (``active``) follows, then the same final check. Like
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

from .gate_challenge import Attempt, ChallengeSteps, GatePolicy
from .gate_types import (
    MESSAGES,
    Action,
    Admitted,
    AnalysisFailed,
    Event,
    Flash,
    FrameAnalysed,
    FrameNeeds,
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
from .liveness.challenge import Challenge
from .liveness.passive import PassiveCheck
from .liveness.sample import LivenessPolicy
from .lockout import LockoutTracker, key_scope

__all__ = [  # the vocabulary is re-exported: callers import it from here
    "MESSAGES", "Action", "Admitted", "AnalysisFailed", "Event", "Flash", "FrameAnalysed", "Gate",
    "FrameNeeds", "GatePolicy", "HOST_ADMITTABLE", "Leave", "LockedOut", "LockoutTracker",
    "Match", "Observation", "Progress", "Prompt", "Reason", "Refused", "ReverifyRequested",
    "Start", "State", "StateChanged", "Tick",
]  # fmt: skip


# Whom the host may let in: anyone connected and not yet admitted (a final refusal or a
# lock ends the session, so those are lifted with ``reset_attempts`` and a new visit).
HOST_ADMITTABLE = (State.LOBBY, State.CHECKING, State.CHALLENGE, State.FAILED)


class Gate(ChallengeSteps):
    """Admission decisions for one participant (the challenge steps: ``gate_challenge.py``)."""

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
        # The distance of the last refused attempt, for the host deciding on a refusal.
        self.last_distance: float | None = None
        self._attempt: Attempt | None = None

    @property
    def wants_embedding(self) -> bool:
        """Whether the next frame needs an embedding (skipped mid-challenge: ~7 ms, ONNX)."""
        attempt = self._attempt
        if self.state is not State.CHALLENGE or attempt is None:
            return True
        return attempt.confirm_deadline is not None

    @property
    def frame_needs(self) -> FrameNeeds:
        """What the next frame's analysis must include (read by the edge before it)."""
        attempt = self._attempt
        if self.state is not State.CHALLENGE or attempt is None:
            return FrameNeeds(self.wants_embedding)
        light = attempt.light is not None and attempt.light.verdict is None
        challenge = attempt.challenge
        expression = challenge is not None and challenge.expression_step
        return FrameNeeds(self.wants_embedding, light, detect=light or expression)

    def sample_fps(self, now: float, base: float) -> float:
        """Frames a second the edge should analyse at ``now``, given its base rate
        (``[gate] sample_fps``): more while the screen flashes (several frames per
        colour) and during expression steps (a blink lasts 100-150 ms). The server's
        sampler and the offline eval both read this, so they sample alike."""
        attempt = self._attempt
        if self.state is not State.CHALLENGE or attempt is None:
            return base
        if attempt.confirm_deadline is not None:
            return base
        light = attempt.light
        if light is not None and light.verdict is None:
            return max(base, self.policy.flash.sample_fps) if now < light.decide_at else base
        if attempt.challenge is not None:
            return attempt.challenge.sample_fps(base)
        return base

    def next_deadline(self) -> float | None:
        """When the gate next needs a ``Tick`` (None: nothing is timed now)."""
        attempt = self._attempt
        if attempt is None:
            return None
        if self.state is State.CHALLENGE:
            if attempt.confirm_deadline is not None:
                return attempt.confirm_deadline
            if attempt.light is not None and attempt.light.verdict is None:
                return attempt.light.decide_at
            if attempt.challenge is not None:
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

    # -- the host decides (docs/owner.md, "The host decides") --

    def host_admit(self, person_id: str | None) -> list[Action]:
        """The host lets a person in whom the gate has not admitted (yet): no attempt is
        judged; the caller audits it as a host override."""
        if self.state not in HOST_ADMITTABLE:
            return []
        self._attempt = None
        self.person_id = person_id
        return self._go(State.ADMITTED)

    def send_to_lobby(self) -> list[Action]:
        """The host takes an admitted person out of the room: they must pass the check
        again (``Start`` from ``failed``) to come back."""
        if self.state is not State.ADMITTED:
            return []
        self._attempt = None
        return self._go(State.FAILED)

    def reset_attempts(self) -> None:
        """The host gives back every attempt and lifts the locks on this person's keys."""
        self.failures = 0
        self.lockout.clear(self.lockout_keys)

    # -- internals --

    def _go(self, state: State) -> list[Action]:
        if state is self.state:
            return []
        self.state = state
        return [StateChanged(state)]

    def _new_attempt(self, now: float) -> Attempt:
        return Attempt(
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

    def _hold(self, attempt: Attempt, reason: Reason, held: int, detail: str = "") -> list[Action]:
        attempt.hold = reason
        return [Progress(held, self.policy.frames_required, reason, detail)]

    def _admit(self, attempt: Attempt) -> list[Action]:
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
        if distance is not None:
            self.last_distance = distance
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
