"""Owner dashboards: who watches which room, and a debounced push of its live state.

Why debounced: a join produces a burst of state changes (lobby, checking,
challenge steps, admitted, peers); pushing a full snapshot for each, with an
audit read, to every watching owner is wasted work on the media loop. Changes
mark the room dirty; one snapshot goes out ``debounce_s`` later with everything.
The audit part of the snapshot is read on the audit writer's thread, never on
the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .cluster.bridge import ClusterBridge
    from .hub import Hub

log = logging.getLogger(__name__)

# An owner dashboard's websocket, as a send function (see server/owner/live.py).
DashboardSink = Callable[[dict[str, Any]], Awaitable[None]]
SEND_TIMEOUT_S = 2.0


class Dashboards:
    def __init__(self, hub: Hub, *, debounce_s: float = 0.25) -> None:
        self._hub = hub
        self._debounce_s = debounce_s
        self.sinks: dict[str, set[DashboardSink]] = {}
        self._dirty: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        # On a cluster: rooms' rows are published for other nodes' dashboards, and the
        # rows other nodes published for rooms watched here are kept (room -> node -> rows).
        self.cluster: ClusterBridge | None = None
        self._remote: dict[str, dict[str, list[dict[str, Any]]]] = {}

    def subscribe(self, room_id: str, sink: DashboardSink) -> None:
        self.sinks.setdefault(room_id, set()).add(sink)
        if self.cluster is not None and room_id not in self._hub.rooms:
            self.cluster.want_rows(room_id)  # the room lives elsewhere: ask for its rows

    def unsubscribe(self, room_id: str, sink: DashboardSink) -> None:
        sinks = self.sinks.get(room_id)
        if sinks is not None:
            sinks.discard(sink)
            if not sinks:
                del self.sinks[room_id]
                self._remote.pop(room_id, None)

    def changed(self, room_id: str) -> None:
        """Something in the room changed: push one snapshot soon (coalesced)."""
        watched = room_id in self.sinks or self.cluster is not None
        if not watched or room_id in self._dirty:
            return
        self._dirty.add(room_id)
        task = asyncio.get_running_loop().create_task(self._push_later(room_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _push_later(self, room_id: str) -> None:
        await asyncio.sleep(self._debounce_s)
        self._dirty.discard(room_id)
        if self.cluster is not None:  # a change here: this node hosts the room
            self.cluster.publish_rows(room_id, self.local_rows(room_id))
        await self.push(room_id)

    def remote_rows(self, room_id: str, node: str, rows: list[dict[str, Any]]) -> None:
        """Another node's rows of a room watched here (an empty list: none there now)."""
        if room_id not in self.sinks:
            return
        self._remote.setdefault(room_id, {})[node] = rows
        task = asyncio.get_running_loop().create_task(self.push(room_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def push(self, room_id: str) -> None:
        sinks = list(self.sinks.get(room_id, ()))
        if not sinks:
            return
        snapshot = self.live_part(room_id)
        snapshot["recent"] = await self._hub.audit_trail.recent(room_id)
        for sink in sinks:
            try:
                await asyncio.wait_for(sink(snapshot), SEND_TIMEOUT_S)
            except Exception:  # a slow or closed dashboard is dropped, never blocks the gate
                self.unsubscribe(room_id, sink)

    def snapshot(self, room_id: str) -> dict[str, Any]:
        """The full snapshot now (first paint of a dashboard; tests)."""
        snapshot = self.live_part(room_id)
        snapshot["recent"] = self._hub.audit_trail.recent_now(room_id)
        return snapshot

    def live_part(self, room_id: str) -> dict[str, Any]:
        """Who is in the lobby or the room now, with the latest decisions' scores."""
        participants = self.local_rows(room_id)
        remote = self._remote.get(room_id, {})
        if remote and self.cluster is not None:  # a dead node's rows went with it
            live = {n.node_id for n in self.cluster.node.peers}
            for node in [n for n in remote if n not in live]:
                del remote[node]
        for rows in remote.values():
            participants.extend(rows)
        return {"type": "room", "participants": participants}

    def local_rows(self, room_id: str) -> list[dict[str, Any]]:
        runtime = self._hub.rooms.get(room_id)
        members = list(runtime.participants.values()) if runtime else []
        return [p.dashboard_row() for p in members]

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
