"""The owner's account page: change the password, sign out everywhere.

Both move the owner's session version on (``store.change_password`` /
``store.end_sessions``), which ends every session cookie issued before, including a
copied one: owner sessions live in encrypted cookies, so without a server-side
version a stolen cookie would stay valid until it expires (7 days).
"""

from __future__ import annotations

from aiohttp import web
from aiohttp_session import get_session

from ..api.context import hub
from ..store import Owner
from .auth import PASSWORD_MAX, PASSWORD_MIN, _busy, _hash, _verify_slot, start_session
from .common import flash, form_str, render, signed_in
from .signup import HashBusy

TEMPLATE = "owner/account.html"


@signed_in
async def account_page(request: web.Request, owner: Owner) -> web.StreamResponse:
    return await render(request, TEMPLATE, {}, owner=owner)


@signed_in
async def change_password(request: web.Request, owner: Owner) -> web.StreamResponse:
    form = await request.post()
    current, new = form_str(form, "current"), form_str(form, "password")
    store = hub(request).store
    _, stored = store.owner_credentials(owner.email)
    try:
        if not await _verify_slot(request, stored, current):
            return await render(
                request, TEMPLATE, {"error": "The current password is wrong."}, status=422,
                owner=owner,
            )  # fmt: skip
        if not PASSWORD_MIN <= len(new) <= PASSWORD_MAX:
            error = f"The new password must be {PASSWORD_MIN} to {PASSWORD_MAX} characters."
            return await render(request, TEMPLATE, {"error": error}, status=422, owner=owner)
        new_hash = await _hash(request, new)
    except HashBusy:
        return await _busy(request, TEMPLATE, {"owner": owner})
    updated = store.change_password(owner.id, new_hash)
    await start_session(request, updated)  # this browser stays signed in, the rest do not
    await flash(request, "Password changed. Every other session has been signed out.")
    raise web.HTTPSeeOther("/owner/account")


@signed_in
async def signout_everywhere(request: web.Request, owner: Owner) -> web.StreamResponse:
    hub(request).store.end_sessions(owner.id)
    session = await get_session(request)
    session.invalidate()
    raise web.HTTPSeeOther("/owner/signin")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/account", account_page)
    app.router.add_post("/account/password", change_password)
    app.router.add_post("/signout-everywhere", signout_everywhere)
