"""The client's address behind trusted reverse proxies (``[server] trusted_proxies``).

Why: lockout counts, rejoin binding and rate limits are keyed by the client address.
Behind a reverse proxy every connection comes from the proxy, so without this one
client's failures lock everyone. But a forwarding header is only as trustworthy as
whoever wrote it: a client can send ``X-Forwarded-For: 1.2.3.4`` itself, and a
proxy *appends* to what it received. So:

* the header is read only when the TCP peer is a trusted proxy (never otherwise);
* it is read from the right: each trusted proxy appended the address it saw, so
  the rightmost address that is *not* a trusted proxy is the client (entries left
  of it were written by the client and are ignored);
* if every hop is trusted, the leftmost is the client; an entry that is not an
  address (``unknown``, an obfuscated ``_id``) ends the walk at the last trusted
  hop, whose own address is then used.

Only one header is read, the one the proxy sets (``[server] forwarded_header``):
``x-forwarded-for`` (nginx ``$proxy_add_x_forwarded_for``, Caddy's default) or
``forwarded`` (RFC 7239). Reading both would let a client supply the one the proxy
does not overwrite.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Mapping, Sequence

from aiohttp import web

from .state import SETTINGS

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

HEADERS = ("x-forwarded-for", "forwarded")


@functools.lru_cache(maxsize=8)
def parse_trusted(text: str) -> tuple[IPNetwork, ...]:
    """``"10.0.0.0/8, 127.0.0.1"`` -> networks; raises ValueError naming a bad entry."""
    networks: list[IPNetwork] = []
    for item in text.replace(";", ",").split(","):
        item = item.strip()
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError as exc:
            raise ValueError(f"not an address or CIDR: {item!r}") from exc
    return tuple(networks)


def _address(text: str) -> IPAddress | None:
    """An address from a header entry: ``1.2.3.4``, ``1.2.3.4:80``, ``[v6]``, ``[v6]:80``."""
    text = text.strip().strip('"').strip()
    if text.startswith("["):
        end = text.find("]")
        if end == -1:
            return None
        text = text[1:end]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _split_outside_quotes(text: str, sep: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == sep and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def forwarded_hops(header: str, values: Iterable[str]) -> list[str]:
    """The client-side hops a header lists, leftmost (farthest) first, as raw text."""
    hops: list[str] = []
    for value in values:
        if header == "x-forwarded-for":
            hops += [part.strip() for part in value.split(",") if part.strip()]
            continue
        for element in _split_outside_quotes(value, ","):
            forwarded_for = None
            for pair in _split_outside_quotes(element, ";"):
                name, _, param = pair.strip().partition("=")
                if name.strip().lower() == "for":
                    forwarded_for = param.strip()
            # an element without for= still is a hop we know nothing about
            hops.append(forwarded_for if forwarded_for is not None else "unknown")
    return hops


def _header_values(headers: Mapping[str, str], name: str) -> list[str]:
    getall = getattr(headers, "getall", None)
    if getall is not None:
        values: list[str] = list(getall(name, []))
        return values
    for key, value in headers.items():
        if key.lower() == name:
            return [value]
    return []


def _trusted(ip: IPAddress, trusted: Sequence[IPNetwork]) -> bool:
    return any(ip.version == net.version and ip in net for net in trusted)


def client_address(
    request_remote: str | None,
    headers: Mapping[str, str],
    trusted: Sequence[IPNetwork],
    *,
    header: str = "x-forwarded-for",
) -> str:
    """The address to key limits on: the TCP peer, unless it is a trusted proxy."""
    remote = request_remote or "unknown"
    peer = _address(remote)
    if not trusted or peer is None or not _trusted(peer, trusted):
        return remote
    if header not in HEADERS:
        raise ValueError(f"forwarded header must be one of {HEADERS}")
    last = peer
    for hop in reversed(forwarded_hops(header, _header_values(headers, header))):
        ip = _address(hop)
        if ip is None:
            break
        if not _trusted(ip, trusted):
            return str(ip)
        last = ip
    return str(last)


def request_client_ip(request: web.Request) -> str:
    """The client's address for any request: the TCP peer, or what a trusted proxy
    says ([server] trusted_proxies, forwarded_header). The websocket, the owner's
    sign-in and sign-up limits all count by this."""
    server = request.config_dict[SETTINGS].server
    return client_address(
        request.remote,
        request.headers,
        parse_trusted(server.trusted_proxies),
        header=server.forwarded_header,
    )
