"""How a webhook body is signed, and how a receiver checks it.

``X-Videogate-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>``.
The timestamp is inside the MAC so a captured delivery cannot be replayed later
than the receiver's tolerance (default 5 minutes); the raw body bytes are signed,
so receivers must verify before parsing.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Videogate-Signature"
TIMESTAMP_HEADER = "X-Videogate-Timestamp"
EVENT_HEADER = "X-Videogate-Event"
DELIVERY_HEADER = "X-Videogate-Delivery"
DEFAULT_TOLERANCE_S = 300.0


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign_body(secret: str, timestamp: int, body: bytes) -> str:
    return f"t={timestamp},v1={_mac(secret, timestamp, body)}"


def verify_signature(
    secret: str,
    header: str,
    body: bytes,
    now: float,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
) -> bool:
    """True when ``header`` signs ``body`` with ``secret`` within ``tolerance_s`` of now."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance_s:
        return False
    return hmac.compare_digest(parts.get("v1", ""), _mac(secret, timestamp, body))
