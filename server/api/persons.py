"""/api/v1 persons and their faces (enrolment through the quality gate)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..store import Person
from ..workpool import UPLOAD, lane
from .auth import request_owner
from .context import hub
from .errors import ApiError
from .jsonio import face_json, person_json, read_json
from .photos import MAX_PHOTO_BYTES, Upload, UploadTooLarge, evaluate_all, read_body

PERSON_FIELDS = {"name", "external_id"}


def _person_out(request: web.Request, person: Person) -> dict[str, Any]:
    store = hub(request).store
    faces = store.face_counts(person.room_id).get(person.id, 0)
    engines = store.engine_coverage(person.room_id).get(person.id, ())
    return person_json(person, faces, engines)


async def list_persons(request: web.Request) -> web.Response:
    store = hub(request).store
    room = store.room(request.match_info["room_id"], request_owner(request).id)
    counts = store.face_counts(room.id)
    coverage = store.engine_coverage(room.id)
    persons = [
        person_json(p, counts.get(p.id, 0), coverage.get(p.id, ())) for p in store.persons(room.id)
    ]
    return web.json_response({"persons": persons})


async def create_person(request: web.Request) -> web.Response:
    body = await read_json(request, PERSON_FIELDS, {"name"})
    name, external_id = body["name"], body.get("external_id")
    if not isinstance(name, str) or not (external_id is None or isinstance(external_id, str)):
        raise ApiError(422, "bad_field", "name must be a string, external_id a string or null")
    person = hub(request).store.add_person(
        request.match_info["room_id"], name, external_id, owner_id=request_owner(request).id
    )
    return web.json_response(person_json(person, 0), status=201)


async def get_person(request: web.Request) -> web.Response:
    person = hub(request).store.person(request.match_info["person_id"], request_owner(request).id)
    return web.json_response(_person_out(request, person))


async def update_person(request: web.Request) -> web.Response:
    body = await read_json(request, PERSON_FIELDS)
    person = hub(request).store.update_person(
        request.match_info["person_id"], request_owner(request).id, body
    )
    return web.json_response(_person_out(request, person))


async def delete_person(request: web.Request) -> web.Response:
    hub(request).store.delete_person(request.match_info["person_id"], request_owner(request).id)
    hub(request).person_deleted(request.match_info["person_id"])
    return web.Response(status=204)


async def list_faces(request: web.Request) -> web.Response:
    faces = hub(request).store.faces(request.match_info["person_id"], request_owner(request).id)
    return web.json_response({"faces": [face_json(f) for f in faces]})


async def read_photo(request: web.Request) -> bytes:
    try:
        return await read_body(request, MAX_PHOTO_BYTES)
    except UploadTooLarge as exc:
        raise ApiError(413, "too_large", "the photo is larger than 20 MB") from exc


async def add_face(request: web.Request) -> web.Response:
    """One photo in the body; 201 with the verdict, or 422 with the verdict as details."""
    owner = request_owner(request)
    h = hub(request)
    person = h.store.person(request.match_info["person_id"], owner.id)  # 404 before reading
    data = await read_photo(request)
    uploads = [Upload("photo", data, "")]
    (verdict,) = await evaluate_all(h.engine, lane(h.executor, UPLOAD), uploads)
    if verdict.embedding is None:
        raise ApiError(422, verdict.code, "; ".join(verdict.reasons), verdict.public())
    (face,) = h.store.add_faces(
        person.id,
        owner.id,
        [(verdict.embeddings or verdict.embedding, verdict.stored, verdict.stored_mime)],
        h.engine.embedder.name,
    )
    return web.json_response({"face": face_json(face), "verdict": verdict.public()}, status=201)


async def delete_face(request: web.Request) -> web.Response:
    hub(request).store.delete_face(
        request.match_info["person_id"],
        int(request.match_info["face_id"]),
        request_owner(request).id,
    )
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/rooms/{room_id}/persons", list_persons)
    app.router.add_post("/rooms/{room_id}/persons", create_person)
    app.router.add_get("/persons/{person_id}", get_person)
    app.router.add_patch("/persons/{person_id}", update_person)
    app.router.add_delete("/persons/{person_id}", delete_person)
    app.router.add_get("/persons/{person_id}/faces", list_faces)
    app.router.add_post("/persons/{person_id}/faces", add_face)
    app.router.add_delete(r"/persons/{person_id}/faces/{face_id:\d{1,18}}", delete_face)
