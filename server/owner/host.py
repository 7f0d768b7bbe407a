"""Owner endpoints for the host's decisions in the live lobby (server/host.py).

Same rules as the rest of /owner: the room must be the signed-in owner's (else a plain
404), every POST carries the CSRF token (form field or header). Letting someone in
needs a reason: it is the audit record's justification for overriding the gate.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .. import hostdesk
from ..api.context import hub
from ..host import clean_reason
from ..hostdesk import host_decide
from ..store import Owner, StoreError
from .common import flash, form_str, not_found, signed_in, wants_json

ACTIONS = {
    "admit": "let in",
    "lobby": "sent back to the lobby",
    "reset": "given their attempts back",
}


async def _body(request: web.Request) -> dict[str, Any]:
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except ValueError:
            return {}
        return body if isinstance(body, dict) else {}
    form = await request.post()
    return {k: form_str(form, k) for k in ("participant_id", "action", "reason")}


def _answer(
    request: web.Request, room_id: str, ok: bool, message: str, status: int = 200
) -> web.StreamResponse:
    if wants_json(request) or request.content_type == "application/json":
        return web.json_response({"applied": ok, "message": message}, status=status)
    raise web.HTTPSeeOther(f"/owner/rooms/{room_id}#live")


@signed_in
async def decide(request: web.Request, owner: Owner) -> web.StreamResponse:
    """``participant_id``, ``action`` (admit, lobby, reset) and the host's ``reason``."""
    h = hub(request)
    try:
        room = h.store.room(request.match_info["room_id"], owner.id)
    except StoreError:
        return not_found(request, "room")
    body = await _body(request)
    target, action = body.get("participant_id"), body.get("action")
    reason = clean_reason(str(body.get("reason") or ""))
    if not isinstance(target, str) or action not in ACTIONS:
        return _answer(request, room.id, False, "unknown action", 400)
    if action == "admit" and not reason:
        message = "Say why you let this person in: the reason is kept in the audit log."
        if not wants_json(request) and request.content_type != "application/json":
            await flash(request, message, "error")
        return _answer(request, room.id, False, message, 400)
    applied = await host_decide(h, room.id, target, action, reason, owner.email)
    message = (
        f"Done: {ACTIONS[action]}."
        if applied
        else "Nothing changed: this person is no longer in that state (the list has moved on)."
    )
    if not wants_json(request) and request.content_type != "application/json":
        await flash(request, message, "ok" if applied else "error")
    return _answer(request, room.id, applied, message, 200 if applied else 409)


@signed_in
async def lift_lock(request: web.Request, owner: Owner) -> web.StreamResponse:
    h = hub(request)
    try:
        room = h.store.room(request.match_info["room_id"], owner.id)
    except StoreError:
        return not_found(request, "room")
    body = await _body(request)
    lock = await hostdesk.lift_lock(h, room.id, request.match_info["lock_id"])
    if lock is None:
        await flash(request, "That lock has already ended.", "error")
        raise web.HTTPSeeOther(f"/owner/rooms/{room.id}#live")
    details = {
        "kind": lock.kind,
        "label": lock.label,
        "host": owner.email,
        "host_reason": clean_reason(str(body.get("reason") or "")),
    }
    h.audit_trail.room_event("lock.lifted", details, room.id, None)
    await flash(request, f"Lock lifted: the {lock.kind} {lock.label} can be used again.")
    raise web.HTTPSeeOther(f"/owner/rooms/{room.id}#live")


def add_routes(app: web.Application) -> None:
    app.router.add_post("/rooms/{room_id}/host", decide)
    app.router.add_post("/rooms/{room_id}/locks/{lock_id}/lift", lift_lock)
