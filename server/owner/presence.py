"""Owner pages for certified presence: re-verify now, attendance reports, webhooks.

Same rules as the rest of /owner: the room must be the signed-in owner's (else a
plain 404), every POST carries the CSRF token (form field or header).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from ..api.context import hub
from ..report import report_csv
from ..store import Owner, StoreError
from ..store.records import WEBHOOK_EVENTS
from ..webhooks.guard import refuse_internal_url
from .common import flash, form_str, not_found, signed_in, wants_json


def _room_url(room_id: str, anchor: str = "") -> str:
    return f"/owner/rooms/{room_id}{anchor}"


@signed_in
async def reverify(request: web.Request, owner: Owner) -> web.StreamResponse:
    """Ask one participant (``participant_id``) or everyone admitted to verify again."""
    h = hub(request)
    try:
        room = h.store.room(request.match_info["room_id"], owner.id)
    except StoreError:
        return not_found(request, "room")
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except ValueError:
            body = {}
        target = body.get("participant_id") if isinstance(body, dict) else None
    else:
        target = form_str(await request.post(), "participant_id") or None
    if target is not None and not isinstance(target, str):
        target = None
    asked = await h.reverify(room.id, target)
    if wants_json(request) or request.content_type == "application/json":
        return web.json_response({"asked": asked})
    await flash(request, f"Asked {len(asked)} participant(s) to verify again.")
    raise web.HTTPSeeOther(_room_url(room.id, "#live"))


@signed_in
async def meetings(request: web.Request, owner: Owner) -> web.StreamResponse:
    h = hub(request)
    try:
        room = h.store.room(request.match_info["room_id"], owner.id)
    except StoreError:
        return not_found(request, "room")
    return web.json_response(
        {
            "meetings": [
                {"id": m.id, "started": m.started, "ended": m.ended}
                for m in h.store.meetings(room.id)
            ]
        }
    )


@signed_in
async def report(request: web.Request, owner: Owner) -> web.StreamResponse:
    """The signed JSON report, or its CSV, as a download."""
    h = hub(request)
    try:
        room = h.store.room(request.match_info["room_id"], owner.id)
        envelope = h.signed_report(room, request.match_info["meeting_id"])
    except StoreError:
        return not_found(request, "meeting")
    fmt = request.match_info["fmt"]
    name = f"attendance-{room.slug}-{envelope['report']['meeting']['id'][:8]}.{fmt}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"}
    if fmt == "csv":
        return web.Response(
            text=report_csv(envelope["report"]), content_type="text/csv", headers=headers
        )
    return web.Response(
        text=json.dumps(envelope, indent=2, ensure_ascii=False),
        content_type="application/json",
        headers=headers,
    )


@signed_in
async def add_webhook(request: web.Request, owner: Owner) -> web.StreamResponse:
    h = hub(request)
    room_id = request.match_info["room_id"]
    form = await request.post()
    events = [e for e in form.getall("events", []) if isinstance(e, str)]
    url = form_str(form, "url").strip()
    try:
        refuse_internal_url(h.settings.webhooks, url)
        _hook, secret = h.store.create_webhook(room_id, url, events or None, owner_id=owner.id)
    except StoreError as err:
        if err.code == "unknown_room":
            return not_found(request, "room")
        await flash(request, err.message, "error")
        raise web.HTTPSeeOther(_room_url(room_id, "#webhooks")) from err
    await flash(
        request,
        f"Webhook added. Its signing secret (shown once): {secret}",
    )
    raise web.HTTPSeeOther(_room_url(room_id, "#webhooks"))


@signed_in
async def delete_webhook(request: web.Request, owner: Owner) -> web.StreamResponse:
    h = hub(request)
    try:
        hook = h.store.webhook(request.match_info["webhook_id"], owner.id)
        h.store.delete_webhook(hook.id, owner.id)
    except StoreError:
        return not_found(request, "webhook")
    await flash(request, "Webhook deleted.")
    raise web.HTTPSeeOther(_room_url(hook.room_id, "#webhooks"))


def webhook_context(request: web.Request, room_id: str) -> dict[str, Any]:
    """Webhooks with their latest deliveries and the meetings, for the room page."""
    store = hub(request).store
    hooks = store.webhooks(room_id)
    return {
        "webhooks": hooks,
        "deliveries": {w.id: store.deliveries(w.id, limit=20) for w in hooks},
        "webhook_events": WEBHOOK_EVENTS,
        "meetings": store.meetings(room_id, limit=20),
    }


def add_routes(app: web.Application) -> None:
    app.router.add_post("/rooms/{room_id}/reverify", reverify)
    app.router.add_get("/rooms/{room_id}/meetings", meetings)
    app.router.add_get(r"/rooms/{room_id}/meetings/{meeting_id}/report.{fmt:json|csv}", report)
    app.router.add_post("/rooms/{room_id}/webhooks", add_webhook)
    app.router.add_post("/webhooks/{webhook_id}/delete", delete_webhook)
