"""Face-engine fixtures: one engine per test session, shared photos decoded on demand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from server.face.engine import FaceEngine
from server.face.imageio import decode_image


@pytest.fixture(scope="session")
def engine() -> FaceEngine:
    return FaceEngine.load()


@pytest.fixture(scope="session")
def load_photo(faces_dir: Path):  # type: ignore[no-untyped-def]
    cache: dict[str, np.ndarray] = {}

    def load(rel: str) -> np.ndarray:
        if rel not in cache:
            cache[rel] = decode_image((faces_dir / rel).read_bytes())
        return cache[rel]

    return load
