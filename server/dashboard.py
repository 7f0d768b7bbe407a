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

    def subscribe(self, room_id: str, sink: DashboardSink) -> None:
        self.sinks.setdefault(room_id, set()).add(sink)

    def unsubscribe(self, room_id: str, sink: DashboardSink) -> None:
        sinks = self.sinks.get(room_id)
        if sinks is not None:
            sinks.discard(sink)
            if not sinks:
                del self.sinks[room_id]

    def changed(self, room_id: str) -> None:
        """Something in the room changed: push one snapshot soon (coalesced)."""
        if room_id not in self.sinks or room_id in self._dirty:
            return
        self._dirty.add(room_id)
        task = asyncio.get_running_loop().create_task(self._push_later(room_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _push_later(self, room_id: str) -> None:
        await asyncio.sleep(self._debounce_s)
        self._dirty.discard(room_id)
        await self.push(room_id)

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
        runtime = self._hub.rooms.get(room_id)
        members = list(runtime.participants.values()) if runtime else []
        participants = [p.dashboard_row() for p in members]
        return {"type": "room", "participants": participants}

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
