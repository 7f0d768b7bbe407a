"""The host decides, at the gate and lockout level (pure): who may be let in, sent back
or given attempts back; which locks an owner sees and lifts; camera off vs no face."""

from __future__ import annotations

import hashlib

from server.gate import Gate, LockoutTracker, Refused, Start, State, StateChanged
from server.host import clean_reason, key_of_lock, room_locks
from server.presence.monitor import (
    CAMERA_OFF,
    LOST,
    RESTORED,
    PresenceCheck,
    PresenceConfig,
    PresenceMonitor,
)

from .test_gate import POLICY, feed, make, stranger
from .test_gate_session import admitted


def refused_once(gate: Gate) -> None:
    gate.handle(Start(0))
    actions = feed(gate, 1, *[stranger(0.71)] * POLICY.mismatch_frames)
    assert any(isinstance(a, Refused) for a in actions) and gate.state is State.FAILED


def test_host_admits_a_refused_person_and_keeps_the_refused_distance() -> None:
    gate = make()
    refused_once(gate)
    assert gate.last_distance == 0.71 and gate.distance is None
    assert gate.host_admit("p1") == [StateChanged(State.ADMITTED)]
    assert gate.state is State.ADMITTED and gate.person_id == "p1"
    assert gate.host_admit("p1") == []  # already in
    assert gate.next_deadline() is None  # no attempt left running


def test_host_admit_ends_a_running_attempt_and_is_refused_after_a_final_decision() -> None:
    gate = make()
    gate.handle(Start(0))
    assert gate.host_admit(None) == [StateChanged(State.ADMITTED)]
    denied = make()
    denied.state = State.DENIED
    assert denied.host_admit("p1") == [] and denied.state is State.DENIED


def test_send_to_lobby_needs_an_admitted_person_and_the_check_starts_again() -> None:
    gate = make()
    assert gate.send_to_lobby() == []
    admitted(gate)
    assert gate.send_to_lobby() == [StateChanged(State.FAILED)]
    gate.handle(Start(10))
    assert gate.state is State.CHECKING


def test_reset_gives_attempts_back_and_lifts_this_persons_locks() -> None:
    tracker = LockoutTracker(failures=2, window_s=180, duration_s=1800)
    gate = Gate(POLICY, tracker, ("invite:t", "ip:r:1.2.3.4"))
    refused_once(gate)
    assert gate.failures == 1 and gate.attempts_left == POLICY.max_attempts - 1
    tracker.record(("invite:t",), 5)  # second failure on the invite: locked
    assert tracker.locked_until(("invite:t",), 6) is not None
    gate.reset_attempts()
    assert gate.failures == 0 and gate.attempts_left == POLICY.max_attempts
    assert tracker.locked_until(("invite:t",), 6) is None and len(tracker) == 0


def test_room_locks_name_this_rooms_invites_and_addresses_only() -> None:
    tracker = LockoutTracker(failures=1, window_s=180, duration_s=100)
    mine = hashlib.sha256(b"tok").hexdigest()[:16]
    keys = ("invite:tok", "invite:other", "ip:room1:10.0.0.1", "ip:room2:10.0.0.2", "device:d")
    tracker.record(keys, 0)
    locks = room_locks(tracker.locks(1), "room1", {mine})
    assert [(lock.kind, lock.label) for lock in locks] == [
        ("invite", mine), ("address", "10.0.0.1")
    ]  # fmt: skip
    assert all("tok" not in lock.id for lock in locks)  # the token never leaves
    key = key_of_lock(tracker.locks(1), locks[0].id)
    assert key == "invite:tok" and tracker.clear([key]) == 1
    assert [lock.kind for lock in room_locks(tracker.locks(1), "room1", {mine})] == ["address"]
    assert room_locks(tracker.locks(101), "room1", {mine}) == []  # expired


def test_clean_reason_is_one_bounded_line() -> None:
    assert clean_reason("  new\n glasses  ") == "new glasses"
    assert len(clean_reason("x" * 1000)) == 300


def test_camera_off_is_not_absence() -> None:
    monitor = PresenceMonitor(PresenceConfig(interval_s=1, lost_checks=2))
    monitor.start(0)
    assert monitor.feed(PresenceCheck(1, faces=0)) == []  # one "no face" check
    (off,) = monitor.camera(False, 1.5)
    assert off.kind == CAMERA_OFF and monitor.flags == (CAMERA_OFF,)
    for t in (2, 3, 4, 5):
        assert monitor.feed(PresenceCheck(t, faces=0)) == []  # never "presence.lost"
    assert monitor.stats.camera_off == 4 and monitor.stats.passed == 0
    assert monitor.camera(False, 5.5) == []  # said once
    (back,) = monitor.camera(True, 6)
    assert back.kind == RESTORED and back.cleared == (CAMERA_OFF,)
    events = [e.kind for t in (7, 8) for e in monitor.feed(PresenceCheck(t, faces=0))]
    assert events == [LOST]  # the camera is on and nobody is there: that is absence
