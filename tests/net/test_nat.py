"""Announced address and UDP port range of the server peer (in-process, no namespaces).

The namespace tests (``test_netns.py``) prove these across a real 1:1 NAT; here the
candidate rewriting and the port binding are checked directly.
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator

import ifaddr
import pytest
from aiortc import RTCPeerConnection

from server.rtc import create_peer_connection
from server.rtc.nat import PeerNetwork

from ..rtc.conftest import wait_until

ANNOUNCED = "198.51.100.7"
CANDIDATE = re.compile(r"a=candidate:\S+ \d+ udp \d+ (\S+) (\d+) typ (\w+)")


@pytest.fixture
async def pcs() -> AsyncIterator[list[RTCPeerConnection]]:
    created: list[RTCPeerConnection] = []
    yield created
    for pc in created:
        await pc.close()


@pytest.fixture
def loopback_only_host(monkeypatch: pytest.MonkeyPatch) -> None:
    lo = [a for a in ifaddr.get_adapters() if any(ip.ip == "127.0.0.1" for ip in a.ips)]
    monkeypatch.setattr(ifaddr, "get_adapters", lambda: lo)


def free_udp_range(size: int) -> tuple[int, int]:
    """A run of ``size`` UDP ports free right now on every address."""
    for start in range(42000, 60000, 97):
        socks = []
        try:
            for port in range(start, start + size):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("0.0.0.0", port))
            return start, start + size - 1
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise AssertionError("no free UDP port range")


async def negotiate(client: RTCPeerConnection, server: RTCPeerConnection) -> str:
    client.addTransceiver("audio", direction="sendrecv")
    await client.setLocalDescription(await client.createOffer())
    await server.setRemoteDescription(client.localDescription)
    await server.setLocalDescription(await server.createAnswer())
    await client.setRemoteDescription(server.localDescription)
    return str(server.localDescription.sdp)


async def test_host_candidates_advertise_the_announced_address_inside_the_port_range(
    pcs: list[RTCPeerConnection],
) -> None:
    low, high = free_udp_range(10)
    server = create_peer_connection(
        loopback=True, network=PeerNetwork(announced_address=ANNOUNCED, port_range=(low, high))
    )
    client = create_peer_connection(loopback=True)
    pcs += [client, server]
    sdp = await negotiate(client, server)
    found = [(a, int(p), t) for a, p, t in CANDIDATE.findall(sdp)]
    private = {ip.ip for a in ifaddr.get_adapters() for ip in a.ips if isinstance(ip.ip, str)}
    private -= {"127.0.0.1"}
    assert any(a == ANNOUNCED for a, _, _ in found), sdp
    # No private IPv4 address is advertised; loopback is left alone (tests need it).
    assert not [a for a, _, _ in found if a in private], sdp
    assert all(low <= port <= high for _, port, t in found if t == "host"), sdp


@pytest.mark.usefixtures("loopback_only_host")
async def test_a_peer_bound_inside_the_range_connects(pcs: list[RTCPeerConnection]) -> None:
    low, high = free_udp_range(4)
    server = create_peer_connection(loopback=True, network=PeerNetwork(port_range=(low, high)))
    client = create_peer_connection(loopback=True)
    pcs += [client, server]
    sdp = await negotiate(client, server)
    ports = [int(p) for _, p, _ in CANDIDATE.findall(sdp)]
    assert ports and all(low <= p <= high for p in ports)
    await wait_until(
        lambda: server.connectionState == client.connectionState == "connected",
        what="connection inside the port range",
    )


@pytest.mark.usefixtures("loopback_only_host")
async def test_a_full_port_range_gives_no_host_candidate_and_says_so(
    pcs: list[RTCPeerConnection], caplog: pytest.LogCaptureFixture
) -> None:
    low, _ = free_udp_range(1)
    blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    blocker.bind(("127.0.0.1", low))
    try:
        server = create_peer_connection(loopback=True, network=PeerNetwork(port_range=(low, low)))
        client = create_peer_connection(loopback=True)
        pcs += [client, server]
        sdp = await negotiate(client, server)
        assert not CANDIDATE.findall(sdp)
        assert "widen [ice] port range" in caplog.text
    finally:
        blocker.close()


async def test_concurrent_peers_get_distinct_ports(pcs: list[RTCPeerConnection]) -> None:
    low, high = free_udp_range(6)
    network = PeerNetwork(port_range=(low, high))
    pairs = [
        (
            create_peer_connection(loopback=True),
            create_peer_connection(loopback=True, network=network),
        )
        for _ in range(3)
    ]
    for pair in pairs:
        pcs.extend(pair)
    sdps = await asyncio.gather(*(negotiate(c, s) for c, s in pairs))
    ports = [(a, int(p)) for sdp in sdps for a, p, _ in CANDIDATE.findall(sdp)]
    assert len(ports) == len(set(ports))
    assert all(low <= p <= high for _, p in ports)
