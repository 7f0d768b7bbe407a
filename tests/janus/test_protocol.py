"""Janus requests and replies as values (server/janus/protocol.py): no Janus needed."""

from __future__ import annotations

import pytest

from server.janus import protocol as jp
from server.media_settings import MediaSettings, MediaSettingsError, validate_media_settings


def test_room_placement_is_stable_and_spread() -> None:
    rooms = [f"room-{i}" for i in range(400)]
    first = [jp.instance_index(r, 3) for r in rooms]
    assert first == [jp.instance_index(r, 3) for r in rooms]
    counts = [first.count(i) for i in range(3)]
    assert min(counts) > 80, counts
    # A fourth instance takes rooms only onto itself: nobody moves between the others.
    moved = [(a, jp.instance_index(r, 4)) for r, a in zip(rooms, first, strict=True)]
    assert all(b in (a, 3) for a, b in moved)
    assert any(b == 3 for _, b in moved)


def test_room_numbers_and_secrets() -> None:
    number = jp.room_number("abc")
    assert number == jp.room_number("abc") != jp.room_number("abd")
    assert 0 < number < 2**53
    assert jp.room_secret("k", "abc") == jp.room_secret("k", "abc")
    assert jp.room_secret("k", "abc") != jp.room_secret("other", "abc")


def test_create_checks_tokens_and_private_ids() -> None:
    body = jp.create_room(5, "s", "ak", publishers=10, description="d")
    assert body["allowed"] == [] and body["require_pvtid"] is True
    assert body["secret"] == "s" and body["admin_key"] == "ak" and body["is_private"] is True
    assert "admin_key" not in jp.create_room(5, "s", "", publishers=10, description="d")
    with pytest.raises(ValueError):
        jp.allowed(5, "s", "enable", [])


def test_check_reply_raises_core_and_plugin_errors() -> None:
    with pytest.raises(jp.JanusError) as core:
        jp.check_reply({"janus": "error", "error": {"code": 458, "reason": "No such session"}})
    assert core.value.code == jp.ERR_NO_SUCH_SESSION
    plugin = {"janus": "success", "plugindata": {"data": {"error_code": 433, "error": "no"}}}
    with pytest.raises(jp.JanusError) as denied:
        jp.check_reply(plugin)
    assert denied.value.code == jp.ERR_UNAUTHORIZED
    ok = {"janus": "success", "plugindata": {"data": {"participants": [
        {"id": 3, "display": "a", "publisher": True}, {"id": "x"}]}}}  # fmt: skip
    assert jp.members(jp.check_reply(ok)) == [jp.Member(3, "a", True)]


def test_media_settings_validation() -> None:
    validate_media_settings(MediaSettings())
    for bad in (
        MediaSettings(backend="mediasoup"),
        MediaSettings(backend="janus"),
        MediaSettings(janus_urls="ftp://x"),
        MediaSettings(janus_urls="http://a/janus,http://b/janus", janus_public_urls="http://c"),
    ):
        with pytest.raises(MediaSettingsError):
            validate_media_settings(bad)
    two = MediaSettings(janus_urls="http://a/janus/, http://b/janus")
    assert two.urls == two.public_urls == ["http://a/janus", "http://b/janus"]
