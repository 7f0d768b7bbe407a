"""The websocket protocol: typed client messages and validation.

Every client message is parsed here into a frozen dataclass or rejected with a
``ProtocolError`` carrying a stable code; the connection handler turns that into
an ``error`` event and carries on, so one bad message never crashes anything or
touches another room. docs/protocol.md documents the same messages.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

MAX_SDP_BYTES = 32_768
MAX_TOKEN_CHARS = 128
MAX_NAME_CHARS = 80


class ProtocolError(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Join:
    room: str
    invite: str | None
    name: str | None
    rejoin: str | None


@dataclass(frozen=True)
class Offer:
    sdp: str


@dataclass(frozen=True)
class Answer:
    sdp: str


@dataclass(frozen=True)
class Candidate:
    candidate: str
    sdp_mid: str | None
    sdp_mline_index: int | None


@dataclass(frozen=True)
class Ready:
    pass


@dataclass(frozen=True)
class Leave:
    pass


@dataclass(frozen=True)
class MediaState:
    audio: bool
    video: bool


@dataclass(frozen=True)
class NetInfo:
    """What the client's ICE got: the path once connected, or why nothing connected.

    Reported by the page (``getStats`` selected candidate pair) for the audit log;
    the server's own view cannot tell a relayed client from a NAT-traversed one.
    """

    state: str  # NETINFO_STATES
    path: str | None  # NETINFO_PATHS
    local: str | None  # candidate types
    remote: str | None
    protocol: str | None  # udp / tcp: client to server or to its relay
    relay_protocol: str | None  # udp / tcp / tls: client to its TURN server
    cause: str | None  # NETINFO_CAUSES, when state is "failed"
    elapsed_ms: int | None  # from sending the offer


NETINFO_STATES = frozenset({"connected", "failed", "disconnected", "rejoining"})
NETINFO_PATHS = frozenset({"direct", "nat", "relay"})
NETINFO_CANDIDATES = frozenset({"host", "srflx", "prflx", "relay"})
NETINFO_PROTOCOLS = frozenset({"udp", "tcp"})
NETINFO_RELAY_PROTOCOLS = frozenset({"udp", "tcp", "tls"})
# no_relay: nothing connected and no TURN was configured; relay_unreachable: TURN was
# configured but no relay candidate came back (blocked, bad credentials); checks_failed:
# candidates existed, no pair answered; network_changed: the path dropped after connecting.
NETINFO_CAUSES = frozenset({"no_relay", "relay_unreachable", "checks_failed", "network_changed"})

ClientMessage = Join | Offer | Answer | Candidate | Ready | Leave | MediaState | NetInfo


def _string(
    msg: dict[str, Any], key: str, limit: int, *, required: bool = True, empty_ok: bool = False
) -> str | None:
    value = msg.get(key)
    if value is None:
        if required:
            raise ProtocolError("missing_field", f"'{key}' is required")
        return None
    if not isinstance(value, str):
        raise ProtocolError("bad_field", f"'{key}' must be a string")
    if len(value) > limit:
        raise ProtocolError("too_large", f"'{key}' is longer than {limit} characters")
    if not value and not empty_ok:
        raise ProtocolError("bad_field", f"'{key}' must not be empty")
    try:
        # JSON may escape lone surrogates ("\ud800"): valid JSON, not valid text.
        # Refused here so no store, log or SDP parser downstream ever sees one.
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ProtocolError("bad_field", f"'{key}' is not valid text") from exc
    return value


def _sdp(msg: dict[str, Any]) -> str:
    sdp = _string(msg, "sdp", MAX_SDP_BYTES)
    assert sdp is not None
    if not sdp.startswith("v=0"):
        raise ProtocolError("bad_sdp", "'sdp' is not a session description")
    return sdp


def _bool(msg: dict[str, Any], key: str) -> bool:
    value = msg.get(key)
    if not isinstance(value, bool):
        raise ProtocolError("bad_field", f"'{key}' must be true or false")
    return value


def _choice(msg: dict[str, Any], key: str, allowed: frozenset[str]) -> str | None:
    value = msg.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or value not in allowed:
        raise ProtocolError("bad_field", f"'{key}' must be one of {', '.join(sorted(allowed))}")
    return value


def _netinfo(msg: dict[str, Any]) -> NetInfo:
    if msg.get("state") is None:
        raise ProtocolError("missing_field", "'state' is required")
    state = _choice(msg, "state", NETINFO_STATES)
    assert state is not None
    elapsed = msg.get("elapsed_ms")
    if elapsed is not None and (
        not isinstance(elapsed, int) or isinstance(elapsed, bool) or not 0 <= elapsed <= 3_600_000
    ):
        raise ProtocolError("bad_field", "'elapsed_ms' must be an integer in [0, 3600000]")
    return NetInfo(
        state,
        _choice(msg, "path", NETINFO_PATHS),
        _choice(msg, "local", NETINFO_CANDIDATES),
        _choice(msg, "remote", NETINFO_CANDIDATES),
        _choice(msg, "protocol", NETINFO_PROTOCOLS),
        _choice(msg, "relay_protocol", NETINFO_RELAY_PROTOCOLS),
        _choice(msg, "cause", NETINFO_CAUSES),
        elapsed,
    )


def parse_client_message(raw: str | bytes, max_bytes: int) -> ClientMessage:
    if len(raw) > max_bytes:
        raise ProtocolError("too_large", f"message larger than {max_bytes} bytes")
    try:
        msg = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        # RecursionError: deeply nested arrays ("[[[[...") fit easily within the size
        # limit and blow the C parser's stack guard; it is bad input, not a crash.
        raise ProtocolError("bad_json", "message is not valid JSON") from exc
    if not isinstance(msg, dict):
        raise ProtocolError("bad_message", "message must be a JSON object")
    kind = msg.get("type")
    if kind == "join":
        room = _string(msg, "room", 64)
        assert room is not None
        name = _string(msg, "name", MAX_NAME_CHARS, required=False, empty_ok=True)
        return Join(
            room,
            _string(msg, "invite", MAX_TOKEN_CHARS, required=False),
            name.strip() or None if name is not None else None,
            _string(msg, "rejoin", MAX_TOKEN_CHARS, required=False),
        )
    if kind == "offer":
        return Offer(_sdp(msg))
    if kind == "answer":
        return Answer(_sdp(msg))
    if kind == "candidate":
        candidate = _string(msg, "candidate", 1024, empty_ok=True)
        assert candidate is not None
        index = msg.get("sdpMLineIndex")
        if index is not None and (not isinstance(index, int) or isinstance(index, bool)):
            raise ProtocolError("bad_field", "'sdpMLineIndex' must be an integer")
        return Candidate(candidate, _string(msg, "sdpMid", 64, required=False), index)
    if kind == "ready":
        return Ready()
    if kind == "leave":
        return Leave()
    if kind == "media":
        return MediaState(_bool(msg, "audio"), _bool(msg, "video"))
    if kind == "netinfo":
        return _netinfo(msg)
    if not isinstance(kind, str):
        raise ProtocolError("bad_message", "'type' is required")
    raise ProtocolError("unknown_type", f"unknown message type '{kind[:32]}'")
