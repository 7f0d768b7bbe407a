"""A real app on loopback (aiohttp TestServer) with two owners and their API keys."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from server.app import create_app
from server.config import load_settings
from server.face.engine import FaceEngine
from server.store import SqliteStore, open_store

STILLS = "videos/stills/lestari15_subject"


@pytest.fixture(scope="session")
def face_engine() -> FaceEngine:
    return FaceEngine.load()


@dataclass
class Api:
    """One owner's view of the API: a session that sends their key."""

    base: str
    http: aiohttp.ClientSession
    key: str
    owner_id: str

    def url(self, path: str) -> str:
        return f"{self.base}/api/v1{path}"

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        auth: bool = True,
    ) -> tuple[int, Any]:
        hdrs = {"Authorization": f"Bearer {self.key}"} if auth else {}
        hdrs.update(headers or {})
        if data is not None:
            hdrs.setdefault("Content-Type", "application/octet-stream")
        async with self.http.request(
            method, self.url(path), json=json, data=data, headers=hdrs
        ) as resp:
            body = await resp.json() if resp.content_type == "application/json" else None
            return resp.status, body


@dataclass
class ApiWorld:
    base: str
    store: SqliteStore
    alice: Api
    bob: Api


@pytest.fixture
async def world(face_engine: FaceEngine, tmp_path: Path) -> AsyncIterator[ApiWorld]:
    settings = load_settings(env={}, overrides={"server": {"data_dir": str(tmp_path)}})
    store = open_store(tmp_path)
    server = TestServer(create_app(settings, engine=face_engine, store=store), host="127.0.0.1")
    await server.start_server()
    base = str(server.make_url("")).rstrip("/")
    a = store.create_owner("alice@example.org", "x")
    b = store.create_owner("bob@example.org", "x")
    _, key_a = store.create_api_key(a.id, "a")
    _, key_b = store.create_api_key(b.id, "b")
    async with aiohttp.ClientSession() as http:
        try:
            yield ApiWorld(base, store, Api(base, http, key_a, a.id), Api(base, http, key_b, b.id))
        finally:
            await server.close()
            store.close()
