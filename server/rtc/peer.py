"""Peer connection factory, including the loopback mode used by tests and local runs.

Why a factory: every server-side ``RTCPeerConnection`` must be built the same way.

* Server re-offers must keep the browser's payload types and header extension ids
  (``offers.py``; aiortc alone renumbers them and Chromium rejects the offer).
* ICE servers only as configured (``[ice]``, ``nat.PeerNetwork``): aiortc's default
  configuration adds Google's public STUN server; the machines we run on have no
  internet, so gathering would just wait for a STUN timeout. Without settings we pass
  ``iceServers=[]``. An announced address and a UDP port range are applied to the
  gatherers as loopback mode is (``nat.py``).
* ``max-bundle``: every m-line rides one ICE/DTLS transport. The room adds one m-line
  per forwarded track; with aiortc's default ("balanced") policy, adding the first
  track of a kind the peer did not publish would create and gather a second
  transport for nothing.
* Loopback mode (``loopback=True``): aioice leaves ``127.0.0.1`` out of its host
  candidates (``aioice.ice.get_host_addresses``). On a host whose only usable
  interface is ``lo`` nothing can then connect. In loopback mode the connection also
  offers a ``127.0.0.1`` host candidate. Chromium must run with
  ``--allow-loopback-in-peer-connection`` to pair with it.

How the loopback patch stays narrow: aioice's host discovery is a module-level
function called once per ICE connection at the very start of
``Connection.gather_candidates``. We wrap it, once per process and only when a
loopback connection is first requested, with a function that adds ``127.0.0.1`` only
while a context variable is set. The variable is set only inside the
``gather_candidates`` of ICE connections that belong to loopback peer connections
(the wrapper is attached to those ``Connection`` instances just before aiortc gathers,
in ``setLocalDescription``). A non-loopback peer connection in the same process,
even one gathering concurrently in another task, never sees the extra address,
because asyncio tasks each run in their own copy of the context.

aiortc/aioice internals used here (aiortc is pinned to 1.16.0; tested with aioice
0.13.0, which ``requirements.txt`` should pin too):
``aioice.ice.get_host_addresses`` (module function, looked up at call time),
``aioice.Connection.gather_candidates`` (wrapped per instance),
``RTCIceGatherer._connection`` (the aioice connection behind an aiortc gatherer).
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aioice.ice
from aiortc import (
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.rtcconfiguration import RTCBundlePolicy
from aiortc.rtcicetransport import RTCIceGatherer

from .nat import PeerNetwork, apply_network
from .offers import PayloadRegistry, rewrite_offer

logger = logging.getLogger(__name__)

LOOPBACK_ADDRESS = "127.0.0.1"

_loopback_gathering: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "videogate_loopback_gathering", default=False
)
_PATCH_MARK = "_videogate_loopback_patch"
_CONN_MARK = "_videogate_loopback"


def _install_host_address_patch() -> None:
    """Wrap ``aioice.ice.get_host_addresses`` once; inert unless a loopback gather runs."""
    current = aioice.ice.get_host_addresses
    if getattr(current, _PATCH_MARK, False):
        return
    original: Callable[[bool, bool], list[str]] = current

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        addresses = list(original(use_ipv4, use_ipv6))
        if _loopback_gathering.get() and use_ipv4 and LOOPBACK_ADDRESS not in addresses:
            addresses.append(LOOPBACK_ADDRESS)
        return addresses

    setattr(get_host_addresses, _PATCH_MARK, True)
    aioice.ice.get_host_addresses = get_host_addresses


def _enable_loopback(gatherer: RTCIceGatherer) -> None:
    """Make one aiortc ICE gatherer also offer ``127.0.0.1`` (idempotent)."""
    connection: Any = gatherer._connection
    if getattr(connection, _CONN_MARK, False):
        return
    gather: Callable[[], Awaitable[None]] = connection.gather_candidates

    async def gather_candidates() -> None:
        token = _loopback_gathering.set(True)
        try:
            await gather()
        finally:
            _loopback_gathering.reset(token)

    connection.gather_candidates = gather_candidates
    setattr(connection, _CONN_MARK, True)


class ServerPeerConnection(RTCPeerConnection):
    """``RTCPeerConnection`` with the two fixes a browser-facing SFU needs.

    * Re-offers keep the peer's numbering (see ``offers.py``): ``createOffer``
      restores negotiated m-lines and renumbers new ones into the bundle's payload
      types and header extension ids; ``setRemoteDescription`` records the numbering
      the peer declares.
    * Loopback mode (``loopback=True``): ICE gatherers also offer ``127.0.0.1``.
      aiortc gathers only inside ``setLocalDescription``, for every ICE transport
      existing then, so marking the gatherers right before is enough.
    """

    def __init__(
        self,
        configuration: RTCConfiguration,
        *,
        loopback: bool,
        network: PeerNetwork | None = None,
    ) -> None:
        super().__init__(configuration)
        self.loopback = loopback
        self.network = network or PeerNetwork()
        self._payload_registry = PayloadRegistry()

    async def createOffer(self) -> RTCSessionDescription:
        transceivers = self.getTransceivers()
        negotiated = {
            t: (list(t._codecs), list(t._headerExtensions))
            for t in transceivers
            if t.currentDirection is not None and not t.stopped
        }
        offer = await super().createOffer()
        return rewrite_offer(offer, transceivers, negotiated, self._payload_registry)

    async def setRemoteDescription(self, sessionDescription: RTCSessionDescription) -> None:
        self._payload_registry.learn_description(sessionDescription.sdp)
        await super().setRemoteDescription(sessionDescription)

    async def setLocalDescription(
        self, sessionDescription: RTCSessionDescription | None = None
    ) -> None:
        for gatherer in self._ice_gatherers():
            if self.loopback:
                _enable_loopback(gatherer)
            apply_network(gatherer, self.network)
        await super().setLocalDescription(sessionDescription)

    def _ice_gatherers(self) -> list[RTCIceGatherer]:
        gatherers = [t.sender.transport.transport.iceGatherer for t in self.getTransceivers()]
        if self.sctp is not None:
            gatherers.append(self.sctp.transport.transport.iceGatherer)
        return gatherers


def create_peer_connection(
    *, loopback: bool, network: PeerNetwork | None = None
) -> RTCPeerConnection:
    """Build a server-side peer connection: configured ICE servers only, max-bundle,
    browser-safe re-offers, optional loopback, announced address and port range.

    :param loopback: also offer a ``127.0.0.1`` host candidate (tests, single-host
        dev setups; Chromium needs ``--allow-loopback-in-peer-connection``).
    :param network: ICE servers, announced address and UDP port range
        (``PeerNetwork.from_settings(settings, participant_id, time.time())``);
        none by default.
    """
    network = network or PeerNetwork()
    configuration = RTCConfiguration(
        iceServers=list(network.ice_servers), bundlePolicy=RTCBundlePolicy.MAX_BUNDLE
    )
    if loopback:
        _install_host_address_patch()
    return ServerPeerConnection(configuration, loopback=loopback, network=network)
