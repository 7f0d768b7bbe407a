"""The REST API under /api/v1: a sub-application with its own key auth and JSON errors."""

from __future__ import annotations

from aiohttp import web

from ..config import ApiSettings
from ..state import SETTINGS
from . import persons, presence, recognition, rooms
from .auth import LIMITER, key_auth
from .errors import json_errors
from .openapi import build_openapi
from .ratelimit import KeyedRateLimiter

PREFIX = "/api/v1"


async def openapi_json(_request: web.Request) -> web.Response:
    return web.json_response(build_openapi())


def setup_api(app: web.Application) -> web.Application:
    """Mount the API on ``app``; returns the sub-application (tests list its routes)."""
    api = web.Application(middlewares=[json_errors, key_auth])
    limits = app[SETTINGS].api if SETTINGS in app else ApiSettings()
    api[LIMITER] = KeyedRateLimiter(limits.requests_per_s, limits.burst)
    api.router.add_get("/openapi.json", openapi_json)
    rooms.add_routes(api)
    persons.add_routes(api)
    recognition.add_routes(api)
    presence.add_routes(api)
    app.add_subapp(PREFIX, api)
    return api
