"""Every transition of the sans-IO admission state machine."""

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

POLICY = GatePolicy(attempt_timeout_s=10, max_attempts=3, frames_required=3, min_motion=0.02)


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
    actions = feed(gate, 1, good(0.50, distance=0.2), good(0.52, distance=0.4), good(0.55, distance=0.3))
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
    gate = make(GatePolicy(attempt_timeout_s=10, max_attempts=2, frames_required=3))
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
    policy = GatePolicy(attempt_timeout_s=10, max_attempts=3, frames_required=3)
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
