"""``GET /.well-known/videogate-signing-key``: the public half of the report key.

Public and cacheable: anyone holding a report can fetch it once and pin it
(``python -m server verify-report --key``), so a report re-signed with another key
is caught.
"""

from __future__ import annotations

from aiohttp import web

from ..api.context import hub
from .keys import public_key_info

WELL_KNOWN_PATH = "/.well-known/videogate-signing-key"


async def signing_key(request: web.Request) -> web.Response:
    response = web.json_response(public_key_info(hub(request).signing_key))
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response
