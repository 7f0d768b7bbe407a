"""Behind a reverse proxy: each client keeps its own address (for lockout, rejoin
binding and limits), and nobody can choose theirs by sending a forwarding header."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from server.app import HUB
from server.face.engine import FaceEngine
from server.store import SqliteStore
from tests.integration.conftest import Gatekeeper, video_frame

from .conftest import serve
from .wsutil import send_recv


async def joined_ip(gk: Gatekeeper, invite: str, headers: dict[str, str]) -> str:
    """Join over /ws with ``headers``; the address the server keyed the participant on."""
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(gk.base_url + "/ws", headers=headers) as ws,
    ):
        welcome = await send_recv(ws, {"type": "join", "room": gk.room_slug, "invite": invite})
        assert welcome["type"] == "welcome", welcome
        participant = gk.app[HUB].rooms[gk.room_id].participants[welcome["participant_id"]]
        return participant.ip


def enrol(gk: Gatekeeper, faces_dir: Path) -> str:
    return gk.enrol_frame("D9", video_frame(faces_dir / "videos" / "liveportrait_d9.mp4", 0.5))


async def test_clients_behind_a_trusted_proxy_keep_their_own_address(
    robust_engine: FaceEngine, robust_store: SqliteStore, tmp_path: Path, faces_dir: Path
) -> None:
    trusted = {"trusted_proxies": "127.0.0.1/32"}
    async with serve(robust_engine, robust_store, tmp_path, server=trusted) as gk:
        invite = enrol(gk, faces_dir)
        # What nginx sends for two different people (the first also forged a header).
        first = await joined_ip(gk, invite, {"X-Forwarded-For": "1.1.1.1, 81.2.69.160"})
        second = await joined_ip(gk, invite, {"X-Forwarded-For": "81.2.69.161"})
        assert (first, second) == ("81.2.69.160", "81.2.69.161")


async def test_forwarding_headers_from_an_untrusted_peer_are_ignored(
    robust_engine: FaceEngine, robust_store: SqliteStore, tmp_path: Path, faces_dir: Path
) -> None:
    async with serve(robust_engine, robust_store, tmp_path) as gk:  # default: none trusted
        invite = enrol(gk, faces_dir)
        spoofed = {"X-Forwarded-For": "81.2.69.160", "Forwarded": "for=81.2.69.161"}
        assert await joined_ip(gk, invite, spoofed) == "127.0.0.1"
