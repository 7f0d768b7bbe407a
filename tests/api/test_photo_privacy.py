"""Retained photos keep no metadata: an owner uploads a phone photo with GPS in its
EXIF (plus XMP and a comment); what is stored and served back has none of it."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

from server.face.imageio import decode_image
from server.face.metadata import strip_metadata

from .conftest import STILLS, ApiWorld

SECRET = b"SECRET-"
GPS_IFD = 0x8825


def _exif(orientation: int = 1) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010E] = "SECRET-DESCRIPTION"  # ImageDescription
    exif[0x010F] = "SECRET-MAKER"  # Make
    exif[0x0112] = orientation
    gps = exif.get_ifd(GPS_IFD)
    gps[1], gps[2] = "N", (52.0, 22.0, 7.9)
    gps[3], gps[4] = "E", (4.0, 53.0, 50.4)
    return exif


def phone_jpeg(still: bytes, orientation: int = 1) -> bytes:
    im = Image.open(io.BytesIO(still)).convert("RGB")
    out = io.BytesIO()
    im.save(
        out,
        format="JPEG",
        quality=92,
        exif=_exif(orientation),
        comment=b"SECRET-COMMENT",
        xmp=b"<x:xmpmeta xmlns:x='adobe:ns:meta/'>SECRET-XMP</x:xmpmeta>",
    )
    return out.getvalue()


def tagged_png(still: bytes) -> bytes:
    im = Image.open(io.BytesIO(still)).convert("RGB")
    info = PngImagePlugin.PngInfo()
    info.add_text("Location", "SECRET-PNG-TEXT")
    info.add_itxt("Comment", "SECRET-PNG-ITXT")
    out = io.BytesIO()
    im.save(out, format="PNG", pnginfo=info, exif=_exif())
    return out.getvalue()


def png_chunks(data: bytes) -> list[bytes]:
    kinds, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kinds.append(data[pos + 4 : pos + 8])
        pos += 12 + length
    return kinds


def assert_no_metadata(stored: bytes) -> None:
    assert SECRET not in stored
    with Image.open(io.BytesIO(stored)) as im:
        exif = im.getexif()
        assert len(exif) == 0 and not exif.get_ifd(GPS_IFD)
        assert "xmp" not in im.info and "comment" not in im.info


def stills(faces_dir: Path) -> list[bytes]:
    return [p.read_bytes() for p in sorted((faces_dir / STILLS).glob("*.png"))]


def test_jpeg_is_stripped_losslessly(faces_dir: Path) -> None:
    data = phone_jpeg(stills(faces_dir)[0])
    assert SECRET in data and Image.open(io.BytesIO(data)).getexif().get_ifd(GPS_IFD)
    stored, mime = strip_metadata(data, decode_image(data))
    assert mime == "image/jpeg"
    assert_no_metadata(stored)
    assert np.array_equal(decode_image(stored), decode_image(data))  # same pixels
    assert data.endswith(stored[stored.index(b"\xff\xda") :])  # scan copied as is


def test_rotated_jpeg_is_reencoded_upright(faces_dir: Path) -> None:
    data = phone_jpeg(stills(faces_dir)[0], orientation=6)  # "rotate 90 degrees"
    upright = decode_image(data)
    stored, mime = strip_metadata(data, upright)
    assert mime == "image/jpeg"
    assert_no_metadata(stored)
    assert decode_image(stored).shape == upright.shape  # displays the right way up


def test_png_text_and_exif_chunks_are_dropped(faces_dir: Path) -> None:
    data = tagged_png(stills(faces_dir)[0])
    assert {b"tEXt", b"iTXt", b"eXIf"} <= set(png_chunks(data))
    stored, mime = strip_metadata(data, decode_image(data))
    assert mime == "image/png"
    assert_no_metadata(stored)
    assert set(png_chunks(stored)) <= {b"IHDR", b"IDAT", b"IEND", b"sRGB", b"gAMA", b"pHYs"}
    assert np.array_equal(decode_image(stored), decode_image(data))


def test_other_formats_are_reencoded(faces_dir: Path) -> None:
    im = Image.open(io.BytesIO(stills(faces_dir)[0])).convert("RGB")
    out = io.BytesIO()
    im.save(out, format="WEBP", exif=_exif(), xmp=b"SECRET-XMP")
    data = out.getvalue()
    stored, mime = strip_metadata(data, decode_image(data))
    assert mime == "image/jpeg"
    assert_no_metadata(stored)


def test_broken_segment_lengths_fall_back_to_reencoding() -> None:
    rgb = np.full((8, 8, 3), 128, np.uint8)
    odd_jpeg = b"\xff\xd8\xff\xe1\xff\xffSECRET-" + bytes(16)  # length beyond the data
    stored, mime = strip_metadata(odd_jpeg, rgb)
    assert mime == "image/jpeg" and SECRET not in stored
    odd_png = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 1 << 30) + b"tEXtSECRET-"
    stored, _ = strip_metadata(odd_png, rgb)
    assert SECRET not in stored


async def test_stored_photo_has_no_gps(world: ApiWorld, faces_dir: Path) -> None:
    api = world.alice
    status, room = await api.call("POST", "/rooms", json={"name": "Kept", "retain_photos": True})
    assert status == 201, room
    status, person = await api.call("POST", f"/rooms/{room['id']}/persons", json={"name": "L"})
    assert status == 201, person
    upload = phone_jpeg(stills(faces_dir)[0])
    status, added = await api.call("POST", f"/persons/{person['id']}/faces", data=upload)
    assert status == 201, added
    (face,) = world.store.faces(person["id"])
    assert face.photo_id is not None
    stored, mime = world.store.photo(person["id"], face.photo_id, api.owner_id)
    assert mime == "image/jpeg"
    assert_no_metadata(stored)
