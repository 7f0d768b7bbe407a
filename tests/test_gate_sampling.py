"""The rate the gate asks its sampler for (``Gate.sample_fps``), computed from its state.

A spontaneous blink closes the eyes for 100-150 ms: at the base 4 fps it falls between
two frames, so expression steps (blink, smile, open mouth) are sampled faster, as the
screen-light window is; pose steps and identity frames stay at the base rate.
"""

from __future__ import annotations

import dataclasses
import random

from server.gate import Flash, FrameAnalysed, Gate, GatePolicy, LockoutTracker, Start, State
from server.liveness import ChallengeAction, LivenessPolicy
from server.liveness.challenge import ActiveConfig

from .test_gate import DOING, LIVE, gate_with, into_challenge, live, mid, sample

A = ChallengeAction
BASE = 4.0


def test_expression_steps_are_sampled_faster_and_pose_steps_at_the_base_rate() -> None:
    gate = gate_with(A.SMILE, A.TURN_LEFT, A.BLINK)
    gate.handle(Start(0))
    gate.handle(FrameAnalysed(1.0, live()))
    assert gate.sample_fps(1.1, BASE) == BASE  # identity frames
    gate.handle(FrameAnalysed(1.25, live()))
    gate.handle(FrameAnalysed(1.5, live()))
    assert gate.state is State.CHALLENGE
    expression = ActiveConfig().expression_fps
    assert expression > BASE
    assert gate.sample_fps(1.6, BASE) == expression  # smile
    gate.handle(FrameAnalysed(2.0, mid(DOING[A.SMILE])))
    assert gate.sample_fps(2.1, BASE) == BASE  # turn left
    gate.handle(FrameAnalysed(2.5, mid(DOING[A.TURN_LEFT])))
    assert gate.sample_fps(2.6, BASE) == expression  # blink
    gate.handle(FrameAnalysed(2.7, mid(sample())))
    gate.handle(FrameAnalysed(2.8, mid(sample(ear=0.22))))
    gate.handle(FrameAnalysed(2.9, mid(sample())))
    assert gate.wants_embedding  # the confirming frame: no expression any more
    assert gate.sample_fps(3.0, BASE) == BASE


def test_the_expression_rate_is_the_rooms_setting_and_never_lowers_the_base() -> None:
    policy = dataclasses.replace(LIVE, active=ActiveConfig(expression_fps=10.0))
    gate = gate_with(A.BLINK, A.TURN_RIGHT, policy=policy)
    into_challenge(gate)
    assert gate.sample_fps(2.0, BASE) == 10.0
    assert gate.sample_fps(2.0, 12.0) == 12.0


def test_the_light_window_is_sampled_faster_until_its_decision_time() -> None:
    policy = GatePolicy(liveness=LivenessPolicy.LIGHT, frames_required=3)
    gate = Gate(policy, LockoutTracker(), rng=random.Random(3))
    gate.handle(Start(0))
    actions = [a for t in (0.25, 0.5, 0.75) for a in gate.handle(FrameAnalysed(t, live()))]
    flash = next(a for a in actions if isinstance(a, Flash))
    assert gate.sample_fps(1.0, BASE) == flash.sample_fps == policy.flash.sample_fps > BASE
    assert gate.sample_fps(flash.deadline + 0.01, BASE) == BASE
