"""Owner sessions in encrypted cookies (aiohttp-session + Fernet).

The key comes from ``VIDEOGATE_SESSION_KEY`` (base64 of 32 bytes) or is generated on
first run into ``<data_dir>/session.key`` (0600), so sessions survive a restart and
nothing secret is hard-coded. Cookies are HttpOnly, SameSite=Lax, Secure under TLS,
and scoped to /owner (participants' pages never carry them).
"""

from __future__ import annotations

import os
from pathlib import Path

from aiohttp_session.cookie_storage import EncryptedCookieStorage

from ..config import Settings
from ..keyfile import symmetric_key

KEY_BYTES = 32
COOKIE_NAME = "videogate_owner"
MAX_AGE_S = 7 * 86400


class SessionKeyError(RuntimeError):
    """The configured or stored session key is unusable."""


def load_or_create_session_key(data_dir: Path, env_value: str | None = None) -> bytes:
    """Key from ``VIDEOGATE_SESSION_KEY`` (base64) or ``<data_dir>/session.key`` (0600)."""
    return symmetric_key(
        data_dir / "session.key", "VIDEOGATE_SESSION_KEY", env_value, KEY_BYTES, SessionKeyError
    )


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
