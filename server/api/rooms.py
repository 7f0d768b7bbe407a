"""/api/v1 rooms and invites: CRUD scoped to the key's owner."""

from __future__ import annotations

import math
from typing import Any

from aiohttp import web

from .auth import request_owner
from .context import hub
from .errors import ApiError
from .jsonio import base_url, invite_json, read_json, room_json

ROOM_FIELDS = {"name", "mode", "threshold", "liveness_policy", "max_attempts", "retain_photos",
               "engine", "presence_interval_s", "no_flashing", "media_backend"}  # fmt: skip
MIN_TTL_S = 60.0
MAX_TTL_S = 365 * 86400.0


def _room_out(request: web.Request, room: Any) -> dict[str, Any]:
    h = hub(request)
    return room_json(room, base_url(request, h.settings.server.public_url), h.default_threshold)


async def list_rooms(request: web.Request) -> web.Response:
    owner = request_owner(request)
    rooms = hub(request).store.rooms(owner.id)
    return web.json_response({"rooms": [_room_out(request, r) for r in rooms]})


async def create_room(request: web.Request) -> web.Response:
    owner = request_owner(request)
    body = await read_json(request, ROOM_FIELDS, {"name"})
    name = body.pop("name")
    mode = body.pop("mode", "invite")
    if not isinstance(name, str) or not isinstance(mode, str):
        raise ApiError(422, "bad_field", "name and mode must be strings")
    body.setdefault("liveness_policy", hub(request).settings.liveness.policy)
    room = hub(request).store.create_room(name, mode, owner_id=owner.id, settings=body)
    return web.json_response(_room_out(request, room), status=201)


async def get_room(request: web.Request) -> web.Response:
    room = hub(request).store.room(request.match_info["room_id"], request_owner(request).id)
    return web.json_response(_room_out(request, room))


async def update_room(request: web.Request) -> web.Response:
    body = await read_json(request, ROOM_FIELDS)
    room = hub(request).store.update_room(
        request.match_info["room_id"], request_owner(request).id, body
    )
    return web.json_response(_room_out(request, room))


async def renew_link(request: web.Request) -> web.Response:
    """A new unguessable room link; the previous one (and a legacy /r/<slug>) stops working."""
    room = hub(request).store.renew_room_link(
        request.match_info["room_id"], request_owner(request).id
    )
    return web.json_response(_room_out(request, room))


async def delete_room(request: web.Request) -> web.Response:
    hub(request).store.delete_room(request.match_info["room_id"], request_owner(request).id)
    hub(request).room_deleted(request.match_info["room_id"])
    return web.Response(status=204)


async def list_invites(request: web.Request) -> web.Response:
    store = hub(request).store
    room = store.room(request.match_info["room_id"], request_owner(request).id)
    return web.json_response({"invites": [invite_json(i) for i in store.invites(room.id)]})


async def create_invite(request: web.Request) -> web.Response:
    owner = request_owner(request)
    body = await read_json(request, {"person_id", "ttl_s"})
    person_id = body.get("person_id")
    if person_id is not None and not isinstance(person_id, str):
        raise ApiError(422, "bad_field", "person_id must be a string or null")
    ttl = body.get("ttl_s", 7 * 86400.0)
    if ttl is not None and (
        isinstance(ttl, bool)
        or not isinstance(ttl, int | float)
        or not math.isfinite(ttl)
        or not MIN_TTL_S <= ttl <= MAX_TTL_S
    ):
        raise ApiError(422, "bad_ttl", "ttl_s must be null (no expiry) or 60 s to 365 days")
    h = hub(request)
    room = h.store.room(request.match_info["room_id"], owner.id)
    info, token = h.store.issue_invite(room.id, person_id, ttl, owner_id=owner.id)
    out = invite_json(info)
    out["token"] = token
    out["url"] = f"{base_url(request, h.settings.server.public_url)}/r/{room.link}?invite={token}"
    return web.json_response(out, status=201)


async def revoke_invite(request: web.Request) -> web.Response:
    info = hub(request).store.revoke_invite_id(
        request.match_info["invite_id"], request_owner(request).id
    )
    hub(request).invite_revoked(info.id)
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/rooms", list_rooms)
    app.router.add_post("/rooms", create_room)
    app.router.add_get("/rooms/{room_id}", get_room)
    app.router.add_patch("/rooms/{room_id}", update_room)
    app.router.add_delete("/rooms/{room_id}", delete_room)
    app.router.add_post("/rooms/{room_id}/link", renew_link)
    app.router.add_get("/rooms/{room_id}/invites", list_invites)
    app.router.add_post("/rooms/{room_id}/invites", create_invite)
    app.router.add_delete("/invites/{invite_id}", revoke_invite)
