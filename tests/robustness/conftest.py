"""A real gate server on loopback with robustness-friendly settings.

Liveness is off and attempts are short so abuse cases end in seconds; clips are
sent as ``StillTrack`` slideshows of decoded frames (a little head movement from
frame to frame, which the liveness-off stand-in requires), so no media file is
re-encoded per test.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from server.face.engine import FaceEngine
from server.store import SqliteStore, open_store
from tests.integration.conftest import Gatekeeper, serve_gate, video_frame

FAST_GATE = {"sample_fps": 8.0, "attempt_timeout_s": 4.0}


@pytest.fixture(scope="session")
def robust_engine() -> FaceEngine:
    return FaceEngine.load()


@contextlib.asynccontextmanager
async def serve(
    engine: FaceEngine,
    store: SqliteStore,
    data_dir: Path,
    **sections: dict[str, Any],
) -> AsyncIterator[Gatekeeper]:
    """Serve one invite room, liveness off, short attempts; ``sections`` override."""
    liveness = {"policy": "off", **sections.pop("liveness", {})}
    sections = {"gate": {**FAST_GATE, **sections.pop("gate", {})}, **sections}
    async with serve_gate(engine, store, data_dir, "Robust Room", liveness, **sections) as gk:
        yield gk


@pytest.fixture
def robust_store(tmp_path: Path) -> Iterator[SqliteStore]:
    the_store = open_store(tmp_path)
    yield the_store
    the_store.close()


@pytest.fixture
async def gate(
    robust_engine: FaceEngine, robust_store: SqliteStore, tmp_path: Path
) -> AsyncIterator[Gatekeeper]:
    async with serve(robust_engine, robust_store, tmp_path) as gk:
        yield gk


def clip_frames(path: Path, times: list[float]) -> list[np.ndarray]:
    return [video_frame(path, t) for t in times]


@pytest.fixture(scope="session")
def d9_frames(faces_dir: Path) -> list[np.ndarray]:
    """The enrolled person's 'camera': frames of liveportrait_d9 half a second apart."""
    return clip_frames(faces_dir / "videos" / "liveportrait_d9.mp4", [0.5, 1.0, 1.5, 2.0, 2.5])


@pytest.fixture(scope="session")
def stranger_frames(faces_dir: Path) -> list[np.ndarray]:
    """Someone else (liveportrait_d10), for refusals."""
    return clip_frames(faces_dir / "videos" / "liveportrait_d10.mp4", [0.5, 1.0, 1.5, 2.0])
