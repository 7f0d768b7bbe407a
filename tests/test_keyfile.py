"""Secrets created on first run by processes starting together (workers, nodes)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from server import keyfile
from server.keyfile import read_or_create


def test_racing_creators_all_read_the_whole_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loser of the race must read the winner's bytes, never a half-written file.

    Opening the file for writing is slowed down (a loaded machine): with the key
    file created by ``O_EXCL`` under its final name and then written, the other
    threads found it and read it empty (three PostgreSQL nodes starting at once
    failed with "template.key is corrupt: expected 32 bytes, found 0")."""
    real_fdopen = os.fdopen

    def slow_fdopen(fd: int, *args: Any, **kwargs: Any) -> Any:
        time.sleep(0.05)
        return real_fdopen(fd, *args, **kwargs)

    monkeypatch.setattr(keyfile.os, "fdopen", slow_fdopen)
    path = tmp_path / "template.key"
    barrier = threading.Barrier(4)
    seen: list[bytes] = []

    def generate(n: int) -> bytes:
        return bytes([n]) * 32

    def create(n: int) -> None:
        barrier.wait()
        time.sleep(0.01 * n)  # later starters find the file already created
        seen.append(read_or_create(path, lambda: generate(n)))

    threads = [threading.Thread(target=create, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(seen) == 4
    assert all(len(key) == 32 for key in seen)
    assert len(set(seen)) == 1 and seen[0] == path.read_bytes()
    assert (path.stat().st_mode & 0o777) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
