"""The owner UI in-process: a real app on loopback and cookie-keeping clients."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer

from server.app import HUB, create_app
from server.config import load_settings
from server.face.engine import FaceEngine
from server.hub import Hub
from server.store import SqliteStore, open_store

CSRF_RE = re.compile(r'name="_csrf" value="([^"]+)"')
PASSWORD = "correct horse battery"


@pytest.fixture(scope="session")
def owner_engine() -> FaceEngine:
    return FaceEngine.load()


class Owner:
    """A browser-like client: keeps cookies and the page's CSRF token."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.csrf = ""

    async def page(self, path: str) -> str:
        resp = await self.client.get(path)
        text = await resp.text()
        found = CSRF_RE.search(text)
        if found:
            self.csrf = found.group(1)
        assert resp.status == 200, (path, resp.status, text[:500])
        return text

    async def post(
        self, path: str, data: dict[str, str] | None = None, *, csrf: bool = True
    ) -> ClientResponse:
        form = dict(data or {})
        if csrf:
            form["_csrf"] = self.csrf
        return await self.client.post(path, data=form, allow_redirects=False)

    async def signup(self, email: str) -> None:
        await self.page("/owner/signup")
        resp = await self.post("/owner/signup", {"email": email, "password": PASSWORD})
        assert resp.status == 303, await resp.text()
        # Sign-up never signs in (its answer must not reveal taken emails): sign in.
        await self.page("/owner/signin")
        resp = await self.post("/owner/signin", {"email": email, "password": PASSWORD})
        assert resp.status == 303, await resp.text()
        await self.page("/owner/rooms")

    async def create_room(self, name: str, mode: str = "invite") -> str:
        resp = await self.post("/owner/rooms", {"name": name, "mode": mode})
        assert resp.status == 303
        room_id = resp.headers["Location"].rsplit("/", 1)[1]
        await self.page(f"/owner/rooms/{room_id}")
        return room_id


class World:
    def __init__(self, server: TestServer, store: SqliteStore) -> None:
        self.server = server
        self.store = store
        self.clients: list[TestClient] = []

    @property
    def hub(self) -> Hub:
        return self.server.app[HUB]

    async def owner(self) -> Owner:
        client = TestClient(self.server)
        await client.start_server()
        self.clients.append(client)
        return Owner(client)


@pytest.fixture
async def world(owner_engine: FaceEngine, tmp_path: Path) -> AsyncIterator[World]:
    settings = load_settings(env={}, overrides={"server": {"data_dir": str(tmp_path)}})
    store = open_store(tmp_path)
    server = TestServer(create_app(settings, engine=owner_engine, store=store), host="127.0.0.1")
    await server.start_server()
    w = World(server, store)
    try:
        yield w
    finally:
        for client in w.clients:
            await client.close()
        await server.close()
        store.close()


OwnerFactory = Callable[[], Awaitable[Owner]]
