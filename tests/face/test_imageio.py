from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from server.face.imageio import MAX_PIXELS, ImageError, as_rgb8, decode_image


def _code(data: bytes) -> str:
    with pytest.raises(ImageError) as exc:
        decode_image(data)
    assert exc.value.message
    return exc.value.code


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def _encode(im: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_empty() -> None:
    assert _code(b"") == "empty"


def test_not_an_image() -> None:
    assert _code(b"hello, this is plain text and not a picture at all\n" * 20) == "not_an_image"
    assert _code(b"\x00" * 1000) == "not_an_image"


def test_truncated_jpeg(faces_dir: Path) -> None:
    data = (faces_dir / "faces/obama/2.jpg").read_bytes()
    assert _code(data[: len(data) // 2]) == "corrupt"


def test_truncated_png(faces_dir: Path) -> None:
    data = (faces_dir / "faces/bbt_amy/1.png").read_bytes()
    assert _code(data[: len(data) // 2]) == "corrupt"


def test_huge_png_header_refused_before_decoding() -> None:
    # A 10000 x 5000 (50 MP) PNG header followed by a tiny, invalid IDAT: the size alone
    # must refuse it, without decoding (the pixels do not even exist).
    ihdr = struct.pack(">IIBBBBB", 10_000, 5_000, 8, 2, 0, 0, 0)
    data = (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + _png_chunk(b"IEND", b"")
    )
    assert 10_000 * 5_000 > MAX_PIXELS
    assert _code(data) == "too_large"


def test_huge_png_beyond_pillow_bomb_limit() -> None:
    ihdr = struct.pack(">IIBBBBB", 60_000, 60_000, 8, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IEND", b"")
    assert _code(data) == "too_large"


def test_huge_jpeg_header_refused() -> None:
    small = _encode(Image.new("RGB", (16, 16), (120, 30, 60)), "JPEG")
    i = small.index(b"\xff\xc0")  # baseline SOF0: length(2) precision(1) height(2) width(2)
    patched = small[: i + 5] + struct.pack(">HH", 6000, 8000) + small[i + 9 :]
    assert _code(patched) == "too_large"


def test_cmyk_jpeg() -> None:
    rgb = Image.new("RGB", (64, 48), (200, 40, 30))
    data = _encode(rgb.convert("CMYK"), "JPEG", quality=95)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    out = decode_image(data)
    assert out.shape == (48, 64, 3) and out.dtype == np.uint8
    assert np.abs(out.reshape(-1, 3).mean(0) - [200, 40, 30]).max() < 12


def test_16bit_grey_png() -> None:
    grey = np.tile(np.linspace(0, 65535, 100, dtype=np.uint16), (30, 1))
    data = _encode(Image.fromarray(grey), "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    out = decode_image(data)
    assert out.shape == (30, 100, 3)
    assert out[0, 0, 0] == 0 and out[0, -1, 0] == 255
    assert abs(int(out[0, 50, 0]) - round(grey[0, 50] / 257)) <= 1


def test_16bit_rgb_png() -> None:
    bgr16 = np.zeros((20, 30, 3), np.uint16)
    bgr16[..., 2] = 65535  # red
    bgr16[..., 1] = 32896  # ~half green
    ok, enc = cv2.imencode(".png", bgr16)
    assert ok
    out = decode_image(enc.tobytes())
    assert out.dtype == np.uint8 and out.shape == (20, 30, 3)
    assert out[0, 0, 0] == 255 and abs(int(out[0, 0, 1]) - 128) <= 1 and out[0, 0, 2] == 0


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "LA", "1"])
def test_modes(mode: str) -> None:
    im = Image.new("RGB", (40, 30), (10, 200, 90)).convert(mode)
    out = decode_image(_encode(im, "PNG"))
    assert out.shape == (30, 40, 3) and out.dtype == np.uint8


def test_rgba_transparent_composited_on_white() -> None:
    im = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    out = decode_image(_encode(im, "PNG"))
    assert (out == 255).all()


def test_exif_orientation_applied(faces_dir: Path, engine) -> None:  # type: ignore[no-untyped-def]
    upright = Image.open(faces_dir / "faces/obama/2.jpg").convert("RGB")
    # store the pixels rotated 90 degrees clockwise, with orientation 6 ("rotate 90 CW
    # to display"): the stored pixels are the upright picture turned counter-clockwise
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    data = _encode(stored, "JPEG", quality=95, exif=exif.tobytes())
    out = decode_image(data)
    assert out.shape == (upright.height, upright.width, 3)
    faces = engine.analyse(out, mesh=True, embed=False).faces
    assert len(faces) == 1
    assert abs(faces[0].measures.roll) < 20  # eyes level: the face is upright


def test_as_rgb8_variants() -> None:
    grey = (np.arange(12, dtype=np.uint8) * 20).reshape(3, 4)
    assert as_rgb8(grey).shape == (3, 4, 3)
    assert as_rgb8(grey[:, :, None]).shape == (3, 4, 3)
    rgba = np.zeros((3, 4, 4), np.uint8)
    assert as_rgb8(rgba).shape == (3, 4, 3)
    u16 = np.full((3, 4, 3), 65535, np.uint16)
    assert (as_rgb8(u16) == 255).all()
    f = np.full((3, 4, 3), 1.0, np.float32)
    assert (as_rgb8(f) == 255).all()
    with pytest.raises(ValueError):
        as_rgb8(np.zeros((3, 4, 2), np.uint8))
