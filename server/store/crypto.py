"""Template encryption at rest (AES-256-GCM).

Each template is sealed with a fresh nonce and the owning person's id as associated
data, so a ciphertext copied onto another person's row fails to open instead of
silently letting the wrong face in.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
NONCE_BYTES = 12


class TemplateKeyError(RuntimeError):
    """The template key is missing, malformed or does not open stored data."""


def load_or_create_key(data_dir: Path, env_value: str | None = None) -> bytes:
    """Key from ``VIDEOGATE_TEMPLATE_KEY`` (base64) or ``<data_dir>/template.key`` (0600)."""
    if env_value:
        try:
            key = base64.b64decode(env_value, validate=True)
        except ValueError as exc:
            raise TemplateKeyError("VIDEOGATE_TEMPLATE_KEY is not valid base64") from exc
        if len(key) != KEY_BYTES:
            raise TemplateKeyError(f"VIDEOGATE_TEMPLATE_KEY must decode to {KEY_BYTES} bytes")
        return key
    path = data_dir / "template.key"
    if path.exists():
        key = path.read_bytes()
        if len(key) != KEY_BYTES:
            raise TemplateKeyError(
                f"{path} is corrupt: expected {KEY_BYTES} bytes, found {len(key)}"
            )
        return key
    data_dir.mkdir(parents=True, exist_ok=True)
    key = AESGCM.generate_key(bit_length=256)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
    return key


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
