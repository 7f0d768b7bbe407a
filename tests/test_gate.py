"""Every transition of the sans-IO admission state machine.

The identity transitions are tested with liveness ``off`` (the frames-with-movement
stand-in: a still picture is still never admitted); the liveness transitions
(challenge, passive cues) are in the second half with the default policy.
"""

from __future__ import annotations

from server.gate import (
    Admitted,
    FrameAnalysed,
    Gate,
    GatePolicy,
    Leave,
    LockedOut,
    LockoutTracker,
    Match,
    Observation,
    Progress,
    Reason,
    Refused,
    ReverifyRequested,
    Start,
    State,
    StateChanged,
    Tick,
)
from server.liveness import LivenessPolicy

OFF = LivenessPolicy.OFF
POLICY = GatePolicy(
    attempt_timeout_s=10, max_attempts=3, frames_required=3, min_motion=0.02, liveness=OFF
)


def good(x: float = 0.5, person: str = "p1", distance: float = 0.3) -> Observation:
    return Observation(1, Match(person, distance, True), (x, 0.5), 0.2)


def stranger(distance: float = 0.8) -> Observation:
    return Observation(1, Match(None, distance, False), (0.5, 0.5), 0.2)


def make(policy: GatePolicy = POLICY, keys: tuple[str, ...] = ("inv", "ip")) -> Gate:
    return Gate(policy, LockoutTracker(failures=5, window_s=180, duration_s=1800), keys)


def feed(gate: Gate, t: float, *obs: Observation) -> list[object]:
    out: list[object] = []
    for i, o in enumerate(obs):
        out += gate.handle(FrameAnalysed(t + i * 0.25, o))
    return out


def test_start_moves_lobby_to_checking() -> None:
    gate = make()
    actions = gate.handle(Start(0))
    assert StateChanged(State.CHECKING) in actions
    assert gate.state is State.CHECKING


def test_frames_before_start_are_ignored() -> None:
    gate = make()
    assert gate.handle(FrameAnalysed(0, good())) == []
    assert gate.state is State.LOBBY


def test_moving_matching_face_is_admitted_with_median_distance() -> None:
    gate = make()
    gate.handle(Start(0))
    actions = feed(
        gate, 1, good(0.50, distance=0.2), good(0.52, distance=0.4), good(0.55, distance=0.3)
    )
    assert Admitted("p1", 0.3) in actions
    assert gate.state is State.ADMITTED


def test_progress_is_reported_per_frame() -> None:
    gate = make()
    gate.handle(Start(0))
    assert feed(gate, 1, good()) == [Progress(1, 3)]


def test_still_picture_is_held_for_no_movement() -> None:
    gate = make()
    gate.handle(Start(0))
    actions = feed(gate, 1, good(), good(), good(), good())
    assert Progress(2, 3, Reason.NO_MOVEMENT) in actions
    assert gate.state is State.CHECKING
    # Movement later still admits.
    assert any(isinstance(a, Admitted) for a in feed(gate, 3, good(0.6)))


def test_still_picture_times_out_with_no_movement_reason() -> None:
    gate = make()
    gate.handle(Start(0))
    feed(gate, 1, good(), good(), good())
    actions = gate.handle(Tick(10.5))
    assert Refused(Reason.NO_MOVEMENT, 2, False, None) in actions
    assert gate.state is State.FAILED


def test_two_faces_hold_with_reason() -> None:
    gate = make()
    gate.handle(Start(0))
    actions = feed(gate, 1, Observation(2))
    assert actions == [Progress(0, 3, Reason.MULTIPLE_FACES)]
    assert gate.state is State.CHECKING


def test_no_face_until_timeout_refuses_with_no_face() -> None:
    gate = make()
    gate.handle(Start(0))
    feed(gate, 1, Observation(0), Observation(0))
    assert gate.handle(Tick(5)) == []
    actions = gate.handle(Tick(10))
    assert Refused(Reason.NO_FACE, 2, False, None) in actions


def test_poor_quality_holds_with_detail() -> None:
    gate = make()
    gate.handle(Start(0))
    actions = feed(gate, 1, Observation(1, None, (0.5, 0.5), 0.05, ("face too small",)))
    assert actions == [Progress(0, 3, Reason.POOR_QUALITY, "face too small")]


def test_stranger_is_refused_not_recognised_after_mismatches() -> None:
    gate = make()
    gate.handle(Start(0))
    actions = feed(gate, 1, stranger(), stranger(), stranger(0.9))
    assert Refused(Reason.NOT_RECOGNISED, 2, False, 0.9) in actions
    assert gate.state is State.FAILED


