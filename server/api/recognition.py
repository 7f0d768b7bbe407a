"""/api/v1 verify (1:1, photo vs person) and search (1:N, every face vs a room's gallery).

Same matcher and thresholds as the gate, so an integrator's answer agrees with what
the door would decide for that photo.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from ..face.engine import FaceEngine, FrameAnalysis
from ..face.imageio import ImageError, decode_image
from ..face.matcher import identify, verify
from ..face.quality import frame_issues
from ..workpool import API, lane
from .auth import request_owner
from .context import hub
from .errors import ApiError
from .persons import read_photo


def _analyse(engine: FaceEngine, data: bytes) -> FrameAnalysis:
    return engine.analyse(decode_image(data), mesh=True, embed=True)


async def analyse_upload(request: web.Request) -> FrameAnalysis:
    h = hub(request)
    data = await read_photo(request)
    loop = asyncio.get_running_loop()
    try:
        return await loop.run_in_executor(lane(h.executor, API), _analyse, h.engine, data)
    except ImageError as err:
        raise ApiError(422, err.code, err.message) from err


def _box(box: tuple[float, float, float, float]) -> list[float]:
    return [round(float(v), 1) for v in box]


async def verify_person(request: web.Request) -> web.Response:
    owner = request_owner(request)
    h = hub(request)
    person = h.store.person(request.match_info["person_id"], owner.id)
    room = h.store.room(person.room_id)
    templates = h.store.templates(person.id)
    if len(templates) == 0:
        raise ApiError(422, "not_enrolled", "this person has no enrolled face yet")
    analysis = await analyse_upload(request)
    issues = frame_issues(len(analysis.faces))
    if issues:
        raise ApiError(422, issues[0].code, issues[0].message)
    face = analysis.faces[0]
    assert face.embedding is not None
    threshold = room.threshold or h.default_threshold
    result = verify(face.embedding[None, :], templates, threshold=threshold)
    return web.json_response(
        {
            "person_id": person.id,
            "distance": round(result.distance, 4),
            "decision": "match" if result.accepted else "no_match",
            "threshold": threshold,
            "box": _box(face.box),
            "quality": [i.message for i in face.quality],
        }
    )


async def search_room(request: web.Request) -> web.Response:
    owner = request_owner(request)
    h = hub(request)
    room = h.store.room(request.match_info["room_id"], owner.id)
    gallery = h.store.gallery(room.id)
    names = {p.id: p.name for p in h.store.persons(room.id)}
    analysis = await analyse_upload(request)
    if not analysis.faces:
        issue = frame_issues(0)[0]
        raise ApiError(422, issue.code, issue.message)
    threshold = room.threshold or h.default_threshold
    faces: list[dict[str, Any]] = []
    for face in analysis.faces:
        assert face.embedding is not None
        found = identify(face.embedding[None, :], gallery, threshold=threshold)
        matched = found.status == "match"
        faces.append(
            {
                "box": _box(face.box),
                "status": found.status,
                "person_id": found.person_id if matched else None,
                "name": names.get(found.person_id or "") if matched else None,
                "distance": None if found.distance == float("inf") else round(found.distance, 4),
            }
        )
    return web.json_response({"room_id": room.id, "threshold": threshold, "faces": faces})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/persons/{person_id}/verify", verify_person)
    app.router.add_post("/rooms/{room_id}/search", search_room)
