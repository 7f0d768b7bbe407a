"""Gate behaviour the session layer relies on (issue 11 and the per-frame lockout of #12):
deadlines instead of polling, internal failures that cost the person nothing,
re-verification pinned to the admitted person, and a lock seen on every frame.
"""

from __future__ import annotations

from server.gate import (
    AnalysisFailed,
    FrameAnalysed,
    Gate,
    LockedOut,
    LockoutTracker,
    Match,
    Observation,
    Reason,
    Refused,
    ReverifyRequested,
    Start,
    State,
    Tick,
)

from .test_gate import POLICY, good, make


def admitted(gate: Gate, person: str = "p1") -> None:
    gate.handle(Start(0))
    for i, x in enumerate((0.50, 0.52, 0.55)):
        gate.handle(FrameAnalysed(1 + i * 0.25, good(x, person=person)))
    assert gate.state is State.ADMITTED


def test_next_deadline_follows_the_attempt() -> None:
    gate = make()
    assert gate.next_deadline() is None
    gate.handle(Start(2))
    assert gate.next_deadline() == 2 + POLICY.attempt_timeout_s
    # Nothing happens before the deadline; at it the attempt times out.
    assert gate.handle(Tick(11.9)) == []
    actions = gate.handle(Tick(12))
    assert any(isinstance(a, Refused) for a in actions)
    assert gate.next_deadline() is None  # FAILED waits for the person, not for time


def test_analysis_failure_is_internal_and_costs_nothing() -> None:
    tracker = LockoutTracker(failures=1, window_s=180, duration_s=1800)
    gate = Gate(POLICY, tracker, ("invite:x", "ip:y"))
    gate.handle(Start(0))
    actions = gate.handle(AnalysisFailed(1, "RuntimeError: boom"))
    assert Refused(Reason.INTERNAL, 3, False, None, "RuntimeError: boom") in actions
    assert gate.state is State.FAILED and gate.attempts_left == 3
    assert tracker.locked_until(("invite:x", "ip:y"), 2) is None and len(tracker) == 0
    # The person simply tries again.
    gate.handle(Start(3))
    assert gate.state is State.CHECKING


def test_reverify_in_an_open_room_refuses_another_enrolled_person() -> None:
    gate = make(keys=("ip",))
    admitted(gate, person="ada")
    gate.handle(ReverifyRequested(20))
    other = Observation(1, Match("bob", 0.2, True), (0.5, 0.5), 0.2)
    actions: list[object] = []
    for i in range(POLICY.mismatch_frames):
        actions += gate.handle(FrameAnalysed(21 + i * 0.25, other))
    refused = [a for a in actions if isinstance(a, Refused)]
    assert refused and refused[0].reason is Reason.NOT_RECOGNISED and refused[0].final
    assert gate.person_id == "ada" and gate.state is State.DENIED


def test_lock_taken_elsewhere_stops_an_attempt_at_its_next_frame() -> None:
    tracker = LockoutTracker(failures=5, window_s=180, duration_s=1800)
    busy = Gate(POLICY, tracker, ("invite:x",))
    busy.handle(Start(0))
    busy.handle(FrameAnalysed(0.5, good(0.5)))
    # Meanwhile other sessions on the same invite fail five times.
    for i in range(5):
        tracker.record_failure(("invite:x",), 1 + i * 0.1)
    actions = busy.handle(FrameAnalysed(2, good(0.6)))
    assert busy.state is State.LOCKED
    assert any(isinstance(a, LockedOut) for a in actions)


def test_lockout_table_is_pruned_after_ten_thousand_addresses() -> None:
    tracker = LockoutTracker(failures=5, window_s=180, duration_s=1800)
    for i in range(10_000):
        tracker.record_failure((f"ip:10.0.{i // 256}.{i % 256}",), i * 0.001)
    assert len(tracker) == 10_000
    # Any later use after the window (and any lock) expired drops them all.
    assert tracker.locked_until(("ip:198.51.100.7",), 10 + 180 + 1) is None
    assert len(tracker) == 0
