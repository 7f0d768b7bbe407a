"""Challenge and passive checks on landmark tracks recorded from the shared videos."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from server.liveness import (
    ActiveConfig,
    Challenge,
    ChallengeAction,
    PassiveCheck,
    StepStatus,
)
from server.liveness.challenge import Baseline, detect

from .conftest import Track

A = ChallengeAction
LONG = ActiveConfig(step_time_s=60.0)


def run(track: Track, actions: tuple[ChallengeAction, ...], cfg: ActiveConfig = LONG) -> str:
    """Feed a track (looped once) to a challenge; returns the final status value."""
    challenge = Challenge(actions, cfg)
    challenge.start([s for _, s in track[:3]], track[0][0])
    end = track[-1][0] + 0.125
    for loop in range(2):
        for t, s in track[3:] if loop == 0 else track:
            outcome = challenge.feed(s, t + loop * end)
            if outcome.status not in (StepStatus.WAITING, StepStatus.PASSED):
                return outcome.status.value
        challenge._last = None  # the loop seam is not a face swap
    return "unfinished"


@pytest.mark.parametrize(
    ("clip", "action"),
    [
        ("zubair_real.webm", A.TURN_LEFT),
        ("zubair_real.webm", A.TURN_RIGHT),
        ("zubair_real.webm", A.LOOK_UP),
        ("zubair_real.webm", A.SMILE),
        ("liveportrait_d12.mp4", A.OPEN_MOUTH),
    ],
)
def test_each_pose_and_expression_action_is_detected(
    clip_track: Callable[[str], Track], clip: str, action: ChallengeAction
) -> None:
    track = clip_track(clip)
    base = Baseline.of([s for _, s in track[:3]])
    assert any(detect(action, s, base, LONG) for _, s in track), action


def test_blink_is_detected_on_a_clip_that_blinks(clip_track: Callable[[str], Track]) -> None:
    assert run(clip_track("sadtalker_aoc.mp4"), (A.BLINK,)) == "done"


def test_expression_challenge_passes_on_a_talking_clip(clip_track: Callable[[str], Track]) -> None:
    assert run(clip_track("sadtalker_aoc.mp4"), (A.BLINK, A.OPEN_MOUTH)) == "done"


def test_wrong_turn_fails(clip_track: Callable[[str], Track]) -> None:
    # zubair_real turns to its right (yaw falls) well before it turns left.
    track = clip_track("zubair_real.webm")
    assert run(track, (A.TURN_LEFT,)) == "wrong"


def test_held_photo_fails_every_action(photo_track: Track) -> None:
    assert len(photo_track) > 30
    cfg = ActiveConfig(step_time_s=5.0)
    for action in A:
        assert run(photo_track, (action,), cfg) in ("timed_out", "lost"), action


def test_held_photo_is_flagged_static_by_passive(photo_track: Track) -> None:
    check = PassiveCheck()
    for t, s in photo_track:
        check.add(s, t)
    verdict = check.verdict()
    assert verdict.live is False
    assert verdict.cue == "static"


@pytest.mark.parametrize("clip", ["sadtalker_aoc.mp4", "liveportrait_d9.mp4", "zubair_real.webm"])
def test_bona_fide_clips_pass_passive(clip_track: Callable[[str], Track], clip: str) -> None:
    check = PassiveCheck()
    for t, s in clip_track(clip):
        check.add(s, t)
    assert check.verdict().live is True, check.verdict()


def test_replay_clip_is_flagged_by_passive(clip_track: Callable[[str], Track]) -> None:
    check = PassiveCheck()
    for t, s in clip_track("lestari_replay.mp4"):
        check.add(s, t)
    verdict = check.verdict()
    assert verdict.live is False and verdict.cue == "frame", verdict
