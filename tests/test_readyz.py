"""``/readyz`` for load balancers: ready, draining, store unreachable (server/health.py)."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import aiohttp
from aiohttp.test_utils import TestServer

from server.app import HUB, create_app
from server.config import load_settings
from server.face.engine import FaceEngine
from server.store import open_store


async def test_readyz_says_why_a_node_takes_no_participants(tmp_path: Path) -> None:
    settings = load_settings(env={}, overrides={"server": {"data_dir": str(tmp_path)}})
    store = open_store(tmp_path)
    app = create_app(settings, engine=cast(FaceEngine, object()), store=store)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    url = str(server.make_url("/readyz"))
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(url) as resp:
                assert resp.status == 200 and await resp.json() == {"ready": True}
            store.close()  # the database is gone
            async with http.get(url) as resp:
                assert resp.status == 503
                assert await resp.json() == {"ready": False, "reason": "store"}
            app[HUB].draining = True
            async with http.get(url) as resp:
                assert resp.status == 503
                assert (await resp.json())["reason"] == "draining"
            async with http.get(str(server.make_url("/healthz"))) as resp:
                assert await resp.json() == {"ok": True}  # alive, just not taking joins
    finally:
        await server.close()
