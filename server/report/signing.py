"""Signed report envelopes with a per-section digest list.

Why digests per section: a bare signature over the whole report can only say
"bad signature". The envelope signs a list of SHA-256 digests, one per field of
the meeting, one per field of each participant, one per room event, plus the
list of participant ids and the number of events; the verifier recomputes them
and names every section that differs ("participants[ada…].presence changed",
"participant … removed"). Canonical JSON (sorted keys, no whitespace, UTF-8) makes
the digests independent of how the file was pretty-printed.

Envelope::

    {"report": {...}, "signature": {"alg": "Ed25519", "key_id", "public_key",
     "sections": {name: sha256 hex}, "value": base64 signature of
     canonical({"alg", "key_id", "sections"})}}
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .keys import key_id, raw_public


def canonical(value: Any) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def _digest(value: Any) -> str:
    return hashlib.sha256(canonical(value)).hexdigest()


def sections(report: dict[str, Any]) -> dict[str, str]:
    """Section name -> digest for every part of a report a verifier can point at."""
    out: dict[str, str] = {}
    for key, value in report.items():
        if key not in ("meeting", "participants", "events"):
            out[key] = _digest(value)
    meeting = report.get("meeting")
    if isinstance(meeting, dict):
        for key, value in meeting.items():
            out[f"meeting.{key}"] = _digest(value)
    else:
        out["meeting"] = _digest(meeting)
    participants = report.get("participants")
    if isinstance(participants, list):
        ids = [p.get("participant_id") if isinstance(p, dict) else None for p in participants]
        out["participants"] = _digest(ids)
        for index, person in enumerate(participants):
            label = f"participants[{ids[index] or index}]"
            if isinstance(person, dict):
                for key, value in person.items():
                    out[f"{label}.{key}"] = _digest(value)
            else:
                out[label] = _digest(person)
    else:
        out["participants"] = _digest(participants)
    events = report.get("events")
    if isinstance(events, list):
        out["events"] = _digest(len(events))
        for index, event in enumerate(events):
            out[f"events[{index}]"] = _digest(event)
    else:
        out["events"] = _digest(events)
    return out


def _signed_block(alg: str, kid: str, digests: dict[str, str]) -> bytes:
    return canonical({"alg": alg, "key_id": kid, "sections": digests})


def sign_report(report: dict[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    public = key.public_key()
    kid = key_id(public)
    digests = sections(report)
    signature = key.sign(_signed_block("Ed25519", kid, digests))
    return {
        "report": report,
        "signature": {
            "alg": "Ed25519",
            "key_id": kid,
            "public_key": base64.b64encode(raw_public(public)).decode(),
            "sections": digests,
            "value": base64.b64encode(signature).decode(),
        },
    }


@dataclass
class VerifyResult:
    ok: bool
    key_id: str | None = None
    problems: list[str] = field(default_factory=list)


def _describe(name: str, report: dict[str, Any]) -> str:
    """Add the participant's name to a participant section, for a human reader."""
    if not name.startswith("participants["):
        return name
    pid = name[len("participants[") :].split("]", 1)[0]
    for person in report.get("participants") or []:
        if isinstance(person, dict) and person.get("participant_id") == pid:
            return f"{name} ({person.get('name')})"
    return name


def _whole_participants(have: dict[str, str], other: dict[str, str]) -> set[str]:
    """Participants whose every section is in ``have`` and none in ``other``."""
    labels = {n.split(".", 1)[0] for n in have if n.startswith("participants[")}
    return {label for label in labels if not any(n.split(".", 1)[0] == label for n in other)}


def verify_report(envelope: Any, public_key: Ed25519PublicKey | None = None) -> VerifyResult:
    """Check a signed report; ``problems`` names each altered section.

    With ``public_key`` the report must be signed by that key (pin the server's
    published key); without it the embedded key is used, which proves integrity
    but not who signed.
    """
    if not isinstance(envelope, dict) or not isinstance(envelope.get("report"), dict):
        return VerifyResult(False, None, ["not a videogate report: no 'report' object"])
    sig = envelope.get("signature")
    if not isinstance(sig, dict) or not isinstance(sig.get("sections"), dict):
        return VerifyResult(False, None, ["no signature block with a section digest list"])
    report: dict[str, Any] = envelope["report"]
    result = VerifyResult(True, str(sig.get("key_id")))
    embedded: Ed25519PublicKey | None = None
    try:
        embedded = Ed25519PublicKey.from_public_bytes(
            base64.b64decode(str(sig.get("public_key", "")), validate=True)
        )
    except ValueError:
        result.problems.append("signature.public_key is not an Ed25519 public key")
    key = public_key or embedded
    if public_key is not None and embedded is not None:
        if raw_public(public_key) != raw_public(embedded):
            result.problems.append(
                f"signed with another key (key id {key_id(embedded)}, "
                f"expected {key_id(public_key)})"
            )
    if key is not None and sig.get("key_id") != key_id(key):
        result.problems.append(f"signature.key_id {sig.get('key_id')!r} does not match the key")
    signed = {str(k): str(v) for k, v in sig["sections"].items()}
    if key is not None:
        try:
            key.verify(
                base64.b64decode(str(sig.get("value", "")), validate=True),
                _signed_block(str(sig.get("alg")), str(sig.get("key_id")), signed),
            )
        except (InvalidSignature, ValueError):
            result.problems.append(
                "the signature does not match the section digest list "
                "(the digests, key id or signature were altered)"
            )
    actual = sections(report)
    whole = {
        "removed": _whole_participants(signed, actual),
        "added": _whole_participants(actual, signed),
    }
    for name in sorted(set(signed) | set(actual)):
        prefix = name.split(".", 1)[0]
        if name not in actual:
            if prefix in whole["removed"]:
                continue
            result.problems.append(f"removed: {_describe(name, report)}")
        elif name not in signed:
            if prefix in whole["added"]:
                continue
            result.problems.append(f"added: {_describe(name, report)}")
        elif signed[name] != actual[name]:
            result.problems.append(f"changed: {_describe(name, report)}")
    for verb, labels in whole.items():
        for label in sorted(labels):
            result.problems.append(f"{verb}: participant {label[len('participants[') : -1]}")
    result.ok = not result.problems
    return result
