"""Owner pages for rooms: list, create, the room dashboard, settings, delete.

Every handler resolves ids through the store with the signed-in owner's id, so
another owner's room is a plain 404.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from ..api.context import hub
from ..api.jsonio import base_url
from ..backfill import blocking_engines, reenrol_needed
from ..hostdesk import room_locks
from ..report.sentences import sentence
from ..store import LIVENESS_POLICIES, Owner, Room, StoreError
from ..store.records import ENGINES, MAX_ATTEMPTS_RANGE, MEDIA_BACKENDS
from .calibration import calibration, engine_calibrations
from .common import flash, form_str, not_found, render, signed_in
from .presence import meeting_summaries, webhook_context
from .words import ENGINE_WORDS, MODE_WORDS, POLICY_WORDS

DASHBOARD_EVENTS = (
    "participant.admitted",
    "participant.denied",
    "attempt.failed",
    "participant.left",
    "reverify.requested",
    "reverify.passed",
    "reverify.failed",
    "presence.lost",
    "identity.mismatch",
    "extra.person",
    "presence.unverifiable",
    "person.deleted",
    "person.enrolled",
    "invite.revoked",
    "presence.camera_off",
    "presence.restored",
    "host.sent_to_lobby",
    "host.reset",
    "lock.lifted",
)


def room_url(room: Room) -> str:
    return f"/owner/rooms/{room.id}"


@signed_in
async def rooms_page(request: web.Request, owner: Owner) -> web.StreamResponse:
    store = hub(request).store
    rooms = store.rooms(owner.id)
    people = {r.id: len(store.persons(r.id)) for r in rooms}
    return await render(
        request, "owner/rooms.html", {"rooms": rooms, "people": people}, owner=owner
    )


@signed_in
async def create_room(request: web.Request, owner: Owner) -> web.StreamResponse:
    form = await request.post()
    try:
        room = hub(request).store.create_room(
            form_str(form, "name"),
            form_str(form, "mode", "invite"),
            owner_id=owner.id,
            # New rooms start from the server's liveness policy; the owner can change it.
            settings={"liveness_policy": hub(request).settings.liveness.policy},
        )
    except StoreError as err:
        await flash(request, err.message, "error")
        raise web.HTTPSeeOther("/owner/rooms") from err
    await flash(request, f"Room “{room.name}” created.")
    raise web.HTTPSeeOther(room_url(room))


def room_context(request: web.Request, room: Room) -> dict[str, Any]:
    """The room page: people and invites, the live lobby, reports (in that order)."""
    h = hub(request)
    store = h.store
    persons = store.persons(room.id)
    names = {p.id: p.name for p in persons}
    faces = {p.id: store.faces(p.id) for p in persons}
    invites = list(reversed(store.invites(room.id)))
    recent = [r for r in store.audit_log(room.id, limit=200) if r.event in DASHBOARD_EVENTS]
    reenrol = reenrol_needed(store, room.id)
    return {
        "room": room,
        "tab": "room",
        "persons": persons,
        "faces": faces,
        "invites": invites,
        "invites_of": {p.id: [i for i in invites if i.person_id == p.id] for p in persons},
        "names": names,
        "now": time.time(),
        "recent": [
            {
                "ts": r.ts,
                "event": r.event,
                "text": sentence(r.event, r.details, invited=r.person_id is not None),
            }
            for r in reversed(recent[-30:])
        ],  # fmt: skip
        "link": f"{base_url(request, h.settings.server.public_url)}/r/{room.link}",
        # person -> engines without templates ("re-enrol for sface"), and those this
        # room's engine setting needs right now
        "reenrol": reenrol,
        "reenrol_blocking": {
            pid: blocking_engines(missing, room.engine) for pid, missing in reenrol.items()
        },
        "mode_words": MODE_WORDS,
        "locks": room_locks(h, room.id),
        "mono_now": time.monotonic(),
        "meetings": meeting_summaries(store, room.id),
    }


def settings_context(request: web.Request, room: Room) -> dict[str, Any]:
    """Settings and integrations: a page of their own, apart from the day's work."""
    h = hub(request)
    return {
        "room": room,
        "tab": "settings",
        "calibration": calibration(),
        # each engine setting's LFW FAR / FRR at this room's threshold
        "engine_calibration": engine_calibrations(room.threshold or h.default_threshold),
        "default_threshold": h.default_threshold,
        "default_attempts": h.settings.gate.max_attempts,
        "policies": LIVENESS_POLICIES,
        "policy_words": POLICY_WORDS,
        "engines": ENGINES,
        "engine_words": ENGINE_WORDS,
        "mode_words": MODE_WORDS,
        "attempts_range": range(MAX_ATTEMPTS_RANGE[0], MAX_ATTEMPTS_RANGE[1] + 1),
        "default_presence_interval": h.settings.presence.interval_s,
        "api_base": f"{base_url(request, h.settings.server.public_url)}/api/v1",
        "media_backends": MEDIA_BACKENDS,
        "default_media_backend": h.settings.media.backend,
        "janus_configured": h.janus is not None,
        **webhook_context(request, room.id),
    }


