"""Remote ICE candidates: strict parsing, the address filter and the cap (pure)."""

from __future__ import annotations

import pytest

from server.rtc.candidates import (
    CandidateFilter,
    CandidatePolicy,
    MalformedCandidate,
    Outcome,
    address_allowed,
    parse_candidate,
)

PUBLIC = "candidate:842163049 1 udp 1677729535 198.51.100.7 54321 typ srflx raddr 0.0.0.0 rport 0"
PUBLIC = PUBLIC.replace("198.51.100.7", "81.2.69.160")  # a global address (not documentation)


def host(address: str, port: int = 50000, proto: str = "udp") -> str:
    return f"candidate:1 1 {proto} 2122260223 {address} {port} typ host"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "candidate:",
        "candidate:1 1 udp 2122260223 10.0.0.5 5000",  # no typ: aiortc asserts
        "candidate:1 1 udp 2122260223 10.0.0.5 5000 typ",
        "candidate:1 1 udp 2122260223 10.0.0.5 5000 host typ",
        "candidate:1 1 udp 2122260223 10.0.0.5 99999 typ host",  # port out of range
        "candidate:1 1 udp 2122260223 10.0.0.5 0 typ host",
        "candidate:1 1 udp 2122260223 10.0.0.5 -1 typ host",
        "candidate:1 0 udp 2122260223 10.0.0.5 5000 typ host",  # component 0
        "candidate:1 1 udp 0 10.0.0.5 5000 typ host",
        "candidate:1 1 udp 99999999999 10.0.0.5 5000 typ host",
        "candidate:1 1 sctp 2122260223 10.0.0.5 5000 typ host",
        "candidate:1 1 udp 2122260223 10.0.0.5 5000 typ weird",
        "candidate:1 1 udp 2122260223 internal.corp 5000 typ host",  # DNS name
        "candidate:1 1 udp 2122260223 metadata.google.internal 80 typ host",
        "candidate:1 1 udp 2122260223 10.0.0.5 5000 typ srflx raddr",  # dangling
        "candidate:1 1 udp 2122260223 10.0.0.5 5000 typ srflx rport x",
        "candidate:a!b 1 udp 2122260223 10.0.0.5 5000 typ host",
        "candidate:1 1 udp 2122260223 10.0.0.5 5000 typ host " + "x y " * 30,
        "candidate:1 1 udp 2122260223 10.0.0.5 ５０００ typ host",  # non-ASCII digits
    ],
)
def test_malformed_candidates_raise_a_typed_error(text: str) -> None:
    with pytest.raises(MalformedCandidate):
        parse_candidate(text)
    judged = CandidateFilter(CandidatePolicy(allow_private=True)).judge(text)
    assert judged.outcome is Outcome.MALFORMED


def test_browser_candidates_parse() -> None:
    chrome = parse_candidate(PUBLIC)
    assert (chrome.address, chrome.port, chrome.type, chrome.related_port) == (
        "81.2.69.160", 54321, "srflx", 0,
    )  # fmt: skip
    mdns = parse_candidate(
        "candidate:2 1 udp 2113937151 3c1e0d4e-4b0c-4c6a-9d4f-1f2e3d4c5b6a.local 56004 "
        "typ host generation 0 ufrag abcd network-cost 999"
    )
    assert mdns.address.endswith(".local")
    firefox = parse_candidate("a=candidate:0 1 UDP 2122252543 2001:db8::5 46135 typ host")
    assert firefox.protocol == "udp"
    rtc = chrome.to_rtc("0", 0)
    assert rtc.ip == "81.2.69.160" and rtc.sdpMid == "0" and rtc.type == "srflx"


@pytest.mark.parametrize(
    ("address", "public_only", "private_allowed"),
    [
        ("81.2.69.160", True, True),
        ("2a00:1450:4001:80b::200e", True, True),
        ("127.0.0.1", False, True),
        ("127.1.2.3", False, True),
        ("::1", False, True),
        ("10.0.0.5", False, True),
        ("172.16.3.4", False, True),
        ("192.168.1.1", False, True),
        ("169.254.169.254", False, True),  # cloud metadata
        ("fe80::1", False, True),
        ("fd00::1", False, True),
        ("100.64.0.1", False, True),
        ("::ffff:10.0.0.5", False, True),
        ("::ffff:81.2.69.160", True, True),
        ("224.0.0.251", False, False),  # mDNS multicast
        ("224.0.1.1", False, False),
        ("ff02::1", False, False),
        ("0.0.0.0", False, False),
        ("::", False, False),
        ("255.255.255.255", False, False),
        ("240.0.0.1", False, False),
        ("3c1e0d4e-4b0c-4c6a-9d4f-1f2e3d4c5b6a.local", False, True),
    ],
)
def test_address_filter(address: str, public_only: bool, private_allowed: bool) -> None:
    assert address_allowed(address, allow_private=False) is public_only
    assert address_allowed(address, allow_private=True) is private_allowed


def test_private_and_tcp_candidates_are_filtered_silently() -> None:
    flt = CandidateFilter(CandidatePolicy())
    assert flt.judge(host("10.0.0.5")).outcome is Outcome.FILTERED
    assert flt.judge(host("169.254.169.254", 80)).outcome is Outcome.FILTERED
    assert flt.judge(host("127.0.0.1", 6379)).outcome is Outcome.FILTERED
    assert flt.judge(host("81.2.69.160", 9, "tcp")).outcome is Outcome.FILTERED
    assert flt.judge(PUBLIC).outcome is Outcome.ACCEPTED
    assert (flt.accepted, flt.dropped) == (1, 4)
    loopback = CandidateFilter(CandidatePolicy(allow_private=True))
    assert loopback.judge(host("127.0.0.1", 6379)).outcome is Outcome.ACCEPTED


def test_cap_counts_offer_and_trickle_together() -> None:
    flt = CandidateFilter(CandidatePolicy(max_candidates=3))
    offer = "\r\n".join(
        [
            "v=0",
            "m=video 9 UDP/TLS/RTP/SAVPF 96",
            "a=" + host("81.2.69.160", 1000),
            "a=" + host("10.0.0.5", 1001),
            "a=" + host("81.2.69.160", 1002),
            "a=candidate:1 1 udp 2122260223 81.2.69.160 1003",  # malformed
            "a=end-of-candidates",
            "",
        ]
    )
    filtered = flt.filter_sdp(offer)
    assert "1000 typ" in filtered and "1002 typ" in filtered
    assert "10.0.0.5" not in filtered and "1003" not in filtered
    assert "a=end-of-candidates" in filtered and filtered.endswith("\r\n")
    assert flt.judge(host("81.2.69.160", 2000)).outcome is Outcome.ACCEPTED
    assert flt.judge(host("81.2.69.160", 2001)).outcome is Outcome.OVER_CAP
    assert flt.over_cap_first_time() and not flt.over_cap_first_time()
    assert flt.judge(host("81.2.69.160", 2002)).outcome is Outcome.OVER_CAP
    assert flt.accepted == 3
