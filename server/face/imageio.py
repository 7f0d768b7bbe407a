"""Decoding uploaded photos and normalising numpy frames to RGB uint8.

:func:`decode_image` turns untrusted bytes into an ``(H, W, 3) uint8`` RGB array or raises
:class:`ImageError` with a stable ``code``:

- ``empty``: no bytes at all;
- ``not_an_image``: bytes that none of :data:`ACCEPTED_FORMATS` recognises (JPEG,
  PNG, WebP, GIF, BMP: other formats Pillow knows are never tried);
- ``too_large``: the header claims more than :data:`MAX_PIXELS` pixels (checked from the
  header, before any pixel is decoded);
- ``corrupt``: a recognised image whose data is truncated or broken.

CMYK JPEG, 16-bit PNG (grey or colour), greyscale, RGBA / LA (composited on white),
palette images and the EXIF orientation tag are handled.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_PIXELS = 40_000_000
# The only decoders Pillow may run on uploaded bytes. Pillow otherwise tries every
# format it knows (~40: PSD, EPS, FITS, SGI, TGA, PCX, ICNS, ...), most of them rarely
# used and less exercised than these, each one attack surface for a crafted file.
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP")


class ImageError(ValueError):
    """An uploaded image cannot be used; ``code`` is machine-readable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"ImageError({self.code!r}, {self.message!r})"


def decode_image(data: bytes, *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode image bytes to an ``(H, W, 3) uint8`` RGB array, EXIF orientation applied."""
    if not data:
        raise ImageError("empty", "The file is empty.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(
            "too_large", f"The image is too large (more than {max_pixels:,} pixels)."
        ) from exc
    except UnidentifiedImageError as exc:
        raise ImageError("not_an_image", "The file is not a supported image.") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError("corrupt", f"The image header is damaged ({exc}).") from exc
    with im:
        width, height = im.size
        if width <= 0 or height <= 0:
            raise ImageError("corrupt", "The image has no pixels.")
        if width * height > max_pixels:
            raise ImageError(
                "too_large",
                f"The image is too large ({width}x{height}); "
                f"at most {max_pixels // 1_000_000} megapixels are accepted.",
            )
        try:
            im.load()
            upright: Image.Image = ImageOps.exif_transpose(im)
            return _to_rgb_array(upright)
        except Image.DecompressionBombError as exc:
            raise ImageError("too_large", "The image is too large.") from exc
        except (OSError, ValueError, SyntaxError, EOFError) as exc:
            raise ImageError(
                "corrupt", "The image is damaged or truncated; please upload it again."
            ) from exc


def _to_rgb_array(im: Image.Image) -> np.ndarray:
    mode = im.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        arr = np.asarray(im).astype(np.float32)
        peak = 65535.0 if mode.startswith("I;16") or float(arr.max(initial=0)) > 255 else 255.0
        grey = np.clip(arr * (255.0 / peak) + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if mode == "F":
        arr = np.asarray(im).astype(np.float32)
        scale = 255.0 if float(arr.max(initial=0)) <= 1.0 else 1.0
        grey = np.clip(arr * scale + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if mode == "P":
        im = im.convert("RGBA") if "transparency" in im.info else im.convert("RGB")
        mode = im.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(background, rgba).convert("RGB")
    elif mode != "RGB":
        im = im.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV, RGBX
    return np.ascontiguousarray(np.asarray(im, dtype=np.uint8))


def as_rgb8(frame: np.ndarray) -> np.ndarray:
    """Normalise a frame to ``(H, W, 3) uint8`` RGB.

    Accepts greyscale ``(H, W)`` / ``(H, W, 1)``, RGB, RGBA (alpha dropped), and uint8,
    uint16 (scaled by 1/257), bool or float (``[0, 1]`` if its maximum is <= 1, else
    ``[0, 255]``) arrays.
    """
    arr = np.asarray(frame)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4) or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"expected an (H, W[, 1|3|4]) image, got shape {arr.shape}")
    if arr.shape[2] == 4:
        arr = arr[:, :, :3]
    if arr.dtype != np.uint8:
        if arr.dtype == np.uint16:
            arr = ((arr.astype(np.uint32) + 128) // 257).astype(np.uint8)
        elif arr.dtype == np.bool_:
            arr = arr.astype(np.uint8) * 255
        elif np.issubdtype(arr.dtype, np.floating):
            scale = 255.0 if float(np.nanmax(arr)) <= 1.0 else 1.0
            arr = np.clip(np.nan_to_num(arr) * scale + 0.5, 0, 255).astype(np.uint8)
        else:
            arr = np.clip(arr, 0, 255).astype(np.uint8)
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    return np.ascontiguousarray(arr)
