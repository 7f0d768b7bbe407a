"""aiohttp application factory, pages and the participant websocket."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp_jinja2
import jinja2
from aiohttp import web

from .api import setup_api
from .config import REPO_ROOT, Settings
from .device import COOKIE as DEVICE_COOKIE
from .device import MAX_AGE_S as DEVICE_MAX_AGE_S
from .face.engine import FaceEngine
from .health import mark_draining, ready
from .hub import Hub
from .media_settings import connect_origins
from .metrics import metrics
from .owner import setup_owner
from .prejoin import link_state
from .report.http import WELL_KNOWN_PATH, signing_key
from .state import HUB, SETTINGS
from .store import Repository, open_store
from .ws import client_ip, websocket

__all__ = ["HUB", "SETTINGS", "client_ip", "create_app"]

log = logging.getLogger(__name__)

WEB = REPO_ROOT / "web"

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'"
)


CONNECT = "connect-src 'self'"

SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "camera=(self), microphone=(self)",
}

# Under TLS (served directly, or public_url is https behind a proxy): browsers that
# saw it once refuse plain http to this host for a year, so a network attacker cannot
# strip TLS from the owner's next visit. Browsers ignore it on plain http responses.
HSTS = "max-age=31536000"


@web.middleware
async def security_headers(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every response, raised ones (404, redirects) included, carries the headers."""
    headers = SECURITY_HEADERS
    settings = request.config_dict[SETTINGS]
    if request.secure or settings.base_url.startswith("https:"):
        headers = {**SECURITY_HEADERS, "Strict-Transport-Security": HSTS}
    hub = request.config_dict.get(HUB)
    connect = ""
    if hub is not None and hub.cluster is not None:  # the page may be redirected to a node
        connect += hub.cluster.connect_sources()
    janus = connect_origins(settings.media)  # the page talks to Janus (docs/janus.md)
    if janus:
        connect += f" {janus}"
    if connect:
        headers = {**headers, "Content-Security-Policy": CSP.replace(CONNECT, CONNECT + connect)}
    try:
        response: web.StreamResponse = await handler(request)
    except web.HTTPException as exc:
        for name, value in headers.items():
            exc.headers.setdefault(name, value)
        raise
    for name, value in headers.items():
        response.headers.setdefault(name, value)
    return response


@aiohttp_jinja2.template("index.html")
async def index(_request: web.Request) -> dict[str, object]:
    return {}


async def room_page(request: web.Request) -> web.StreamResponse:
    hub = request.app[HUB]
    link = request.match_info["slug"]
    # Dead links are answered here, before the page asks for the camera (pre-join).
    state = link_state(hub.store, hub.lockout, link, request.query.get("invite"))
    if not state.ok or state.room is None:
        response = aiohttp_jinja2.render_template(
            "link_dead.html", request, {"state": state}, status=state.status
        )
        response.headers["Cache-Control"] = "no-store"
        return response
    context = {"room": state.room, "link": link, "gate": request.app[SETTINGS].gate}
    response = aiohttp_jinja2.render_template("room.html", request, context)
    # The invite token is in the query string: keep it out of Referer headers and caches.
    response.headers["Cache-Control"] = "no-store"
    if hub.devices.verify(request.cookies.get(DEVICE_COOKIE)) is None:
        # A per-browser key for lockouts (server/device.py); sent with the websocket.
        response.set_cookie(
            DEVICE_COOKIE,
            hub.devices.issue(),
            max_age=DEVICE_MAX_AGE_S,
            httponly=True,
            samesite="Strict",
            secure=request.secure,
            path="/",
        )
    return response


async def health(_request: web.Request) -> web.Response:
    """Liveness only: counts and thresholds are on /metrics (server/metrics.py)."""
    return web.json_response({"ok": True})


def create_app(
    settings: Settings, *, engine: FaceEngine | None = None, store: Repository | None = None
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
    app.router.add_get("/readyz", ready)
    app.router.add_get("/metrics", metrics)
    app.router.add_get(WELL_KNOWN_PATH, signing_key)
    app.router.add_static("/static", WEB / "static")
    # Owner UI (/owner) and REST API (/api/v1): sub-applications with their own
    # middlewares (sessions + CSRF; API keys + JSON errors); their handlers reach the
    # hub through the keys in server/state.py.
    setup_owner(app, settings)
    setup_api(app)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        owned_store = store is None
        the_store = store or open_store(
            settings.data_path, settings.store.url, pool_size=settings.store.pool_size
        )
        the_engine = engine or FaceEngine.load(
            settings.model_cache,
            embedder=settings.face.embedder,
            landmarks=settings.face.landmarks,
            track_landmarks=settings.face.track_landmarks,
        )
        hub = Hub(settings, the_store, the_engine)
        await hub.start_cluster()  # a cluster node that cannot reach Redis does not start
        hub.start()
        app[HUB] = hub
        yield
        await hub.close()
        if owned_store:
            the_store.close()

    app.cleanup_ctx.append(lifecycle)
    app.on_shutdown.append(mark_draining)
    return app
