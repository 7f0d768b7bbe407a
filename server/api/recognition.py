"""/api/v1 verify (1:1, photo vs person) and search (1:N, every face vs a room's gallery).

Same matcher, thresholds and room engine setting (dlib, sface, both, fused) as the gate,
so an integrator's answer agrees with what the door would decide for that photo.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from typing import Any

from aiohttp import web

from ..face.engine import FaceEngine, FrameAnalysis
from ..face.gallery import GalleryIndex
from ..face.imageio import ImageError, decode_image
from ..face.quality import frame_issues
from ..face.scoring import engines_for
from ..verify import FaceChecker, build_room_index, load_target
from ..workpool import API, lane
from .auth import request_owner
from .context import hub
from .errors import ApiError
from .persons import read_photo


def _analyse(engine: FaceEngine, data: bytes, engines: Collection[str]) -> FrameAnalysis:
    return engine.analyse(decode_image(data), mesh=True, embed=True, engines=engines)


async def analyse_upload(request: web.Request, room_engine: str = "dlib") -> FrameAnalysis:
    h = hub(request)
    data = await read_photo(request)
    loop = asyncio.get_running_loop()
    engines = engines_for(room_engine)
    try:
        return await loop.run_in_executor(lane(h.executor, API), _analyse, h.engine, data, engines)
    except ImageError as err:
        raise ApiError(422, err.code, err.message) from err


def _box(box: tuple[float, float, float, float]) -> list[float]:
    return [round(float(v), 1) for v in box]


async def verify_person(request: web.Request) -> web.Response:
    owner = request_owner(request)
    h = hub(request)
    person = h.store.person(request.match_info["person_id"], owner.id)
    room = h.store.room(person.room_id)
    threshold = room.threshold or h.default_threshold
    target = load_target(h.store, room, person.id, threshold=threshold)
    if not target.enrolled:
        if len(h.store.templates(person.id)) == 0:
            raise ApiError(422, "not_enrolled", "this person has no enrolled face yet")
        raise ApiError(
            422,
            "reenrol_needed",
            f"this person has no template for the room's engine ({room.engine}): re-enrol",
        )
    analysis = await analyse_upload(request, room.engine)
    issues = frame_issues(len(analysis.faces))
    if issues:
        raise ApiError(422, issues[0].code, issues[0].message)
    face = analysis.faces[0]
    result = FaceChecker(h.engine, target).match(face)
    return web.json_response(
        {
            "person_id": person.id,
            "distance": round(result.distance, 4),
            "decision": "match" if result.accepted else "no_match",
            "threshold": threshold,
            "engine": room.engine,
            "box": _box(face.box),
            "quality": [i.message for i in face.quality],
        }
    )


async def search_room(request: web.Request) -> web.Response:
    owner = request_owner(request)
    h = hub(request)
    room = h.store.room(request.match_info["room_id"], owner.id)
    index = build_room_index(h.store, room.id, room.engine)
    names = {p.id: p.name for p in h.store.persons(room.id)}
    analysis = await analyse_upload(request, room.engine)
    if not analysis.faces:
        issue = frame_issues(0)[0]
        raise ApiError(422, issue.code, issue.message)
    threshold = room.threshold or h.default_threshold
    faces: list[dict[str, Any]] = []
    for face in analysis.faces:
        probes = {e: v[None, :] for e, v in face.embeddings.items()}
        if isinstance(index, GalleryIndex):
            found = index.identify(probes["dlib"], threshold=threshold)
        else:
            found = index.identify(probes, threshold=threshold)
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
    return web.json_response(
        {"room_id": room.id, "threshold": threshold, "engine": room.engine, "faces": faces}
    )


def add_routes(app: web.Application) -> None:
    app.router.add_post("/persons/{person_id}/verify", verify_person)
    app.router.add_post("/rooms/{room_id}/search", search_room)
