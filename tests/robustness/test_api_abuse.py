"""API abuse: an owner flooding uploads must not starve the gate, and one API key
cannot make requests without bound.

The face engine is not needed: the upload's CPU step (``photos.evaluate``) is replaced
by one that blocks until the test releases it, which is what a 40-megapixel photo
does to a worker thread, without spending the CPU."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from server.api import photos
from server.api.ratelimit import KeyedRateLimiter
from server.app import HUB, create_app
from server.config import load_settings
from server.face.engine import FaceEngine
from server.store import SqliteStore, open_store
from server.workpool import Busy, WorkPool

GUARD_S = 10.0  # a hang guard, not a timing assertion


@dataclass
class World:
    base: str
    app: Any
    store: SqliteStore
    http: aiohttp.ClientSession
    keys: tuple[str, str]
    person_id: str

    async def call(
        self, method: str, path: str, key: str, data: bytes | None = None
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/octet-stream"}
        async with self.http.request(
            method, f"{self.base}/api/v1{path}", data=data, headers=headers
        ) as resp:
            body = await resp.json() if resp.content_type == "application/json" else {}
            return resp.status, body, dict(resp.headers)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    settings = load_settings(env={}, overrides={"server": {"data_dir": str(tmp_path)}})
    store = open_store(tmp_path)
    engine = cast(FaceEngine, object())  # never reached: evaluate is replaced below
    app = create_app(settings, engine=engine, store=store)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    alice = store.create_owner("alice@example.org", "x")
    bob = store.create_owner("bob@example.org", "x")
    room = store.create_room("Uploads", owner_id=alice.id)
    person = store.add_person(room.id, "Ada", None, owner_id=alice.id)
    _, key_a = store.create_api_key(alice.id, "a")
    _, key_b = store.create_api_key(bob.id, "b")
    async with aiohttp.ClientSession() as http:
        try:
            base = str(server.make_url("")).rstrip("/")
            yield World(base, app, store, http, (key_a, key_b), person.id)
        finally:
            await server.close()
            store.close()


async def test_upload_flood_leaves_the_gate_a_worker(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    started = threading.Semaphore(0)

    def slow_evaluate(_engine: object, filename: str, _data: bytes) -> photos.PhotoVerdict:
        started.release()
        release.wait(GUARD_S * 3)
        return photos.PhotoVerdict(filename, False, "no_face", ["stub"])

    monkeypatch.setattr(photos, "evaluate", slow_evaluate)
    key = world.keys[0]
    path = f"/persons/{world.person_id}/faces"
    flood = [
        asyncio.create_task(world.call("POST", path, key, b"\xff\xd8\xff" + bytes(64)))
        for _ in range(12)
    ]
    try:
        await asyncio.wait_for(asyncio.to_thread(started.acquire), GUARD_S)
        # A participant's frame, submitted exactly as participant.py does.
        hub = world.app[HUB]
        loop = asyncio.get_running_loop()
        gate_result = await asyncio.wait_for(
            loop.run_in_executor(hub.executor, lambda: "frame analysed"), GUARD_S
        )
        assert gate_result == "frame analysed"
    finally:
        release.set()
        results = await asyncio.gather(*flood)
    statuses = sorted(status for status, _, _ in results)
    refused = [(body, headers) for status, body, headers in results if status == 503]
    assert refused, statuses  # the queue is bounded: the rest were told to come back
    for body, headers in refused:
        assert body["error"]["code"] == "busy"
        assert int(headers["Retry-After"]) >= 1
    assert all(status in (422, 503) for status in statuses), statuses


async def test_one_api_key_is_rate_limited_and_others_are_not(world: World) -> None:
    key_a, key_b = world.keys
    answers = [await world.call("GET", "/rooms", key_a) for _ in range(150)]
    limited = [(body, headers) for status, body, headers in answers if status == 429]
    assert limited, "150 requests in a burst were all served"
    assert all(status in (200, 429) for status, _, _ in answers)
    body, headers = limited[0]
    assert body["error"]["code"] == "rate_limited"
    assert int(headers["Retry-After"]) >= 1
    status, _, _ = await world.call("GET", "/rooms", key_b)
    assert status == 200  # another key (another owner) is unaffected


def test_pool_reserves_a_worker_for_the_gate_and_bounds_lanes() -> None:
    pool = WorkPool(workers=2, gate_reserved=1, queue_max={"upload": 2, "api": 1})
    block, first = threading.Event(), threading.Event()

    def hold() -> None:
        first.set()
        block.wait(GUARD_S)

    try:
        running = [pool.submit_to("upload", hold)]
        assert first.wait(GUARD_S)  # running: the shared worker is now taken
        running += [pool.submit_to("upload", block.wait, GUARD_S) for _ in range(2)]
        with pytest.raises(Busy) as caught:
            pool.submit_to("upload", block.wait, GUARD_S)
        assert caught.value.lane == "upload" and caught.value.retry_after_s >= 1
        assert pool.submit_to("api", lambda: "api").done() is False  # its own queue
        # Gate work still runs although three uploads are queued or running.
        assert pool.submit(lambda: 42).result(timeout=GUARD_S) == 42
        stats = pool.stats()
        assert stats["upload"]["running"] == 1 and stats["upload"]["refused"] == 1
    finally:
        block.set()
        for future in running:
            future.result(timeout=GUARD_S)
        pool.shutdown()


def test_key_rate_limiter_refills_and_says_when() -> None:
    limiter = KeyedRateLimiter(rate=2.0, burst=3)
    assert [limiter.retry_after("k", 0.0) for _ in range(3)] == [None, None, None]
    assert limiter.retry_after("k", 0.0) == 1  # empty: one token back in 0.5 s -> 1 s
    assert limiter.retry_after("other", 0.0) is None  # keys are independent
    assert limiter.retry_after("k", 0.5) is None  # refilled at 2/s
    assert limiter.retry_after("k", 0.5) == 1
    assert [limiter.retry_after("k", 100.0) for _ in range(4)] == [None, None, None, 1]
