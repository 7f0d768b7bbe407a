"""Smaller web holes: invite links built from a forged Host header, an over-talkative
/healthz, and Pillow decoders we never meant to expose."""

from __future__ import annotations

import contextlib
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import aiohttp
import numpy as np
import pytest
from aiohttp.test_utils import TestServer
from PIL import Image

from server.app import create_app
from server.config import load_settings
from server.face.engine import FaceEngine
from server.face.imageio import ImageError, decode_image
from server.store import open_store

EVIL = "evil.example:4443"


@contextlib.asynccontextmanager
async def serve(tmp_path: Path, **server_settings: Any) -> AsyncIterator[dict[str, Any]]:
    """An app with a dummy engine (nothing here analyses a face) and one API key."""
    settings = load_settings(
        env={},
        overrides={
            "server": {
                "data_dir": str(tmp_path),
                "host": "127.0.0.1",
                "port": 8080,  # the configured address, not the test server's port
                "metrics_token": "m3trics-t0ken-for-tests",
                **server_settings,
            }
        },
    )
    store = open_store(tmp_path)
    app = create_app(settings, engine=cast(FaceEngine, object()), store=store)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    owner = store.create_owner("o@example.org", "x")
    _, key = store.create_api_key(owner.id, "k")
    room = store.create_room("Board", owner_id=owner.id)
    try:
        yield {"base": str(server.make_url("")).rstrip("/"), "key": key, "room": room}
    finally:
        await server.close()
        store.close()


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    async with serve(tmp_path) as s:
        yield s


async def _invite_link(served: dict[str, Any]) -> str:
    headers = {"Authorization": f"Bearer {served['key']}", "Host": EVIL}
    url = f"{served['base']}/api/v1/rooms/{served['room'].id}/invites"
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, json={}, headers=headers) as resp,
    ):
        assert resp.status == 201, await resp.text()
        return str((await resp.json())["url"])


async def test_invite_links_ignore_the_host_header(tmp_path: Path) -> None:
    """Without public_url the link comes from the configured host and port; with it,
    from public_url; a forged Host header never shows up."""
    async with serve(tmp_path / "plain") as served:
        link = await _invite_link(served)
        assert link.startswith(f"http://127.0.0.1:8080/r/{served['room'].link}?invite=")
    async with serve(tmp_path / "public", public_url="https://meet.example.org/") as served:
        link = await _invite_link(served)
        assert link.startswith(f"https://meet.example.org/r/{served['room'].link}?invite=")
    assert "evil.example" not in link


async def test_hsts_when_the_public_url_is_https(tmp_path: Path) -> None:
    """Behind a TLS-terminating proxy (public_url https) every response carries HSTS;
    a plain-http deployment sends none (tests/robustness/test_http_hardening.py covers
    TLS served directly)."""
    async with serve(tmp_path / "https", public_url="https://meet.example.org") as served:
        async with aiohttp.ClientSession() as http, http.get(served["base"] + "/nope") as resp:
            assert resp.headers["Strict-Transport-Security"] == "max-age=31536000"
    async with serve(tmp_path / "http") as served:
        async with aiohttp.ClientSession() as http, http.get(served["base"] + "/") as resp:
            assert "Strict-Transport-Security" not in resp.headers


async def test_healthz_says_ok_and_nothing_else(served: dict[str, Any]) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(served["base"] + "/healthz") as resp:
            assert await resp.json() == {"ok": True}
        async with http.get(served["base"] + "/metrics") as resp:
            assert resp.status == 401  # the details are for the operator
        bearer = {"Authorization": "Bearer m3trics-t0ken-for-tests"}
        async with http.get(served["base"] + "/metrics", headers=bearer) as resp:
            text = await resp.text()
            assert resp.status == 200
    assert "videogate_participants 0" in text and "videogate_default_threshold" in text
    assert 'videogate_workpool_queued{lane="upload"} 0' in text


def _encode(fmt: str, mode: str = "RGB") -> bytes:
    arr = np.random.default_rng(7).integers(0, 255, (32, 48, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(arr).convert(mode).save(out, format=fmt)
    return out.getvalue()


@pytest.mark.parametrize(
    ("fmt", "mode"),
    [
        ("TGA", "RGB"),
        ("PCX", "RGB"),
        ("SGI", "RGB"),
        ("TIFF", "RGB"),
        ("PPM", "RGB"),
        ("ICO", "RGB"),
        ("DDS", "RGBA"),
        ("QOI", "RGB"),
    ],  # fmt: skip
)
def test_formats_we_do_not_accept_are_never_decoded(fmt: str, mode: str) -> None:
    data = _encode(fmt, mode)
    assert Image.open(io.BytesIO(data)).format == fmt  # Pillow alone would decode it
    with pytest.raises(ImageError) as caught:
        decode_image(data)
    assert caught.value.code == "not_an_image"


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "BMP"])
def test_accepted_formats_still_decode(fmt: str) -> None:
    rgb = decode_image(_encode(fmt))
    assert rgb.shape == (32, 48, 3) and rgb.dtype == np.uint8


async def test_webhooks_to_internal_addresses_are_refused_at_creation(
    served: dict[str, Any],
) -> None:
    """The owner hears it at once (422 ``bad_url``); delivery-time checks stay the defence
    for names (tests/robustness/test_webhook_abuse.py)."""
    headers = {"Authorization": f"Bearer {served['key']}"}
    url = f"{served['base']}/api/v1/rooms/{served['room'].id}/webhooks"
    async with aiohttp.ClientSession() as http:
        for target in (
            "http://169.254.169.254/latest/meta-data/",
            "http://127.0.0.1:6379/",
            "http://[::1]/x",
            "http://2130706433/x",
            "http://localhost:8080/x",
            "http://10.0.0.1/x",
        ):
            async with http.post(url, json={"url": target}, headers=headers) as resp:
                body = await resp.json()
                assert (resp.status, body["error"]["code"]) == (422, "bad_url"), target
        async with http.post(
            url, json={"url": "https://hooks.example.org/x"}, headers=headers
        ) as resp:
            assert resp.status == 201
