"""The gate's policy, one attempt's evidence, and the challenge steps (light, pose, confirm).

Part of the sans-IO gate (``server/gate.py``), kept apart so each module stays small:
``ChallengeSteps`` is mixed into ``Gate`` and uses its ``_go``, ``_fail`` and ``_admit``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace

import numpy as np

from .gate_types import Action, Flash, Observation, Progress, Prompt, Reason, State
from .liveness.challenge import PROMPTS, ActiveConfig, Challenge, StepStatus
from .liveness.flash import FlashConfig, LightChallenge
from .liveness.passive import PassiveCheck, PassiveConfig
from .liveness.sample import LivenessPolicy, LivenessSample

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
    flash: FlashConfig = field(default_factory=FlashConfig)


@dataclass
class Attempt:
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
    # Re-verification is pinned to the admitted person: nobody else can pass it.
    pinned: str | None = None


class ChallengeSteps:
    """Liveness steps after identity is established (mixed into ``Gate``)."""

    policy: GatePolicy
    rng: random.Random
    state: State

    def _go(self, state: State) -> list[Action]:
        raise NotImplementedError

    def _fail(
        self, now: float, reason: Reason, distance: float | None, detail: str = ""
    ) -> list[Action]:
        raise NotImplementedError

    def _admit(self, attempt: Attempt) -> list[Action]:
        raise NotImplementedError

    def _start_challenge(self, now: float, attempt: Attempt) -> list[Action]:
        attempt.start_embedding = next(
            (s.embedding for s in attempt.samples if s.embedding is not None), None
        )
        if self.policy.liveness.light:
            light = attempt.light = LightChallenge.draw(self.rng, now, self.policy.flash)
            flash = Flash(light.sequence.steps, light.start - now, light.decide_at,
                          self.policy.flash.sample_fps)  # fmt: skip
            return [*self._go(State.CHALLENGE), flash]
        return self._start_pose(now, attempt)

    def _start_pose(self, now: float, attempt: Attempt) -> list[Action]:
        challenge = Challenge.draw(self.rng, self.policy.active)
        baseline = attempt.samples[-self.policy.active.baseline_frames :]
        challenge.start(baseline, now)
        attempt.challenge = challenge
        steps = len(challenge.actions)
        return [*self._go(State.CHALLENGE), Progress(0, steps), self._prompt(challenge)]

    def _light_frame(self, now: float, obs: Observation, attempt: Attempt) -> list[Action]:
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

    def _after_light(self, now: float, attempt: Attempt) -> list[Action]:
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

    def _challenge_tick(self, now: float, attempt: Attempt) -> list[Action]:
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

    def _challenge_frame(self, now: float, obs: Observation, attempt: Attempt) -> list[Action]:
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

    def _confirm(self, now: float, obs: Observation, attempt: Attempt) -> list[Action]:
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
