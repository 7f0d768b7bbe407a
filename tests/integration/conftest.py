"""A real gate server on loopback, in the test's event loop, with people enrolled."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from server.app import create_app
from server.config import load_settings
from server.face.engine import FaceEngine
from server.store import SqliteStore, open_store


@pytest.fixture(scope="session")
def engine() -> FaceEngine:
    return FaceEngine.load()


def video_frame(path: Path, at_s: float) -> np.ndarray:
    """The decoded RGB frame nearest ``at_s`` seconds into a clip."""
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            if frame.time is not None and frame.time >= at_s:
                return frame.to_ndarray(format="rgb24")
    raise AssertionError(f"{path} is shorter than {at_s}s")


@dataclass
class Gatekeeper:
    base_url: str
    store: SqliteStore
    engine: FaceEngine
    room_slug: str  # the /r/ part of the room link (slug + unguessable token)
    room_id: str
    app: web.Application

    def enrol_photos(self, name: str, photos: list[Path]) -> str:
        embeddings = []
        for photo in photos:
            result = self.engine.enrol_photo(photo.read_bytes())
            assert result.embedding is not None, (photo, result.reasons)
            embeddings.append(result.embedding)
        person = self.store.enrol_person(self.room_id, name, np.stack(embeddings), "dlib")
        return self.store.create_invite(self.room_id, person.id)

    def enrol_frame(self, name: str, rgb: np.ndarray) -> str:
        result = self.engine.enrol_frame(rgb)
        assert result.embedding is not None, result.reasons
        person = self.store.enrol_person(self.room_id, name, result.embedding[None], "dlib")
        return self.store.create_invite(self.room_id, person.id)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    the_store = open_store(tmp_path)
    yield the_store
    the_store.close()


@contextlib.asynccontextmanager
async def serve_gate(
    engine: FaceEngine,
    store: SqliteStore,
    data_dir: Path,
    room_name: str,
    liveness: dict[str, Any],
    **sections: dict[str, Any],
) -> AsyncIterator[Gatekeeper]:
    """A real gate server on loopback in this event loop, with one invite room.

    ``sections`` override settings per section (e.g. ``gate={...}``, ``presence={...}``).
    """
    overrides: dict[str, dict[str, Any]] = {
        "server": {"loopback": True, "data_dir": str(data_dir)},
        "gate": {"sample_fps": 5.0, "attempt_timeout_s": 15.0},
        "liveness": dict(liveness),
    }
    for name, values in sections.items():
        overrides.setdefault(name, {}).update(values)
    settings = load_settings(env={}, overrides=overrides)
    room = store.create_room(room_name, settings={"liveness_policy": liveness["policy"]})
    app = create_app(settings, engine=engine, store=store)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield Gatekeeper(
            str(server.make_url("")).rstrip("/"), store, engine, room.link, room.id, app
        )
    finally:
        await server.close()


@pytest.fixture
async def gatekeeper(
    engine: FaceEngine, store: SqliteStore, tmp_path: Path
) -> AsyncIterator[Gatekeeper]:
    """Identity and media tests: liveness off, so clips that never perform a
    challenge (lestari_real sits still) test recognition and forwarding alone.
    Liveness through the gate is tested with its own fixture (test_liveness_rtc.py)."""
    async with serve_gate(engine, store, tmp_path, "Integration Room", {"policy": "off"}) as gk:
        yield gk
