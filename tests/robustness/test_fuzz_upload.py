"""Fuzz the upload parsers: ``decode_image`` and the photo handlers of the owner UI and
the REST API. Any bytes give an RGB array or a typed refusal (``ImageError`` with a
known code; HTTP 4xx with a JSON error), never an exception or a 500.
"""

from __future__ import annotations

import io
import random
import struct
import zlib

import aiohttp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from server.api.photos import evaluate
from server.face.engine import FaceEngine
from server.face.imageio import ImageError, decode_image
from server.store import SqliteStore
from tests.integration.conftest import Gatekeeper

pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning:PIL.TiffImagePlugin"),
    pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning"),
]
CODES = {"empty", "not_an_image", "too_large", "corrupt"}
FORMATS = ["PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF", "ICO", "PPM"]


def sample(fmt: str, mode: str = "RGB", size: tuple[int, int] = (24, 16)) -> bytes:
    rng = np.random.default_rng(len(fmt) + len(mode))
    arr = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    im = Image.fromarray(arr).convert(mode)
    out = io.BytesIO()
    im.save(out, format=fmt)
    return out.getvalue()


SEEDS = [sample(f) for f in FORMATS] + [
    sample("PNG", "RGBA"),
    sample("PNG", "P"),
    sample("PNG", "I;16"),
    sample("JPEG", "CMYK"),
    sample("TIFF", "F"),
    sample("PNG", "1"),
]


def check_decode(data: bytes) -> None:
    try:
        rgb = decode_image(data)
    except ImageError as err:
        assert err.code in CODES, err
        assert err.message
    else:
        assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
        assert rgb.shape[0] > 0 and rgb.shape[1] > 0


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_decode_or_refuse(data: bytes) -> None:
    check_decode(data)


@st.composite
def mutated_images(draw: st.DrawFn) -> bytes:
    """A valid image of a supported format with bytes flipped, cut or spliced."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "zero"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[at] ^= draw(st.integers(1, 255))
        elif op == "cut":
            del data[at : at + draw(st.integers(1, 64))]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=32))
        elif data:
            data[at : at + 4] = b"\x00\x00\x00\x00"
    return bytes(data)


@settings(max_examples=600, deadline=None)
@given(mutated_images())
def test_mutated_images_decode_or_refuse(data: bytes) -> None:
    check_decode(data)


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` (a decompression bomb)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.mark.parametrize("size", [(7000, 7000), (50_000, 50_000), (2**31 - 1, 1), (1, 2**31 - 1)])
def test_absurd_dimensions_are_refused_from_the_header(size: tuple[int, int]) -> None:
    with pytest.raises(ImageError) as err:
        decode_image(png_claiming(*size))
    assert err.value.code in {"too_large", "corrupt"}


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.one_of(st.binary(max_size=512), mutated_images()))
def test_the_shared_photo_verdict_never_raises(robust_engine: FaceEngine, data: bytes) -> None:
    """``evaluate`` is what both upload handlers run on every photo."""
    verdict = evaluate(robust_engine, "x.jpg", data)
    assert verdict.ok is (verdict.embedding is not None)
    assert verdict.code == "ok" if verdict.ok else verdict.reasons


def nasty_bodies(count: int) -> list[bytes]:
    rng = random.Random(20261122)
    bodies = [b"", b"\x00" * 1000, b"GIF89a", png_claiming(60_000, 60_000)]
    for _ in range(count):
        data = bytearray(rng.choice(SEEDS))
        for _ in range(rng.randint(1, 6)):
            at = rng.randrange(len(data))
            data[at] ^= rng.randint(1, 255)
        bodies.append(bytes(data[: rng.randint(1, len(data))]))
    return bodies


async def test_api_and_owner_upload_handlers_refuse_garbage_with_4xx(
    gate: Gatekeeper, robust_store: SqliteStore
) -> None:
    owner = robust_store.create_owner("fuzz@example.org", "not-a-login")
    _, key = robust_store.create_api_key(owner.id, "fuzz")
    room = robust_store.create_room("Fuzz", owner_id=owner.id)
    person = robust_store.add_person(room.id, "Target", None, owner_id=owner.id)
    auth = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession() as http:
        for body in nasty_bodies(30):
            async with http.post(
                f"{gate.base_url}/api/v1/persons/{person.id}/faces", data=body, headers=auth
            ) as resp:
                assert resp.status in (201, 413, 422), (resp.status, await resp.text())
                error = (await resp.json()).get("error")
                assert resp.status == 201 or (error and error["code"]), error
        # Multipart that is not what the owner form sends: still a clean refusal.
        for payload in (b"--x\r\n\r\n", b"\x00" * 100, b"--b\r\nContent-Disposition: form-data"):
            async with http.post(
                f"{gate.base_url}/owner/people/{person.id}/photos",
                data=payload,
                headers={"Content-Type": "multipart/form-data; boundary=b", "X-CSRF-Token": "x"},
                allow_redirects=False,
            ) as resp:
                assert 400 <= resp.status < 500, resp.status
    assert robust_store.templates(person.id).shape[0] == 0
