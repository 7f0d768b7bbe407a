"""aiohttp application factory, pages and the participant websocket."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp_jinja2
import jinja2
from aiohttp import WSMsgType, web

from .config import REPO_ROOT, Settings
from .face.engine import FaceEngine
from .hub import Hub
from .participant import Participant, Send
from .signalling import Join, ProtocolError, parse_client_message
from .store import SqliteStore, StoreError, open_store
from .verify import CheckTarget, FaceChecker

log = logging.getLogger(__name__)

WEB = REPO_ROOT / "web"
HUB: web.AppKey[Hub] = web.AppKey("hub", Hub)
SETTINGS: web.AppKey[Settings] = web.AppKey("settings", Settings)

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'"
)


SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "camera=(self), microphone=(self)",
}


@web.middleware
async def security_headers(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every response, raised ones (404, redirects) included, carries the headers."""
    try:
        response: web.StreamResponse = await handler(request)
    except web.HTTPException as exc:
        for name, value in SECURITY_HEADERS.items():
            exc.headers.setdefault(name, value)
        raise
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


@aiohttp_jinja2.template("index.html")
async def index(_request: web.Request) -> dict[str, object]:
    return {}


async def room_page(request: web.Request) -> web.StreamResponse:
    hub = request.app[HUB]
    slug = request.match_info["slug"]
    try:
        room = hub.store.room_by_slug(slug)
    except StoreError:
        return aiohttp_jinja2.render_template(
            "error.html",
            request,
            {"title": "Room not found", "message": "Check the link you were given."},
            status=404,
        )
    response = aiohttp_jinja2.render_template("room.html", request, {"room": room})
    # The invite token is in the query string: keep it out of Referer headers and caches.
    response.headers["Cache-Control"] = "no-store"
    return response


async def health(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    return web.json_response(
        {
            "ok": True,
            "rooms_live": len(hub.rooms),
            "participants": sum(len(r.participants) for r in hub.rooms.values()),
            "threshold": hub.default_threshold,
        }
    )


def client_ip(request: web.Request) -> str:
    return request.remote or "unknown"


async def websocket(request: web.Request) -> web.WebSocketResponse:
    hub = request.app[HUB]
    limit = hub.settings.limits.max_message_bytes
    # Messages over the limit get an error event; far over it (4x) the frame is not
    # even read and aiohttp closes the socket with 1009 (message too big).
    ws = web.WebSocketResponse(heartbeat=20, max_msg_size=4 * limit)
    await ws.prepare(request)

    async def send(message: dict[str, object]) -> None:
        if not ws.closed:
            await ws.send_json(message)

    participant: Participant | None = None
    try:
        async for msg in ws:
            if msg.type is not WSMsgType.TEXT:
                if msg.type is WSMsgType.BINARY:
                    await send({"type": "error", "code": "bad_message", "message": "text only"})
                continue
            try:
                parsed = parse_client_message(msg.data, limit)
            except ProtocolError as err:
                await send({"type": "error", "code": err.code, "message": err.message})
                continue
            if participant is None:
                if not isinstance(parsed, Join):
                    await send(
                        {"type": "error", "code": "join_first", "message": "send join first"}
                    )
                    continue
                participant = await _join(hub, parsed, send, client_ip(request))
                if participant is None:
                    break
            elif isinstance(parsed, Join):
                await send({"type": "error", "code": "already_joined", "message": "joined"})
            else:
                await participant.handle(parsed)
                if participant.gate.state.value in ("denied", "locked", "left"):
                    break
    finally:
        if participant is not None:
            await participant.close(left=False)
        with contextlib.suppress(Exception):
            await ws.close()
    return ws


async def _join(hub: Hub, join: Join, send: Send, ip: str) -> Participant | None:
    async def refuse(code: str, message: str) -> None:
        await send({"type": "error", "code": code, "message": message, "fatal": True})

    store = hub.store
    try:
        room = store.room_by_slug(join.room)
        person = None
        if join.invite:
            person = store.resolve_invite(join.room, join.invite).person
        elif room.mode != "open":
            await refuse("invite_required", "This room is entered with a personal invite link.")
            return None
        if person is not None:
            gallery = {person.id: store.templates(person.id)}
        else:
            gallery = store.gallery(room.id)
    except StoreError as err:
        await refuse(err.code, err.message)
        return None
    if not any(len(t) for t in gallery.values()):
        await refuse("not_enrolled", "Nobody is enrolled for this link yet. Ask the room owner.")
        return None
    threshold = room.threshold or hub.default_threshold
    target = CheckTarget(person.id if person else None, gallery, threshold)
    lock_key = f"invite:{join.invite}" if join.invite else f"room:{room.id}"
    participant = Participant(
        hub,
        hub.runtime(room),
        send,
        FaceChecker(hub.engine, target),
        policy=hub.gate_policy(room),
        name=person.name if person else (join.name or "Guest"),
        person_id=person.id if person else None,
        lockout_keys=(lock_key, f"ip:{ip}"),
        ip=ip,
    )
    entry = hub.claim_rejoin(join.rejoin, room.id, ip)
    if entry is not None and (person is None or entry.person_id == person.id):
        participant.name = entry.name
        participant.resume_after_blip(entry.person_id, entry.distance)
    participant.runtime.add(participant)
    await send(
        {
            "type": "welcome",
            "participant_id": participant.id,
            "room": room.name,
            "person": person.name if person else None,
            "attempts_left": participant.gate.attempts_left,
            "rejoin": participant.rejoin_token,
            "resumed": entry is not None,
        }
    )
    return participant


def create_app(
    settings: Settings, *, engine: FaceEngine | None = None, store: SqliteStore | None = None
) -> web.Application:
    """Build the app; the engine and store load at start-up unless given (tests share them)."""
    app = web.Application(middlewares=[security_headers], client_max_size=1024**2)
    app[SETTINGS] = settings
    aiohttp_jinja2.setup(
        app, loader=jinja2.FileSystemLoader(str(WEB / "templates")), autoescape=True
    )
    app.router.add_get("/", index)
    app.router.add_get("/r/{slug}", room_page)
    app.router.add_get("/ws", websocket)
    app.router.add_get("/healthz", health)
    app.router.add_static("/static", WEB / "static")
    # Owner UI (/owner) and REST API (/api/v1): sub-applications with their own
    # middlewares (sessions + CSRF; API keys + JSON errors). Imported here because
    # their handlers reach the hub through this module.
    from .api import setup_api
    from .owner import setup_owner

    setup_owner(app, settings)
    setup_api(app)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        owned_store = store is None
        the_store = store or open_store(settings.data_path)
        the_engine = engine or FaceEngine.load(settings.model_cache)
        hub = Hub(settings, the_store, the_engine)
        app[HUB] = hub
        yield
        await hub.close()
        if owned_store:
            the_store.close()

    app.cleanup_ctx.append(lifecycle)
    return app
