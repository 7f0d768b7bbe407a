"""Shared plumbing for owner pages: who is signed in, CSRF, flash messages, rendering.

CSRF: each session carries a random token; every unsafe request must echo it in the
``X-CSRF-Token`` header (fetch) or a ``_csrf`` form field. Multipart uploads are
streamed, so their handlers check the ``_csrf`` part themselves (it precedes the
files in the form) unless the header was sent; routes that do so are listed in
``DEFERRED_CSRF_ROUTES`` and every other multipart POST is refused here.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp_jinja2
from aiohttp import web
from aiohttp.typedefs import Handler
from aiohttp_session import Session, get_session

from ..api.context import hub
from ..store import Owner, StoreError

CSRF_FIELD = "_csrf"
CSRF_HEADER = "X-CSRF-Token"
DEFERRED_CSRF_ROUTES = {"owner-photos"}
CSRF_OK: web.RequestKey[bool] = web.RequestKey("csrf_ok", bool)
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
SESSION_VERSION = "sv"

OwnerHandler = Callable[[web.Request, Owner], Awaitable[web.StreamResponse]]


def csrf_token(session: Session) -> str:
    token = session.get("csrf")
    if not isinstance(token, str):
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def token_matches(session: Session, candidate: object) -> bool:
    token = session.get("csrf")
    return (
        isinstance(token, str)
        and isinstance(candidate, str)
        and hmac.compare_digest(token.encode(), candidate.encode())
    )


def wants_json(request: web.Request) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def forbidden(request: web.Request, message: str) -> web.Response:
    if wants_json(request):
        return web.json_response({"error": {"code": "csrf", "message": message}}, status=403)
    return aiohttp_jinja2.render_template(
        "error.html", request, {"title": "Request refused", "message": message}, status=403
    )


@web.middleware
async def csrf_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method in SAFE_METHODS:
        return await handler(request)
    session = await get_session(request)
    header = request.headers.get(CSRF_HEADER)
    if header is not None:
        if not token_matches(session, header):
            return forbidden(request, "The form expired. Reload the page and try again.")
        request[CSRF_OK] = True
        return await handler(request)
    if request.content_type == "application/x-www-form-urlencoded":
        form = await request.post()
        if not token_matches(session, form.get(CSRF_FIELD)):
            return forbidden(request, "The form expired. Reload the page and try again.")
        request[CSRF_OK] = True
        return await handler(request)
    route = request.match_info.route.name
    if request.content_type == "multipart/form-data" and route in DEFERRED_CSRF_ROUTES:
        request[CSRF_OK] = False  # the handler must check the _csrf part
        return await handler(request)
    return forbidden(request, "Missing security token.")


async def current_owner(request: web.Request) -> Owner | None:
    """The signed-in owner, if the cookie's session version is still the owner's.

    Cookies are client-side (encrypted), so a copied cookie would otherwise work until
    it expires; the version in the store moves on at "sign out everywhere" and at a
    password change, and every older cookie is refused from then on.
    """
    session = await get_session(request)
    owner_id = session.get("owner_id")
    if not isinstance(owner_id, str):
        return None
    try:
        owner = hub(request).store.owner(owner_id)
    except StoreError:
        session.invalidate()
        return None
    # Cookies from before session versions existed carry none: version 0.
    if session.get(SESSION_VERSION, 0) != owner.session_version:
        session.invalidate()
        return None
    return owner


def signed_in(handler: OwnerHandler) -> Handler:
    """Run ``handler`` with the signed-in owner, or send the visitor to sign in."""

    async def wrapper(request: web.Request) -> web.StreamResponse:
        owner = await current_owner(request)
        if owner is None:
            if wants_json(request):
                return web.json_response(
                    {"error": {"code": "signed_out", "message": "sign in first"}}, status=401
                )
            raise web.HTTPSeeOther("/owner/signin")
        return await handler(request, owner)

    wrapper.__name__ = handler.__name__
    wrapper.__doc__ = handler.__doc__
    return wrapper


async def flash(request: web.Request, message: str, kind: str = "ok") -> None:
    session = await get_session(request)
    messages = list(session.get("flash", []))[-4:]
    messages.append({"kind": kind, "message": message})
    session["flash"] = messages


async def render(
    request: web.Request,
    template: str,
    context: dict[str, Any],
    *,
    status: int = 200,
    owner: Owner | None = None,
) -> web.Response:
    session = await get_session(request)
    flashes = session.pop("flash", [])
    ctx = {"csrf": csrf_token(session), "owner": owner, "flashes": flashes, **context}
    response = aiohttp_jinja2.render_template(template, request, ctx, status=status)
    response.headers["Cache-Control"] = "no-store"
    return response


def not_found(request: web.Request, what: str = "page") -> web.Response:
    return aiohttp_jinja2.render_template(
        "error.html",
        request,
        {"title": "Not found", "message": f"No such {what}."},
        status=404,
    )


def form_str(form: Any, key: str, default: str = "") -> str:
    value = form.get(key, default)
    return value if isinstance(value, str) else default
