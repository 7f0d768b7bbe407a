"""The server's Ed25519 report-signing key: ``<data_dir>/signing.key`` (0600).

Generated on first run so a fresh install signs reports with no setup; kept on
disk so reports signed before a restart still verify against the published key
(``/.well-known/videogate-signing-key``).
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..keyfile import read_or_create

KEY_FILE = "signing.key"


class SigningKeyError(RuntimeError):
    """The signing key file exists but cannot be used."""


def load_or_create_signing_key(data_dir: Path) -> Ed25519PrivateKey:
    path = data_dir / KEY_FILE

    def generate() -> bytes:
        return Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    try:
        key = serialization.load_pem_private_key(read_or_create(path, generate), password=None)
    except ValueError as exc:
        raise SigningKeyError(f"{path} is not a PEM private key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{path} is not an Ed25519 key")
    return key


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: Ed25519PublicKey) -> str:
    """A short fingerprint: the first 16 hex of SHA-256 of the raw public key."""
    return hashlib.sha256(raw_public(key)).hexdigest()[:16]


def public_key_info(key: Ed25519PrivateKey | Ed25519PublicKey) -> dict[str, Any]:
    """What ``/.well-known/videogate-signing-key`` publishes (and reports embed)."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    return {
        "alg": "Ed25519",
        "key_id": key_id(public),
        "public_key": base64.b64encode(raw_public(public)).decode(),
        "pem": pem,
    }


def load_public_key(text: str) -> Ed25519PublicKey:
    """A public key from PEM, base64 of the raw 32 bytes, or the well-known JSON."""
    text = text.strip()
    if text.startswith("{"):
        import json

        data = json.loads(text)
        text = str(data.get("public_key", ""))
    if text.startswith("-----BEGIN"):
        key = serialization.load_pem_public_key(text.encode())
        if not isinstance(key, Ed25519PublicKey):
            raise SigningKeyError("not an Ed25519 public key")
        return key
    try:
        raw = base64.b64decode(text, validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as exc:
        raise SigningKeyError("not an Ed25519 public key (PEM or base64)") from exc
