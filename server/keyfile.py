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
    """The file's bytes; on first use, ``generate()`` written with mode 0600.

    The bytes are written to a private temporary file first and then linked into
    place (``link`` fails if the name exists): a process starting at the same moment
    never sees the file half written (``O_EXCL`` on the final name alone would show it
    empty until the first writer's ``write``).
    """
    if path.exists():
        return path.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    data = generate()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:  # another process created it first: use theirs
            return path.read_bytes()
    finally:
        tmp.unlink(missing_ok=True)
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
