"""Bearer API keys: every API request is one owner's, identified by a hashed key.

Keys are created and revoked in the owner UI; the store keeps only their SHA-256.
Cookies are ignored here on purpose, so the API needs no CSRF token. Each key is
rate-limited (``[api] requests_per_s`` / ``burst``) once it is known to be valid.
"""

from __future__ import annotations

import hashlib
import time

from aiohttp import web
from aiohttp.typedefs import Handler

from ..store import Owner, StoreError
from .context import hub
from .errors import error_response
from .ratelimit import KeyedRateLimiter

OWNER: web.RequestKey[Owner] = web.RequestKey("api_owner", Owner)
LIMITER: web.AppKey[KeyedRateLimiter] = web.AppKey("api_limiter", KeyedRateLimiter)
PUBLIC_PATHS = {"/api/v1/openapi.json"}


def request_owner(request: web.Request) -> Owner:
    return request[OWNER]


def _unauthorized(message: str, challenge: str) -> web.Response:
    response = error_response(401, "unauthorized", message)
    response.headers["WWW-Authenticate"] = challenge
    return response


@web.middleware
async def key_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path in PUBLIC_PATHS:
        return await handler(request)
    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        return _unauthorized("send Authorization: Bearer <API key>", 'Bearer realm="videogate"')
    try:
        request[OWNER] = hub(request).store.owner_by_api_key(secret.strip())
    except StoreError:
        return _unauthorized("invalid or revoked API key", 'Bearer error="invalid_token"')
    limiter, cluster = request.app[LIMITER], hub(request).cluster
    key = hashlib.sha256(secret.strip().encode()).hexdigest()
    if cluster is None:
        wait = limiter.retry_after(key, time.monotonic())
    else:  # one bucket per key for every node (docs/scale.md)
        wait = await cluster.node.api_limit.retry_after(key, time.monotonic())
    if wait is not None:
        response = error_response(
            429, "rate_limited", f"too many requests for this API key; retry in {wait} s"
        )
        response.headers["Retry-After"] = str(wait)
        return response
    return await handler(request)
