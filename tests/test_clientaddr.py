"""Client address behind trusted proxies: spoofing attempts and real proxy chains."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict

from server.clientaddr import client_address, forwarded_hops, parse_trusted

PROXY = "10.0.0.2"
TRUSTED = parse_trusted("10.0.0.0/24, 127.0.0.1, ::1")


def xff(*values: str) -> CIMultiDict[str]:
    return CIMultiDict(("X-Forwarded-For", v) for v in values)


def test_headers_are_ignored_unless_the_peer_is_a_trusted_proxy() -> None:
    spoof = xff("81.2.69.160")
    assert client_address("203.0.113.9", spoof, ()) == "203.0.113.9"
    assert client_address("203.0.113.9", spoof, TRUSTED) == "203.0.113.9"
    forwarded = CIMultiDict({"Forwarded": "for=81.2.69.160"})
    assert client_address("203.0.113.9", forwarded, TRUSTED, header="forwarded") == "203.0.113.9"
    assert client_address(None, spoof, TRUSTED) == "unknown"


def test_rightmost_untrusted_hop_wins_over_what_the_client_wrote() -> None:
    # The client sent "X-Forwarded-For: 1.1.1.1"; nginx appended the real peer.
    assert client_address(PROXY, xff("1.1.1.1, 81.2.69.160"), TRUSTED) == "81.2.69.160"
    # Two trusted proxies (CDN edge in the trusted range, then ours).
    chain = xff("1.1.1.1, 81.2.69.160, 10.0.0.7")
    assert client_address(PROXY, chain, TRUSTED) == "81.2.69.160"
    # Repeated header lines count in order.
    assert client_address(PROXY, xff("1.1.1.1", "81.2.69.160"), TRUSTED) == "81.2.69.160"
    # Every hop trusted (an internal client): the leftmost.
    assert client_address(PROXY, xff("10.0.0.9, 10.0.0.7"), TRUSTED) == "10.0.0.9"
    # No header from a trusted proxy: the proxy itself.
    assert client_address(PROXY, CIMultiDict(), TRUSTED) == PROXY


def test_garbage_stops_the_walk_at_the_last_trusted_hop() -> None:
    assert client_address(PROXY, xff("81.2.69.160, unknown"), TRUSTED) == PROXY
    assert client_address(PROXY, xff("81.2.69.160, 10.0.0.7, <script>"), TRUSTED) == PROXY
    assert client_address(PROXY, xff("81.2.69.160, 10.0.0.7, _hidden"), TRUSTED) == PROXY
    assert client_address(PROXY, xff(""), TRUSTED) == PROXY


def test_forwarded_header_rfc7239() -> None:
    headers = CIMultiDict(
        {"Forwarded": 'for=1.1.1.1, for="[2001:db8:cafe::17]:4711";proto=https;by=10.0.0.2'}
    )
    assert forwarded_hops("forwarded", headers.getall("Forwarded")) == [
        "1.1.1.1",
        '"[2001:db8:cafe::17]:4711"',
    ]
    assert client_address(PROXY, headers, TRUSTED, header="forwarded") == "2001:db8:cafe::17"
    # X-Forwarded-For is not read when Forwarded is the configured header, and back.
    both = CIMultiDict({"Forwarded": "for=81.2.69.160", "X-Forwarded-For": "1.1.1.1"})
    assert client_address(PROXY, both, TRUSTED, header="forwarded") == "81.2.69.160"
    assert client_address(PROXY, both, TRUSTED) == "1.1.1.1"
    odd = CIMultiDict({"Forwarded": 'for="_gazonk", for=81.2.69.160:1234'})
    assert client_address(PROXY, odd, TRUSTED, header="forwarded") == "81.2.69.160"
    no_for = CIMultiDict({"Forwarded": "for=81.2.69.160, proto=https"})
    assert client_address(PROXY, no_for, TRUSTED, header="forwarded") == PROXY


def test_ports_and_mapped_addresses() -> None:
    assert client_address(PROXY, xff("81.2.69.160:5555"), TRUSTED) == "81.2.69.160"
    assert client_address(PROXY, xff("[2a00:1450::1]:443"), TRUSTED) == "2a00:1450::1"
    assert client_address("::ffff:10.0.0.2", xff("81.2.69.160"), TRUSTED) == "81.2.69.160"
    assert client_address("::1", xff("81.2.69.160"), TRUSTED) == "81.2.69.160"


def test_parse_trusted() -> None:
    assert [str(n) for n in parse_trusted(" 10.0.0.1/8 ; fd00::/8,")] == ["10.0.0.0/8", "fd00::/8"]
    assert parse_trusted("") == ()
    with pytest.raises(ValueError, match="nginx"):
        parse_trusted("10.0.0.0/8, nginx")