def test_ambiguous_match_refuses_immediately() -> None:
    gate = make()
    gate.handle(Start(0))
    actions = feed(gate, 1, Observation(1, Match("p1", 0.4, True, ambiguous=True), (0.5, 0.5), 0.2))
    assert Refused(Reason.AMBIGUOUS, 2, False, 0.4) in actions


def test_person_swap_mid_attempt_restarts_evidence() -> None:
    gate = make()
    gate.handle(Start(0))
    feed(gate, 1, good(0.5, "p1"), good(0.55, "p1"))
    actions = feed(gate, 2, good(0.6, "p2"))
    assert actions == [Progress(0, 3)]
    assert gate.state is State.CHECKING


def test_retry_after_failure_then_final_denial() -> None:
    gate = make(GatePolicy(attempt_timeout_s=10, max_attempts=2, frames_required=3, liveness=OFF))
    gate.handle(Start(0))
    feed(gate, 1, stranger(), stranger(), stranger())
    assert gate.state is State.FAILED and gate.attempts_left == 1
    assert StateChanged(State.CHECKING) in gate.handle(Start(5))
    actions = feed(gate, 6, stranger(), stranger(), stranger())
    assert Refused(Reason.NOT_RECOGNISED, 0, True, 0.8) in actions
    assert gate.state is State.DENIED
    # Denied is terminal.
    assert gate.handle(Start(20)) == []


def test_start_while_checking_is_ignored() -> None:
    gate = make()
    gate.handle(Start(0))
    assert gate.handle(Start(1)) == []


def test_lockout_after_repeated_failures_across_gates() -> None:
    tracker = LockoutTracker(failures=5, window_s=180, duration_s=1800)
    policy = GatePolicy(attempt_timeout_s=10, max_attempts=3, frames_required=3, liveness=OFF)
    failures = 0
    last: list[object] = []
    for join in range(2):
        gate = Gate(policy, tracker, ("inv", "ip"))
        for attempt in range(3):
            if failures == 5:
                break
            gate.handle(Start(join * 40 + attempt * 12))
            last = gate.handle(Tick(join * 40 + attempt * 12 + 11))
            failures += 1
    assert any(isinstance(a, LockedOut) for a in last)
    assert Refused(Reason.LOCKED_OUT, 0, True, None) in last
    # A new join from the same IP is locked out at once.
    gate = Gate(policy, tracker, ("other-invite", "ip"))
    actions = gate.handle(Start(100))
    assert gate.state is State.LOCKED
    assert any(isinstance(a, LockedOut) and a.until == 63 + 1800 for a in actions)


def test_lockout_expires() -> None:
    tracker = LockoutTracker(failures=1, window_s=180, duration_s=60)
    tracker.record_failure(("ip",), 0)
    assert tracker.locked_until(("ip",), 30) == 60
    assert tracker.locked_until(("ip",), 61) is None
    tracker.forget_expired(500)
    assert tracker.locked_until(("ip",), 500) is None


def test_failures_outside_window_do_not_lock() -> None:
    tracker = LockoutTracker(failures=2, window_s=10, duration_s=60)
    assert tracker.record_failure(("ip",), 0) is None
    assert tracker.record_failure(("ip",), 20) is None
    assert tracker.record_failure(("ip",), 25) == 85


def test_reverify_pass_returns_to_admitted() -> None:
    gate = make()
    gate.handle(Start(0))
    feed(gate, 1, good(0.5), good(0.52), good(0.56))
    assert gate.state is State.ADMITTED
    assert StateChanged(State.REVERIFYING) in gate.handle(ReverifyRequested(30))
    actions = feed(gate, 31, good(0.5), good(0.53), good(0.57))
    assert Admitted("p1", 0.3, reverify=True) in actions
    assert gate.state is State.ADMITTED


def test_reverify_failure_denies() -> None:
    gate = make()
    gate.handle(Start(0))
    feed(gate, 1, good(0.5), good(0.52), good(0.56))
    gate.handle(ReverifyRequested(30))
    actions = gate.handle(Tick(41))
    assert Refused(Reason.NO_FACE, 0, True, None) in actions
    assert gate.state is State.DENIED


def test_reverify_ignored_unless_admitted() -> None:
    gate = make()
    assert gate.handle(ReverifyRequested(0)) == []


def test_frame_after_deadline_times_out() -> None:
    gate = make()
    gate.handle(Start(0))
    feed(gate, 1, good(0.5))
    actions = gate.handle(FrameAnalysed(11, good(0.6)))
    assert Refused(Reason.TIMED_OUT, 2, False, None) in actions


