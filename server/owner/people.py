"""Owner pages for people: add, enrol photos (upload, drag and drop, webcam), delete,
invite links.

Photo uploads are streamed (each file at most 20 MB, at most 12 per request), every
photo goes through the enrolment quality gate, and the good ones are stored in one
transaction; the page gets a verdict per photo with reason and thumbnail.
"""

from __future__ import annotations

from aiohttp import BodyPartReader, web
from aiohttp_session import get_session

from ..api.context import hub
from ..api.errors import busy_response
from ..api.jsonio import base_url
from ..api.photos import (
    MAX_PHOTO_BYTES,
    MAX_PHOTOS_PER_UPLOAD,
    PhotoVerdict,
    Upload,
    evaluate_all,
    read_part,
    sniff_mime,
)
from ..store import Owner, StoreError
from ..workpool import UPLOAD, Busy, lane
from .common import (
    CSRF_FIELD,
    CSRF_OK,
    flash,
    form_str,
    not_found,
    render,
    signed_in,
    token_matches,
)

INVITE_TTLS = {"1": 86400.0, "7": 7 * 86400.0, "30": 30 * 86400.0, "0": None}


def _room_redirect(room_id: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(f"/owner/rooms/{room_id}")


@signed_in
async def add_person(request: web.Request, owner: Owner) -> web.StreamResponse:
    room_id = request.match_info["room_id"]
    form = await request.post()
    try:
        person = hub(request).store.add_person(
            room_id,
            form_str(form, "name"),
            form_str(form, "external_id") or None,
            owner_id=owner.id,
        )
    except StoreError as err:
        if err.code == "unknown_room":
            return not_found(request, "room")
        await flash(request, err.message, "error")
        raise _room_redirect(room_id) from err
    await flash(request, f"{person.name} added: now enrol photos.")
    raise web.HTTPSeeOther(f"/owner/rooms/{room_id}#person-{person.id}")


class BadUpload(Exception):
    pass


async def read_uploads(request: web.Request) -> list[Upload]:
    """Stream the multipart body; a ``_csrf`` part must come before any file."""
    session = await get_session(request)
    csrf_ok = request.get(CSRF_OK, False)
    reader = await request.multipart()
    uploads: list[Upload] = []
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):  # nested multipart: not ours
            continue
        if part.name == CSRF_FIELD and part.filename is None:
            csrf_ok = csrf_ok or token_matches(session, (await part.read(decode=True)).decode())
            continue
        if part.filename is None:
            await part.release()
            continue
        if not csrf_ok:
            raise BadUpload("Missing security token: reload the page.")
        if len(uploads) >= MAX_PHOTOS_PER_UPLOAD:
            raise BadUpload(f"At most {MAX_PHOTOS_PER_UPLOAD} photos at once.")
        data, too_large = await read_part(part, MAX_PHOTO_BYTES)
        uploads.append(Upload(part.filename or "photo", data, sniff_mime(data), too_large))
    if not csrf_ok:
        raise BadUpload("Missing security token: reload the page.")
    return uploads


@signed_in
async def upload_photos(request: web.Request, owner: Owner) -> web.StreamResponse:
    h = hub(request)
    try:
        person = h.store.person(request.match_info["person_id"], owner.id)
    except StoreError:
        return web.json_response(
            {"error": {"code": "unknown_person", "message": "no such person"}}, status=404
        )
    try:
        uploads = await read_uploads(request)
    except BadUpload as err:
        return web.json_response({"error": {"code": "bad_upload", "message": str(err)}},
                                 status=403 if "token" in str(err) else 422)  # fmt: skip
    if not uploads:
        return web.json_response(
            {"error": {"code": "no_photos", "message": "choose at least one photo"}}, status=422
        )
    try:
        verdicts: list[PhotoVerdict] = await evaluate_all(
            h.engine, lane(h.executor, UPLOAD), uploads
        )
    except Busy as err:
        return busy_response(err)
    good = [
        (v.embeddings or v.embedding, v.stored, v.stored_mime)
        for v in verdicts
        if v.embedding is not None
    ]
    try:
        if good:
            added = h.store.add_faces(person.id, owner.id, good, h.engine.embedder.name)
            accepted = [v for v in verdicts if v.embedding is not None]
            h.store.label_faces(
                [(f.id, v.filename, photo_quality(v)) for f, v in zip(added, accepted, strict=True)]
            )
    except StoreError:  # deleted meanwhile
        return web.json_response(
            {"error": {"code": "unknown_person", "message": "no such person"}}, status=404
        )
    total = len(h.store.faces(person.id))
    return web.json_response(
        {
            "person_id": person.id,
            "enrolled": len(good),
            "faces": total,
            "verdicts": [v.public() for v in verdicts],
        }
    )


