"""Shared fixtures: where the shared face data lives.

The data is read from ``VIDEOGATE_TEST_DATA`` (default ``../shared/data`` next to the
repository). Tests that need it skip, with the reason, only when the folder is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA_ROOT = Path(os.environ.get("VIDEOGATE_TEST_DATA", REPO.parent / "shared" / "data"))
FACES = DATA_ROOT / "faces"
LFW = DATA_ROOT / "lfw"


def _require(path: Path) -> Path:
    if not path.is_dir():
        pytest.skip(f"shared test data not found at {path} (set VIDEOGATE_TEST_DATA)")
    return path


@pytest.fixture(scope="session")
def faces_dir() -> Path:
    return _require(FACES)


@pytest.fixture(scope="session")
def lfw_dir() -> Path:
    return _require(LFW)


# A throwaway PostgreSQL server (session) and a fresh database per test; the store
# suite's ``backend`` fixture runs store tests on SQLite and PostgreSQL alike.
from tests.pgserver import postgres_server, postgres_url  # noqa: E402, F401
from tests.store_backends import backend, store_database  # noqa: E402, F401
