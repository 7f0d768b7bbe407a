"""Secrets kept in the data dir: created on first run with mode 0600, or from env.

The template key, the owner-session key and the report-signing key all follow one
rule: an environment variable wins (so a deployment can inject it), otherwise the
file in the data dir is read, or created exclusively on first run -- when two
processes start at once, the second reads what the first wrote.
"""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Callable
from pathlib import Path


def read_or_create(path: Path, generate: Callable[[], bytes]) -> bytes:
    """The file's bytes; on first use, ``generate()`` written with mode 0600."""
    if path.exists():
        return path.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    data = generate()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first: use theirs
        return path.read_bytes()
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    return data


def symmetric_key(
    path: Path,
    env_name: str,
    env_value: str | None,
    size: int,
    error: type[Exception],
) -> bytes:
    """A ``size``-byte key from ``env_name`` (base64) or from ``path``."""
    if env_value:
        try:
            key = base64.b64decode(env_value, validate=True)
        except ValueError as exc:
            raise error(f"{env_name} is not valid base64") from exc
        if len(key) != size:
            raise error(f"{env_name} must decode to {size} bytes")
        return key
    key = read_or_create(path, lambda: secrets.token_bytes(size))
    if len(key) != size:
        raise error(f"{path} is corrupt: expected {size} bytes, found {len(key)}")
    return key
