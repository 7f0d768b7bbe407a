"""``/metrics``: the server's counts in Prometheus text format, for the operator only.

Why not on ``/healthz``: that endpoint is public (load balancers probe it), and live
room and participant counts, the match threshold and queue depths tell an outsider
when meetings happen and how the gate is tuned. ``/metrics`` answers only with
``Authorization: Bearer <[server] metrics_token>``; with no token configured it does
not exist (404).
"""

from __future__ import annotations

import hmac

from aiohttp import web

from .api.context import hub
from .workpool import WorkPool


def _line(name: str, value: float, labels: str = "") -> str:
    return f"videogate_{name}{{{labels}}} {value}" if labels else f"videogate_{name} {value}"


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
    lines = [
        _line("rooms_live", len(h.rooms)),
        _line("participants", sum(len(r.participants) for r in h.rooms.values())),
        _line("default_threshold", h.default_threshold),
    ]
    if isinstance(h.executor, WorkPool):
        for lane, stats in h.executor.stats().items():
            for key in ("queued", "running", "refused", "done"):
                lines.append(_line(f"workpool_{key}", stats[key], f'lane="{lane}"'))
    return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")
