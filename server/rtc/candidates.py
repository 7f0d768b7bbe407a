"""Remote ICE candidates: strict parsing, an address filter and a cap per connection.

Why: every remote candidate makes aioice send connectivity checks (STUN requests)
from the server to that address and port, and keep a check pair for it. Unfiltered,
a client can have the server probe any internal address (127.0.0.1:6379, the cloud
metadata service at 169.254.169.254, hosts on the server's LAN), make it resolve
arbitrary host names, and grow its check list without bound. aiortc's own parser
(``aiortc.sdp.candidate_from_sdp``) asserts on short lines and accepts ports out of
range and host names, and ``addIceCandidate`` raises on a candidate without
``sdpMid``/``sdpMLineIndex``; before this module either crashed the websocket
handler (traceback, participant dropped).

Rules, for candidates in the client's offer SDP and trickled ones alike:

* Syntax (RFC 8839 5.1): foundation, component 1-256, transport, priority
  1..2^32-1, an IP literal (or, only where private addresses are allowed, an mDNS
  ``<uuid>.local`` name), port 1-65535, ``typ host|srflx|prflx|relay``. Anything
  else is *malformed*: the trickled candidate gets a typed ``bad_candidate`` error,
  an offer line is removed.
* Transport: UDP only (aiortc has no ICE-TCP); TCP candidates, which browsers
  always include, are dropped silently.
* Addresses: only globally routable unicast, unless private addresses are allowed
  (loopback mode, or ``[limits] allow_private_candidates``): then loopback, RFC 1918,
  link-local, ULA and CGNAT pass too. Multicast, broadcast, unspecified and
  reserved addresses never pass. IPv4-mapped IPv6 is judged as IPv4.
* Cap: at most ``max_candidates`` candidates accepted per connection (offer and
  trickle together); further ones are dropped, and the trickle caller is told once.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from dataclasses import dataclass

from aiortc import RTCIceCandidate

_TYPES = frozenset({"host", "srflx", "prflx", "relay"})
_MDNS_NAME = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.local$")
_FOUNDATION = re.compile(r"^[A-Za-z0-9+/]{1,32}$")
_MAX_PRIORITY = 2**32 - 1


class Outcome(enum.Enum):
    ACCEPTED = "accepted"
    #: well-formed but not wanted (TCP, a filtered address): dropped without a word
    FILTERED = "filtered"
    MALFORMED = "malformed"
    OVER_CAP = "over_cap"


@dataclass(frozen=True)
class CandidatePolicy:
    max_candidates: int = 40
    allow_private: bool = False


@dataclass(frozen=True)
class ParsedCandidate:
    foundation: str
    component: int
    protocol: str
    priority: int
    address: str
    port: int
    type: str
    related_address: str | None = None
    related_port: int | None = None

    def to_rtc(self, sdp_mid: str | None, sdp_mline_index: int | None) -> RTCIceCandidate:
        candidate = RTCIceCandidate(
            component=self.component,
            foundation=self.foundation,
            ip=self.address,
            port=self.port,
            priority=self.priority,
            protocol=self.protocol,
            type=self.type,
            relatedAddress=self.related_address,
            relatedPort=self.related_port,
            sdpMid=sdp_mid,
            sdpMLineIndex=sdp_mline_index,
        )
        return candidate


class MalformedCandidate(ValueError):
    pass


def _int(text: str, low: int, high: int, what: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 10:
        raise MalformedCandidate(f"{what} is not a number")
    value = int(text)
    if not low <= value <= high:
        raise MalformedCandidate(f"{what} out of range")
    return value


def parse_candidate(text: str) -> ParsedCandidate:
    """One candidate attribute value, with or without the ``candidate:`` prefix."""
    text = text.strip()
    if text.startswith("a="):
        text = text[2:]
    if text.startswith("candidate:"):
        text = text[len("candidate:") :]
    bits = text.split()
    if len(bits) < 8 or len(bits) > 40 or bits[6] != "typ":
        raise MalformedCandidate("not an ICE candidate")
    foundation = bits[0]
    if not _FOUNDATION.match(foundation):
        raise MalformedCandidate("bad foundation")
    component = _int(bits[1], 1, 256, "component")
    protocol = bits[2].lower()
    if protocol not in ("udp", "tcp"):
        raise MalformedCandidate("unknown transport")
    priority = _int(bits[3], 1, _MAX_PRIORITY, "priority")
    address = bits[4]
    if not _is_ip(address) and not _MDNS_NAME.match(address.lower()):
        raise MalformedCandidate("address is neither an IP nor an mDNS name")
    port = _int(bits[5], 1, 65535, "port")
    kind = bits[7].lower()
    if kind not in _TYPES:
        raise MalformedCandidate("unknown candidate type")
    related_address: str | None = None
    related_port: int | None = None
    extensions = bits[8:]
    if len(extensions) % 2:
        raise MalformedCandidate("dangling extension attribute")
    for name, value in zip(extensions[::2], extensions[1::2], strict=True):
        if name == "raddr":
            related_address = value
        elif name == "rport":
            related_port = _int(value, 0, 65535, "rport")
    return ParsedCandidate(
        foundation, component, protocol, priority, address, port, kind,
        related_address, related_port,
    )  # fmt: skip


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


_LOCAL_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16",
        "100.64.0.0/10", "::1/128", "fc00::/7", "fe80::/10",
    )
)  # fmt: skip


def address_allowed(address: str, allow_private: bool) -> bool:
    """Whether the server may send connectivity checks to ``address``.

    Global unicast always; loopback, RFC 1918, link-local, CGNAT and ULA only with
    ``allow_private``; multicast, unspecified, broadcast and reserved ranges never.
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        # an mDNS name resolves on the server's own LAN only
        return allow_private and bool(_MDNS_NAME.match(address.lower()))
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_multicast or ip.is_unspecified:
        return False
    if ip.is_global:
        return True
    return allow_private and any(ip in net for net in _LOCAL_NETWORKS if net.version == ip.version)


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    candidate: ParsedCandidate | None = None
    reason: str = ""


class CandidateFilter:
    """One peer connection's remote candidates: what may reach aioice. Sans-IO."""

    def __init__(self, policy: CandidatePolicy) -> None:
        self.policy = policy
        self.accepted = 0
        self.dropped = 0
        self.malformed = 0
        self._told_over_cap = False

    def judge(self, text: str) -> Decision:
        try:
            candidate = parse_candidate(text)
        except MalformedCandidate as exc:
            self.malformed += 1
            return Decision(Outcome.MALFORMED, reason=str(exc))
        if candidate.protocol != "udp" or not address_allowed(
            candidate.address, self.policy.allow_private
        ):
            self.dropped += 1
            return Decision(Outcome.FILTERED, candidate)
        if self.accepted >= self.policy.max_candidates:
            self.dropped += 1
            return Decision(Outcome.OVER_CAP, candidate)
        self.accepted += 1
        return Decision(Outcome.ACCEPTED, candidate)

    def over_cap_first_time(self) -> bool:
        """True once: the caller tells the client about the cap a single time."""
        if self._told_over_cap:
            return False
        self._told_over_cap = True
        return True

    def filter_sdp(self, sdp: str) -> str:
        """The offer with every candidate line that may not reach aioice removed."""
        lines = sdp.split("\n")
        kept: list[str] = []
        for line in lines:
            if line.startswith("a=candidate:"):
                decision = self.judge(line.rstrip("\r"))
                if decision.outcome is not Outcome.ACCEPTED:
                    continue
            kept.append(line)
        return "\n".join(kept)
