"""One node's Prometheus metrics: a registry per hub, never the process-global one.

Why a registry per hub: tests (and a supervisor's future in-process workers) run
several apps in one process; the global default registry would refuse the second
app's metrics as duplicates, or mix two nodes' counts.

Two kinds of numbers:

- **events** are counted where they happen: verdicts in
  ``server/session_actions.py`` (:meth:`NodeMetrics.verdict`), work-pool jobs in the
  pool's threads (:meth:`NodeMetrics.job_done`, thread-safe), event-loop lag by a
  small task (:meth:`NodeMetrics.start`);
- **state** is read at scrape time by :class:`_HubCollector` from the live objects
  (rooms, participants, SFU legs, queues), so the media path pays nothing for it.

Forwarded frames are counted at scrape time too: each leg keeps its own counter, and
the collector adds what every live leg delivered since the previous scrape to a
node-wide total. Frames a leg delivered between the last scrape and its end are not
counted (a leg that lives less than a scrape interval is invisible): the totals are a
slight undercount, never an overcount.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
import weakref
from collections import Counter as Tally
from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from . import gate as g
from .workpool import API, GATE, UPLOAD, WorkPool

if TYPE_CHECKING:
    from .hub import Hub

LAG_INTERVAL_S = 0.25
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
JOB_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class NodeMetrics:
    """The hub's registry and the event counters written into it."""

    def __init__(self, hub: Hub) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.admissions = Counter(
            "videogate_admissions",
            "Verdicts that let someone in: admission (verified), rejoin (grace), reverify.",
            ["kind"],
            registry=r,
        )
        self.refusals = Counter(
            "videogate_refusals",
            "Refusals by the gate's reason; final=true ended the session.",
            ["reason", "final"],
            registry=r,
        )
        self.job_wait = Histogram(
            "videogate_analysis_queue_wait_seconds",
            "Time a job waited in the work pool (gate lane: sampled frames) for a thread.",
            ["lane"],
            buckets=JOB_BUCKETS,
            registry=r,
        )
        self.job_run = Histogram(
            "videogate_analysis_seconds",
            "Time a work-pool job ran (gate lane: one frame's face analysis).",
            ["lane"],
            buckets=JOB_BUCKETS,
            registry=r,
        )
        self.loop_lag = Histogram(
            "videogate_event_loop_lag_seconds",
            f"How late a {LAG_INTERVAL_S} s asyncio sleep woke up (the loop was busy).",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        # Every series exists from the start at 0, so rate() and alerts see the first event.
        for kind in ("admission", "rejoin", "reverify"):
            self.admissions.labels(kind)
        for reason in g.Reason:
            for final in ("true", "false"):
                self.refusals.labels(reason.value, final)
        for lane in (GATE, API, UPLOAD):
            self.job_wait.labels(lane)
            self.job_run.labels(lane)
        r.register(_HubCollector(hub))
        self._lag_task: asyncio.Task[None] | None = None

    # -- events --

    def verdict(self, action: g.Admitted | g.Refused | g.LockedOut, *, rejoin: bool) -> None:
        """One gate verdict, counted once whatever its consequences."""
        if isinstance(action, g.Admitted):
            kind = "reverify" if action.reverify else "rejoin" if rejoin else "admission"
            self.admissions.labels(kind).inc()
        elif isinstance(action, g.Refused):
            self.refusals.labels(action.reason.value, str(action.final).lower()).inc()
        else:
            self.refusals.labels(g.Reason.LOCKED_OUT.value, "true").inc()

    def job_done(self, lane: str, wait_s: float, run_s: float) -> None:
        """Called from the work pool's threads (prometheus-client is thread-safe)."""
        self.job_wait.labels(lane).observe(wait_s)
        self.job_run.labels(lane).observe(run_s)

    # -- event-loop lag --

    def start(self) -> None:
        self._lag_task = asyncio.create_task(self._measure_lag(), name="loop-lag")

    async def _measure_lag(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(LAG_INTERVAL_S)
            self.loop_lag.observe(max(0.0, time.monotonic() - before - LAG_INTERVAL_S))

    async def close(self) -> None:
        task, self._lag_task = self._lag_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class _Totals:
    """Node-wide monotonic totals from per-object counters read at scrape time."""

    def __init__(self) -> None:
        self._seen: weakref.WeakKeyDictionary[object, int] = weakref.WeakKeyDictionary()
        self.total: Tally[str] = Tally()

    def add(self, obj: object, label: str, value: int) -> int:
        """Fold ``obj``'s current count in; returns what it added since the last scrape."""
        delta = max(0, value - self._seen.get(obj, 0))
        self._seen[obj] = value
        self.total[label] += delta
        return delta


class _HubCollector(Collector):
    """Live state of one hub, read when /metrics is scraped (on the event loop)."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub
        self._forwarded = _Totals()
        self._dropped = _Totals()
        self._published = _Totals()
        self._last_scrape: float | None = None

    def describe(self) -> Iterable[Metric]:
        return []  # families are built per scrape; nothing to check at registration

    def collect(self) -> Iterable[Metric]:
        hub = self._hub
        yield _gauge("videogate_rooms_live", "Rooms with a live session on this node.",
                     len(hub.rooms))  # fmt: skip
        members = [m for r in hub.rooms.values() for m in r.participants.values()]
        yield _gauge("videogate_participants", "Participant sessions on this node.", len(members))
        by_state = GaugeMetricFamily(
            "videogate_participants_by_state",
            "Participant sessions by gate state (lobby, checking, challenge, admitted, ...).",
            labels=["state"],
        )
        states = Tally(str(m.dashboard_row().get("state", "unknown")) for m in members)
        for state in g.State:
            states.setdefault(state.value, 0)
        for state_name, count in sorted(states.items()):
            by_state.add_metric([state_name], count)
        yield by_state
        yield _gauge("videogate_default_threshold", "Match distance threshold (engine default "
                     "unless [gate] threshold).", hub.default_threshold)  # fmt: skip
        yield from self._workpool()
        yield from self._forwarding()
        yield _gauge(
            "videogate_webhook_backlog",
            "Webhook deliveries waiting or in flight on this node.",
            hub.webhooks.backlog,
        )

    def _workpool(self) -> Iterable[Metric]:
        pool = self._hub.executor
        if not isinstance(pool, WorkPool):
            return
        stats = pool.stats()
        for key, kind, text in (
            ("queued", "gauge", "Jobs waiting in the work pool, by lane."),
            ("running", "gauge", "Jobs running in the work pool, by lane."),
            ("refused", "counter", "Jobs refused (lane queue full: 503 busy), by lane."),
            ("done", "counter", "Jobs finished, by lane."),
        ):
            family: GaugeMetricFamily | CounterMetricFamily
            name = f"videogate_workpool_{key}"
            if kind == "gauge":
                family = GaugeMetricFamily(name, text, labels=["lane"])
            else:
                family = CounterMetricFamily(name, text, labels=["lane"])
            for lane, values in sorted(stats.items()):
                family.add_metric([lane], values[key])
            yield family

    def _forwarding(self) -> Iterable[Metric]:
        now = time.monotonic()
        elapsed = None if self._last_scrape is None else now - self._last_scrape
        self._last_scrape = now
        legs = GaugeMetricFamily(
            "videogate_forwarded_legs", "Forwarded tracks (publisher -> viewer) live.",
            labels=["kind"],
        )  # fmt: skip
        count: Tally[str] = Tally({"audio": 0, "video": 0})
        rates: list[float] = []
        for runtime in list(self._hub.rooms.values()):
            for leg in runtime.sfu.legs():
                count[leg.kind] += 1
                delta = self._forwarded.add(leg.track, leg.kind, leg.track.delivered)
                self._dropped.add(leg.track, leg.kind, leg.track.dropped)
                if leg.kind == "video" and elapsed and leg.track.state == "flowing":
                    rates.append(delta / elapsed)
            for member in runtime.participants.values():
                publisher = member.publisher
                if publisher is not None:
                    stats = publisher.stats()
                    self._published.add(publisher, "video", stats.video_frames)
        for kind, n in sorted(count.items()):
            legs.add_metric([kind], n)
        yield legs
        for name, totals, text in (
            ("videogate_forwarded_frames", self._forwarded, "Frames handed to viewers' senders."),
            ("videogate_forwarded_frames_dropped", self._dropped,
             "Frames dropped on viewer legs (backlog over max_queue, codec mismatch)."),
            ("videogate_published_frames", self._published,
             "Frames received from publishers' cameras."),
        ):  # fmt: skip
            family = CounterMetricFamily(name, text, labels=["kind"])
            for kind in ("audio", "video") if totals is not self._published else ("video",):
                family.add_metric([kind], totals.total[kind])
            yield family
        fps = GaugeMetricFamily(
            "videogate_forwarded_video_fps",
            "Frame rate of flowing video legs since the previous scrape: slowest and median.",
            labels=["stat"],
        )
        if rates:
            fps.add_metric(["min"], min(rates))
            fps.add_metric(["median"], statistics.median(rates))
        yield fps


def _gauge(name: str, text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, text, value=value)
