"""Template encryption at rest (AES-256-GCM).

Each template is sealed with a fresh nonce and the owning person's id as associated
data, so a ciphertext copied onto another person's row fails to open instead of
silently letting the wrong face in.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..keyfile import symmetric_key

KEY_BYTES = 32
NONCE_BYTES = 12


class TemplateKeyError(RuntimeError):
    """The template key is missing, malformed or does not open stored data."""


def load_or_create_key(data_dir: Path, env_value: str | None = None) -> bytes:
    """Key from ``VIDEOGATE_TEMPLATE_KEY`` (base64) or ``<data_dir>/template.key`` (0600)."""
    return symmetric_key(
        data_dir / "template.key", "VIDEOGATE_TEMPLATE_KEY", env_value, KEY_BYTES, TemplateKeyError
    )


class Sealer:
    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, plaintext: bytes, context: str) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, context.encode())

    def open(self, blob: bytes, context: str) -> bytes:
        try:
            return self._aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], context.encode())
        except InvalidTag as exc:
            raise TemplateKeyError(
                "a stored template does not decrypt: wrong template key or tampered row"
            ) from exc
