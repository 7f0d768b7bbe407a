"""Two real server processes sharing Redis and a store, and the helpers to drive them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as aioredis

from server.devserver import ServerProcess, run_server
from server.store import Repository, open_store

PASSWORD = "correct horse battery staple 42"
CSRF_RE = re.compile(r'name="_csrf" value="([^"]+)"')


@dataclass
class StoreSpec:
    """Where the nodes keep what lasts: ``env`` given to every node, ``data_dir`` theirs."""

    env: dict[str, str]
    data_dir: Path

    def open(self) -> Repository:
        """The same store, opened by the test (to mint an API key, read the audit log)."""
        return open_store(self.data_dir, self.env.get("VIDEOGATE_STORE_URL", ""))


@dataclass
class Node:
    node_id: str
    server: ServerProcess

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http", "ws", 1) + "/ws"


@dataclass
class Cluster:
    a: Node
    b: Node
    redis_url: str
    store: StoreSpec


def node_env(redis_url: str, node_id: str, store: StoreSpec) -> dict[str, str]:
    return {
        **store.env,
        "VIDEOGATE_CLUSTER_REDIS_URL": redis_url,
        "VIDEOGATE_CLUSTER_NODE_ID": node_id,
        "VIDEOGATE_CLUSTER_LEASE_S": "4",  # short for the kill test, tolerant of a loaded machine
        "VIDEOGATE_LIVENESS_POLICY": "off",  # recognition across nodes, not liveness
        "VIDEOGATE_GATE_LOCKOUT_FAILURES": "2",
        "VIDEOGATE_GATE_SAMPLE_FPS": "5",
    }


@contextlib.contextmanager
def two_nodes(redis_url: str, store: StoreSpec) -> Iterator[Cluster]:
    """Started one after the other (the first migrates the store), stopped by pid."""
    env_a, env_b = (node_env(redis_url, n, store) for n in ("a", "b"))
    with (
        run_server(store.data_dir, env_a, log_name="node-a.log") as a,
        run_server(store.data_dir, env_b, log_name="node-b.log") as b,
    ):
        yield Cluster(Node("a", a), Node("b", b), redis_url, store)


async def settle(redis: aioredis.Redis, nodes: int = 2, timeout: float = 15.0) -> None:
    """Wait until ``nodes`` nodes are live and idle (no participants): placement is then
    decided by the node a join reaches (ties stay there)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        keys = [k async for k in redis.scan_iter("vg:node:*")]
        values = [json.loads(v) for v in await redis.mget(keys)] if keys else []
        if len(values) == nodes and all(v["load"] == 0 for v in values):
            return
        assert loop.time() < deadline, f"nodes not idle: {values}"
        await asyncio.sleep(0.1)


async def wait_gone(redis: aioredis.Redis, key: str, timeout: float = 15.0) -> None:
    await wait_key(redis, key, False, timeout)


async def wait_key(redis: aioredis.Redis, key: str, present: bool, timeout: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while bool(await redis.exists(key)) is not present:
        assert loop.time() < deadline, f"{key} {'never set' if present else 'still set'}"
        await asyncio.sleep(0.05)


class Owner:
    """An owner's browser (cookies, CSRF) and API key against one node."""

    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http = http
        self.base = base
        self.csrf = ""
        self.key = ""

    async def page(self, path: str) -> None:
        async with self.http.get(self.base + path) as resp:
            text = await resp.text()
            assert resp.status == 200, (path, resp.status)
        found = CSRF_RE.search(text)
        if found:
            self.csrf = found.group(1)

    async def post(self, path: str, form: dict[str, str]) -> None:
        data = {**form, "_csrf": self.csrf}
        async with self.http.post(self.base + path, data=data, allow_redirects=False) as resp:
            assert resp.status == 303, (path, resp.status, await resp.text())

    async def sign_up_and_in(self, email: str) -> None:
        await self.page("/owner/signup")
        await self.post("/owner/signup", {"email": email, "password": PASSWORD})
        await self.page("/owner/signin")
        await self.post("/owner/signin", {"email": email, "password": PASSWORD})

    async def api(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.key}"}
        if "data" in kwargs:
            headers["Content-Type"] = "application/octet-stream"
        url = f"{self.base}/api/v1{path}"
        async with self.http.request(method, url, headers=headers, **kwargs) as resp:
            body = None if resp.status == 204 else await resp.json()
            assert resp.status < 300, (path, resp.status, body)
            return body

    async def room_with(self, name: str, people: dict[str, list[bytes]]) -> Enrolled:
        """A room and its people enrolled through the API."""
        room = await self.api("POST", "/rooms", json={"name": name, "liveness_policy": "off"})
        done = Enrolled(room["id"], room["link"].split("/r/", 1)[1], {}, {})
        for person_name, photos in people.items():
            person = await self.api(
                "POST", f"/rooms/{room['id']}/persons", json={"name": person_name}
            )
            for photo in photos:
                await self.api("POST", f"/persons/{person['id']}/faces", data=photo)
            invite = await self.api(
                "POST", f"/rooms/{room['id']}/invites", json={"person_id": person["id"]}
            )
            done.invites[person_name] = invite["url"].split("?invite=", 1)[1]
            done.persons[person_name] = person["id"]
        return done


@dataclass
class Enrolled:
    room_id: str
    link: str  # the /r/ part
    invites: dict[str, str]  # person's name -> invite token
    persons: dict[str, str]  # person's name -> id
