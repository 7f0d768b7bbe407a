"""The server's ICE network options: announced address, UDP port range, ICE servers.

Why: a server on a cloud VM sits behind a 1:1 NAT. aioice offers the private
address of its interface, which no participant can reach; the public address maps
onto it port for port, so advertising ``announced_address`` in place of the private
one is all a browser needs (Janus's ``nat_1_1_mapping``, mediasoup's
``announcedIp``). And a firewall can only be opened narrowly if the host candidates
bind inside a known UDP range (``port_min``..``port_max``); aioice binds port 0.

How the patch stays narrow (as loopback mode in ``peer.py``): nothing module-wide
changes. For the ICE connections of peer connections built with these options,
two methods are wrapped on the *instance*, just before aiortc gathers:

* ``Connection.get_component_candidates`` (only with a port range): host sockets
  are bound by us inside the range, the same way aioice binds them (a
  ``StunProtocol`` per address, the same candidate fields and receive buffer); the
  original then runs with no addresses, which leaves it only the TURN allocation;
  server-reflexive candidates for our sockets come from aioice's own
  ``server_reflexive_candidate``.
* ``Connection.gather_candidates`` (only with an announced address): after
  gathering, every IPv4 host candidate that is not loopback advertises the announced
  address. The socket stays bound to the private address; aioice sends and receives
  through the socket (``CandidatePair.protocol``), the candidate's address is only
  what the SDP tells the peer (and log text).

aioice internals used (tested with 0.13.0): ``Connection.get_component_candidates``
(signature ``(component, addresses, timeout=5)``, called from
``gather_candidates``), ``Connection._protocols``, ``Connection._local_candidates``,
``Connection.stun_server``, ``aioice.ice.StunProtocol`` (``local_candidate``
attribute), ``aioice.ice.server_reflexive_candidate``, ``aioice.turn.
UDP_SOCKET_BUFFER_SIZE``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import secrets
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aioice.ice
import aioice.turn
from aioice.candidate import Candidate, candidate_foundation, candidate_priority
from aiortc import RTCIceServer
from aiortc.rtcicetransport import RTCIceGatherer

if TYPE_CHECKING:
    from ..config import Settings

logger = logging.getLogger(__name__)

_CONN_MARK = "_videogate_network"


@dataclass(frozen=True)
class PeerNetwork:
    """How one server-side peer connection reaches the network."""

    ice_servers: tuple[RTCIceServer, ...] = ()
    announced_address: str = ""
    port_range: tuple[int, int] | None = None

    @property
    def patches_gathering(self) -> bool:
        return bool(self.announced_address) or self.port_range is not None

    @classmethod
    def from_settings(cls, settings: Settings, participant_id: str, now: float) -> PeerNetwork:
        """The ``[ice]`` settings for the server peer of one participant."""
        from ..iceservers import server_ice_servers

        ice = settings.ice
        servers = tuple(
            RTCIceServer(
                urls=list(s["urls"]), username=s.get("username"), credential=s.get("credential")
            )
            for s in server_ice_servers(settings, participant_id, now)
        )
        ports = (ice.port_min, ice.port_max) if ice.port_min and ice.port_max else None
        return cls(servers, ice.announced_address, ports)


def apply_network(gatherer: RTCIceGatherer, network: PeerNetwork) -> None:
    """Give one aiortc ICE gatherer the announced address and port range (idempotent)."""
    connection: Any = gatherer._connection
    if getattr(connection, _CONN_MARK, False) or not network.patches_gathering:
        return
    if network.port_range is not None:
        low, high = network.port_range
        connection.get_component_candidates = _ranged_component_candidates(
            connection, connection.get_component_candidates, low, high
        )
    if network.announced_address:
        connection.gather_candidates = _announcing_gather(
            connection, connection.gather_candidates, network.announced_address
        )
    setattr(connection, _CONN_MARK, True)


def announce(candidates: Sequence[Candidate], address: str) -> None:
    """Advertise ``address`` on IPv4 host candidates that are not loopback."""
    for candidate in candidates:
        if candidate.type != "host":
            continue
        try:
            current = ipaddress.ip_address(candidate.host)
        except ValueError:
            continue
        if current.version == 4 and not current.is_loopback:
            candidate.host = address


def _announcing_gather(
    connection: Any, gather: Callable[[], Awaitable[None]], address: str
) -> Callable[[], Awaitable[None]]:
    async def gather_candidates() -> None:
        await gather()
        announce(connection._local_candidates, address)

    return gather_candidates


async def bind_in_range(
    connection: Any, component: int, address: str, low: int, high: int
) -> aioice.ice.StunProtocol | None:
    """A host ``StunProtocol`` bound to a free port of ``low..high`` (random start)."""
    loop = asyncio.get_running_loop()
    count = high - low + 1
    first = secrets.randbelow(count)
    for offset in range(count):
        port = low + (first + offset) % count
        try:
            transport, protocol = await loop.create_datagram_endpoint(
                lambda: aioice.ice.StunProtocol(connection), local_addr=(address, port)
            )
        except OSError:
            continue
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, aioice.turn.UDP_SOCKET_BUFFER_SIZE)
        bound = transport.get_extra_info("sockname")
        protocol.local_candidate = Candidate(
            foundation=candidate_foundation("host", "udp", bound[0]),
            component=component,
            transport="udp",
            priority=candidate_priority(component, "host"),
            host=bound[0],
            port=bound[1],
            type="host",
        )
        return protocol
    logger.warning("no free UDP port in %d-%d on %s: widen [ice] port range", low, high, address)
    return None


def _ranged_component_candidates(
    connection: Any,
    original: Callable[..., Awaitable[list[Candidate]]],
    low: int,
    high: int,
) -> Callable[..., Awaitable[list[Candidate]]]:
    async def get_component_candidates(
        component: int, addresses: list[str], timeout: int = 5
    ) -> list[Candidate]:
        host: list[aioice.ice.StunProtocol] = []
        for address in addresses:
            protocol = await bind_in_range(connection, component, address, low, high)
            if protocol is not None:
                host.append(protocol)
        connection._protocols += host
        candidates = [p.local_candidate for p in host]

        async def reflexive(protocol: aioice.ice.StunProtocol) -> Candidate | None:
            try:
                candidate, _ = await asyncio.wait_for(
                    aioice.ice.server_reflexive_candidate(protocol, connection.stun_server),
                    timeout,
                )
                return candidate
            except Exception:  # unreachable STUN server: no srflx, as in aioice
                return None

        stun: list[Awaitable[Candidate | None]] = []
        if connection.stun_server:
            stun = [
                reflexive(p)
                for p in host
                if ipaddress.ip_address(p.local_candidate.host).version == 4
            ]
        # With no addresses, aioice's own gathering does only the TURN allocation.
        relay = original(component=component, addresses=[], timeout=timeout)
        relayed, found = await asyncio.gather(relay, asyncio.gather(*stun))
        candidates += [c for c in found if c is not None]
        return candidates + relayed

    return get_component_candidates
