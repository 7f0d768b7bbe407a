"""Uploaded photos: bounded reading, the enrolment quality gate, thumbnails.

Shared by the owner UI and the REST API so both give the same verdict for the same
bytes. Reading is streamed with our own limits (the app's ``client_max_size`` is
kept small for everything else); decoding refuses decompression bombs before any
pixel is decoded (``face.imageio``). CPU work runs in the hub's executor.
"""

from __future__ import annotations

import asyncio
import base64
import io
from collections.abc import Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np
from aiohttp import BodyPartReader, web
from PIL import Image

from ..face.engine import FaceEngine
from ..face.imageio import ImageError, decode_image

MAX_PHOTO_BYTES = 20 * 1024 * 1024
MAX_PHOTOS_PER_UPLOAD = 12
THUMB_PX = 160
CHUNK = 256 * 1024


class UploadTooLarge(Exception):
    """The body exceeded the byte limit; nothing of it is used."""


@dataclass
class Upload:
    filename: str
    data: bytes
    mime: str
    too_large: bool = False


@dataclass
class PhotoVerdict:
    """The quality gate's answer for one photo, as shown to the owner."""

    filename: str
    ok: bool
    code: str  # "ok" or a stable refusal code
    reasons: list[str]
    thumbnail: str | None = None  # data: URL (JPEG), or None when the bytes are not an image
    box: list[float] | None = None
    embedding: np.ndarray | None = field(default=None, repr=False)
    # one template per loaded engine ("dlib", "sface"): what the store keeps per face
    embeddings: Mapping[str, np.ndarray] = field(default_factory=dict, repr=False)

    def public(self) -> dict[str, object]:
        return {
            "filename": self.filename,
            "ok": self.ok,
            "code": self.code,
            "reasons": self.reasons,
            "thumbnail": self.thumbnail,
            "box": self.box,
        }


def sniff_mime(data: bytes) -> str:
    """The stored MIME type comes from the bytes, never from the client's claim."""
    for magic, mime in (
        (b"\xff\xd8\xff", "image/jpeg"),
        (b"\x89PNG\r\n\x1a\n", "image/png"),
        (b"GIF8", "image/gif"),
        (b"BM", "image/bmp"),
    ):
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "application/octet-stream"


async def read_body(request: web.Request, limit: int = MAX_PHOTO_BYTES) -> bytes:
    """The raw request body, refusing more than ``limit`` bytes."""
    if request.content_length is not None and request.content_length > limit:
        raise UploadTooLarge
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(CHUNK):
        size += len(chunk)
        if size > limit:
            raise UploadTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


async def read_part(part: BodyPartReader, limit: int) -> tuple[bytes, bool]:
    """A part's bytes, or (b"", True) after draining a part over ``limit``."""
    chunks: list[bytes] = []
    size = 0
    over = False
    while chunk := await part.read_chunk(CHUNK):
        size += len(chunk)
        if size > limit:
            over = True
            chunks.clear()
        elif not over:
            chunks.append(chunk)
    return (b"", True) if over else (b"".join(chunks), False)


def thumbnail(rgb: np.ndarray) -> str:
    im = Image.fromarray(rgb)
    im.thumbnail((THUMB_PX, THUMB_PX))
    out = io.BytesIO()
    im.save(out, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode()


def evaluate(engine: FaceEngine, filename: str, data: bytes) -> PhotoVerdict:
    """Decode, require exactly one good face, embed. Synchronous: run in the executor."""
    try:
        rgb = decode_image(data)
    except ImageError as err:
        return PhotoVerdict(filename, False, err.code, [err.message])
    thumb = thumbnail(rgb)
    result = engine.enrol_frame(rgb)
    box = [round(float(v), 1) for v in result.face.box] if result.face is not None else None
    if result.embedding is None:
        code = result.issues[0].code if result.issues else "unusable"
        return PhotoVerdict(filename, False, code, result.reasons, thumb, box)
    return PhotoVerdict(filename, True, "ok", [], thumb, box, result.embedding, result.embeddings)


def too_large_verdict(filename: str) -> PhotoVerdict:
    return PhotoVerdict(
        filename,
        False,
        "too_large",
        [f"The file is larger than {MAX_PHOTO_BYTES // (1024 * 1024)} MB."],
    )


async def evaluate_all(
    engine: FaceEngine, executor: Executor | None, uploads: list[Upload]
) -> list[PhotoVerdict]:
    loop = asyncio.get_running_loop()
    verdicts = []
    for upload in uploads:
        if upload.too_large:
            verdicts.append(too_large_verdict(upload.filename))
            continue
        verdicts.append(
            await loop.run_in_executor(executor, evaluate, engine, upload.filename, upload.data)
        )
    return verdicts
