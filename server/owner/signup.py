"""Sign-up policy: who may create an account, how often, and how many hashes at once.

Why each piece:

- ``[owner] signup = open | invite | closed``: a private deployment should not let
  strangers create accounts at all (``closed``), or only people the operator invited
  (``invite``: a link from ``python -m server signup-link EMAIL``, an HMAC over the
  email and an expiry, so nothing is stored and the link works for that email only).
- The reply never says whether an email is registered: a taken email gets exactly
  the same redirect and message as a new one (nothing is changed for it).
- Attempts per client address are limited (``signups_per_hour``), counted before any
  work is done.
- argon2id costs ~64 MiB and tens of ms per hash: :class:`HashSlots` bounds how many
  run at once and is checked *before* hashing, so a flood of sign-ups or sign-ins
  gets ``busy`` at once instead of queueing hashes (memory) behind each other.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import threading
import time

from ..config import Settings
from .session import load_or_create_session_key

INVITE_CONTEXT = b"videogate signup invite v1"
HASH_RETRY_AFTER_S = 2


def _invite_key(settings: Settings) -> bytes:
    session_key = load_or_create_session_key(
        settings.data_path, os.environ.get("VIDEOGATE_SESSION_KEY")
    )
    return hmac.new(session_key, INVITE_CONTEXT, hashlib.sha256).digest()


def _mac(key: bytes, email: str, expires: int) -> str:
    message = f"{email.strip().lower()}|{expires}".encode()
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def make_signup_invite(
    settings: Settings, email: str, ttl_s: float, now: float | None = None
) -> str:
    """A sign-up token valid for ``email`` until ``now + ttl_s``."""
    expires = int((time.time() if now is None else now) + ttl_s)
    return f"{expires}.{_mac(_invite_key(settings), email, expires)}"


def check_signup_invite(
    settings: Settings, email: str, token: str, now: float | None = None
) -> bool:
    expires_text, _, mac = token.partition(".")
    if not expires_text.isdigit() or len(token) > 200:
        return False
    expires = int(expires_text)
    if expires < (time.time() if now is None else now):
        return False
    return hmac.compare_digest(mac, _mac(_invite_key(settings), email, expires))


class HashBusy(Exception):
    """Every password-hash slot is taken; refused before any hashing."""

    retry_after_s = HASH_RETRY_AFTER_S


class HashSlots:
    """A non-blocking counter of password hashes in flight (thread-safe)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._running = 0
        self._lock = threading.Lock()

    def __enter__(self) -> HashSlots:
        with self._lock:
            if self._running >= self.limit:
                raise HashBusy
            self._running += 1
        return self

    def __exit__(self, *_exc: object) -> None:
        with self._lock:
            self._running -= 1
