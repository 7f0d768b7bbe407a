"""Strip metadata from photos before they are stored.

Why: phone photos carry EXIF with the GPS position where they were taken (often the
person's home), the device's make and serial, timestamps, and XMP/comments with
editing history. The retained photo exists so the owner can see which picture a
template came from; none of that metadata is needed, and it would be served back
and kept (sealed) for as long as the photo is.

JPEG and PNG are stripped losslessly (segments/chunks are filtered, pixel data is
copied byte for byte, colour information is kept). A JPEG whose EXIF orientation is
not "upright" would display rotated once its EXIF is gone, so it is re-encoded from
the upright pixels instead, as are WebP, GIF and BMP (whose containers we do not
filter): JPEG at quality 95.
"""

from __future__ import annotations

import io
import struct

import numpy as np
from PIL import Image

REENCODE_QUALITY = 95
ORIENTATION_TAG = 0x0112

# JPEG markers kept before the scan: APP0 (JFIF), APP2 only for an ICC profile, APP14
# (Adobe: says how CMYK/YCCK is coded), and every non-APPn, non-COM marker (tables,
# frame header). Dropped: APP1 (EXIF, XMP), other APPn, COM.
_APP0, _APP2, _APP14, _COM, _SOS = 0xE0, 0xE2, 0xEE, 0xFE, 0xDA
# PNG chunks kept: the critical ones and those that change how pixels look.
_PNG_KEEP = {
    b"IHDR",
    b"PLTE",
    b"IDAT",
    b"IEND",
    b"tRNS",
    b"gAMA",
    b"cHRM",
    b"sRGB",
    b"iCCP",
    b"sBIT",
}
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def strip_metadata(data: bytes, upright_rgb: np.ndarray) -> tuple[bytes, str]:
    """The photo to store and its MIME type, without EXIF/XMP/text metadata.

    ``upright_rgb`` is the decoded image (EXIF orientation applied), used when the
    file has to be re-encoded.
    """
    if data.startswith(b"\xff\xd8\xff") and _orientation(data) in (None, 1):
        stripped = _strip_jpeg(data)
        if stripped is not None:
            return stripped, "image/jpeg"
    elif data.startswith(_PNG_MAGIC):
        stripped = _strip_png(data)
        if stripped is not None:
            return stripped, "image/png"
    return _reencode(upright_rgb), "image/jpeg"


def _orientation(data: bytes) -> int | None:
    try:
        with Image.open(io.BytesIO(data), formats=("JPEG",)) as im:
            value = im.getexif().get(ORIENTATION_TAG)
    except Exception:  # unreadable EXIF: re-encode rather than guess
        return -1
    return int(value) if isinstance(value, int) else None


def _reencode(rgb: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, format="JPEG", quality=REENCODE_QUALITY)
    return out.getvalue()


def _strip_jpeg(data: bytes) -> bytes | None:
    """Filter the marker segments before the first scan; None if the file is odd."""
    out = bytearray(data[:2])
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        end = pos + 2 + length
        if length < 2 or end > len(data):
            return None
        segment = data[pos:end]
        if marker == _SOS:
            out += data[pos:]  # the scan and everything after it, byte for byte
            return bytes(out)
        is_app = 0xE0 <= marker <= 0xEF
        keep = (
            (not is_app and marker != _COM)
            or marker in (_APP0, _APP14)
            or (marker == _APP2 and segment[4:16] == b"ICC_PROFILE\x00")
        )
        if keep:
            out += segment
        pos = end
    return None


def _strip_png(data: bytes) -> bytes | None:
    out = bytearray(_PNG_MAGIC)
    pos = len(_PNG_MAGIC)
    while pos + 12 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if end > len(data):
            return None
        if kind in _PNG_KEEP:
            out += data[pos:end]
        if kind == b"IEND":
            return bytes(out)
        pos = end
    return None
