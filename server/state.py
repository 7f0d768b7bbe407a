"""Typed application state, in a leaf module.

The owner UI, the REST API and the report endpoints reach the live hub through
these keys; keeping them here (and not in ``server/app.py``, which imports those
packages to register their routes) is what keeps the import graph acyclic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from .config import Settings
    from .hub import Hub

HUB: web.AppKey[Hub] = web.AppKey("hub")
SETTINGS: web.AppKey[Settings] = web.AppKey("settings")


def hub(request: web.Request) -> Hub:
    """The server's hub, from any (sub-)application's request."""
    return request.config_dict[HUB]
