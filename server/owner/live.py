"""The room dashboard's live view: a websocket per open dashboard page.

Cookie-authenticated, so the Origin must be this server (no cross-site websocket
hijacking) and the room must be the signed-in owner's. The hub pushes a snapshot
(participants with state, rounded distance and since; recent decisions) whenever
a participant of the room changes state.
"""

from __future__ import annotations

import contextlib
from typing import Any

from aiohttp import WSMsgType, web
from yarl import URL

from ..api.context import hub
from ..store import Owner, Repository, StoreError
from .common import current_owner

SOCKETS: web.AppKey[set[web.WebSocketResponse]] = web.AppKey("dashboard_sockets", set)


def same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # not a browser: cookies are the only credential anyway
    try:
        return URL(origin).authority == request.url.authority
    except ValueError:
        return False


async def live(request: web.Request) -> web.StreamResponse:
    owner = await current_owner(request)
    if owner is None:
        return web.json_response({"error": {"code": "signed_out"}}, status=401)
    if not same_origin(request):
        return web.json_response({"error": {"code": "bad_origin"}}, status=403)
    h = hub(request)
    try:
        room = h.store.room(request.match_info["room_id"], owner.id)
    except StoreError:
        return web.json_response({"error": {"code": "unknown_room"}}, status=404)
    ws = web.WebSocketResponse(heartbeat=20, max_msg_size=4096)
    await ws.prepare(request)
    request.app[SOCKETS].add(ws)

    async def sink(message: dict[str, Any]) -> None:
        if ws.closed:
            return
        if not _session_still_valid(h.store, owner):
            # "Sign out everywhere" or a password change since this socket opened: a
            # copied cookie must not keep a live view of the room.
            await ws.close(code=4401, message=b"signed out")
            return
        await ws.send_json(message)

    h.subscribe_dashboard(room.id, sink)
    try:
        await sink(h.dashboard_snapshot(room.id))
        async for msg in ws:
            if msg.type is WSMsgType.ERROR:
                break  # the dashboard only listens; anything it sends is ignored
    finally:
        h.unsubscribe_dashboard(room.id, sink)
        request.app[SOCKETS].discard(ws)
    return ws


def _session_still_valid(store: Repository, owner: Owner) -> bool:
    try:
        return store.owner(owner.id).session_version == owner.session_version
    except StoreError:
        return False


async def close_sockets(app: web.Application) -> None:
    sockets = app[SOCKETS]
    for ws in list(sockets):
        with contextlib.suppress(Exception):
            await ws.close(code=1001, message=b"server shutdown")


def add_routes(app: web.Application) -> None:
    app[SOCKETS] = set()
    app.router.add_get("/rooms/{room_id}/live", live)
    app.on_shutdown.append(close_sockets)
