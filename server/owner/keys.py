"""Owner pages for API keys: create (secret shown once), list, revoke."""

from __future__ import annotations

from aiohttp import web

from ..api.context import hub
from ..store import Owner, StoreError
from .common import flash, form_str, not_found, render, signed_in


@signed_in
async def keys_page(request: web.Request, owner: Owner) -> web.StreamResponse:
    keys = hub(request).store.api_keys(owner.id)
    return await render(request, "owner/keys.html", {"keys": keys}, owner=owner)


@signed_in
async def create_key(request: web.Request, owner: Owner) -> web.StreamResponse:
    form = await request.post()
    try:
        key, secret = hub(request).store.create_api_key(owner.id, form_str(form, "name") or "key")
    except StoreError as err:
        await flash(request, err.message, "error")
        raise web.HTTPSeeOther("/owner/keys") from err
    keys = hub(request).store.api_keys(owner.id)
    return await render(
        request, "owner/keys.html", {"keys": keys, "new_key": key, "secret": secret}, owner=owner
    )


@signed_in
async def revoke_key(request: web.Request, owner: Owner) -> web.StreamResponse:
    try:
        hub(request).store.revoke_api_key(owner.id, request.match_info["key_id"])
    except StoreError:
        return not_found(request, "API key")
    await flash(request, "API key revoked.")
    raise web.HTTPSeeOther("/owner/keys")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/keys", keys_page)
    app.router.add_post("/keys", create_key)
    app.router.add_post("/keys/{key_id}/revoke", revoke_key)
