"""Per-frame pixel cues of a presentation attack, computed around one detected face.

Each cue returns a raw, explainable number; :mod:`server.liveness.passive` turns the
raw numbers into scores against calibrated thresholds. Everything here works on a
small, fixed-size resample of the face's neighbourhood so the cost does not grow with
the camera resolution (the budget is a few milliseconds per analysed frame on top of
detection and mesh, see ``bench/bench_liveness.py``).

Cues:

- ``frame``: straight edges parallel to the face's own axes just outside the face box
  -- the bezel of a phone or tablet, or the border of a printed photo -- scored per
  side (left, right, above, below); the scorer uses the weakest side (``enclosure``),
  because a background has straight edges on some sides, a device on all four.
- ``moire``: the strongest isolated peak in the face's high-frequency spectrum
  relative to the spectrum's radial average. Filming a screen aliases its pixel grid
  into periodic patterns; skin and hair have a smooth, decaying spectrum.
- ``glare``: the fraction of near-white, low-saturation pixels on the face -- the
  specular reflection of a glass screen or glossy paper (skin highlights are small).
- ``gamut``: how far the face's mean chroma lies outside the skin-tone region in
  YCrCb -- a display's white point and gamut tint a filmed face (often cyan/blue).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

# The face box is resampled so it is this many pixels wide before looking for edges.
FRAME_FACE_PX = 48
# Neighbourhood searched for a frame, in face widths / heights from the face box.
FRAME_MARGIN_X = 1.6
FRAME_MARGIN_TOP = 1.2
FRAME_MARGIN_BOTTOM = 1.8
# An edge must lie at least this far outside the box (face sizes) to not be the face's
# own outline.
FRAME_MIN_GAP = 0.12
FRAME_MAX_TILT_DEG = 8.0
# A pixel is on an edge when the grey level changes by this much per pixel (upright crop).
FRAME_EDGE = 20.0

MOIRE_SIZE = 64  # side of the native-resolution patch whose spectrum is examined
GLARE_SIZE = 48

# Skin chroma in YCrCb (8-bit): a generous ellipse around the skin locus that covers
# light to dark skin under ordinary indoor light (Hsu et al. / Chai & Ngan ranges).
SKIN_CR = (133.0, 173.0)
SKIN_CB = (77.0, 127.0)


@dataclass(frozen=True)
class PixelCues:
    """Raw per-frame cue values (see module docstring); larger = more attack-like."""

    frame: tuple[float, float, float, float]  # left, right, top, bottom support
    moire: float
    glare: float
    gamut: float

    @property
    def enclosure(self) -> float:
        """Support of the weakest side: high only when a frame surrounds the face."""
        return min(self.frame)


def _crop(
    rgb: np.ndarray, x0: float, y0: float, x1: float, y1: float
) -> tuple[np.ndarray, int, int]:
    h, w = rgb.shape[:2]
    xa, ya = max(0, int(math.floor(x0))), max(0, int(math.floor(y0)))
    xb, yb = min(w, int(math.ceil(x1))), min(h, int(math.ceil(y1)))
    return rgb[ya:yb, xa:xb], xa, ya


def _line_support(strong: np.ndarray, lo: int, hi: int, span: tuple[int, int]) -> float:
    """Best fraction of ``span`` rows on which one near-vertical line in columns [lo, hi)
    has a strong edge; lines may lean by up to ``FRAME_MAX_TILT_DEG``."""
    rows = np.arange(max(span[0], 0), min(span[1], strong.shape[0]))
    if rows.size < 4 or hi - lo < 1:
        return 0.0
    width = strong.shape[1]
    centre = float(rows.mean())
    best = 0.0
    tilt = math.tan(math.radians(FRAME_MAX_TILT_DEG))
    for lean in np.linspace(-tilt, tilt, 7):
        shift = np.round(lean * (rows - centre)).astype(np.int64)
        cols = np.arange(lo, hi)[None, :] + shift[:, None]
        valid = (cols >= 0) & (cols < width)
        hits = strong[rows[:, None], np.clip(cols, 0, width - 1)] & valid
        best = max(best, float(hits.mean(axis=0).max()))
    return best


def frame_support(
    rgb: np.ndarray, box: tuple[float, float, float, float], roll_deg: float = 0.0
) -> tuple[float, float, float, float]:
    """Support (0-1) for a straight edge left, right, above and below the face.

    A face shown on a phone, tablet or photo sits inside a rectangle whose sides run
    along the face's whole height or width. The neighbourhood is warped upright (by
    the face's roll) at a fixed scale, and for each side the best near-straight line
    parallel to that side, outside the face box, is scored by the fraction of the
    face's extent along which it has a strong, same-signed edge. Real backgrounds
    have straight edges too (doors, whiteboards), so the scorer needs several sides.
    """
    x0, y0, x1, y1 = box
    fw, fh = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
    scale = FRAME_FACE_PX / fw
    out_w = round(FRAME_FACE_PX * (1 + 2 * FRAME_MARGIN_X))
    out_h = round(fh * scale * (1 + FRAME_MARGIN_TOP + FRAME_MARGIN_BOTTOM))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    # Face centre maps to (out_w / 2, top margin + half the face) in the upright crop.
    oxc, oyc = out_w / 2, fh * scale * (FRAME_MARGIN_TOP + 0.5)
    rot = cv2.getRotationMatrix2D((cx, cy), roll_deg, scale)
    rot[0, 2] += oxc - cx
    rot[1, 2] += oyc - cy
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if rgb.ndim == 3 else rgb
    small = cv2.warpAffine(
        gray, rot, (out_w, out_h), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE
    ).astype(np.float32)
    gx = cv2.Sobel(small, cv2.CV_32F, 1, 0, ksize=3) / 4.0
    gy = cv2.Sobel(small, cv2.CV_32F, 0, 1, ksize=3) / 4.0
    face_w, face_h = FRAME_FACE_PX, fh * scale
    bx0, bx1 = round(oxc - face_w / 2), round(oxc + face_w / 2)
    by0, by1 = round(oyc - face_h / 2), round(oyc + face_h / 2)
    gap_x, gap_y = round(FRAME_MIN_GAP * face_w), round(FRAME_MIN_GAP * face_h)
    results: list[float] = []
    for grad, transpose in ((gx, False), (gy, True)):
        g = grad.T if transpose else grad
        lo_face, hi_face = (by0, by1) if transpose else (bx0, bx1)
        span = (bx0, bx1) if transpose else (by0, by1)
        far_hi = g.shape[1]
        near_gap = gap_y if transpose else gap_x
        for sign in (1.0, -1.0):
            strong = (g * sign) > FRAME_EDGE
            # Allow a one-pixel wobble of the edge across columns.
            strong[:, 1:] |= strong[:, :-1]
            results.append(_line_support(strong, 0, max(lo_face - near_gap, 0), span))
            bottom_skip = round(0.3 * face_h) if transpose else 0
            results.append(
                _line_support(strong, min(hi_face + near_gap + bottom_skip, far_hi), far_hi, span)
            )
    # results: x(+): left,right; x(-): left,right; y(+): top,bottom; y(-): top,bottom
    left, right = max(results[0], results[2]), max(results[1], results[3])
    top, bottom = max(results[4], results[6]), max(results[5], results[7])
    return left, right, top, bottom


def moire_peak(rgb: np.ndarray, box: tuple[float, float, float, float]) -> float:
    """Strongest high-frequency spectral peak over its radial average (native pixels)."""
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    side = min(MOIRE_SIZE, int(0.6 * min(x1 - x0, y1 - y0)))
    if side < 16:
        return 0.0
    xa, ya = int(cx - side / 2), int(cy - side / 2)
    if xa < 0 or ya < 0:
        return 0.0
    patch = rgb[ya : ya + side, xa : xa + side]
    if patch.shape[0] < side or patch.shape[1] < side:
        return 0.0
    gray = cv2.cvtColor(patch, cv2.COLOR_RGB2GRAY).astype(np.float32)
    gray -= cv2.blur(gray, (5, 5))  # keep the fine texture only
    window = np.outer(np.hanning(side), np.hanning(side)).astype(np.float32)
    mag = np.abs(np.fft.fftshift(np.fft.fft2(gray * window)))
    yy, xx = np.indices(mag.shape)
    radius = np.hypot(yy - side / 2, xx - side / 2).astype(np.int32)
    band = (radius >= side // 8) & (radius < side // 2)
    counts = np.bincount(radius.ravel())
    sums = np.bincount(radius.ravel(), weights=mag.ravel())
    radial = sums / np.maximum(counts, 1)
    ratio = mag[band] / np.maximum(radial[radius[band]], 1e-6)
    return float(ratio.max()) if ratio.size else 0.0


def glare_fraction(rgb: np.ndarray, box: tuple[float, float, float, float]) -> float:
    """Fraction of near-white, unsaturated pixels over the face box."""
    patch, _, _ = _crop(rgb, *box)
    if patch.size == 0:
        return 0.0
    small = cv2.resize(patch, (GLARE_SIZE, GLARE_SIZE), interpolation=cv2.INTER_AREA)
    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
    white = (hsv[..., 2] >= 240) & (hsv[..., 1] <= 40)
    return float(white.mean())


def gamut_distance(rgb: np.ndarray, box: tuple[float, float, float, float]) -> float:
    """How far (8-bit chroma units) the face centre's mean Cr/Cb lies outside skin range."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    patch, _, _ = _crop(rgb, x0 + 0.25 * w, y0 + 0.3 * h, x1 - 0.25 * w, y1 - 0.2 * h)
    if patch.size == 0:
        return 0.0
    small = cv2.resize(patch, (16, 16), interpolation=cv2.INTER_AREA)
    ycrcb = cv2.cvtColor(small, cv2.COLOR_RGB2YCrCb).reshape(-1, 3).astype(np.float64)
    cr, cb = float(ycrcb[:, 1].mean()), float(ycrcb[:, 2].mean())
    d_cr = max(SKIN_CR[0] - cr, 0.0, cr - SKIN_CR[1])
    d_cb = max(SKIN_CB[0] - cb, 0.0, cb - SKIN_CB[1])
    return math.hypot(d_cr, d_cb)