def photo_quality(verdict: PhotoVerdict) -> str:
    """What the quality gate measured, in words (the photo itself may not be kept)."""
    box = verdict.box
    if box is None or len(box) != 4:
        return "accepted"
    return f"accepted: one face, {box[2] - box[0]:.0f} px wide"


@signed_in
async def delete_person(request: web.Request, owner: Owner) -> web.StreamResponse:
    try:
        person = hub(request).store.person(request.match_info["person_id"], owner.id)
        hub(request).store.delete_person(person.id, owner.id)
    except StoreError:
        return not_found(request, "person")
    hub(request).person_deleted(person.id)
    await flash(request, f"{person.name} deleted with their templates, photos and invites.")
    raise _room_redirect(person.room_id)


@signed_in
async def delete_face(request: web.Request, owner: Owner) -> web.StreamResponse:
    person_id = request.match_info["person_id"]
    try:
        person = hub(request).store.person(person_id, owner.id)
        hub(request).store.delete_face(person_id, int(request.match_info["face_id"]), owner.id)
    except StoreError:
        return not_found(request, "face")
    await flash(request, "Photo template removed.")
    raise _room_redirect(person.room_id)


@signed_in
async def photo(request: web.Request, owner: Owner) -> web.StreamResponse:
    try:
        data, mime = hub(request).store.photo(
            request.match_info["person_id"], request.match_info["photo_id"], owner.id
        )
    except StoreError:
        return not_found(request, "photo")
    if not mime.startswith("image/"):
        mime = "application/octet-stream"
    return web.Response(body=data, content_type=mime, headers={"Cache-Control": "no-store"})


@signed_in
async def create_invite(request: web.Request, owner: Owner) -> web.StreamResponse:
    """Issue an invite and show its link once (only a hash of the token is kept)."""
    room_id = request.match_info["room_id"]
    form = await request.post()
    person_id = form_str(form, "person_id") or None
    ttl = INVITE_TTLS.get(form_str(form, "ttl_days", "7"), 7 * 86400.0)
    h = hub(request)
    try:
        room = h.store.room(room_id, owner.id)
        info, token = h.store.issue_invite(room.id, person_id, ttl, owner_id=owner.id)
        person = h.store.person(person_id, owner.id) if person_id else None
    except StoreError as err:
        return not_found(request, "room or person" if err.code.startswith("unknown") else "page")
    link = f"{base_url(request, h.settings.server.public_url)}/r/{room.link}?invite={token}"
    return await render(
        request,
        "owner/invite_created.html",
        {"room": room, "person": person, "invite": info, "link": link},
        owner=owner,
    )


@signed_in
async def revoke_invite(request: web.Request, owner: Owner) -> web.StreamResponse:
    try:
        info = hub(request).store.revoke_invite_id(request.match_info["invite_id"], owner.id)
    except StoreError:
        return not_found(request, "invite")
    hub(request).invite_revoked(info.id)
    await flash(request, "Invite revoked: the link no longer opens the room.")
    raise _room_redirect(info.room_id)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/rooms/{room_id}/people", add_person)
    app.router.add_post("/people/{person_id}/photos", upload_photos, name="owner-photos")
    app.router.add_get("/people/{person_id}/photos/{photo_id}", photo)
    app.router.add_post("/people/{person_id}/delete", delete_person)
    app.router.add_post(r"/people/{person_id}/faces/{face_id:\d{1,18}}/delete", delete_face)
    app.router.add_post("/rooms/{room_id}/invites", create_invite)
    app.router.add_post("/invites/{invite_id}/revoke", revoke_invite)
