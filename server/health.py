"""``/readyz``: may a load balancer send this node new participants? (``/healthz``
only says the process answers.)

Ready means: the store answers a trivial read within ``STORE_TIMEOUT_S`` (off the
event loop, so a stuck database never stalls media), and the node is not draining
(shutting down). Public like ``/healthz``: it says ready or not and why, nothing
about rooms or people.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from .state import HUB

STORE_TIMEOUT_S = 2.0


async def ready(request: web.Request) -> web.Response:
    hub = request.app.get(HUB)
    if hub is None or hub.draining:
        return web.json_response({"ready": False, "reason": "draining"}, status=503)
    loop = asyncio.get_running_loop()
    store = hub.store
    try:
        # Any trivial read does; schema_version is one every store has (migrations).
        await asyncio.wait_for(
            loop.run_in_executor(None, lambda: store.schema_version), STORE_TIMEOUT_S
        )
    except Exception:
        return web.json_response({"ready": False, "reason": "store"}, status=503)
    return web.json_response({"ready": True})


async def mark_draining(app: web.Application) -> None:
    """From shutdown on, /readyz says 503 so balancers stop sending joins here."""
    hub = app.get(HUB)
    if hub is not None:
        hub.draining = True
