"""A real Janus (Debian's ``janus``) per test module: generated configuration in a temp
dir, HTTP on loopback on a free port, stopped by pid afterwards (server/janus/local.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from server.janus.local import LocalJanus, local_janus


@pytest.fixture(scope="module")
def janus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalJanus]:
    folder: Path = tmp_path_factory.mktemp("janus")
    with local_janus(folder) as instance:
        yield instance


# The gate server and face fixtures of the integration suite, shared here.
from tests.integration.conftest import engine, store  # noqa: E402

__all__ = ["engine", "janus", "store"]
