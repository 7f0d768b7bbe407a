"""This node's part in a cluster: the Redis client, the heartbeat, the event bus.

Owned by the hub (``Hub.cluster``; None on a single node, where none of this
exists). Events between nodes travel on one pub/sub channel as JSON objects with
a ``kind``: dashboard rows of a room (so an owner's dashboard served by any node
shows the room wherever it lives), a request for them, and the end of sessions
whose grant was revoked. Pub/sub is fire-and-forget: an event lost while a node
reconnects is repaired by the next one (dashboards are full snapshots).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import Callable
from typing import Any, Protocol

import redis.asyncio as aioredis

from ..api.ratelimit import KeyedRateLimiter
from ..config import Settings
from ..owner.ratelimit import SignInLimiter
from .counters import RedisCounter
from .grace import RedisGrace
from .limits import RedisFailureLimit, RedisRequestLimit
from .registry import NodeInfo, Registry

log = logging.getLogger(__name__)

CHANNEL = "vg:events"
LOOPS = ("cluster-heartbeat", "cluster-events")


class NodeHooks(Protocol):
    """What the node needs from the hub."""

    def load(self) -> int: ...
    def hosted_rooms(self) -> list[str]: ...
    def live_tokens(self) -> list[str]: ...
    def on_event(self, event: dict[str, Any]) -> None: ...


class ClusterNode:
    def __init__(self, settings: Settings, hooks: NodeHooks) -> None:
        cluster = settings.cluster
        self.node_id = cluster.node_id or f"{socket.gethostname()}-{settings.server.port}"
        self.url = (cluster.advertise_url or settings.base_url).rstrip("/")
        self.lease_s = cluster.lease_s
        self.grace_s = settings.gate.rejoin_grace_s
        self.redis: Any = aioredis.from_url(  # type: ignore[no-untyped-call]
            cluster.redis_url, decode_responses=True
        )
        gate = settings.gate
        self.counter = RedisCounter(
            self.redis,
            gate.lockout_failures,
            gate.lockout_window_s,
            gate.lockout_duration_s,
            thresholds={"ip": gate.address_failures},
        )
        self.grace = RedisGrace(self.redis)
        # The owner UI's and the API's limits, counted across nodes (same settings).
        # Redis unreachable: each counts on this node alone, as on a single node.
        api = settings.api
        self.api_limit = RedisRequestLimit(
            self.redis,
            api.requests_per_s,
            api.burst,
            KeyedRateLimiter(api.requests_per_s, api.burst),
        )
        self.signin_limit = RedisFailureLimit(
            self.redis, 5, 300.0, "vg:rate:signin:", SignInLimiter(5, 300.0)
        )
        signups = settings.owner.signups_per_hour
        self.signup_limit = RedisFailureLimit(
            self.redis, signups, 3600.0, "vg:rate:signup:", SignInLimiter(signups, 3600.0)
        )
        self.registry = Registry(self.redis, self.node_id, self.url, cluster.lease_s)
        self._hooks = hooks
        self._tasks: set[asyncio.Task[None]] = set()
        self.peers: list[NodeInfo] = []  # live nodes at the last heartbeat (CSP, metrics)

    async def start(self) -> None:
        """Announce this node before it serves anything (a failure here stops start-up:
        a node that cannot reach Redis must not run as if it were alone)."""
        await self.heartbeat()
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(CHANNEL)
        self._spawn(self._heartbeat_loop(), "cluster-heartbeat")
        self._spawn(self._listen(pubsub), "cluster-events")
        log.info("cluster node %s at %s", self.node_id, self.url)

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def heartbeat(self) -> None:
        await self.registry.heartbeat(self._hooks.load(), self._hooks.hosted_rooms())
        await self.grace.renew(self._hooks.live_tokens(), self.lease_s + self.grace_s)
        self.peers = await self.registry.live_nodes()

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.lease_s / 3)
            try:
                await self.heartbeat()
            except Exception:  # Redis away: keep serving what is here, retry
                log.exception("cluster heartbeat failed")

    async def _listen(self, pubsub: Any) -> None:
        while True:
            try:
                message = await pubsub.get_message(timeout=1.0)
                if message is None:
                    continue
                event = json.loads(message["data"])
                if event.get("from") != self.node_id:
                    self._hooks.on_event(event)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("cluster event failed")
                await asyncio.sleep(1.0)

    def publish(self, kind: str, **payload: Any) -> None:
        """Send an event to every other node (fire-and-forget, from the event loop)."""
        data = json.dumps({"kind": kind, "from": self.node_id, **payload})
        self.run(self.redis.publish(CHANNEL, data), f"publish {kind}")

    def run(self, coro: Any, what: str, done: Callable[[Any], None] | None = None) -> None:
        """Run a Redis call in the background; failures are logged, never raised."""

        async def guarded() -> None:
            try:
                result = await coro
            except Exception:
                log.exception("cluster: %s failed", what)
                return
            if done is not None:
                done(result)

        self._spawn(guarded(), f"cluster-{what}")

    async def close(self) -> None:
        loops = [t for t in self._tasks if t.get_name() in LOOPS]
        for task in loops:
            task.cancel()
        # One-shot writes (tokens deleted by the sessions just closed) finish first.
        pending = [t for t in self._tasks if t not in loops]
        if pending:
            await asyncio.wait(pending, timeout=2.0)
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            await self.registry.leave()
        await self.redis.aclose()
