"""The owner web UI under /owner: accounts, rooms, people, enrolment, invites, API keys
and the live room dashboard. A sub-application so its session and CSRF middlewares
never touch the participants' pages or the API."""

from __future__ import annotations

import aiohttp_session
from aiohttp import web

from ..config import Settings
from . import account, auth, host, keys, live, people, presence, rooms
from .common import csrf_middleware
from .session import session_storage

PREFIX = "/owner"


async def home(_request: web.Request) -> web.StreamResponse:
    raise web.HTTPSeeOther("/owner/rooms")


def setup_owner(app: web.Application, settings: Settings) -> web.Application:
    owner = web.Application()
    aiohttp_session.setup(owner, session_storage(settings))
    owner.middlewares.append(csrf_middleware)
    owner.router.add_get("", home)
    owner.router.add_get("/", home)
    auth.add_routes(owner, settings.owner)
    account.add_routes(owner)
    rooms.add_routes(owner)
    people.add_routes(owner)
    keys.add_routes(owner)
    live.add_routes(owner)
    presence.add_routes(owner)
    host.add_routes(owner)
    app.add_subapp(PREFIX, owner)
    return owner
