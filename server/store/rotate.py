"""``python -m server rotate-keys``: re-encrypt everything at rest under a new key.

Why: a template key that may have leaked (a backup copied, an old disk, an operator
leaving) must be replaceable without losing the enrolled faces. The steps are ordered
so that a crash at any point loses nothing:

1. the new key is written to ``template.key.next`` (0600), or an existing one from a
   rotation cut short is reused;
2. every template, retained photo and webhook secret is opened (each names its key)
   and sealed again with the new key, in one SQLite transaction;
3. only after the commit is ``template.key.next`` renamed over ``template.key``.

Crash before 2 commits: nothing changed, the next run reuses the same new key. Crash
between 2 and 3: the server loads both files (``crypto.load_keyring``) and opens every
value; the next run finds nothing left to re-encrypt and finishes the rename.

With the key in ``VIDEOGATE_TEMPLATE_KEY`` (no key file), the new key is taken from
``VIDEOGATE_TEMPLATE_KEY_NEW`` and the operator swaps the variables after the run.
"""

from __future__ import annotations

import base64
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from .crypto import (
    KEY_BYTES,
    KEY_FILE,
    NEXT_KEY_FILE,
    Sealer,
    TemplateKeyError,
    key_id,
    load_keyring,
)

DB_FILE = "videogate.sqlite3"


@dataclass(frozen=True)
class Rotation:
    new_key_id: str
    counts: dict[str, int]
    env_mode: bool


def _write_new_key(path: Path) -> bytes:
    if path.exists():
        key = path.read_bytes()
        if len(key) != KEY_BYTES:
            raise TemplateKeyError(f"{path} is corrupt: remove it and run again")
        return key
    key = secrets.token_bytes(KEY_BYTES)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
        fh.flush()
        os.fsync(fh.fileno())
    return key


def _env_key(value: str) -> bytes:
    try:
        key = base64.b64decode(value, validate=True)
    except ValueError as exc:
        raise TemplateKeyError("VIDEOGATE_TEMPLATE_KEY_NEW is not valid base64") from exc
    if len(key) != KEY_BYTES:
        raise TemplateKeyError(f"VIDEOGATE_TEMPLATE_KEY_NEW must decode to {KEY_BYTES} bytes")
    return key


def rotate_keys(data_dir: Path, env: dict[str, str] | None = None, url: str = "") -> Rotation:
    """Re-encrypt the store (the data dir's SQLite file, or the PostgreSQL database at
    ``url``) under a new key (see the module docstring)."""
    from . import open_with_sealer

    env = dict(os.environ) if env is None else env
    current = env.get("VIDEOGATE_TEMPLATE_KEY")
    old_keys = load_keyring(data_dir, current)
    if current:
        if not env.get("VIDEOGATE_TEMPLATE_KEY_NEW"):
            raise TemplateKeyError(
                "the key comes from VIDEOGATE_TEMPLATE_KEY: put the new key (base64 of 32 "
                "random bytes) in VIDEOGATE_TEMPLATE_KEY_NEW and run again"
            )
        new_key = _env_key(env["VIDEOGATE_TEMPLATE_KEY_NEW"])
    else:
        new_key = _write_new_key(data_dir / NEXT_KEY_FILE)
    sealer = Sealer([new_key, *[k for k in old_keys if k != new_key]])
    store = open_with_sealer(data_dir, url, sealer)
    try:
        counts = store.reseal_all(sealer)
    finally:
        store.close()
    if not current:
        os.replace(data_dir / NEXT_KEY_FILE, data_dir / KEY_FILE)
        dir_fd = os.open(data_dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return Rotation(key_id(new_key).hex(), counts, bool(current))
