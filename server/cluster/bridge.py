"""The hub's side of a cluster: what changes for a hub when ``[cluster] redis_url`` is set.

Kept out of ``server/hub.py`` so the single-node hub reads as before: the hub
calls in here only when ``hub.cluster`` is not None.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Any

from ..identity import AdmittedIdentity, GraceEntry
from ..store import StoreError
from ..verify import load_target
from .counters import MirroredLockout
from .grace import GraceRecord
from .node import ClusterNode
from .registry import NodeInfo

if TYPE_CHECKING:
    from ..hub import Hub
    from ..roles import RoomMember

log = logging.getLogger(__name__)


class ClusterBridge:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.node = ClusterNode(hub.settings, self)

    async def start(self) -> None:
        await self.node.start()

    async def close(self) -> None:
        await self.node.close()

    # -- NodeHooks --

    def load(self) -> int:
        return sum(len(r.participants) for r in self.hub.rooms.values())

    def hosted_rooms(self) -> list[str]:
        return list(self.hub.rooms)

    def live_tokens(self) -> list[str]:
        return [m.rejoin_token for r in self.hub.rooms.values() for m in r.admitted()]

    def on_event(self, event: dict[str, Any]) -> None:
        kind, room_id = event.get("kind"), str(event.get("room", ""))
        hub = self.hub
        if kind == "dashboard":
            hub.dashboard.remote_rows(room_id, str(event["from"]), list(event["participants"]))
        elif kind == "dashboard_want" and room_id in hub.rooms:
            self.publish_rows(room_id, hub.dashboard.local_rows(room_id))
        elif kind == "end_sessions":
            hub.end_sessions(
                room_id=event.get("room_id"),
                person_id=event.get("person_id"),
                invite_id=event.get("invite_id"),
                message=str(event.get("message", "")),
                local=True,
            )
        elif kind == "reverify" and room_id in hub.rooms:
            self.node.run(hub.reverify(room_id, event.get("participant")), "reverify")

    # -- placement --

    async def place(self, room_id: str) -> NodeInfo | None:
        """The node to send a join for ``room_id`` to; None: this node hosts it. Redis
        unreachable: host it here (a meeting beats a perfect placement)."""
        if room_id in self.hub.rooms:
            return None
        try:
            owner = await self.node.registry.place(room_id)
        except Exception:
            log.exception("room placement failed; hosting room %s here", room_id)
            return None
        return None if owner.node_id == self.node.node_id else owner

    def released(self, room_id: str) -> None:
        self.node.run(self.node.registry.release(room_id), "release")

    def connect_sources(self) -> str:
        """The live nodes' websocket origins, for the page's CSP ``connect-src``."""
        return "".join(f" {n.ws_url.rsplit('/', 1)[0]}" for n in self.node.peers)

    # -- lockout --

    async def sync_lockout(self, held: Sequence[Hashable], *, failed: bool) -> None:
        """Around the gate: add this failure to the shared counters (``failed``) and
        bring the keys' shared locks into the gate's tracker."""
        tracker = self.hub.lockout
        assert isinstance(tracker, MirroredLockout)
        counter = self.node.counter
        keys = [str(k) for k in held]
        now = time.monotonic()
        try:
            if failed:
                lock = await counter.record(keys, now)
                if lock is not None:
                    tracker.remember({lock[1]: lock[0]})
            tracker.remember(await counter.locks(keys, now))
        except Exception:  # Redis away: this node's own counts still lock
            log.exception("shared lockout unavailable")

    async def clear_lockout(self, keys: Sequence[Hashable]) -> None:
        """The host lifted these locks: on every node, not only in this one's mirror."""
        await self.node.counter.clear([str(k) for k in keys])

    # -- rejoin grace --

    def seated(self, member: RoomMember, room_id: str) -> None:
        """An admitted session's token goes to Redis now, kept alive by the heartbeat."""
        if member.identity is None:
            return
        ttl = self.node.lease_s + self.node.grace_s
        entry = GraceEntry(room_id, member.ip, member.identity, member.device, 0.0)
        self.remember(member.rejoin_token, entry, ttl)

    def dropped(self, token: str) -> None:
        """The connection dropped: the token now lasts the grace window only."""
        self.node.run(self.node.grace.renew([token], self.node.grace_s), "grace cut")

    def ended(self, token: str) -> None:
        """The session ended for good: no rejoin."""
        self.node.run(self.node.grace.forget(token), "grace forget")

    def remember(self, token: str, entry: GraceEntry, ttl: float | None = None) -> None:
        identity = entry.identity
        record = GraceRecord(
            entry.room_id, entry.ip, entry.device, identity.person_id, identity.name,
            identity.distance, identity.admitted_at, identity.target.threshold,
            identity.target.margin,
        )  # fmt: skip
        ttl = entry.expires - time.monotonic() if ttl is None else ttl
        self.node.run(self.node.grace.put(token, record, ttl), "grace put")

    async def claim(self, token: str) -> GraceEntry | None:
        try:
            record = await self.node.grace.claim(token)
        except Exception:
            log.exception("shared rejoin grace unavailable")
            return None
        if record is None or record.person_id is None:
            return None
        identity = self.identity_from(record)
        if identity is None:
            return None
        expires = time.monotonic() + self.hub.settings.gate.rejoin_grace_s
        return GraceEntry(record.room_id, record.ip, identity, record.device, expires)

    def identity_from(self, record: GraceRecord) -> AdmittedIdentity | None:
        """The identity pinned at admission, rebuilt from the store: the person's
        templates for every engine of the room, the threshold and margin of then."""
        store = self.hub.store
        try:
            room = store.room(record.room_id)
        except StoreError:
            return None
        target = load_target(store, room, record.person_id, threshold=record.threshold)
        target = dataclasses.replace(target, margin=record.margin)
        if not target.enrolled:
            return None  # deleted since: no rejoin without verifying
        return AdmittedIdentity(
            record.person_id, record.name, target, record.distance, record.admitted_at
        )

    def drop_grace(self, *, room_id: str | None, person_id: str | None) -> None:
        grace = self.node.grace
        if room_id is not None:
            self.node.run(grace.drop(room_id=room_id), "grace drop")
        if person_id is not None:
            self.node.run(grace.drop(person_id=person_id), "grace drop")

    # -- events --

    def publish_rows(self, room_id: str, rows: list[dict[str, object]]) -> None:
        self.node.publish("dashboard", room=room_id, participants=rows)

    def want_rows(self, room_id: str) -> None:
        self.node.publish("dashboard_want", room=room_id)

    def end_sessions(self, **scope: Any) -> None:
        self.node.publish("end_sessions", **scope)
