"""What the host and the reports ask of the live rooms: a host's decision for one
participant, the room's locks, a signed attendance report.

Kept out of ``Hub`` so the hub stays the owner of shared services; each function
reads the hub's rooms and stores and hands decisions to the participant's own task.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from .host import Lock, clean_reason, key_of_lock
from .host import room_locks as locks_of_room
from .inputs import HostAdmit, HostReset, HostSendToLobby
from .report import build_report, sign_report
from .store import Room

if TYPE_CHECKING:
    from .hub import Hub

HOST_DECISION_S = 10.0  # a host decision waits this long for the participant's task


async def host_decide(
    hub: Hub, room_id: str, participant_id: str, action: str, reason: str, host: str
) -> bool:
    """The host's decision for one participant, carried out by its own task."""
    runtime = hub.rooms.get(room_id)
    member = runtime.participants.get(participant_id) if runtime else None
    kinds: dict[str, type[HostAdmit] | type[HostSendToLobby] | type[HostReset]] = {
        "admit": HostAdmit, "lobby": HostSendToLobby, "reset": HostReset,
    }  # fmt: skip
    if member is None or action not in kinds:
        return False
    done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
    decision = kinds[action](clean_reason(reason), host, done)
    try:
        return await asyncio.wait_for(member.request_host(decision), HOST_DECISION_S)
    except TimeoutError:  # the session ended meanwhile
        return False


def room_locks(hub: Hub, room_id: str) -> list[Lock]:
    """Locked invites and addresses of this room (a lock ends the visit: the person
    is gone, the owner may lift it so they can come back)."""
    invites = {i.id for i in hub.store.invites(room_id)}
    return locks_of_room(hub.lockout.locks(time.monotonic()), room_id, invites)


async def lift_lock(hub: Hub, room_id: str, wanted: str) -> Lock | None:
    """Forget a lock and its failures; on a cluster in Redis too (else the next join
    would bring the shared lock back)."""
    lock = next((lock for lock in room_locks(hub, room_id) if lock.id == wanted), None)
    key = key_of_lock(hub.lockout.locks(time.monotonic()), wanted)
    if lock is None or key is None:
        return None
    hub.lockout.clear([key])
    if hub.cluster is not None:
        await hub.cluster.clear_lockout([key])
    return lock


def signed_report(hub: Hub, room: Room, meeting_id: str) -> dict[str, Any]:
    """The meeting's attendance report, signed (raises StoreError if unknown)."""
    hub.audit_trail.flush()
    meeting = hub.store.meeting(meeting_id, room.id)
    live: dict[str, dict[str, int]] = {}
    runtime = hub.rooms.get(room.id)
    if runtime is not None and runtime.meeting_id == meeting_id:
        for member in runtime.participants.values():
            stats = member.presence.stats
            live[member.id] = {
                "checks": stats.made, "passed": stats.passed, "skipped": stats.skipped
            }  # fmt: skip
    records = hub.store.meeting_audit(meeting_id)
    roster = [(p.id, p.name) for p in hub.store.persons(room.id)]
    report = build_report(
        meeting, room.name, records, generated=time.time(), live=live, roster=roster
    )
    return sign_report(report, hub.signing_key)
