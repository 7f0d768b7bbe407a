"""Sign up, sign in, sign out. Passwords hashed with argon2id (argon2-cffi).

Hashing is deliberately slow, so it runs in a thread, never on the event loop. A new
session is issued at sign-in (no session fixation); unknown emails cost the same
hash work as wrong passwords so timing does not reveal which accounts exist.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from typing import TypeVar

from aiohttp import web
from aiohttp_session import get_session, new_session
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ..api.context import hub
from ..store import StoreError
from .common import csrf_token, current_owner, flash, form_str, render
from .ratelimit import SignInLimiter

HASHER = PasswordHasher()
LIMITER: web.AppKey[SignInLimiter] = web.AppKey("signin_limiter", SignInLimiter)
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
    return await render(request, "owner/signup.html", {"email": ""})


async def signup(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    email = form_str(form, "email").strip().lower()
    password = form_str(form, "password")
    error = None
    if not EMAIL_RE.match(email):
        error = "Enter a valid email address."
    elif not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        error = f"The password must be {PASSWORD_MIN} to {PASSWORD_MAX} characters."
    if error is None:
        password_hash = await _run(HASHER.hash, password)
        try:
            owner = hub(request).store.create_owner(email, password_hash)
        except StoreError as err:
            error = "An account with this email exists: sign in." if err.code == "email_taken" \
                else err.message  # fmt: skip
        else:
            await _start_session(request, owner.id)
            await flash(request, "Welcome! Create your first room.")
            raise web.HTTPSeeOther("/owner/rooms")
    return await render(request, "owner/signup.html", {"email": email, "error": error}, status=422)


async def signin_page(request: web.Request) -> web.StreamResponse:
    if await current_owner(request) is not None:
        raise web.HTTPSeeOther("/owner/rooms")
    return await render(request, "owner/signin.html", {"email": ""})


async def signin(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    email = form_str(form, "email").strip().lower()
    password = form_str(form, "password")
    limiter = request.app[LIMITER]
    keys = [f"ip:{request.remote}", f"email:{email}"]
    now = time.monotonic()
    wait = limiter.retry_after(keys, now)
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
    ok = await _run(_verify, stored, password) and owner is not None
    if not ok or owner is None:
        limiter.failure(keys, now)
        return await render(
            request,
            "owner/signin.html",
            {"email": email, "error": "Wrong email or password."},
            status=401,
        )
    limiter.success([f"email:{email}"])
    if HASHER.check_needs_rehash(stored):
        store.set_password_hash(owner.id, await _run(HASHER.hash, password))
    await _start_session(request, owner.id)
    raise web.HTTPSeeOther("/owner/rooms")


async def _start_session(request: web.Request, owner_id: str) -> None:
    session = await new_session(request)
    session["owner_id"] = owner_id
    csrf_token(session)


async def signout(request: web.Request) -> web.StreamResponse:
    session = await get_session(request)
    session.invalidate()
    raise web.HTTPSeeOther("/owner/signin")


def add_routes(app: web.Application) -> None:
    app[LIMITER] = SignInLimiter()
    app.router.add_get("/signup", signup_page)
    app.router.add_post("/signup", signup)
    app.router.add_get("/signin", signin_page)
    app.router.add_post("/signin", signin)
    app.router.add_post("/signout", signout)
