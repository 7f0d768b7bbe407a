"""``/metrics``: the node's Prometheus registry (``server/node_metrics.py``), operator only.

Why not on ``/healthz``: that endpoint is public (load balancers probe it), and live
room and participant counts, the match threshold and queue depths tell an outsider
when meetings happen and how the gate is tuned. ``/metrics`` answers only with
``Authorization: Bearer <[server] metrics_token>``; with no token configured it does
not exist (404).
"""

from __future__ import annotations

import hmac

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .api.context import hub


async def metrics(request: web.Request) -> web.Response:
    h = hub(request)
    token = h.settings.server.metrics_token
    if not token:
        raise web.HTTPNotFound()
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), token.encode()
    ):
        return web.Response(
            status=401,
            text="unauthorized\n",
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    # Collected on the event loop: the hub's live objects are only touched there.
    body = generate_latest(h.metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
