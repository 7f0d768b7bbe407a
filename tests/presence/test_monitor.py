"""The sans-IO presence monitor: checks in, events out, time passed in."""

from __future__ import annotations

import random

from server.presence import PresenceCheck, PresenceConfig, PresenceMonitor
from server.presence.monitor import EXTRA, LOST, MISMATCH, RESTORED, UNVERIFIABLE


def ok(now: float) -> PresenceCheck:
    return PresenceCheck(now, faces=1, distance=0.3, matched=True)


def kinds(events: list) -> list[str]:  # type: ignore[type-arg]
    return [e.kind for e in events]


def test_all_present_counts_and_no_events() -> None:
    m = PresenceMonitor(PresenceConfig(interval_s=10))
    m.start(0.0)
    assert not m.due(5.0) and m.due(10.0)
    for t in (10.0, 20.0, 30.0):
        assert m.feed(ok(t)) == []
    assert (m.stats.made, m.stats.passed, m.stats.ratio) == (3, 3, 1.0)
    assert not m.due(35.0) and m.due(40.0)


def test_lost_needs_k_consecutive_checks_and_fires_once() -> None:
    m = PresenceMonitor(PresenceConfig(lost_checks=3))
    empty = [PresenceCheck(float(t), faces=0) for t in range(1, 6)]
    assert kinds(m.feed(empty[0])) == [] and kinds(m.feed(empty[1])) == []
    events = m.feed(empty[2])
    assert kinds(events) == [LOST] and events[0].checks == 3
    assert m.feed(empty[3]) == [] and m.flags == (LOST,)
    back = m.feed(ok(10.0))
    assert kinds(back) == [RESTORED] and back[0].cleared == (LOST,)
    assert m.flags == () and m.stats.ratio == 1 / 5


def test_interrupted_streak_restarts() -> None:
    m = PresenceMonitor(PresenceConfig(lost_checks=2))
    assert m.feed(PresenceCheck(1.0, faces=0)) == []
    assert m.feed(ok(2.0)) == []
    assert m.feed(PresenceCheck(3.0, faces=0)) == []
    assert kinds(m.feed(PresenceCheck(4.0, faces=0))) == [LOST]


def test_someone_else_is_identity_mismatch_not_lost() -> None:
    m = PresenceMonitor(PresenceConfig(mismatch_checks=2))
    other = [PresenceCheck(float(t), faces=1, distance=0.8, matched=False) for t in (1, 2)]
    assert m.feed(other[0]) == []
    events = m.feed(other[1])
    assert kinds(events) == [MISMATCH] and events[0].distance == 0.8
    assert m.stats.passed == 0 and m.stats.made == 2


def test_extra_person_with_participant_present_still_passes() -> None:
    m = PresenceMonitor(PresenceConfig(extra_checks=1))
    events = m.feed(PresenceCheck(1.0, faces=2, distance=0.2, matched=True))
    assert kinds(events) == [EXTRA]
    assert m.stats.ratio == 1.0


def test_two_strangers_raise_mismatch_and_extra() -> None:
    m = PresenceMonitor(PresenceConfig(mismatch_checks=1, extra_checks=1))
    events = m.feed(PresenceCheck(1.0, faces=2, distance=0.9, matched=False))
    assert sorted(kinds(events)) == sorted([MISMATCH, EXTRA])


def test_skipped_check_counts_neither_way_and_keeps_streak() -> None:
    m = PresenceMonitor(PresenceConfig(lost_checks=2))
    m.feed(PresenceCheck(1.0, faces=0))
    assert m.feed(PresenceCheck(2.0, made=False)) == []
    assert kinds(m.feed(PresenceCheck(3.0, faces=0))) == [LOST]
    assert (m.stats.made, m.stats.skipped) == (2, 1)


def test_interval_zero_turns_checks_off() -> None:
    m = PresenceMonitor(PresenceConfig(interval_s=0))
    m.start(0.0)
    assert not m.due(1e9)


def test_unanswered_checks_raise_unverifiable_once_then_restore() -> None:
    """A camera that ignores keyframe requests no longer sits out presence for good."""
    m = PresenceMonitor(PresenceConfig(unverifiable_checks=3))
    assert m.feed(ok(1.0)) == []
    assert m.feed(PresenceCheck(2.0, made=False)) == []
    assert m.feed(PresenceCheck(3.0, made=False)) == []
    events = m.feed(PresenceCheck(4.0, made=False))
    assert kinds(events) == [UNVERIFIABLE] and events[0].checks == 3
    assert m.feed(PresenceCheck(5.0, made=False)) == [] and m.flags == (UNVERIFIABLE,)
    back = m.feed(ok(6.0))
    assert kinds(back) == [RESTORED] and back[0].cleared == (UNVERIFIABLE,)
    assert m.flags == () and (m.stats.made, m.stats.skipped) == (2, 4)
    # A made check in between restarts the count.
    assert m.feed(PresenceCheck(7.0, made=False)) == []
    assert m.feed(ok(8.0)) == []
    assert m.feed(PresenceCheck(9.0, made=False)) == []
    assert m.feed(PresenceCheck(10.0, made=False)) == []
    assert kinds(m.feed(PresenceCheck(11.0, made=False))) == [UNVERIFIABLE]


def test_unverifiable_and_lost_are_separate_episodes() -> None:
    m = PresenceMonitor(PresenceConfig(lost_checks=2, unverifiable_checks=2))
    m.feed(PresenceCheck(1.0, made=False))
    assert kinds(m.feed(PresenceCheck(2.0, made=False))) == [UNVERIFIABLE]
    m.feed(PresenceCheck(3.0, faces=0))
    events = m.feed(PresenceCheck(4.0, faces=0))
    assert kinds(events) == [LOST]  # the restore came with the first made check
    assert m.flags == (LOST,)


def test_jitter_spreads_checks_around_the_interval() -> None:
    m = PresenceMonitor(PresenceConfig(interval_s=10, jitter=0.5), rng=random.Random(3))
    gaps = []
    now = 0.0
    m.start(now)
    for _ in range(200):
        step = 0.0
        while not m.due(now + step):
            step += 0.01
        gaps.append(step)
        now += step
        m.feed(ok(now))
    assert 5.0 <= min(gaps) < 6.0 and 14.0 < max(gaps) <= 15.01
    assert len({round(g, 1) for g in gaps}) > 20
    steady = PresenceMonitor(PresenceConfig(interval_s=10))
    steady.start(0.0)
    assert not steady.due(9.99) and steady.due(10.0)
