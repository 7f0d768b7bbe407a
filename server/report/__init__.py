"""Attendance reports: built from a meeting's audit records, signed with Ed25519.

``build.build_report`` (pure) turns audit records into the report; ``signing``
signs and verifies it with a per-section digest list so a verifier can say
*what* was changed, not just that something was; ``keys`` keeps the server's
signing key in the data dir. See docs/presence.md.
"""

from __future__ import annotations

from .build import build_report, report_csv
from .keys import load_or_create_signing_key, public_key_info
from .signing import VerifyResult, canonical, sign_report, verify_report

__all__ = [
    "VerifyResult",
    "build_report",
    "canonical",
    "load_or_create_signing_key",
    "public_key_info",
    "report_csv",
    "sign_report",
    "verify_report",
]