def test_leave_is_terminal() -> None:
    gate = make()
    gate.handle(Start(0))
    assert gate.handle(Leave(1)) == [StateChanged(State.LEFT)]
    assert gate.handle(Start(2)) == []


def test_resume_admitted_within_grace() -> None:
    gate = make()
    actions = gate.resume_admitted("p1", 0.31)
    assert actions == [StateChanged(State.ADMITTED), Admitted("p1", 0.31)]


# ---- liveness: the challenge flow (default policy active+passive) -------------

import random  # noqa: E402

import numpy as np  # noqa: E402

from server.face.landmarks import FaceMeasures  # noqa: E402
from server.gate import Prompt  # noqa: E402
from server.liveness import ChallengeAction, LivenessSample, draw_actions  # noqa: E402
from server.liveness.challenge import ActiveConfig  # noqa: E402

LIVE = GatePolicy(attempt_timeout_s=10, max_attempts=3, frames_required=3)
EMB = np.zeros(128, dtype=np.float32)
POINTS = np.random.default_rng(0).normal(size=(78, 2)) * 40 + 200


def sample(
    yaw: float = 0.0, pitch: float = 0.0, ear: float = 0.3, smile: float = 0.55,
    mouth: float = 0.02, x: float = 0.5, embedding: np.ndarray | None = EMB,
) -> LivenessSample:
    measures = FaceMeasures(ear, ear, mouth, smile, yaw, pitch, 0.0)
    jitter = np.random.default_rng(int(yaw * 10 + ear * 100 + x * 1000)).normal(size=POINTS.shape)
    return LivenessSample(measures, (x, 0.5), 0.2, POINTS + jitter, embedding)


def live(s: LivenessSample | None = None, person: str = "p1", match: bool = True) -> Observation:
    s = s or sample()
    m = Match(person, 0.3, True) if match else None
    return Observation(1, m, s.center, 0.2, (), s)


def mid(s: LivenessSample) -> Observation:
    """A mid-challenge frame: mesh only, no embedding, no match."""
    return Observation(1, None, s.center, 0.2, (), s)


def seed_for(*wanted: ChallengeAction) -> int:
    for seed in range(10_000):
        if draw_actions(random.Random(seed), ActiveConfig()) == wanted:
            return seed
    raise AssertionError(wanted)


def gate_with(*actions: ChallengeAction, policy: GatePolicy = LIVE) -> Gate:
    return Gate(
        policy, LockoutTracker(failures=5, window_s=180, duration_s=1800), ("inv",),
        rng=random.Random(seed_for(*actions)),
    )


def into_challenge(gate: Gate) -> list[object]:
    gate.handle(Start(0))
    return feed(gate, 1, live(), live(), live())


DOING = {
    ChallengeAction.TURN_LEFT: sample(yaw=20),
    ChallengeAction.TURN_RIGHT: sample(yaw=-20),
    ChallengeAction.LOOK_UP: sample(pitch=-14),
    ChallengeAction.SMILE: sample(smile=0.7),
    ChallengeAction.OPEN_MOUTH: sample(mouth=0.4),
}


def test_matching_frames_start_a_challenge_with_the_first_prompt() -> None:
    gate = gate_with(ChallengeAction.SMILE, ChallengeAction.TURN_LEFT)
    actions = into_challenge(gate)
    assert gate.state is State.CHALLENGE
    assert StateChanged(State.CHALLENGE) in actions
    prompts = [a for a in actions if isinstance(a, Prompt)]
    assert [(p.action, p.step, p.steps) for p in prompts] == [("smile", 1, 2)]
    assert not gate.wants_embedding  # mid-challenge frames skip the embedding


def test_each_step_prompts_the_next_then_admits_the_same_face() -> None:
    gate = gate_with(ChallengeAction.SMILE, ChallengeAction.TURN_LEFT, ChallengeAction.BLINK)
    into_challenge(gate)
    out = gate.handle(FrameAnalysed(2.0, mid(DOING[ChallengeAction.SMILE])))
    assert Progress(1, 3) in out
    assert [a.action for a in out if isinstance(a, Prompt)] == ["turn_left"]
    out = gate.handle(FrameAnalysed(2.5, mid(DOING[ChallengeAction.TURN_LEFT])))
    assert [a.action for a in out if isinstance(a, Prompt)] == ["blink"]
    gate.handle(FrameAnalysed(2.7, mid(sample())))
    assert gate.handle(FrameAnalysed(2.9, mid(sample(ear=0.22)))) == []
    out = gate.handle(FrameAnalysed(3.1, mid(sample())))
    assert gate.wants_embedding  # all steps done: the end frame must be embedded
    assert gate.state is State.CHALLENGE
    out = gate.handle(FrameAnalysed(3.3, live()))
    assert Admitted("p1", 0.3) in out
    assert gate.state is State.ADMITTED


