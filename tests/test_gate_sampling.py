"""The rate the gate asks its sampler for (``Gate.sample_fps``), computed from its state.

A spontaneous blink closes the eyes for 100-150 ms: at the base 4 fps it falls between
two frames, so expression steps (blink, smile, open mouth) are sampled faster, as the
screen-light window is; pose steps and identity frames stay at the base rate.
"""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest

from server.gate import (
    Flash,
    FrameAnalysed,
    FrameNeeds,
    Gate,
    GatePolicy,
    LockoutTracker,
    Start,
    State,
    Tick,
)
from server.liveness import ChallengeAction, LivenessPolicy, parallax
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


def test_skin_chroma_is_asked_for_only_while_the_light_challenge_collects_it() -> None:
    policy = GatePolicy(liveness=LivenessPolicy.LIGHT, frames_required=3)
    gate = Gate(policy, LockoutTracker(), rng=random.Random(3))
    gate.handle(Start(0))
    assert gate.frame_needs == FrameNeeds(embed=True, light=False)  # identity frames
    actions = [a for t in (0.25, 0.5, 0.75) for a in gate.handle(FrameAnalysed(t, live()))]
    flash = next(a for a in actions if isinstance(a, Flash))
    assert gate.frame_needs.light
    assert gate.frame_needs.detect  # chroma is read in the detector's box
    gate.handle(Tick(flash.deadline + 0.01))  # decided (nothing lit: refused)
    assert not gate.frame_needs.light
    expression = gate_with(A.BLINK, A.SMILE)
    into_challenge(expression)
    assert expression.frame_needs == FrameNeeds(embed=False, light=False, detect=True)


def test_the_detector_is_asked_for_during_expression_steps_only() -> None:
    """With landmark tracking ([face] track_landmarks) an expression step's frames are
    found by the detector, as the baseline's identity frames were: a tracked region
    moves the blendshape scores the step compares with that baseline."""
    gate = gate_with(A.TURN_LEFT, A.SMILE, A.TURN_RIGHT)
    gate.handle(Start(0))
    gate.handle(FrameAnalysed(1.0, live()))
    assert gate.frame_needs == FrameNeeds(embed=True)  # identity frames: detected anyway
    gate.handle(FrameAnalysed(1.25, live()))
    gate.handle(FrameAnalysed(1.5, live()))
    assert gate.state is State.CHALLENGE
    assert gate.frame_needs == FrameNeeds(embed=False, detect=False)  # turn left: tracked
    gate.handle(FrameAnalysed(2.0, mid(DOING[A.TURN_LEFT])))
    assert gate.frame_needs == FrameNeeds(embed=False, detect=True)  # smile
    gate.handle(FrameAnalysed(2.5, mid(DOING[A.SMILE])))
    assert gate.frame_needs == FrameNeeds(embed=False, detect=False)  # turn right


def test_parallax_pairs_stay_at_the_base_rate_when_the_sampler_runs_faster(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Expression steps are sampled at 15 fps; the parallax cue (a Lucas-Kanade pair per
    kept frame, ~2 ms) still compares frames ~0.25 s apart, as at the base 4 fps."""
    calls: list[float] = []

    def pair(*_args: object) -> dict[str, float]:
        calls.append(0.0)
        return {"rigid": 0.0, "nose": 0.0, "eyes": 0.0, "mouth": 0.0}

    monkeypatch.setattr(parallax, "pair_motion", pair)
    patch = np.zeros((parallax.PATCH_SIZE, parallax.PATCH_SIZE), np.uint8)
    points = np.zeros((len(parallax.TRACK_POINTS), 2), np.float32)
    pairs = []
    for fps in (BASE, 15.0):
        calls.clear()
        track = parallax.ParallaxTrack()
        for k in range(round(3 * fps)):
            track.add(k / fps, patch, points)
        pairs.append(len(calls))
    assert pairs[0] >= 8
    assert pairs[1] <= pairs[0] + 1
