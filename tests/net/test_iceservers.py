"""[ice] settings, TURN REST credentials and the netinfo message."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from server.config import ConfigError, Settings, load_settings
from server.iceservers import (
    ice_servers_for,
    parse_url,
    server_ice_servers,
    turn_credentials,
    turn_kind,
)
from server.netinfo import MAX_REPORTS, audit_event, record_netinfo
from server.signalling import NetInfo, ProtocolError, parse_client_message

TURN = (
    "turn:turn.example.org:3478?transport=udp, turn:turn.example.org:3478?transport=tcp,"
    " turns:turn.example.org:443?transport=tcp"
)


def settings(**ice: object) -> Settings:
    return load_settings(env={}, overrides={"ice": ice})


def test_credentials_follow_the_turn_rest_scheme() -> None:
    username, password = turn_credentials("s3cret", "abc123", now=1_700_000_000.7, ttl_s=600)
    assert username == "1700000600:abc123"
    expected = hmac.new(b"s3cret", b"1700000600:abc123", hashlib.sha1).digest()
    assert base64.b64decode(password) == expected
    # A different secret or user gives another password.
    assert turn_credentials("other", "abc123", 1_700_000_000, 600)[1] != password
    assert turn_credentials("s3cret", "abc124", 1_700_000_000, 600)[1] != password


def test_welcome_ice_servers_carry_minted_credentials_never_the_secret() -> None:
    s = settings(stun_urls="stun:turn.example.org:3478", turn_urls=TURN, turn_secret="s3cret")
    servers = ice_servers_for(s, "pid1", 1_000_000.0)
    assert servers[0] == {"urls": ["stun:turn.example.org:3478"]}
    turn = servers[1]
    assert turn["urls"] == [
        "turn:turn.example.org:3478?transport=udp",
        "turn:turn.example.org:3478?transport=tcp",
        "turns:turn.example.org:443?transport=tcp",
    ]
    assert turn["username"] == "1003600:pid1"
    assert "s3cret" not in json.dumps(servers)
    # Minted per join: another participant, another credential.
    assert ice_servers_for(s, "pid2", 1_000_000.0)[1]["credential"] != turn["credential"]


def test_nothing_configured_means_no_ice_servers() -> None:
    s = settings()
    assert ice_servers_for(s, "p", 0.0) == []
    assert server_ice_servers(s, "p", 0.0) == []


def test_server_peer_has_its_own_turn_user_and_can_skip_turn() -> None:
    s = settings(stun_urls="stun:a.example:3478", turn_urls=TURN, turn_secret="x")
    servers = server_ice_servers(s, "p", 0.0)
    assert servers[1]["username"].endswith(":server-p")
    off = settings(
        stun_urls="stun:a.example:3478", turn_urls=TURN, turn_secret="x", server_turn=False
    )
    assert server_ice_servers(off, "p", 0.0) == [{"urls": ["stun:a.example:3478"]}]


def test_url_parsing_matches_what_browsers_and_aiortc_accept() -> None:
    assert parse_url("turns:t.example")["port"] == 5349
    assert parse_url("turn:10.0.0.1")["transport"] == "udp"
    assert [turn_kind(u.strip()) for u in TURN.split(",")] == ["udp", "tcp", "tls"]
    for bad in ("http://x", "turn:", "stun:x?transport=udp", "turns:x?transport=udp"):
        with pytest.raises(ValueError):
            parse_url(bad)


@pytest.mark.parametrize(
    "ice",
    [
        {"turn_urls": TURN},  # no secret
        {"turn_urls": "stun:x", "turn_secret": "s"},
        {"stun_urls": "turn:x"},
        {"announced_address": "not-an-ip"},
        {"announced_address": "127.0.0.1"},
        {"announced_address": "2001:db8::1"},
        {"port_min": 50000, "port_max": 40000},
        {"port_min": 80, "port_max": 90},
        {"credential_ttl_s": 10},
    ],
)
def test_bad_ice_settings_are_refused_at_start(ice: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match=r"\[ice\]"):
        settings(**ice)


def test_ice_settings_come_from_the_environment() -> None:
    s = load_settings(
        env={
            "VIDEOGATE_ICE_ANNOUNCED_ADDRESS": "203.0.113.10",
            "VIDEOGATE_ICE_PORT_MIN": "40000",
            "VIDEOGATE_ICE_PORT_MAX": "40099",
            "VIDEOGATE_ICE_TURN_URLS": "turn:t.example:3478",
            "VIDEOGATE_ICE_TURN_SECRET": "from-env",
        }
    )
    assert (s.ice.announced_address, s.ice.port_min, s.ice.port_max) == (
        "203.0.113.10",
        40000,
        40099,
    )
    assert s.ice.turn_secret == "from-env"


def test_netinfo_is_validated() -> None:
    msg = parse_client_message(
        json.dumps(
            {
                "type": "netinfo",
                "state": "connected",
                "path": "relay",
                "local": "relay",
                "remote": "host",
                "protocol": "udp",
                "relay_protocol": "tls",
                "elapsed_ms": 812,
            }
        ),
        65536,
    )
    assert isinstance(msg, NetInfo)
    assert audit_event(msg) == (
        "media.connected",
        {
            "path": "relay",
            "local": "relay",
            "remote": "host",
            "protocol": "udp",
            "relay_protocol": "tls",
            "elapsed_ms": 812,
        },
    )
    failed = parse_client_message(
        '{"type": "netinfo", "state": "failed", "cause": "no_relay"}', 65536
    )
    assert isinstance(failed, NetInfo)
    assert audit_event(failed) == ("media.failed", {"cause": "no_relay"})
    for bad in (
        {"type": "netinfo"},
        {"type": "netinfo", "state": "great"},
        {"type": "netinfo", "state": "failed", "cause": "<script>"},
        {"type": "netinfo", "state": "connected", "path": 3},
        {"type": "netinfo", "state": "connected", "elapsed_ms": -1},
        {"type": "netinfo", "state": "connected", "elapsed_ms": True},
    ):
        with pytest.raises(ProtocolError):
            parse_client_message(json.dumps(bad), 65536)


class _Services:
    def __init__(self) -> None:
        self.records: list[tuple[str, dict[str, object]]] = []

    def audit(self, _participant: object, event: str, details: dict[str, object]) -> None:
        self.records.append((event, details))


class _Participant:
    def __init__(self) -> None:
        self.id = "p1"
        self.services = _Services()


def test_a_page_cannot_flood_the_audit_log_with_netinfo() -> None:
    participant = _Participant()
    report = NetInfo("connected", "nat", "host", "host", "udp", None, None, 120)
    for _ in range(MAX_REPORTS + 5):
        record_netinfo(participant, report)  # type: ignore[arg-type]
    assert len(participant.services.records) == MAX_REPORTS
    assert participant.services.records[0] == (
        "media.connected",
        {"path": "nat", "local": "host", "remote": "host", "protocol": "udp", "elapsed_ms": 120},
    )