def test_wrong_turn_fails_with_liveness() -> None:
    gate = gate_with(ChallengeAction.TURN_LEFT, ChallengeAction.SMILE)
    into_challenge(gate)
    out = gate.handle(FrameAnalysed(2.0, mid(DOING[ChallengeAction.TURN_RIGHT])))
    refused = [a for a in out if isinstance(a, Refused)]
    assert refused and refused[0].reason is Reason.LIVENESS and refused[0].attempts_left == 2
    assert refused[0].detail.startswith("wrong")
    assert gate.state is State.FAILED


def test_step_time_limit_fails_with_liveness() -> None:
    gate = gate_with(ChallengeAction.OPEN_MOUTH, ChallengeAction.SMILE)
    into_challenge(gate)
    assert gate.handle(Tick(3.0)) == []
    gate.handle(FrameAnalysed(3.0, mid(sample())))
    out = gate.handle(Tick(1.5 + 6.1))
    assert Refused(Reason.LIVENESS, 2, False, None, "timed_out:open_mouth") in out


def test_still_photo_never_passes_a_challenge() -> None:
    """A photo repeats its neutral measures: every challenge times out."""
    for actions in [(ChallengeAction.BLINK, ChallengeAction.SMILE),
                    (ChallengeAction.TURN_RIGHT, ChallengeAction.LOOK_UP)]:
        gate = gate_with(*actions)
        into_challenge(gate)
        out: list[object] = []
        t = 2.0
        while gate.state is State.CHALLENGE and t < 40:
            out += gate.handle(FrameAnalysed(t, live()))
            t += 0.125
        assert gate.state is State.FAILED
        assert any(isinstance(a, Refused) and a.reason is Reason.LIVENESS for a in out)


def test_face_jump_mid_challenge_breaks_the_track() -> None:
    gate = gate_with(ChallengeAction.SMILE, ChallengeAction.BLINK)
    into_challenge(gate)
    out = gate.handle(FrameAnalysed(2.0, mid(sample(x=0.9))))
    assert any(isinstance(a, Refused) and a.detail.startswith("lost") for a in out)


def test_face_gone_too_long_mid_challenge_fails() -> None:
    gate = gate_with(ChallengeAction.SMILE, ChallengeAction.BLINK)
    into_challenge(gate)
    assert gate.handle(FrameAnalysed(1.8, Observation(0))) == [Progress(0, 2, Reason.NO_FACE)]
    out = gate.handle(Tick(3.5))
    assert any(isinstance(a, Refused) and a.reason is Reason.LIVENESS for a in out)


def test_swapped_face_at_the_end_fails() -> None:
    gate = gate_with(ChallengeAction.SMILE, ChallengeAction.OPEN_MOUTH)
    into_challenge(gate)
    gate.handle(FrameAnalysed(2.0, mid(DOING[ChallengeAction.SMILE])))
    gate.handle(FrameAnalysed(2.2, mid(DOING[ChallengeAction.OPEN_MOUTH])))
    other = sample(embedding=np.full(128, 0.1, dtype=np.float32))  # distance ~1.13
    out = gate.handle(FrameAnalysed(2.4, live(other)))
    assert Refused(Reason.LIVENESS, 2, False, 0.3, "face changed") in out


def test_another_person_at_the_end_is_not_recognised() -> None:
    gate = gate_with(ChallengeAction.SMILE, ChallengeAction.OPEN_MOUTH)
    into_challenge(gate)
    gate.handle(FrameAnalysed(2.0, mid(DOING[ChallengeAction.SMILE])))
    gate.handle(FrameAnalysed(2.2, mid(DOING[ChallengeAction.OPEN_MOUTH])))
    out = gate.handle(FrameAnalysed(2.4, live(person="p2")))
    assert any(isinstance(a, Refused) and a.reason is Reason.NOT_RECOGNISED for a in out)


def test_no_matching_face_after_the_last_step_times_out() -> None:
    gate = gate_with(ChallengeAction.SMILE, ChallengeAction.OPEN_MOUTH)
    into_challenge(gate)
    gate.handle(FrameAnalysed(2.0, mid(DOING[ChallengeAction.SMILE])))
    gate.handle(FrameAnalysed(2.2, mid(DOING[ChallengeAction.OPEN_MOUTH])))
    out = gate.handle(Tick(9.0))
    assert any(isinstance(a, Refused) and a.reason is Reason.LIVENESS for a in out)


