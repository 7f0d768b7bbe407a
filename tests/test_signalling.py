"""Validation of every client message: bad input is a typed error, never a crash."""

from __future__ import annotations

import json

import pytest

from server.signalling import (
    Answer,
    Candidate,
    Join,
    Leave,
    MediaState,
    Offer,
    ProtocolError,
    Ready,
    parse_client_message,
)

LIMIT = 65536


def parse(obj: object) -> object:
    return parse_client_message(json.dumps(obj), LIMIT)


def test_valid_messages() -> None:
    assert parse({"type": "join", "room": "r", "invite": "t", "name": " Ada "}) == Join(
        "r", "t", "Ada", None
    )
    assert parse({"type": "offer", "sdp": "v=0\r\n"}) == Offer("v=0\r\n")
    assert parse({"type": "answer", "sdp": "v=0\r\n"}) == Answer("v=0\r\n")
    assert parse({"type": "candidate", "candidate": "", "sdpMid": "0", "sdpMLineIndex": 0}) == (
        Candidate("", "0", 0)
    )
    assert parse({"type": "ready"}) == Ready()
    assert parse({"type": "leave"}) == Leave()
    assert parse({"type": "media", "audio": False, "video": True}) == MediaState(False, True)


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("not json", "bad_json"),
        ("[1,2]", "bad_message"),
        ("{}", "bad_message"),
        ('{"type": "dance"}', "unknown_type"),
        ('{"type": "join"}', "missing_field"),
        ('{"type": "join", "room": 5}', "bad_field"),
        ('{"type": "join", "room": ""}', "bad_field"),
        ('{"type": "join", "room": "' + "x" * 100 + '"}', "too_large"),
        ('{"type": "offer", "sdp": "hello"}', "bad_sdp"),
        ('{"type": "offer"}', "missing_field"),
        ('{"type": "candidate", "candidate": "x", "sdpMLineIndex": "0"}', "bad_field"),
        ('{"type": "media", "audio": 1, "video": true}', "bad_field"),
        (b"\xff\xfe", "bad_json"),
    ],
)
def test_invalid_messages(raw: str | bytes, code: str) -> None:
    with pytest.raises(ProtocolError) as err:
        parse_client_message(raw, LIMIT)
    assert err.value.code == code


def test_oversized_message_is_refused_before_parsing() -> None:
    with pytest.raises(ProtocolError) as err:
        parse_client_message("{" + " " * 100 + "}", 50)
    assert err.value.code == "too_large"


def test_oversized_sdp_is_refused() -> None:
    with pytest.raises(ProtocolError) as err:
        parse({"type": "offer", "sdp": "v=0" + "a" * 40000})
    assert err.value.code == "too_large"
