"""/api/v1 certified presence: re-verify now, meetings and signed reports, webhooks.

Everything is scoped to the key's owner like the rest of the API: another owner's
room, meeting or webhook answers exactly like one that does not exist.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..hostdesk import host_decide, signed_report
from ..report import report_csv
from ..store import Delivery, Meeting, Webhook
from ..webhooks.guard import refuse_internal_url
from .auth import request_owner
from .context import hub
from .errors import ApiError
from .jsonio import read_json


def meeting_json(meeting: Meeting) -> dict[str, Any]:
    return {
        "id": meeting.id,
        "room_id": meeting.room_id,
        "started": meeting.started,
        "ended": meeting.ended,
    }


def webhook_json(hook: Webhook) -> dict[str, Any]:
    return {
        "id": hook.id,
        "room_id": hook.room_id,
        "url": hook.url,
        "events": list(hook.events),
        "created": hook.created,
    }


def delivery_json(d: Delivery) -> dict[str, Any]:
    return {
        "id": d.id,
        "event": d.event,
        "status": d.status,
        "attempts": d.attempts,
        "last_code": d.last_code,
        "last_error": d.last_error,
        "created": d.created,
        "updated": d.updated,
    }


async def reverify(request: web.Request) -> web.Response:
    body = await read_json(request, {"participant_id"})
    target = body.get("participant_id")
    if target is not None and (not isinstance(target, str) or not 1 <= len(target) <= 64):
        raise ApiError(422, "bad_field", "participant_id must be a participant id or null")
    h = hub(request)
    room = h.store.room(request.match_info["room_id"], request_owner(request).id)
    return web.json_response({"asked": await h.reverify(room.id, target)})


HOST_ACTIONS = ("admit", "lobby", "reset")


async def host_decision(request: web.Request) -> web.Response:
    """The host decides for one participant (server/host.py); the reason is audited."""
    body = await read_json(request, {"participant_id", "action", "reason"},
                           {"participant_id", "action"})  # fmt: skip
    target, action, reason = body["participant_id"], body["action"], body.get("reason", "")
    if not isinstance(target, str) or not 1 <= len(target) <= 64:
        raise ApiError(422, "bad_field", "participant_id must be a participant id")
    if action not in HOST_ACTIONS:
        raise ApiError(422, "bad_field", "action must be admit, lobby or reset")
    if not isinstance(reason, str) or len(reason) > 300:
        raise ApiError(422, "bad_field", "reason must be a string of at most 300 characters")
    if action == "admit" and not reason.strip():
        raise ApiError(422, "missing_reason", "letting someone in needs a reason (audited)")
    h = hub(request)
    owner = request_owner(request)
    room = h.store.room(request.match_info["room_id"], owner.id)
    applied = await host_decide(h, room.id, target, action, reason, f"{owner.email} (API)")
    return web.json_response({"applied": applied})


async def list_meetings(request: web.Request) -> web.Response:
    h = hub(request)
    room = h.store.room(request.match_info["room_id"], request_owner(request).id)
    return web.json_response({"meetings": [meeting_json(m) for m in h.store.meetings(room.id)]})


async def meeting_report(request: web.Request) -> web.Response:
    h = hub(request)
    room = h.store.room(request.match_info["room_id"], request_owner(request).id)
    return web.json_response(signed_report(h, room, request.match_info["meeting_id"]))


async def meeting_report_csv(request: web.Request) -> web.Response:
    h = hub(request)
    room = h.store.room(request.match_info["room_id"], request_owner(request).id)
    envelope = signed_report(h, room, request.match_info["meeting_id"])
    return web.Response(text=report_csv(envelope["report"]), content_type="text/csv")


async def list_webhooks(request: web.Request) -> web.Response:
    h = hub(request)
    room = h.store.room(request.match_info["room_id"], request_owner(request).id)
    return web.json_response({"webhooks": [webhook_json(w) for w in h.store.webhooks(room.id)]})


async def create_webhook(request: web.Request) -> web.Response:
    owner = request_owner(request)
    body = await read_json(request, {"url", "events"}, {"url"})
    refuse_internal_url(hub(request).settings.webhooks, body["url"])
    hook, secret = hub(request).store.create_webhook(
        request.match_info["room_id"], body["url"], body.get("events"), owner_id=owner.id
    )
    return web.json_response({**webhook_json(hook), "secret": secret}, status=201)


async def delete_webhook(request: web.Request) -> web.Response:
    hub(request).store.delete_webhook(request.match_info["webhook_id"], request_owner(request).id)
    return web.Response(status=204)


async def list_deliveries(request: web.Request) -> web.Response:
    store = hub(request).store
    hook = store.webhook(request.match_info["webhook_id"], request_owner(request).id)
    return web.json_response({"deliveries": [delivery_json(d) for d in store.deliveries(hook.id)]})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/rooms/{room_id}/reverify", reverify)
    app.router.add_post("/rooms/{room_id}/host", host_decision)
    app.router.add_get("/rooms/{room_id}/meetings", list_meetings)
    app.router.add_get("/rooms/{room_id}/meetings/{meeting_id}/report", meeting_report)
    app.router.add_get("/rooms/{room_id}/meetings/{meeting_id}/report.csv", meeting_report_csv)
    app.router.add_get("/rooms/{room_id}/webhooks", list_webhooks)
    app.router.add_post("/rooms/{room_id}/webhooks", create_webhook)
    app.router.add_delete("/webhooks/{webhook_id}", delete_webhook)
    app.router.add_get("/webhooks/{webhook_id}/deliveries", list_deliveries)
