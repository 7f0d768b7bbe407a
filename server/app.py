"""aiohttp application factory, pages and the participant websocket."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import WSCloseCode, WSMsgType, web

from .config import REPO_ROOT, Settings
from .face.engine import FaceEngine
from .hub import Hub
from .limits import MessageRateLimiter, watch_media
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
    limits = hub.settings.limits
    limit = limits.max_message_bytes
    # Messages over the limit get an error event; far over it (4x) the frame is not
    # even read and aiohttp closes the socket with 1009 (message too big).
    ws = web.WebSocketResponse(heartbeat=20, max_msg_size=4 * limit)
    await ws.prepare(request)
    rate = MessageRateLimiter(limits.messages_per_s, limits.message_burst)
    background: set[asyncio.Task[Any]] = set()
    tearing_down = False

    def spawn(coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        background.add(task)
        task.add_done_callback(background.discard)

    async def send(message: dict[str, object]) -> None:
        if ws.closed:
            return
        await ws.send_json(message)
        # The participant ends itself (final refusal, media timeout, pc failure, seat
        # taken over): its ``bye`` is the last message, so close the socket too --
        # from another task, since this may run inside the handler's own read.
        if message.get("type") == "bye" and not tearing_down:
            spawn(ws.close())

    participant: Participant | None = None
    try:
        async for msg in ws:
            if not rate.allow(time.monotonic()):
                log.info("closing a websocket over its message rate (%s)", client_ip(request))
                await send(
                    {
                        "type": "error",
                        "code": "rate_limited",
                        "message": "too many messages; the connection is closed",
                        "fatal": True,
                    }
                )
                await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"rate limited")
                break
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
                spawn(_media_watchdog(participant, limits.media_timeout_s))
            elif isinstance(parsed, Join):
                await send({"type": "error", "code": "already_joined", "message": "joined"})
            else:
                await participant.handle(parsed)
                if participant.gate.state.value in ("denied", "locked", "left"):
                    break
    finally:
        tearing_down = True
        for task in list(background):
            task.cancel()
        if participant is not None:
            await participant.close(left=False)
        with contextlib.suppress(Exception):
            await ws.close()
    return ws


async def _media_watchdog(participant: Participant, timeout_s: float) -> None:
    """Free a participant whose media never arrives (see server/limits.py)."""

    async def expire() -> None:
        log.info("participant %s: no media after %.0f s, closing", participant.id, timeout_s)
        await participant.error(
            "media_timeout",
            "Your camera's video did not reach the server in time. Check the camera "
            "and the network, then reload the page.",
            fatal=True,
        )
        # Shielded: the socket closing under us cancels this task, and a teardown cut
        # short would leave the pc and its ICE sockets open.
        await asyncio.shield(participant.close(left=False))

    await watch_media(participant, timeout_s, expire)


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
            index = None
            enrolled = len(gallery[person.id]) > 0
        else:
            # 1:N: the room's packed gallery, shared by every join until it changes.
            gallery, index = {}, await hub.room_gallery(room.id)
            enrolled = len(index) > 0
    except StoreError as err:
        await refuse(err.code, err.message)
        return None
    if not enrolled:
        await refuse("not_enrolled", "Nobody is enrolled for this link yet. Ask the room owner.")
        return None
    threshold = room.threshold or hub.default_threshold
    target = CheckTarget(person.id if person else None, gallery, threshold, index=index)
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
    if entry is not None and person is not None and entry.person_id != person.id:
        # Another person's token: it does not resume this invite, and it stays valid
        # for its owner (claiming it must not let anyone burn someone else's rejoin).
        hub.grace[join.rejoin or ""] = entry
        entry = None
    if entry is not None:
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
    from .report.http import WELL_KNOWN_PATH, signing_key

    app.router.add_get(WELL_KNOWN_PATH, signing_key)
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
        the_engine = engine or FaceEngine.load(
            settings.model_cache,
            embedder=settings.face.embedder,
            landmarks=settings.face.landmarks,
        )
        hub = Hub(settings, the_store, the_engine)
        app[HUB] = hub
        yield
        await hub.close()
        if owned_store:
            the_store.close()

    app.cleanup_ctx.append(lifecycle)
    return app
