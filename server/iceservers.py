"""ICE servers for one join: STUN, and TURN with short-lived credentials.

Why minted per join: a static TURN password in the page is a free relay for anyone
who reads it. coturn's ``use-auth-secret`` implements the TURN REST API scheme
(draft-uberti-behave-turn-rest): the username is ``<expiry unix time>:<user>`` and
the password is ``base64(HMAC-SHA1(shared secret, username))``. coturn recomputes
the password from the secret, so nothing is stored per user, and refuses the
username after its expiry (an allocation made in time lives on, refreshed).

The same list serves the browser (sent in ``welcome.ice_servers``, the
``RTCIceServer`` dictionaries of ``new RTCPeerConnection({iceServers})``) and the
server's own aiortc peer (``server_ice_servers``, which aiortc reduces to one STUN
and one TURN URL: the first of each it can use, so the order of ``turn_urls``
matters for the server, not for browsers, which try them all).

Pure functions; time is an argument (unix seconds).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import Settings

# RFC 7064 / 7065 URIs, as browsers accept them (no user info, optional port and
# transport). The host may be a name, an IPv4 address or a bracketed IPv6 address.
_URL = re.compile(
    r"(?P<scheme>stuns?|turns?):(?P<host>\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)"
    r"(?::(?P<port>[0-9]{1,5}))?(?:\?transport=(?P<transport>udp|tcp))?"
)


@dataclass(frozen=True)
class IceSettings:
    """[ice]: how participants and the server find a media path (docs/deploy.md).

    Lists are comma-separated strings so one environment variable can carry them.
    """

    # STUN URLs, e.g. "stun:turn.example.org:3478".
    stun_urls: str = ""
    # TURN URLs, e.g. "turn:turn.example.org:3478?transport=udp,
    # turn:turn.example.org:3478?transport=tcp, turns:turn.example.org:443?transport=tcp".
    turn_urls: str = ""
    # coturn's static-auth-secret (use-auth-secret): credentials are minted per join.
    turn_secret: str = ""
    # Lifetime of minted TURN credentials; an allocation made in time outlives them.
    credential_ttl_s: int = 3600
    # The server's own peer also gathers a TURN relay candidate (first TURN URL).
    server_turn: bool = True
    # Public IPv4 address a 1:1 NAT maps to this host: host candidates advertise it.
    announced_address: str = ""
    # UDP ports the server's host candidates bind to (0 and 0 = any ephemeral port).
    port_min: int = 0
    port_max: int = 0


class IceSettingsError(ValueError):
    """An [ice] setting is unusable; ``load_settings`` reports it as a ConfigError."""


def _config_error(message: str) -> Exception:
    return IceSettingsError(message)


def split_urls(value: str) -> list[str]:
    """The comma-separated URL list of a setting, blanks dropped."""
    return [url.strip() for url in value.split(",") if url.strip()]


def parse_url(url: str) -> dict[str, Any]:
    """Scheme, host, port and transport of a STUN/TURN URL; ``ValueError`` if malformed."""
    match = _URL.fullmatch(url)
    if match is None:
        raise ValueError(f"not a STUN/TURN URL: {url!r}")
    scheme = match["scheme"]
    port = int(match["port"]) if match["port"] else (5349 if scheme.endswith("s") else 3478)
    if not 0 < port < 65536:
        raise ValueError(f"bad port in {url!r}")
    if scheme.startswith("stun") and match["transport"]:
        raise ValueError(f"STUN URLs take no transport: {url!r}")
    transport = match["transport"] or ("tcp" if scheme == "turns" else "udp")
    if scheme == "turns" and transport != "tcp":
        raise ValueError(f"turns: runs over TCP only: {url!r}")
    return {"scheme": scheme, "host": match["host"], "port": port, "transport": transport}


def turn_kind(url: str) -> str:
    """``udp``, ``tcp`` or ``tls``: how a TURN URL reaches its server."""
    parsed = parse_url(url)
    return "tls" if parsed["scheme"] == "turns" else str(parsed["transport"])


def turn_credentials(secret: str, user: str, now: float, ttl_s: int) -> tuple[str, str]:
    """``(username, password)`` valid until ``now + ttl_s`` for coturn's use-auth-secret."""
    username = f"{int(now) + ttl_s}:{user}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii")


def ice_servers_for(settings: Settings, participant_id: str, now: float) -> list[dict[str, Any]]:
    """The ``iceServers`` a participant's browser uses for this join (JSON-ready).

    Empty when nothing is configured (a LAN or loopback deployment): the page then
    connects with host candidates only, as before.
    """
    ice = settings.ice
    servers: list[dict[str, Any]] = []
    stun = split_urls(ice.stun_urls)
    if stun:
        servers.append({"urls": stun})
    turn = split_urls(ice.turn_urls)
    if turn:
        username, credential = turn_credentials(
            ice.turn_secret, participant_id, now, ice.credential_ttl_s
        )
        servers.append({"urls": turn, "username": username, "credential": credential})
    return servers


def server_ice_servers(settings: Settings, participant_id: str, now: float) -> list[dict[str, Any]]:
    """The list the server's own peer for this participant uses (aiortc keeps one
    STUN and the first usable TURN URL). Its TURN user is ``server-<participant>``,
    so coturn's logs tell the two legs apart."""
    servers = ice_servers_for(settings, f"server-{participant_id}", now)
    if not settings.ice.server_turn:
        servers = [s for s in servers if "username" not in s]
    return servers


def validate_ice_settings(ice: IceSettings) -> None:
    """Refuse at start-up what would only fail at the first join."""
    for url in split_urls(ice.stun_urls):
        try:
            parsed = parse_url(url)
        except ValueError as exc:
            raise _config_error(f"[ice] stun_urls: {exc}") from exc
        if not parsed["scheme"].startswith("stun"):
            raise _config_error(f"[ice] stun_urls: {url!r} is not a stun: URL")
    turn = split_urls(ice.turn_urls)
    for url in turn:
        try:
            parsed = parse_url(url)
        except ValueError as exc:
            raise _config_error(f"[ice] turn_urls: {exc}") from exc
        if not parsed["scheme"].startswith("turn"):
            raise _config_error(f"[ice] turn_urls: {url!r} is not a turn:/turns: URL")
    if turn and not ice.turn_secret:
        raise _config_error("[ice] turn_urls need turn_secret (coturn's static-auth-secret)")
    if ice.credential_ttl_s < 60:
        raise _config_error("[ice] credential_ttl_s must be at least 60")
    if ice.announced_address:
        try:
            address = ipaddress.ip_address(ice.announced_address)
        except ValueError as exc:
            raise _config_error("[ice] announced_address must be an IP address") from exc
        if address.version != 4 or address.is_loopback or address.is_unspecified:
            raise _config_error("[ice] announced_address must be a routable IPv4 address")
    if (ice.port_min, ice.port_max) != (0, 0) and not (
        1024 <= ice.port_min <= ice.port_max <= 65535
    ):
        raise _config_error("[ice] need 1024 <= port_min <= port_max <= 65535 (or both 0)")
