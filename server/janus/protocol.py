"""Janus VideoRoom requests and replies as plain values (no I/O).

Everything the server asks of a Janus instance is built here and every reply is
checked here, so the rules (which requests carry the room secret, what counts as
an error) are unit-tested without a running Janus; ``server/janus/client.py``
only moves these dicts over HTTP. Reference: Janus 1.1 VideoRoom API
(``src/plugins/janus_videoroom.c``, "synchronous requests").
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

JSON = dict[str, Any]

# Room numbers and feed ids stay below 2**53: the browser handles them as JS numbers.
_ID_SPACE = 2**52
# Janus error codes the server acts on.
ERR_NO_SUCH_ROOM = 426
ERR_ROOM_EXISTS = 427
ERR_NO_SUCH_FEED = 428
ERR_UNAUTHORIZED = 433
ERR_NO_SUCH_SESSION = 458


class JanusError(Exception):
    """Janus answered with an error (core ``error`` or the plugin's ``error_code``)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"janus error {code}: {reason}")
        self.code = code
        self.reason = reason


def room_number(room_id: str) -> int:
    """Our room id -> its VideoRoom number: stable, so a restarted server finds its rooms."""
    digest = hashlib.sha256(b"videogate-room:" + room_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") % (_ID_SPACE - 1) + 1


def instance_index(room_id: str, count: int) -> int:
    """Which of ``count`` Janus instances carries a room: a stable hash (no registry).

    Rendezvous hashing: adding an instance moves only the rooms that now score
    highest on it, not every room (as ``hash % count`` would)."""
    if count < 1:
        raise ValueError("no Janus instance configured")

    def score(i: int) -> bytes:
        return hashlib.sha256(f"{i}:{room_id}".encode()).digest()

    return max(range(count), key=score)


def room_secret(admin_key: str, room_id: str) -> str:
    """The room's Janus secret, derived so that it survives a server restart and is
    never stored; only the server (which knows the admin key) can compute it."""
    message = b"room-secret:" + room_id.encode()
    return hmac.new(admin_key.encode(), message, hashlib.sha256).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(24)


def new_feed_id() -> int:
    return secrets.randbelow(_ID_SPACE - 1) + 1


def create_room(
    room: int, secret: str, admin_key: str, *, publishers: int, description: str
) -> JSON:
    """A private room that checks tokens (``allowed`` starts empty) and requires
    subscribers to name their own publisher's ``private_id``: then a ``kick`` also cuts
    the kicked user's subscriptions, and nobody subscribes without having joined."""
    body: JSON = {
        "request": "create",
        "room": room,
        "secret": secret,
        "description": description,
        "is_private": True,
        "allowed": [],
        "require_pvtid": True,
        "publishers": publishers,
        "notify_joining": False,
        "permanent": False,
    }
    if admin_key:
        body["admin_key"] = admin_key
    return body


def allowed(room: int, secret: str, action: str, tokens: list[str]) -> JSON:
    if action not in ("add", "remove"):
        raise ValueError(f"unsupported allowed action {action!r}")
    return {"request": "allowed", "room": room, "secret": secret, "action": action,
            "allowed": tokens}  # fmt: skip


def kick(room: int, secret: str, feed: int) -> JSON:
    return {"request": "kick", "room": room, "secret": secret, "id": feed}


def list_participants(room: int) -> JSON:
    return {"request": "listparticipants", "room": room}


def destroy_room(room: int, secret: str) -> JSON:
    return {"request": "destroy", "room": room, "secret": secret}


def check_reply(reply: JSON) -> JSON:
    """The core envelope and the plugin's data; a JanusError for either kind of error."""
    kind = reply.get("janus")
    if kind == "error":
        error = reply.get("error") or {}
        raise JanusError(int(error.get("code", 0)), str(error.get("reason", "error")))
    if kind not in ("success", "ack", "event"):
        raise JanusError(0, f"unexpected reply {kind!r}")
    plugin = reply.get("plugindata")
    if plugin is None:
        return dict(reply.get("data") or {})
    data = dict(plugin.get("data") or {})
    if "error_code" in data:
        raise JanusError(int(data["error_code"]), str(data.get("error", "error")))
    return data


@dataclass(frozen=True)
class Member:
    """One participant Janus lists in a room (``listparticipants``)."""

    feed: int
    display: str
    publisher: bool


def members(data: JSON) -> list[Member]:
    return [
        Member(int(p["id"]), str(p.get("display") or ""), bool(p.get("publisher")))
        for p in data.get("participants", [])
        if isinstance(p, dict) and isinstance(p.get("id"), int)
    ]
