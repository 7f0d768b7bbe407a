"""Real networks, simulated: NAT, 1:1 NAT with an announced address, UDP blocked.

Topology and teardown: ``netns.py`` and ``conftest.py``. The server runs in its
private namespace behind a 1:1 NAT and announces the public address; coturn
(Debian's package, installed by ``scripts/setup.sh --with-browser``) runs in the
"internet" namespace with a generated configuration; participants are aiortc
clients (``netclient.py``) run in the client namespace, behind a masquerading NAT.
The page itself is driven through the same topology in ``test_netns_browser.py``.
"""

from __future__ import annotations

import json

from .netns import remove_orphans, sh
from .world import (
    Enrolled,
    GateServers,
    Net,
    audit,
    health,
    run_clients,
    server_udp_sockets,
    wait_for,
)


def test_clients_behind_nat_reach_a_server_behind_1to1_nat(
    net: Net, enrolled: Enrolled, servers: GateServers
) -> None:
    net.topo.unblock_client()
    with servers.use(turn=True):
        results = run_clients(net, enrolled, ["Dee Nine", "Lestari"], "--see-each-other")
        for result in results:
            assert result["connected"] and result["admitted"], json.dumps(results)
            # The server's candidate is the announced public address, reached from
            # behind the client's masquerading NAT: no relay needed.
            assert result["path"] == "nat", results
            assert result["video_frames_from_others"] >= 10, results
        connected = audit(enrolled, "media.connected")
        assert {c["path"] for c in connected[-2:]} == {"nat"}


def test_udp_blocked_client_is_relayed_over_turn_tls_on_443(
    net: Net, enrolled: Enrolled, servers: GateServers
) -> None:
    net.topo.block_client_udp(allow_tcp_443=True)
    try:
        with servers.use(turn=True):
            (result,) = run_clients(net, enrolled, ["Dee Nine"], "--turn-transport", "tls")
            assert result["connected"] and result["admitted"], result
            assert result["path"] == "relay" and result["local"] == "relay", result
            assert audit(enrolled, "media.connected")[-1]["relay_protocol"] == "tls"
    finally:
        net.topo.unblock_client()


def test_udp_blocked_without_turn_fails_clearly_and_leaks_nothing(
    net: Net, enrolled: Enrolled, servers: GateServers
) -> None:
    net.topo.block_client_udp(allow_tcp_443=True)
    try:
        with servers.use(turn=False):
            (result,) = run_clients(net, enrolled, ["Dee Nine"], "--connect-timeout", "8")
            assert not result["connected"] and result["cause"] == "no_relay", result
            wait_for(
                lambda: [r["cause"] for r in audit(enrolled, "media.failed")] == ["no_relay"],
                10,
                "media.failed in the audit log",
            )
            # The client's leave freed everything: no participant, no ICE socket.
            wait_for(lambda: health(net).get("participants") == 0, 10, "participant freed")
            wait_for(lambda: not server_udp_sockets(net), 10, "ICE sockets closed")
    finally:
        net.topo.unblock_client()


def test_namespaces_of_a_killed_run_are_removed_by_the_next(net: Net) -> None:
    """A run killed by SIGKILL cannot clean up: the next one removes what it left."""
    orphan = "vg999999999xdead-cli"  # no such PID
    sh("ip", "netns", "add", orphan)
    try:
        assert orphan in remove_orphans()
        assert orphan not in sh("ip", "netns", "list")
        # Namespaces of live runs (this one) are left alone.
        assert net.topo.ns("cli") in sh("ip", "netns", "list")
    finally:
        sh("ip", "netns", "del", orphan, check=False)