def test_frames_without_liveness_sample_do_not_count_under_liveness() -> None:
    gate = gate_with(ChallengeAction.SMILE, ChallengeAction.OPEN_MOUTH)
    gate.handle(Start(0))
    out = feed(gate, 1, good(), good(), good())
    assert gate.state is State.CHECKING
    assert out[-1] == Progress(0, 3, Reason.POOR_QUALITY, "face not measurable")


def test_passive_cue_refuses_at_the_end_of_a_challenge() -> None:
    from server.liveness.cues import PixelCues

    screen = PixelCues((0.9, 0.9, 0.9, 0.9), 3.0, 0.0, 25.0)  # bezel all round, display tint

    def with_px(s: LivenessSample) -> LivenessSample:
        return LivenessSample(s.measures, s.center, s.width, s.points, s.embedding, screen)

    gate = gate_with(ChallengeAction.SMILE, ChallengeAction.OPEN_MOUTH)
    gate.handle(Start(0))
    feed(gate, 1, live(with_px(sample())), live(with_px(sample())), live(with_px(sample())))
    gate.handle(FrameAnalysed(2.0, mid(with_px(DOING[ChallengeAction.SMILE]))))
    gate.handle(FrameAnalysed(2.2, mid(with_px(DOING[ChallengeAction.OPEN_MOUTH]))))
    out = gate.handle(FrameAnalysed(2.4, live(with_px(sample()))))
    refused = [a for a in out if isinstance(a, Refused)]
    assert refused and refused[0].reason is Reason.LIVENESS
    assert refused[0].detail in ("passive:frame", "passive:gamut")


def test_active_only_policy_ignores_passive_cues() -> None:
    from server.liveness.cues import PixelCues

    screen = PixelCues((0.9, 0.9, 0.9, 0.9), 3.0, 0.0, 25.0)
    policy = GatePolicy(attempt_timeout_s=10, frames_required=3, liveness=LivenessPolicy.ACTIVE)
    gate = gate_with(ChallengeAction.SMILE, ChallengeAction.OPEN_MOUTH, policy=policy)

    def px(s: LivenessSample) -> LivenessSample:
        return LivenessSample(s.measures, s.center, s.width, s.points, s.embedding, screen)

    gate.handle(Start(0))
    feed(gate, 1, live(px(sample())), live(px(sample())), live(px(sample())))
    gate.handle(FrameAnalysed(2.0, mid(px(DOING[ChallengeAction.SMILE]))))
    gate.handle(FrameAnalysed(2.2, mid(px(DOING[ChallengeAction.OPEN_MOUTH]))))
    assert any(isinstance(a, Admitted) for a in gate.handle(FrameAnalysed(2.4, live(px(sample())))))


def test_passive_policy_refuses_a_still_face_after_the_window() -> None:
    policy = GatePolicy(attempt_timeout_s=10, frames_required=3, liveness=LivenessPolicy.PASSIVE)
    gate = make(policy)
    gate.handle(Start(0))
    out: list[object] = []
    for i in range(20):  # a photo: moves across the frame, never changes expression
        out += gate.handle(FrameAnalysed(1 + i * 0.25, live(sample(x=0.5 + 0.01 * (i % 3)))))
    refused = [a for a in out if isinstance(a, Refused)]
    assert refused and refused[0].reason is Reason.LIVENESS
    assert refused[0].detail == "passive:static"


def test_reverify_runs_a_challenge_and_failure_denies() -> None:
    gate = gate_with(ChallengeAction.SMILE, ChallengeAction.OPEN_MOUTH)
    into_challenge(gate)
    gate.handle(FrameAnalysed(2.0, mid(DOING[ChallengeAction.SMILE])))
    gate.handle(FrameAnalysed(2.2, mid(DOING[ChallengeAction.OPEN_MOUTH])))
    gate.handle(FrameAnalysed(2.4, live()))
    assert gate.state is State.ADMITTED
    gate.handle(ReverifyRequested(30))
    feed(gate, 31, live(), live(), live())
    assert gate.state is State.CHALLENGE
    out = gate.handle(Tick(45))
    assert any(isinstance(a, Refused) and a.final for a in out)
    assert gate.state is State.DENIED


def test_production_gate_uses_a_csprng() -> None:
    import secrets

    assert isinstance(make().rng, secrets.SystemRandom)
