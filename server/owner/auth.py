"""Sign up, sign in, sign out. Passwords hashed with argon2id (argon2-cffi).

Hashing is deliberately slow, so it runs in a thread, never on the event loop, and
only inside one of ``[owner] hash_concurrency`` slots (``signup.HashSlots``). A new
session is issued at sign-in (no session fixation) and carries the owner's session
version (``account.py``: sign out everywhere, password change). Unknown emails cost
the same hash work as wrong passwords, and sign-up answers a taken email exactly as a
new one, so neither timing nor wording reveals which accounts exist.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable
from typing import TypeVar

from aiohttp import web
from aiohttp_session import get_session, new_session
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ..api.context import hub
from ..clientaddr import request_client_ip
from ..cluster.limits import FailureLimit, LocalFailureLimit
from ..config import OwnerSettings
from ..store import Owner, StoreError
from .common import SESSION_VERSION, csrf_token, current_owner, flash, form_str, render
from .ratelimit import SignInLimiter
from .signup import HashBusy, HashSlots, check_signup_invite

HASHER = PasswordHasher()
LIMITER: web.AppKey[SignInLimiter] = web.AppKey("signin_limiter", SignInLimiter)
SIGNUP_LIMITER: web.AppKey[SignInLimiter] = web.AppKey("signup_limiter", SignInLimiter)
POLICY: web.AppKey[OwnerSettings] = web.AppKey("owner_policy", OwnerSettings)
HASH_SLOTS: web.AppKey[HashSlots] = web.AppKey("hash_slots", HashSlots)
# The same words whether the email was new or already registered (no enumeration).
SIGNUP_DONE = "Thanks. If this email can be used, its account is ready: sign in with it."
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s]{1,63}$")
PASSWORD_MIN = 8
PASSWORD_MAX = 256
_DUMMY_HASH = HASHER.hash("videogate-timing-equaliser")
T = TypeVar("T")


async def _run(func: Callable[..., T], *args: str) -> T:
    return await asyncio.get_running_loop().run_in_executor(None, func, *args)


def _verify(stored: str, password: str) -> bool:
    try:
        return HASHER.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


async def signup_page(request: web.Request) -> web.StreamResponse:
    if await current_owner(request) is not None:
        raise web.HTTPSeeOther("/owner/rooms")
    invite = request.query.get("invite", "")[:200]
    return await render(request, "owner/signup.html", _signup_context(request, "", invite))


def _signup_context(request: web.Request, email: str, invite: str) -> dict[str, object]:
    return {"email": email, "invite": invite, "mode": request.app[POLICY].signup}


async def signup(request: web.Request) -> web.StreamResponse:
    """Create an account; the answer is the same whether or not the email was taken."""
    policy = request.app[POLICY]
    form = await request.post()
    email = form_str(form, "email").strip().lower()
    password = form_str(form, "password")
    invite = form_str(form, "invite")[:200]
    context = _signup_context(request, email, invite)
    if policy.signup == "closed":
        context["error"] = "Sign-up is closed on this server. Ask its operator for an account."
        return await render(request, "owner/signup.html", context, status=403)
    limiter, now = _limit(request, SIGNUP_LIMITER), time.monotonic()
    keys = [f"ip:{request_client_ip(request)}"]
    wait = await limiter.retry_after(keys, now)
    if wait is not None:
        context["error"] = f"Too many sign-ups from your address. Try again in {int(wait) + 1} s."
        response = await render(request, "owner/signup.html", context, status=429)
        response.headers["Retry-After"] = str(int(wait) + 1)
        return response
    await limiter.failure(keys, now)  # every attempt counts, successful or not
    if policy.signup == "invite" and not check_signup_invite(hub(request).settings, email, invite):
        context["error"] = "Sign-up needs a valid invitation link for this email address."
        return await render(request, "owner/signup.html", context, status=403)
    error = _credential_error(email, password)
    if error is not None:
        context["error"] = error
        return await render(request, "owner/signup.html", context, status=422)
    try:
        password_hash = await _hash(request, password)
    except HashBusy:
        return await _busy(request, "owner/signup.html", context)
    try:
        hub(request).store.create_owner(email, password_hash)
    except StoreError as err:
        if err.code != "email_taken":
            context["error"] = err.message
            return await render(request, "owner/signup.html", context, status=422)
    await flash(request, SIGNUP_DONE)
    raise web.HTTPSeeOther("/owner/signin")


def _credential_error(email: str, password: str) -> str | None:
    if not EMAIL_RE.match(email):
        return "Enter a valid email address."
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        return f"The password must be {PASSWORD_MIN} to {PASSWORD_MAX} characters."
    return None


async def _hash(request: web.Request, password: str) -> str:
    """Hash in a thread, inside a slot taken *before* the work (HashBusy if none)."""
    with request.app[HASH_SLOTS]:
        return await _run(HASHER.hash, password)


async def _verify_slot(request: web.Request, stored: str, password: str) -> bool:
    with request.app[HASH_SLOTS]:
        return await _run(_verify, stored, password)


async def _busy(request: web.Request, template: str, context: dict[str, object]) -> web.Response:
    context = {**context, "error": "The server is busy. Try again in a few seconds."}
    response = await render(request, template, context, status=503)
    response.headers["Retry-After"] = str(HashBusy.retry_after_s)
    return response


async def signin_page(request: web.Request) -> web.StreamResponse:
    if await current_owner(request) is not None:
        raise web.HTTPSeeOther("/owner/rooms")
    return await render(request, "owner/signin.html", {"email": ""})


async def signin(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    email = form_str(form, "email").strip().lower()
    password = form_str(form, "password")
    limiter = _limit(request, LIMITER)
    keys = [f"ip:{request_client_ip(request)}", f"email:{email}"]
    now = time.monotonic()
    wait = await limiter.retry_after(keys, now)
    if wait is not None:
        response = await render(
            request,
            "owner/signin.html",
            {"email": email, "error": f"Too many attempts. Try again in {int(wait) + 1} s."},
            status=429,
        )
        response.headers["Retry-After"] = str(int(wait) + 1)
        return response
    store = hub(request).store
    try:
        owner, stored = store.owner_credentials(email)
    except StoreError:
        owner, stored = None, _DUMMY_HASH
    try:
        ok = await _verify_slot(request, stored, password) and owner is not None
    except HashBusy:
        return await _busy(request, "owner/signin.html", {"email": email})
    if not ok or owner is None:
        await limiter.failure(keys, now)
        return await render(
            request,
            "owner/signin.html",
            {"email": email, "error": "Wrong email or password."},
            status=401,
        )
    await limiter.success([f"email:{email}"])
    if HASHER.check_needs_rehash(stored):
        with contextlib.suppress(HashBusy):  # rehashing can wait for the next sign-in
            store.set_password_hash(owner.id, await _hash(request, password))
    await start_session(request, owner)
    raise web.HTTPSeeOther("/owner/rooms")


async def start_session(request: web.Request, owner: Owner) -> None:
    """A fresh session (no fixation) bound to the owner's current session version."""
    session = await new_session(request)
    session["owner_id"] = owner.id
    session[SESSION_VERSION] = owner.session_version
    csrf_token(session)


async def signout(request: web.Request) -> web.StreamResponse:
    session = await get_session(request)
    session.invalidate()
    raise web.HTTPSeeOther("/owner/signin")


def _limit(request: web.Request, key: web.AppKey[SignInLimiter]) -> FailureLimit:
    """This server's limiter, or on a cluster the one every node counts into."""
    cluster = hub(request).cluster
    if cluster is None:
        return LocalFailureLimit(request.app[key])
    node = cluster.node
    return node.signin_limit if key is LIMITER else node.signup_limit


def add_routes(app: web.Application, settings: OwnerSettings) -> None:
    app[LIMITER] = SignInLimiter()
    app[POLICY] = settings
    app[SIGNUP_LIMITER] = SignInLimiter(max_failures=settings.signups_per_hour, window_s=3600.0)
    app[HASH_SLOTS] = HashSlots(settings.hash_concurrency)
    app.router.add_get("/signup", signup_page)
    app.router.add_post("/signup", signup)
    app.router.add_get("/signin", signin_page)
    app.router.add_post("/signin", signin)
    app.router.add_post("/signout", signout)
