"""Access to the shared hub from handlers of the owner and API sub-applications.

The hub lives on the main application (created in its lifecycle); sub-applications
reach it through ``request.config_dict``. ``server.app`` is imported lazily because
it imports these packages to register their routes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from ..hub import Hub


def hub(request: web.Request) -> Hub:
    from ..app import HUB

    return request.config_dict[HUB]
