"""Encryption at rest (AES-256-GCM) for templates, retained photos and webhook secrets.

Each value is sealed with a fresh nonce and a context (the owning person's id, or
``photo:<person>`` / ``webhook:<id>``) as associated data, so a ciphertext copied onto
another row fails to open instead of silently letting the wrong face in.

Ciphertexts carry the id of the key that sealed them: ``VGK1 | key id (8) | nonce (12)
| ciphertext``, the key id being a hash of the key (it reveals nothing about it). That
is what makes key rotation safe (``python -m server rotate-keys``, ``rotate.py``): during
and after a rotation every value names its key, so a keyring of the new and the old
key opens everything and nothing is ever tried against the wrong key. Values written
before key ids existed (``nonce | ciphertext``) still open and are rewritten by the
next rotation.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..keyfile import symmetric_key

KEY_BYTES = 32
NONCE_BYTES = 12
MAGIC = b"VGK1"
KEY_ID_BYTES = 8
KEY_FILE = "template.key"
# Written by rotate-keys before re-encrypting; renamed over KEY_FILE once committed.
NEXT_KEY_FILE = "template.key.next"


class TemplateKeyError(RuntimeError):
    """The template key is missing, malformed or does not open stored data."""


def key_id(key: bytes) -> bytes:
    return hashlib.sha256(b"videogate template key id\x00" + key).digest()[:KEY_ID_BYTES]


def load_or_create_key(data_dir: Path, env_value: str | None = None) -> bytes:
    """Key from ``VIDEOGATE_TEMPLATE_KEY`` (base64) or ``<data_dir>/template.key`` (0600)."""
    return symmetric_key(
        data_dir / KEY_FILE, "VIDEOGATE_TEMPLATE_KEY", env_value, KEY_BYTES, TemplateKeyError
    )


def load_keyring(data_dir: Path, env_value: str | None = None) -> list[bytes]:
    """The current key, plus the next one if a rotation was cut short after committing
    (its values name that key, so the server must be able to open them)."""
    keys = [load_or_create_key(data_dir, env_value)]
    next_path = data_dir / NEXT_KEY_FILE
    if next_path.exists():
        pending = next_path.read_bytes()
        if len(pending) != KEY_BYTES:
            raise TemplateKeyError(f"{next_path} is corrupt: expected {KEY_BYTES} bytes")
        if pending not in keys:
            keys.append(pending)
    return keys


class Sealer:
    """Seals with the first key; opens with whichever key the value names."""

    def __init__(self, keys: bytes | Sequence[bytes]) -> None:
        ring = [keys] if isinstance(keys, bytes) else list(keys)
        if not ring:
            raise TemplateKeyError("no template key")
        self._primary = ring[0]
        self._aeads = {key_id(k): AESGCM(k) for k in ring}
        self._ordered = [self._aeads[key_id(k)] for k in ring]
        self.primary_id = key_id(self._primary)

    def seal(self, plaintext: bytes, context: str) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aeads[self.primary_id].encrypt(nonce, plaintext, context.encode())
        return MAGIC + self.primary_id + nonce + sealed

    def sealed_by_primary(self, blob: bytes) -> bool:
        return blob.startswith(MAGIC) and blob[4 : 4 + KEY_ID_BYTES] == self.primary_id

    def open(self, blob: bytes, context: str) -> bytes:
        aad = context.encode()
        if blob.startswith(MAGIC):
            aead = self._aeads.get(blob[4 : 4 + KEY_ID_BYTES])
            body = blob[4 + KEY_ID_BYTES :]
            if aead is not None:
                try:
                    return aead.decrypt(body[:NONCE_BYTES], body[NONCE_BYTES:], aad)
                except InvalidTag:
                    pass  # maybe a legacy value whose nonce began with MAGIC (2**-32)
        for aead in self._ordered:  # legacy: nonce | ciphertext, no key id
            try:
                return aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
            except InvalidTag:
                continue
        raise TemplateKeyError(
            "a stored value does not decrypt: wrong template key or tampered row"
        )
