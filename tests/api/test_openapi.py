"""The OpenAPI document matches the implementation: same routes, and schemathesis
finds no server error or undocumented response (bounded examples, fast)."""

from __future__ import annotations

import asyncio
import re
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from server.api import PREFIX, setup_api
from server.api.openapi import build_openapi
from server.app import create_app
from server.config import load_settings
from server.face.engine import FaceEngine
from server.store import open_store

from .conftest import STILLS


def test_documented_paths_are_exactly_the_routes() -> None:
    app = web.Application()
    api = setup_api(app)
    routes = set()
    for route in api.router.routes():
        if route.method == "HEAD":
            continue
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter", "")
        path = re.sub(r"\{(\w+):[^}]*\}", r"{\1}", path).removeprefix(PREFIX)
        routes.add((route.method.lower(), path))
    doc = build_openapi()
    documented = {
        (method, path)
        for path, ops in doc["paths"].items()
        for method in ops
        if method != "parameters"
    }
    documented.add(("get", "/openapi.json"))
    assert routes == documented


class ThreadedServer:
    """The real app in a background event loop: schemathesis calls it over HTTP."""

    def __init__(self, tmp: Path, engine: FaceEngine) -> None:
        self.loop = asyncio.new_event_loop()
        self.tmp = tmp
        self.engine = engine
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.base = ""
        self.key = ""
        self.ids: dict[str, Any] = {}
        self.error: BaseException | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._start())
        except BaseException as exc:  # reported by the fixture, not lost in the thread
            self.error = exc
            self.ready.set()
            return
        self.ready.set()
        self.loop.run_forever()

    async def _start(self) -> None:
        settings_ = load_settings(
            env={},
            overrides={
                "server": {"data_dir": str(self.tmp)},
                # The fuzzer is one API key calling as fast as it can: conformance, not
                # the per-key rate (429 is documented and tested in tests/robustness).
                "api": {"requests_per_s": 1000.0, "burst": 1000},
            },
        )
        self.store = open_store(self.tmp)
        app = create_app(settings_, engine=self.engine, store=self.store)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = self.runner.addresses[0][1]
        self.base = f"http://127.0.0.1:{port}"
        owner = self.store.create_owner("fuzz@example.org", "x")
        _, self.key = self.store.create_api_key(owner.id, "fuzz")
        room = self.store.create_room("Fuzz", owner_id=owner.id)
        person = self.store.add_person(room.id, "Fuzzy", owner_id=owner.id)
        self.ids = {"room_id": room.id, "person_id": person.id}

    def stop(self) -> None:
        async def shutdown() -> None:
            await self.runner.cleanup()

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.store.close()


@pytest.fixture(scope="module")
def live_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedServer]:
    server = ThreadedServer(tmp_path_factory.mktemp("fuzz"), FaceEngine.load())
    server.thread.start()
    assert server.ready.wait(30)
    if server.error is not None:
        raise server.error
    yield server
    server.stop()


schema = schemathesis.openapi.from_dict(build_openapi())

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


@schema.parametrize()
@settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_openapi(case: schemathesis.Case, live_api: ThreadedServer) -> None:
    # Half the ids point at real resources, so success responses get checked too.
    for name, value in live_api.ids.items():
        if (
            case.path_parameters
            and name in case.path_parameters
            and zlib.crc32(repr(case.body).encode()) % 2
        ):
            case.path_parameters[name] = value
    case.call_and_validate(
        base_url=f"{live_api.base}{PREFIX}",
        headers={"Authorization": f"Bearer {live_api.key}"},
        checks=CHECKS,
        timeout=30,
    )


def test_fuzz_fixture_photos_exist(faces_dir: Path) -> None:
    assert list((faces_dir / STILLS).glob("*.png"))
