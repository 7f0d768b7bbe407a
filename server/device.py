"""A per-browser key for lockouts: a signed, random device id in a cookie.

Why: many people share one address (a school, an office). Failures are counted
on the credential under attack (the invite) strictly, on the address only per room
and with a far higher threshold, and on the *browser*: a person who keeps
failing locks their own browser, not their colleagues (AWS recommends per-device
limits for the same reason). The id carries no personal data; its HMAC stops a
client from choosing someone else's id. Dropping the cookie only gets a browser
a fresh device count: the invite and address limits still hold.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from pathlib import Path

from .keyfile import symmetric_key

COOKIE = "vg_device"
MAX_AGE_S = 365 * 24 * 3600
KEY_BYTES = 32


class DeviceKeyError(RuntimeError):
    """The configured or stored device key is unusable."""


class DeviceIds:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, device_id: str) -> str:
        return hmac.new(self._key, device_id.encode(), hashlib.sha256).hexdigest()[:32]

    def issue(self) -> str:
        """A new cookie value: ``<id>.<mac>``."""
        device_id = secrets.token_urlsafe(12)
        return f"{device_id}.{self._mac(device_id)}"

    def verify(self, cookie: str | None) -> str | None:
        """The device id of a valid cookie value, else None."""
        if not cookie or len(cookie) > 100 or "." not in cookie:
            return None
        device_id, mac = cookie.rsplit(".", 1)
        if not device_id or not hmac.compare_digest(mac, self._mac(device_id)):
            return None
        return device_id


def load_device_ids(data_dir: Path, env_value: str | None = None) -> DeviceIds:
    """Key from ``VIDEOGATE_DEVICE_KEY`` (base64) or ``<data_dir>/device.key`` (0600)."""
    key = symmetric_key(
        data_dir / "device.key", "VIDEOGATE_DEVICE_KEY", env_value, KEY_BYTES, DeviceKeyError
    )
    return DeviceIds(key)
