"""Loopback mode: a host whose only interface is ``lo`` can still connect."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import ifaddr
import pytest
from aiortc import RTCPeerConnection

from server.rtc import create_peer_connection

from .conftest import wait_until


@pytest.fixture
def loopback_only_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend ``lo`` is the only interface (as on the CI/dev machines)."""
    lo = [a for a in ifaddr.get_adapters() if any(ip.ip == "127.0.0.1" for ip in a.ips)]
    monkeypatch.setattr(ifaddr, "get_adapters", lambda: lo)


@pytest.fixture
async def pcs() -> AsyncIterator[list[RTCPeerConnection]]:
    created: list[RTCPeerConnection] = []
    yield created
    for pc in created:
        await pc.close()


async def _offer_answer(offerer: RTCPeerConnection, answerer: RTCPeerConnection) -> None:
    offerer.addTransceiver("audio", direction="sendrecv")
    offerer.createDataChannel("probe")
    await offerer.setLocalDescription(await offerer.createOffer())
    await answerer.setRemoteDescription(offerer.localDescription)
    await answerer.setLocalDescription(await answerer.createAnswer())
    await offerer.setRemoteDescription(answerer.localDescription)


@pytest.mark.usefixtures("loopback_only_host")
async def test_loopback_mode_connects_on_a_loopback_only_host(
    pcs: list[RTCPeerConnection],
) -> None:
    client = create_peer_connection(loopback=True)
    server = create_peer_connection(loopback=True)
    pcs += [client, server]
    await _offer_answer(client, server)
    assert "127.0.0.1" in server.localDescription.sdp
    await wait_until(
        lambda: server.connectionState == client.connectionState == "connected",
        what="loopback connection",
    )


@pytest.mark.usefixtures("loopback_only_host")
async def test_without_loopback_mode_there_is_no_candidate(
    pcs: list[RTCPeerConnection],
) -> None:
    # install the patch first, to show it stays inert for non-loopback connections
    pcs.append(create_peer_connection(loopback=True))
    client = create_peer_connection(loopback=False)
    server = create_peer_connection(loopback=False)
    pcs += [client, server]
    await _offer_answer(client, server)
    assert "a=candidate" not in server.localDescription.sdp
    await asyncio.sleep(0.3)
    assert server.connectionState != "connected"


async def test_loopback_candidate_only_for_loopback_pcs(pcs: list[RTCPeerConnection]) -> None:
    loop_pc = create_peer_connection(loopback=True)
    plain = create_peer_connection(loopback=False)
    pcs += [loop_pc, plain]
    for pc in (loop_pc, plain):
        pc.addTransceiver("video")
    # gather concurrently: the loopback flag must not leak between them
    await asyncio.gather(
        loop_pc.setLocalDescription(await loop_pc.createOffer()),
        plain.setLocalDescription(await plain.createOffer()),
    )
    assert "127.0.0.1" in loop_pc.localDescription.sdp
    assert "127.0.0.1" not in plain.localDescription.sdp
    assert "stun" not in plain.localDescription.sdp.lower()
