"""Per-frame measurement for the screen-light challenge: the skin's chroma, and the
background's for comparison.

Why log-chroma: ``log(R/G)`` and ``log(B/G)`` move when coloured light reaches the
skin (red light raises the first, blue the second) and not with brightness, so auto
exposure and the face's shading drop out. A camera's white balance multiplies every
pixel alike; the judge detrends it away (it is slow) and measures the background too:
a screen 40-60 cm from a face lights the face far more than the wall behind it, while
a photo or a phone held up to the camera is lit as evenly as the paper or glass
around the face (``flat`` in :mod:`server.liveness.flash`).

Cost: strided means over two regions, no resampling or colour conversion (measured
by ``bench/bench_flash.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Inner part of the detector's face box (fractions of its width / height): cheeks, nose
# and forehead, clear of hair and of the background beside the face.
FACE_X = (0.22, 0.78)
FACE_Y = (0.18, 0.88)
FACE_STRIDE = 2
# The background is what lies beside and above the head, outside the face box widened
# by this factor; the torso below (lit by the screen too) is left out.
BG_WIDEN = 2.2
BG_STRIDE = 6
# Pixels with a clipped channel (specular highlights, blown windows) or too dark to
# carry chroma are left out of the means.
CLIP = 250
DARK = 16
MIN_PIXELS = 64


@dataclass(frozen=True)
class LightSample:
    """Mean log-chroma ``(log R/G, log B/G)`` of the face and of the background
    (None when the face fills the frame: the ``flat`` check is then skipped)."""

    face: tuple[float, float]
    background: tuple[float, float] | None
    face_luma: float


def _log_chroma(pixels: np.ndarray) -> tuple[tuple[float, float], float] | None:
    """Mean log-chroma and mean luma of an (N, 3) uint8 array, without clipped/dark pixels."""
    flat = pixels.reshape(-1, 3)
    if flat.shape[0] < MIN_PIXELS:
        return None
    keep = (flat.max(axis=1) < CLIP) & (flat[:, 1] >= DARK)
    chosen = flat[keep]
    if chosen.shape[0] < MIN_PIXELS:
        return None
    r, g, b = chosen.mean(axis=0, dtype=np.float64)
    luma = float(0.299 * r + 0.587 * g + 0.114 * b)
    return (math.log(max(r, 0.5) / g), math.log(max(b, 0.5) / g)), luma


def measure_light(rgb: np.ndarray, box: tuple[float, float, float, float]) -> LightSample | None:
    """Chroma of the face (inner box) and of the background beside and above it.

    ``None`` when the face region is too small or too clipped / dark to measure.
    """
    height, width = rgb.shape[:2]
    x0, y0, x1, y1 = box
    bw, bh = x1 - x0, y1 - y0
    if bw <= 4 or bh <= 4:
        return None
    fx0 = int(np.clip(x0 + FACE_X[0] * bw, 0, width))
    fx1 = int(np.clip(x0 + FACE_X[1] * bw, 0, width))
    fy0 = int(np.clip(y0 + FACE_Y[0] * bh, 0, height))
    fy1 = int(np.clip(y0 + FACE_Y[1] * bh, 0, height))
    face = _log_chroma(rgb[fy0:fy1:FACE_STRIDE, fx0:fx1:FACE_STRIDE])
    if face is None:
        return None
    cx = (x0 + x1) / 2
    left = int(np.clip(cx - BG_WIDEN * bw / 2, 0, width))
    right = int(np.clip(cx + BG_WIDEN * bw / 2, 0, width))
    bottom = int(np.clip(y1, 0, height))
    top = int(np.clip(y0 - 0.5 * bh, 0, height))
    parts = [
        rgb[:bottom:BG_STRIDE, :left:BG_STRIDE].reshape(-1, 3),
        rgb[:bottom:BG_STRIDE, right::BG_STRIDE].reshape(-1, 3),
        rgb[:top:BG_STRIDE, left:right:BG_STRIDE].reshape(-1, 3),
    ]
    background = _log_chroma(np.concatenate(parts)) if any(len(p) for p in parts) else None
    return LightSample(
        face=face[0], background=None if background is None else background[0], face_luma=face[1]
    )
