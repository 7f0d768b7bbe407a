"""Owner pages for certified presence: re-verify now, attendance reports, webhooks.

Same rules as the rest of /owner: the room must be the signed-in owner's (else a
plain 404), every POST carries the CSRF token (form field or header).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ..api.context import hub
from ..hostdesk import signed_report
from ..report import report_csv
from ..report.attendance import attendance_csv, zone
from ..store import Meeting, Owner, Repository, Room, StoreError
from ..store.records import WEBHOOK_EVENTS
from ..webhooks.guard import refuse_internal_url
from .common import flash, form_str, not_found, render, signed_in, wants_json


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


def _owned_report(request: web.Request, owner: Owner) -> tuple[Room, dict[str, Any]] | None:
    """The owner's room and the meeting's signed report (None: not theirs or unknown)."""
    h = hub(request)
    try:
        room = h.store.room(request.match_info["room_id"], owner.id)
        return room, signed_report(h, room, request.match_info["meeting_id"])
    except StoreError:
        return None


@signed_in
async def report(request: web.Request, owner: Owner) -> web.StreamResponse:
    """The signed JSON report, or its CSV, as a download."""
    found = _owned_report(request, owner)
    if found is None:
        return not_found(request, "meeting")
    room, envelope = found
    fmt = request.match_info["fmt"]
    name = f"attendance-{room.slug}-{envelope['report']['meeting']['id'][:8]}.{fmt}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"}
    if fmt == "csv":
        # One row per person in the owner's time zone (?tz= from the page's script);
        # ?detail=sessions gives the per-session CSV the API serves.
        if request.query.get("detail") == "sessions":
            text = report_csv(envelope["report"])
        else:
            text = attendance_csv(envelope["report"], zone(request.query.get("tz")))
        return web.Response(
            body=text.encode("utf-8"), content_type="text/csv", charset="utf-8", headers=headers
        )
    return web.Response(
        text=json.dumps(envelope, indent=2, ensure_ascii=False),
        content_type="application/json",
        headers=headers,
    )


@signed_in
async def attendance_page(request: web.Request, owner: Owner) -> web.StreamResponse:
    """The meeting's attendance list to read or print, with a certificate per person."""
    found = _owned_report(request, owner)
    if found is None:
        return not_found(request, "meeting")
    room, envelope = found
    report = envelope["report"]
    context = {
        "room": room,
        "report": report,
        "people": report["attendance"]["people"],
        "signature": envelope["signature"],
        "late_min": round(report["attendance"]["late_after_s"] / 60),
    }
    return await render(request, "owner/attendance.html", context, owner=owner)


@signed_in
async def certificate(request: web.Request, owner: Owner) -> web.StreamResponse:
    """A printable certificate of attendance for one person, with how to verify it."""
    found = _owned_report(request, owner)
    if found is None:
        return not_found(request, "meeting")
    room, envelope = found
    report = envelope["report"]
    wanted = request.match_info["who"]
    row = next((r for r in report["attendance"]["people"] if row_key(r) == wanted), None)
    if row is None or row["arrived"] is None:
        return not_found(request, "certificate")
    signature = envelope["signature"]
    context = {
        "room": room,
        "meeting": report["meeting"],
        "row": row,
        "key_id": signature["key_id"],
        "signature_start": signature["value"][:16],
        "attendance_digest": signature["sections"].get("attendance", ""),
    }
    return await render(request, "owner/certificate.html", context, owner=owner)


def row_key(row: dict[str, Any]) -> str:
    """An attendance row's id in a certificate's URL: the person, or the visit."""
    return str(row["person_id"] or row["participant_ids"][0])


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
        raise web.HTTPSeeOther(_room_url(room_id, "/settings#webhooks")) from err
    await flash(
        request,
        f"Webhook added. Its signing secret (shown once): {secret}",
    )
    raise web.HTTPSeeOther(_room_url(room_id, "/settings#webhooks"))


@signed_in
async def delete_webhook(request: web.Request, owner: Owner) -> web.StreamResponse:
    h = hub(request)
    try:
        hook = h.store.webhook(request.match_info["webhook_id"], owner.id)
        h.store.delete_webhook(hook.id, owner.id)
    except StoreError:
        return not_found(request, "webhook")
    await flash(request, "Webhook deleted.")
    raise web.HTTPSeeOther(_room_url(hook.room_id, "/settings#webhooks"))


def webhook_context(request: web.Request, room_id: str) -> dict[str, Any]:
    """Webhooks with their latest deliveries, for the settings page."""
    store = hub(request).store
    hooks = store.webhooks(room_id)
    return {
        "webhooks": hooks,
        "deliveries": {w.id: store.deliveries(w.id, limit=20) for w in hooks},
        "webhook_events": WEBHOOK_EVENTS,
    }


@dataclass(frozen=True)
class MeetingSummary:
    meeting: Meeting
    admitted: int  # people let in: 0 = only refused visits, not a meeting
    refused: int


def meeting_summaries(store: Repository, room_id: str, limit: int = 20) -> list[MeetingSummary]:
    """The room's latest meetings, each with how many were let in and refused."""
    out = []
    for meeting in store.meetings(room_id, limit=limit):
        records = store.meeting_audit(meeting.id)
        admitted = {r.participant_id for r in records if r.event == "participant.admitted"}
        refused = {r.participant_id for r in records if r.event == "participant.denied"}
        out.append(MeetingSummary(meeting, len(admitted), len(refused - admitted)))
    return out


def add_routes(app: web.Application) -> None:
    app.router.add_post("/rooms/{room_id}/reverify", reverify)
    app.router.add_get("/rooms/{room_id}/meetings", meetings)
    app.router.add_get(r"/rooms/{room_id}/meetings/{meeting_id}/report.{fmt:json|csv}", report)
    app.router.add_get("/rooms/{room_id}/meetings/{meeting_id}", attendance_page)
    app.router.add_get("/rooms/{room_id}/meetings/{meeting_id}/certificate/{who}", certificate)
    app.router.add_post("/rooms/{room_id}/webhooks", add_webhook)
    app.router.add_post("/webhooks/{webhook_id}/delete", delete_webhook)
