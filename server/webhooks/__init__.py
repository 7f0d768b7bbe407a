"""Webhooks: room events POSTed to owners' endpoints, HMAC-signed, retried, logged.

``signing`` is the wire contract (shared with receivers); ``dispatcher`` is the
asyncio queue + worker that delivers without ever blocking media or admission.
"""

from __future__ import annotations

from .dispatcher import WebhookDispatcher
from .signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign_body, verify_signature

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "WebhookDispatcher",
    "sign_body",
    "verify_signature",
]