@signed_in
async def room_page(request: web.Request, owner: Owner) -> web.StreamResponse:
    try:
        room = hub(request).store.room(request.match_info["room_id"], owner.id)
    except StoreError:
        return not_found(request, "room")
    return await render(request, "owner/room.html", room_context(request, room), owner=owner)


@signed_in
async def settings_page(request: web.Request, owner: Owner) -> web.StreamResponse:
    try:
        room = hub(request).store.room(request.match_info["room_id"], owner.id)
    except StoreError:
        return not_found(request, "room")
    context = settings_context(request, room)
    return await render(request, "owner/room_settings.html", context, owner=owner)


def parse_settings(form: Any) -> dict[str, Any]:
    """Form fields -> store settings; empty threshold / attempts mean the server default."""
    changes: dict[str, Any] = {
        "name": form_str(form, "name"),
        "mode": form_str(form, "mode"),
        "liveness_policy": form_str(form, "liveness_policy"),
        "engine": form_str(form, "engine"),
        "retain_photos": form_str(form, "retain_photos") == "on",
        "no_flashing": form_str(form, "no_flashing") == "on",
        "media_backend": form_str(form, "media_backend") or None,
    }
    threshold = form_str(form, "threshold").strip()
    attempts = form_str(form, "max_attempts").strip()
    interval = form_str(form, "presence_interval_s").strip()
    try:
        changes["presence_interval_s"] = float(interval) if interval else None
    except ValueError as exc:
        raise StoreError("bad_presence_interval", "presence interval must be seconds") from exc
    try:
        changes["threshold"] = float(threshold) if threshold else None
    except ValueError as exc:
        raise StoreError("bad_threshold", "threshold must be a number between 0 and 2") from exc
    try:
        changes["max_attempts"] = int(attempts) if attempts else None
    except ValueError as exc:
        raise StoreError("bad_max_attempts", "maximum attempts must be a whole number") from exc
    return changes


@signed_in
async def update_room(request: web.Request, owner: Owner) -> web.StreamResponse:
    room_id = request.match_info["room_id"]
    form = await request.post()
    try:
        room = hub(request).store.update_room(room_id, owner.id, parse_settings(form))
    except StoreError as err:
        if err.code == "unknown_room":
            return not_found(request, "room")
        await flash(request, err.message, "error")
        raise web.HTTPSeeOther(f"/owner/rooms/{room_id}/settings") from err
    await flash(request, "Settings saved.")
    raise web.HTTPSeeOther(f"{room_url(room)}/settings")


@signed_in
async def renew_link(request: web.Request, owner: Owner) -> web.StreamResponse:
    try:
        room = hub(request).store.renew_room_link(request.match_info["room_id"], owner.id)
    except StoreError:
        return not_found(request, "room")
    await flash(request, "New room link made: the previous link no longer works.")
    raise web.HTTPSeeOther(room_url(room))


@signed_in
async def delete_room(request: web.Request, owner: Owner) -> web.StreamResponse:
    try:
        hub(request).store.delete_room(request.match_info["room_id"], owner.id)
    except StoreError:
        return not_found(request, "room")
    hub(request).room_deleted(request.match_info["room_id"])
    await flash(request, "Room deleted with its people, templates, photos and invites.")
    raise web.HTTPSeeOther("/owner/rooms")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/rooms", rooms_page)
    app.router.add_post("/rooms", create_room)
    app.router.add_get("/rooms/{room_id}", room_page, name="owner-room")
    app.router.add_get("/rooms/{room_id}/settings", settings_page, name="owner-room-settings")
    app.router.add_post("/rooms/{room_id}/settings", update_room)
    app.router.add_post("/rooms/{room_id}/delete", delete_room)
    app.router.add_post("/rooms/{room_id}/link", renew_link)
