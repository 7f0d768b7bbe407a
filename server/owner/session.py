"""Owner sessions in encrypted cookies (aiohttp-session + Fernet).

The key comes from ``VIDEOGATE_SESSION_KEY`` (base64 of 32 bytes) or is generated on
first run into ``<data_dir>/session.key`` (0600), so sessions survive a restart and
nothing secret is hard-coded. Cookies are HttpOnly, SameSite=Lax, Secure under TLS,
and scoped to /owner (participants' pages never carry them).
"""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

from aiohttp_session.cookie_storage import EncryptedCookieStorage

from ..config import Settings

KEY_BYTES = 32
COOKIE_NAME = "videogate_owner"
MAX_AGE_S = 7 * 86400


class SessionKeyError(RuntimeError):
    """The configured or stored session key is unusable."""


def load_or_create_session_key(data_dir: Path, env_value: str | None = None) -> bytes:
    if env_value:
        try:
            key = base64.b64decode(env_value, validate=True)
        except ValueError as exc:
            raise SessionKeyError("VIDEOGATE_SESSION_KEY is not valid base64") from exc
        if len(key) != KEY_BYTES:
            raise SessionKeyError(f"VIDEOGATE_SESSION_KEY must decode to {KEY_BYTES} bytes")
        return key
    path = data_dir / "session.key"
    if path.exists():
        key = path.read_bytes()
        if len(key) != KEY_BYTES:
            raise SessionKeyError(f"{path} is corrupt: expected {KEY_BYTES} bytes")
        return key
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(KEY_BYTES)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first: use theirs
        return load_or_create_session_key(data_dir)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
    return key


def session_storage(settings: Settings) -> EncryptedCookieStorage:
    key = load_or_create_session_key(settings.data_path, os.environ.get("VIDEOGATE_SESSION_KEY"))
    return EncryptedCookieStorage(
        key,
        cookie_name=COOKIE_NAME,
        path="/owner",
        max_age=MAX_AGE_S,
        httponly=True,
        samesite="Lax",
        secure=bool(settings.server.tls_cert) or settings.base_url.startswith("https:"),
    )
