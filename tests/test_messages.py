"""The server's outbound messages (server/messages.py) are exactly what docs/protocol.md says."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from server.messages import MESSAGE_TYPES, Error, Peer, Peers, encode

DOC = Path(__file__).resolve().parents[1] / "docs" / "protocol.md"


def documented_server_messages() -> dict[str, set[str]]:
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## Server → client", 1)[1].split("\n## ", 1)[0]
    found: dict[str, set[str]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue
        fields = re.sub(r"\([^)]*\)", "", cells[1]).split(":", 1)[0]
        found[cells[0].strip("`")] = set(re.findall(r"`(\w+)`", fields))
    return found


def test_every_message_type_is_documented_with_its_fields() -> None:
    documented = documented_server_messages()
    ours = {m.TYPE: {f.name for f in dataclasses.fields(m)} for m in MESSAGE_TYPES}
    assert ours == documented


def test_encode_puts_the_type_first_and_nests_values() -> None:
    assert list(encode(Error("bad_json", "x"))) == ["type", "code", "message", "fatal"]
    peers = encode(Peers([Peer("a", "Ada", ["1"], True, False)]))
    assert peers == {
        "type": "peers",
        "peers": [{"id": "a", "name": "Ada", "mids": ["1"], "audio": True, "video": False}],
    }
