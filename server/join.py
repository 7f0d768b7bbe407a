"""A ``join``: resolve the link, build the participant and its gate, or refuse with a reason.

Everything here runs once per websocket, before the participant's task exists;
afterwards only that task acts on the participant (``server/participant.py``).
"""

from __future__ import annotations

import time

from .hub import Hub
from .iceservers import ice_servers_for
from .messages import Error, Redirect, Welcome
from .outbox import Outbox
from .participant import Participant
from .roles import CloseReason
from .signalling import Join
from .store import StoreError
from .verify import FaceChecker, load_target

LOBBY_REPLACED = "This link was opened in another window; this one was closed."


def lockout_keys(room_id: str, ip: str, invite: str | None, device: str | None) -> tuple[str, ...]:
    """What failures count against (docs/security.md, "Brute force and lockout").

    The invite is the credential under attack: locked strictly. The address only per
    room and with a far higher threshold (``[gate] address_failures``): many people
    share one. The browser (signed device cookie) with the strict threshold: a person
    who keeps failing locks their own browser, not their colleagues. Never the room.
    """
    keys = [f"invite:{invite}"] if invite else []
    keys.append(f"ip:{room_id}:{ip}")
    if device:
        keys.append(f"device:{device}")
    return tuple(keys)


async def join(
    hub: Hub, msg: Join, outbox: Outbox, ip: str, device: str | None = None
) -> Participant | None:
    """The new participant (in the room's lobby, welcome sent), or None after a refusal."""

    def refuse(code: str, message: str) -> None:
        outbox.put(Error(code, message, fatal=True))

    store = hub.store
    invite_id = None
    try:
        room = store.room_by_link(msg.room)
        if hub.cluster is not None:
            # A room lives on one node (docs/scale.md): send the join there.
            owner = await hub.cluster.place(room.id)
            if owner is not None:
                outbox.put(Redirect(owner.ws_url))
                return None
        person = None
        if msg.invite:
            invite = store.resolve_invite(room.slug, msg.invite)
            person, invite_id = invite.person, invite.id or None
        elif room.mode != "open":
            refuse("invite_required", "This room is entered with a personal invite link.")
            return None
        threshold = room.threshold or hub.default_threshold
        # 1:N: the room's packed gallery, shared by every join until it changes.
        index = None if person is not None else await hub.room_gallery(room)
        target = load_target(
            store, room, person.id if person else None, threshold=threshold, index=index
        )
    except StoreError as err:
        refuse(err.code, err.message)
        return None
    if not target.enrolled:
        if person is not None and store.templates(person.id, engine="dlib").size:
            # Enrolled, but not for every engine this room now requires (issue 14).
            refuse("not_enrolled", "Your enrolment must be renewed for this room. Ask the owner.")
        else:
            refuse("not_enrolled", "Nobody is enrolled for this link yet. Ask the room owner.")
        return None
    live = hub.rooms.get(room.id)
    lobby = [m for m in live.participants.values() if not m.admitted] if live else []
    limits = hub.settings.limits
    if invite_id is not None:
        # One lobby session per invite (by default): parallel sessions cannot multiply
        # attempts. The newest wins, as when a meeting is opened on another device.
        same = [m for m in lobby if m.invite_id == invite_id]
        for old in same[: max(0, len(same) - limits.lobby_per_invite + 1)]:
            old.request_close(
                CloseReason.REPLACED, grace=False, code="replaced", message=LOBBY_REPLACED
            )
            lobby.remove(old)
    if sum(1 for m in lobby if m.ip == ip) >= limits.lobby_per_address:
        refuse("busy", "Too many people are joining from your network right now. Try again soon.")
        return None
    if len(lobby) >= limits.lobby_per_room:
        refuse("busy", "This room's lobby is full right now. Try again in a minute.")
        return None
    # Before this join takes its room: the old session may be the room's last member.
    await hub.release_for_rejoin(msg.rejoin, room.id, ip, device)
    keys = lockout_keys(room.id, ip, msg.invite, device)
    await hub.sync_lockout(keys, failed=False)  # a cluster's shared locks, before the gate
    participant = Participant(
        hub,
        hub.runtime(room),
        outbox,
        FaceChecker(hub.engine, target),
        policy=hub.gate_policy(room),
        name=person.name if person else (msg.name or "Guest"),
        person_id=person.id if person else None,
        lockout_keys=keys,
        ip=ip,
        invite_id=invite_id,
        device=device,
    )
    entry = await hub.claim_rejoin_shared(msg.rejoin, room.id, ip, device)
    if entry is not None and person is not None and entry.identity.person_id != person.id:
        # Another person's token: it does not resume this invite, and it stays valid
        # for its owner (claiming it must not let anyone burn someone else's rejoin).
        hub.keep_for_rejoin(msg.rejoin or "", entry)
        entry = None
    if entry is not None:
        participant.name = entry.identity.name
        participant.resume = entry.identity
    participant.runtime.add(participant)
    outbox.put(
        Welcome(
            participant.id,
            room.name,
            # Nobody learns whose link this is before passing the check (issue 15):
            # only a resumed (already verified) session is greeted by name.
            entry.identity.name if entry is not None else None,
            participant.gate.attempts_left,
            participant.rejoin_token,
            entry is not None,
            ice_servers_for(hub.settings, participant.id, time.time()),
        )
    )
    return participant
