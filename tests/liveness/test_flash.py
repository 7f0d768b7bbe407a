"""Screen-light challenge: the sequence's safety and randomness, and the judge on clips
whose face is lit along a sequence by a SIMULATED reflection (tests/liveness/reflect.py).
"""

from __future__ import annotations

import dataclasses
import random
import secrets
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.face.engine import FaceEngine
from server.liveness.flash import (
    PALETTE,
    FlashConfig,
    FlashSequence,
    FlashStep,
    LightChallenge,
    draw_sequence,
    expected_chroma,
    judge,
)
from server.liveness.lightmeter import LightSample, measure_light

from .reflect import Box, Reflection, boxed, pick, read_clip, sample_times, tint

CFG = FlashConfig()
START = 1.0  # camera time of the first colour in the clips below


# ---- the sequence -------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_a_drawn_sequence_never_exceeds_three_changes_a_second(seed: int) -> None:
    seq = draw_sequence(random.Random(seed), CFG)
    assert CFG.min_flashes <= len(seq.steps) <= CFG.max_flashes
    assert 4 <= len(seq.steps) <= 8
    assert seq.max_changes_per_s() <= 3  # WCAG 2.3.1, counting onset and return to the page
    assert all(CFG.min_step_ms <= s.ms <= CFG.max_step_ms for s in seq.steps)
    colours = [s.colour for s in seq.steps]
    assert len(set(colours)) >= 3
    for a, b in zip(colours, colours[1:], strict=False):
        assert np.hypot(*np.subtract(expected_chroma(a), expected_chroma(b))) >= CFG.min_contrast


@settings(max_examples=200, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    low=st.integers(334, 900),
    extra=st.integers(0, 600),
    count=st.integers(1, 8),
)
def test_any_allowed_timing_stays_within_three_changes_a_second(
    seed: int, low: int, extra: int, count: int
) -> None:
    cfg = FlashConfig(min_flashes=count, max_flashes=count, min_step_ms=low,
                      max_step_ms=low + extra, step_grain_ms=1, min_colours=1)  # fmt: skip
    assert draw_sequence(random.Random(seed), cfg).max_changes_per_s() <= 3


def test_faster_flashing_is_refused_by_the_config() -> None:
    with pytest.raises(ValueError, match="334"):
        FlashConfig(min_step_ms=300)


def test_the_change_counter_counts_a_fast_sequence() -> None:
    fast = FlashSequence(tuple(FlashStep("red" if i % 2 else "cyan", 200) for i in range(6)))
    assert fast.max_changes_per_s() >= 5


def test_sequences_differ_between_sessions() -> None:
    rng = secrets.SystemRandom()
    drawn = {draw_sequence(rng, CFG) for _ in range(50)}
    assert len(drawn) == 50
    assert all(s.css.startswith("#") and len(s.css) == 7 for seq in drawn for s in seq.steps)
    assert {s.colour for seq in drawn for s in seq.steps} == set(PALETTE)


# ---- the judge on synthetic measurements ------------------------------------------


def answer(
    seq: FlashSequence | None,
    lag: float,
    noise: float,
    seed: int = 0,
    gain: float = 0.03,
    start: float = 1.0,
) -> list[tuple[float, LightSample]]:
    """8 fps measurements of a face answering ``seq`` (shown from ``start``) ``lag`` late."""
    rng = np.random.default_rng(seed)
    out = []
    for t in np.arange(0.0, 8.5, 0.125):
        e = np.zeros(2)
        if seq is not None:
            rel = t - start - lag
            for onset, step in zip(seq.onsets(), seq.steps, strict=True):
                if onset <= rel < onset + step.ms / 1000:
                    e = np.array(expected_chroma(step.colour))
        face = 0.3 + gain * e + rng.normal(0, gain * noise, 2)
        background = (0.0, 0.1) + rng.normal(0, 0.003, 2)
        out.append((float(t), LightSample((face[0], face[1]), (background[0], background[1]), 120)))
    return out


def test_judge_finds_the_answer_within_the_allowed_latency() -> None:
    seq = draw_sequence(random.Random(3), CFG)
    for lag in (0.0, 0.3, 0.8, 1.1):
        verdict = judge(seq, 1.0, answer(seq, lag, 0.3), CFG)
        assert verdict.passed, (lag, verdict)
        assert abs(verdict.lag_s - lag) <= 0.15  # frames are 0.125 s apart


def test_judge_names_what_failed() -> None:
    seq = draw_sequence(random.Random(3), CFG)
    assert judge(seq, 1.0, [], CFG).detail == "too_few_frames"
    assert judge(seq, 1.0, answer(seq, 0.3, 0.3)[:6], CFG).detail == "too_few_frames"
    assert judge(seq, 1.0, answer(None, 0.3, 0.3), CFG).detail == "no_answer"
    faint = judge(seq, 1.0, answer(seq, 0.3, 0.3, gain=0.002), CFG)
    assert faint.detail == "too_weak", faint
    # Paper or glass around the face lit like the face: the background answers too.
    flat = [
        (t, dataclasses.replace(s, background=(s.face[0] - 0.3, s.face[1] - 0.2)))
        for t, s in answer(seq, 0.3, 0.3)
    ]
    assert judge(seq, 1.0, flat, CFG).detail == "flat"