# The face's roll comes from a landmark model (±1° between models on the same face, see
# docs/liveness.md): a device's edges are also searched at these offsets around it, each
# side keeping its best support, so the cue does not hinge on a degree of roll error.
# The search (2 more warps, ~2x the cue's cost) runs only when the weakest side is
# already within reach of the scorer's threshold: 0.8 x PassiveConfig.enclosure (0.42).
ROLL_SEARCH_DEG = (-1.0, 1.0)
FRAME_SEARCH_FROM = 0.34


def frame_support_near(
    rgb: np.ndarray, box: tuple[float, float, float, float], roll_deg: float
) -> tuple[float, float, float, float]:
    """``frame_support`` per side, at its best around the roll (see ``ROLL_SEARCH_DEG``)."""
    found = [frame_support(rgb, box, roll_deg)]
    if min(found[0]) >= FRAME_SEARCH_FROM:
        found += [frame_support(rgb, box, roll_deg + d) for d in ROLL_SEARCH_DEG]
    left, right, top, bottom = (max(side) for side in zip(*found, strict=True))
    return left, right, top, bottom


def pixel_cues(
    rgb: np.ndarray, box: tuple[float, float, float, float], roll_deg: float = 0.0
) -> PixelCues:
    return PixelCues(
        frame=frame_support_near(rgb, box, roll_deg),
        moire=moire_peak(rgb, box),
        glare=glare_fraction(rgb, box),
        gamut=gamut_distance(rgb, box),
    )
