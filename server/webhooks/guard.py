"""Where a webhook may be delivered: public addresses only, resolved once and pinned.

Why: a webhook URL is chosen by an owner (a tenant), and the server makes the request
from inside the operator's network. Without a check, ``http://169.254.169.254/`` or
``http://10.0.0.5:6379/`` turns the delivery worker into a proxy into that network
(SSRF), and a raw error per try ("connection refused" vs "timed out") is a port
scanner. So every try resolves the host once, refuses if *any* address is not a public
unicast address (loopback, private, link-local, CGNAT, metadata, multicast, reserved,
IPv4 hidden in IPv6), and connects only to the addresses it checked (``PinnedResolver``:
no second lookup that a rebinding DNS server could answer differently). An operator
with on-premises receivers lists their networks in ``[webhooks] allow_networks``.

Failures are reported as coarse classes (:data:`ERROR_CLASSES`), never raw messages.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

if TYPE_CHECKING:
    from ..config import WebhookSettings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Not covered by ``is_global`` on every Python version, or worth naming explicitly.
_ALWAYS_BLOCKED: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",  # CGNAT (and Alibaba's metadata at 100.100.100.200)
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local (AWS/GCP/Azure metadata at 169.254.169.254)
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",
        "::/128",
        "::1/128",
        "fc00::/7",  # unique local (AWS IPv6 metadata at fd00:ec2::254)
        "fe80::/10",
        "ff00::/8",
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")

# What the delivery log may say about a failed try (plus "http_status" with the code).
ERROR_CLASSES = (
    "bad_url",
    "blocked_address",
    "dns_error",
    "connect_error",
    "tls_error",
    "timeout",
    "bad_response",
    "http_status",
)


class DeliveryRefused(Exception):
    """The target may not be contacted; ``error_class`` is what the log records."""

    def __init__(self, error_class: str) -> None:
        super().__init__(error_class)
        self.error_class = error_class


def parse_networks(text: str) -> tuple[IPNetwork, ...]:
    """``"10.1.0.0/16, 192.168.5.7"`` -> networks; raises ValueError naming a bad entry."""
    networks = []
    for part in text.replace(";", ",").split(","):
        entry = part.strip()
        if entry:
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError as exc:
                raise ValueError(f"not a network: {entry!r}") from exc
    return tuple(networks)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _SIX_TO_FOUR:
        return ipaddress.IPv4Address((int(ip) >> 80) & 0xFFFFFFFF)
    return None


def address_allowed(ip: IPAddress, allow: Sequence[IPNetwork] = ()) -> bool:
    """True for a public unicast address, or one inside an allow-listed network."""
    if any(ip.version == net.version and ip in net for net in allow):
        return True
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_ipv4(ip)
        if inner is not None:
            return address_allowed(inner, allow)
    if any(ip.version == net.version and ip in net for net in _ALWAYS_BLOCKED):
        return False
    return ip.is_global and not ip.is_multicast


def obviously_internal(url: str, allow: Sequence[IPNetwork] = ()) -> bool:
    """True when the URL names a refused address without any DNS: an IP literal (also
    the one-number form) or ``localhost``. Lets the owner hear it when creating the
    webhook; names are still checked at every delivery (:func:`resolve_target`)."""
    try:
        host = (URL(url).raw_host or "").strip("[]").lower()
    except (ValueError, TypeError):
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return not any(ipaddress.ip_address("127.0.0.1") in net for net in allow)
    try:
        ip: IPAddress = (
            ipaddress.IPv4Address(int(host)) if host.isdigit() else ipaddress.ip_address(host)
        )
    except ValueError:
        return False
    return not address_allowed(ip, allow)


def refuse_internal_url(settings: WebhookSettings, url: object) -> None:
    """At creation: StoreError ``bad_url`` for a URL that could never be delivered."""
    from ..store import StoreError

    if isinstance(url, str) and obviously_internal(url, parse_networks(settings.allow_networks)):
        raise StoreError(
            "bad_url",
            "webhooks can reach public addresses only (not loopback, private, link-local "
            "or metadata addresses); the operator can allow on-premises networks",
        )


Lookup = Callable[[str, int], Awaitable[list[str]]]


async def system_lookup(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def resolve_target(
    url: str, allow: Sequence[IPNetwork] = (), lookup: Lookup = system_lookup
) -> list[str]:
    """The checked addresses for ``url``'s host; every one must be allowed."""
    try:
        parsed = URL(url)
        host, port = parsed.raw_host, parsed.port
    except (ValueError, TypeError) as exc:
        raise DeliveryRefused("bad_url") from exc
    if parsed.scheme not in ("http", "https") or not host or port is None:
        raise DeliveryRefused("bad_url")
    try:
        addresses = await lookup(host.strip("[]"), port)
    except (OSError, UnicodeError) as exc:
        raise DeliveryRefused("dns_error") from exc
    if not addresses:
        raise DeliveryRefused("dns_error")
    for text in addresses:
        try:
            ip = ipaddress.ip_address(text.split("%", 1)[0])
        except ValueError as exc:
            raise DeliveryRefused("dns_error") from exc
        if not address_allowed(ip, allow):
            raise DeliveryRefused("blocked_address")
    return addresses


class PinnedResolver(AbstractResolver):
    """Answers aiohttp's lookup with the addresses already checked: no second query."""

    def __init__(self, addresses: Sequence[str]) -> None:
        self._addresses = list(addresses)

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in self._addresses
        ]

    async def close(self) -> None:
        return None


def pinned_session(addresses: Sequence[str], timeout_s: float) -> aiohttp.ClientSession:
    """A one-try session that can only reach ``addresses`` (no proxies from the env)."""
    connector = aiohttp.TCPConnector(
        resolver=PinnedResolver(addresses), use_dns_cache=False, limit=1, force_close=True
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=timeout_s),
        trust_env=False,
    )


def error_class(exc: BaseException) -> str:
    """A coarse, scan-proof label for a failed try."""
    if isinstance(exc, DeliveryRefused):
        return exc.error_class
    if isinstance(exc, TimeoutError | asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return "timeout"
    if isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError):
        return "tls_error"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "dns_error"
    if isinstance(exc, aiohttp.ClientConnectionError | OSError):
        return "connect_error"
    if isinstance(exc, aiohttp.InvalidURL):
        return "bad_url"
    return "bad_response"