def test_light_challenge_decides_on_a_frame_or_a_tick_after_the_window() -> None:
    challenge = LightChallenge.draw(random.Random(4), 0.0, CFG)
    assert challenge.start == CFG.lead_s
    assert challenge.tick(challenge.decide_at - 0.01) is None
    measured = answer(challenge.sequence, 0.4, 0.3, start=challenge.start)
    for t, s in measured:
        if t < challenge.decide_at:
            assert challenge.feed(s, t) is None
    verdict = challenge.tick(challenge.decide_at)  # no frame needed to decide
    assert verdict is not None and verdict.passed
    assert challenge.feed(measured[-1][1], challenge.decide_at + 1) is verdict


# ---- clips lit by a simulated reflection ------------------------------------------


@pytest.fixture(scope="module")
def detect(engine: FaceEngine) -> Callable[[np.ndarray], Box | None]:
    def find(rgb: np.ndarray) -> Box | None:
        faces = engine.analyse(rgb, mesh=False, embed=False).faces
        return faces[0].box if len(faces) == 1 else None

    return find


Clip = list[tuple[float, np.ndarray, Box]]


@pytest.fixture(scope="module")
def clip_frames(
    faces_dir: Path, detect: Callable[[np.ndarray], Box | None]
) -> Callable[[str], Clip]:
    cache: dict[str, Clip] = {}

    def load(name: str) -> Clip:
        if name not in cache:
            seconds = START + CFG.max_flashes * CFG.max_step_ms / 1000 + CFG.max_lag_s + 0.5
            clip = read_clip(faces_dir / "videos" / name, seconds)
            times = sample_times(seconds, CFG.sample_fps, random.Random(7))
            cache[name] = boxed(pick(clip, times), detect)
        return cache[name]

    return load


def measure(
    shot: list[tuple[float, np.ndarray]], frames: Clip, detect: Callable[[np.ndarray], Box | None]
) -> list[tuple[float, LightSample]]:
    """As the gate does: find the face on the frame it got, then measure it."""
    out = []
    for (t, rgb), (_, _, box) in zip(shot, frames, strict=True):
        sample = measure_light(rgb, detect(rgb) or box)
        if sample is not None:
            out.append((t, sample))
    return out


CLIPS = ["liveportrait_d10.mp4", "sadtalker_aoc.mp4", "liveportrait_d9.mp4"]


@pytest.mark.parametrize("clip", CLIPS)
def test_a_face_lit_by_this_sequence_passes_and_nothing_else_does(
    clip_frames: Callable[[str], Clip], detect: Callable[[np.ndarray], Box | None], clip: str
) -> None:
    frames = clip_frames(clip)
    assert len(frames) > 40
    seq = draw_sequence(random.Random(11), CFG)
    other = draw_sequence(random.Random(12), CFG)
    assert other != seq
    refl = Reflection(strength=0.08, lag_s=0.45)

    lit = measure(tint(frames, seq, START, refl, random.Random(1)), frames, detect)
    verdict = judge(seq, START, lit, CFG)
    assert verdict.passed, verdict
    assert abs(verdict.lag_s - 0.45 - refl.jitter_s / 2) <= 0.12

    untinted = measure(tint(frames, None, START, refl, random.Random(1)), frames, detect)
    assert judge(seq, START, untinted, CFG).detail == "no_answer"

    # A clip lit by another session's sequence (a recording) does not answer this one.
    replayed = measure(tint(frames, other, START, refl, random.Random(1)), frames, detect)
    assert judge(seq, START, replayed, CFG).detail == "no_answer"
    assert judge(other, START, replayed, CFG).passed

    # The right colours, later than any latency the judge allows.
    late = Reflection(strength=0.08, lag_s=CFG.max_lag_s + 1.0)
    shifted = measure(tint(frames, seq, START, late, random.Random(1)), frames, detect)
    assert not judge(seq, START, shifted, CFG).passed


def test_a_flat_presentation_lit_all_over_is_refused(
    clip_frames: Callable[[str], Clip], detect: Callable[[np.ndarray], Box | None]
) -> None:
    """A photo or phone held up to the screen is lit as much around the face as on it."""
    frames = clip_frames("liveportrait_d10.mp4")
    seq = draw_sequence(random.Random(11), CFG)
    flat = Reflection(strength=0.08, background_share=1.0)
    verdict = judge(
        seq, START, measure(tint(frames, seq, START, flat, random.Random(1)), frames, detect), CFG
    )
    assert verdict.detail == "flat", verdict


def test_the_meter_needs_a_measurable_face() -> None:
    grey = np.full((480, 640, 3), 128, np.uint8)
    assert measure_light(grey, (300, 200, 302, 202)) is None
    sample = measure_light(grey, (100, 50, 500, 470))
    assert sample is not None and abs(sample.face[0]) < 1e-9
    assert measure_light(grey, (0, 0, 640, 480)) is not None
    assert measure_light(np.zeros((480, 640, 3), np.uint8), (200, 100, 400, 350)) is None
