"""Request bodies in, resources out: one place for the JSON shapes the OpenAPI document
describes (``openapi.py``), so the two are easy to keep in step."""

from __future__ import annotations

import json
import time
from typing import Any

from aiohttp import web

from ..store import Face, InviteInfo, Person, Room
from ..store.records import TEMPLATE_ENGINES
from .context import hub
from .errors import ApiError

MAX_JSON_BYTES = 64 * 1024


async def read_json(
    request: web.Request, allowed: set[str], required: frozenset[str] | set[str] = frozenset()
) -> dict[str, Any]:
    """A JSON object with only ``allowed`` keys (and every ``required`` one)."""
    if request.content_type != "application/json":
        raise ApiError(415, "unsupported_media_type", "send application/json")
    if request.content_length is not None and request.content_length > MAX_JSON_BYTES:
        raise ApiError(413, "too_large", "JSON body too large")
    raw = await request.content.read(MAX_JSON_BYTES + 1)
    if len(raw) > MAX_JSON_BYTES:
        raise ApiError(413, "too_large", "JSON body too large")
    try:
        body = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "bad_json", "the body is not valid JSON") from exc
    if not isinstance(body, dict):
        raise ApiError(422, "bad_json", "the body must be a JSON object")
    unknown = set(body) - allowed
    if unknown:
        raise ApiError(422, "bad_field", f"unknown field(s): {', '.join(sorted(unknown))}")
    missing = required - set(body)
    if missing:
        raise ApiError(422, "missing_field", f"missing field(s): {', '.join(sorted(missing))}")
    return body


def base_url(request: web.Request, public_url: str = "") -> str:
    """The base of every link we hand out (invites, room links): configuration only.

    Never the request's ``Host`` header: it is whatever the client sent, so an attacker
    who can make an owner's request carry ``Host: evil.example`` (or who sits between
    a proxy and us) would get invite links pointing at their own server, where the
    token is harvested. ``[server] public_url`` wins; otherwise scheme://host:port.
    """
    return public_url.rstrip("/") if public_url else hub(request).settings.base_url


def room_json(room: Room, base: str, default_threshold: float) -> dict[str, Any]:
    from ..owner.calibration import engine_calibrations

    effective = room.threshold or default_threshold
    return {
        "id": room.id,
        "slug": room.slug,
        "name": room.name,
        "mode": room.mode,
        "threshold": room.threshold,
        "effective_threshold": room.threshold or default_threshold,
        "liveness_policy": room.liveness_policy,
        "max_attempts": room.max_attempts,
        "retain_photos": room.retain_photos,
        "engine": room.engine,
        # each engine setting's LFW error rates at this room's threshold (docs/face.md)
        "calibration": {
            engine: {"far": c.far, "frr": c.frr, "set": c.dataset}
            for engine, c in engine_calibrations(effective).items()
        },
        "presence_interval_s": room.presence_interval_s,
        "no_flashing": room.no_flashing,
        "media_backend": room.media_backend,
        "link": f"{base}/r/{room.link}",
        # a link made before links had a random part still works as /r/<slug>
        "legacy_link": room.legacy_link,
        "created": room.created,
    }


def person_json(person: Person, faces: int, engines: tuple[str, ...] = ("dlib",)) -> dict[str, Any]:
    """``engines``: the template engines the person has templates for; an enrolled
    person lacking one (enrolled before it existed, photos not kept) must re-enrol
    before a room using that engine can match them: ``reenrol_for`` names them."""
    return {
        "id": person.id,
        "room_id": person.room_id,
        "name": person.name,
        "external_id": person.external_id,
        "faces": faces,
        "engines": list(engines) if faces else [],
        "reenrol_for": [e for e in TEMPLATE_ENGINES if e not in engines] if faces else [],
        "created": person.created,
    }


def face_json(face: Face) -> dict[str, Any]:
    return {
        "id": face.id,
        "person_id": face.person_id,
        "engine": face.engine,
        "engines": list(face.engines or (face.engine,)),
        "photo_retained": face.photo_id is not None,
        "created": face.created,
    }


def invite_json(invite: InviteInfo) -> dict[str, Any]:
    return {
        "id": invite.id,
        "room_id": invite.room_id,
        "person_id": invite.person_id,
        "expires": invite.expires,
        "status": invite.status(time.time()),
        "created": invite.created,
    }
