"""Fuzz the signalling parser: any input is a typed message or a ProtocolError."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from server.signalling import ProtocolError, parse_client_message

LIMIT = 65536
TYPES = ["join", "offer", "answer", "candidate", "ready", "leave", "media", "x", ""]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
messages = st.fixed_dictionaries(
    {"type": st.sampled_from(TYPES)},
    optional={
        "room": json_values,
        "invite": json_values,
        "name": json_values,
        "rejoin": json_values,
        "sdp": st.one_of(json_values, st.text().map(lambda t: "v=0" + t)),
        "candidate": json_values,
        "sdpMid": json_values,
        "sdpMLineIndex": json_values,
        "audio": json_values,
        "video": json_values,
    },
)


@settings(max_examples=400, deadline=None)
@given(messages)
def test_structured_messages_parse_or_raise_protocol_error(msg: dict[str, object]) -> None:
    try:
        parsed = parse_client_message(json.dumps(msg), LIMIT)
    except ProtocolError as err:
        assert err.code and err.message
    else:
        assert type(parsed).__name__.lower() in {
            "join",
            "offer",
            "answer",
            "candidate",
            "ready",
            "leave",
            "mediastate",
        }


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=2048), st.text(max_size=2048)))
def test_arbitrary_bytes_never_crash(raw: bytes | str) -> None:
    try:
        parse_client_message(raw, LIMIT)
    except ProtocolError:
        pass


def _strings(parsed: object) -> list[str]:
    return [v for v in vars(parsed).values() if isinstance(v, str)]


surrogate_text = st.text(
    alphabet=st.one_of(
        st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),
        st.characters(max_codepoint=0x10FFFF, exclude_categories=("Cs",)),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["room", "invite", "name", "rejoin", "sdp"]),
    surrogate_text,
    st.sampled_from(["join", "offer", "answer"]),
)
def test_parsed_strings_are_always_valid_text(field: str, value: str, kind: str) -> None:
    """JSON can escape lone surrogates ("\\ud800"); nothing parsed may carry one (the
    store and the SDP parser would raise on it, far from the socket)."""
    msg = {"type": kind, "room": "r", field: ("v=0" + value) if field == "sdp" else value}
    raw = json.dumps(msg)  # ensure_ascii: surrogates travel as \\udxxx escapes
    try:
        parsed = parse_client_message(raw, LIMIT)
    except ProtocolError as err:
        assert err.code
    else:
        for text in _strings(parsed):
            text.encode("utf-8")
