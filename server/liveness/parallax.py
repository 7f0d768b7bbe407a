"""What a flat picture cannot do: move its pixels other than by one homography.

Every point of a printed photo or a screen lies on one plane, so however the picture
is tilted, turned, rotated, panned or zoomed, the image of any of its points in two
frames is related by a single homography (the camera sees a plane). A real head is
not flat: when it turns, the nose tip (near the camera) moves against the brows,
cheeks and eye corners (further back) -- parallax -- and eyelids and lips move
against the skull when the person blinks or talks.

Why pixels and not the mesh's landmarks: the mesh is a regression with a strong 3-D
prior. Shown a photo turned by 30 degrees, it sees a face squeezed sideways and
places the nose where a *turned head's* nose would be, so its landmarks on a moving
print break the homography as much as a real head does (measured: nose residual up
to 0.15 inter-ocular distances on generated prints, 0.02-0.15 on live clips). The
image itself cannot lie about planarity, so the landmarks only seed a pyramidal
Lucas-Kanade tracker that finds where each point's *texture* went between two
analysed frames (forward and back, keeping points that return within a pixel).

Per pair of consecutive frames of one face track, :func:`pair_motion` fits the
homography of the rigid points (brows, eye corners, nose bridge, forehead, cheeks)
by least squares, refitted once without the points left far off, and returns the
RMS residual of each moving region (nose tip, eyelids, lips) in inter-ocular
distances. For a picture every residual is tracking noise; for a person the nose
leaves the plane whenever the head turns or nods, however slightly.

Each frame carries a small grey patch of the face (:func:`face_patch`, 112 px, made
in the executor with the other pixel cues) and the points in patch coordinates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

# Mesh indices, canonical 468-point topology (shared by the 478-point Face Landmarker).
RIGID = (70, 63, 105, 66, 107, 336, 296, 334, 293, 300, 33, 133, 263, 362, 168, 6, 197,
         151, 9, 108, 337, 50, 280, 187, 411, 98, 327)
NOSE = (1, 4, 5, 19, 45, 275)
EYELIDS = (159, 145, 386, 374, 160, 144, 385, 380)
MOUTH = (13, 14, 61, 291, 0, 17, 78, 308)
# Rows of LivenessSample.points: the rigid points first, then the moving regions.
TRACK_POINTS = np.array(RIGID + NOSE + EYELIDS + MOUTH)
_N_RIGID = len(RIGID)
REGIONS: dict[str, slice] = {
    "nose": slice(_N_RIGID, _N_RIGID + len(NOSE)),
    "eyes": slice(_N_RIGID + len(NOSE), _N_RIGID + len(NOSE) + len(EYELIDS)),
    "mouth": slice(_N_RIGID + len(NOSE) + len(EYELIDS), len(TRACK_POINTS)),
}
_EYE_R, _EYE_L = RIGID.index(33), RIGID.index(263)

PATCH_SIZE = 112  # grey patch side (px)
PATCH_SPREADS = 4.0  # patch side in RMS spreads of the rigid points (~1.3 face widths)
LK_WINDOW = 13
LK_LEVELS = 3
FB_MAX_PX = 1.0  # forward-backward disagreement above this drops a point
OUTLIER_FACTOR = 3.0  # rigid points this many median residuals off are refitted without
MIN_RIGID = 10
MIN_TEXTURE = 0.3  # texture_strength below this x the rigid points' median: not tracked
PAIR_GAP_S = 0.5  # frames compared are about this far apart ...
PAIR_MIN_S, PAIR_MAX_S = 0.4, 1.0  # ... within these bounds
# Frames closer than this to the last one the track kept are not tracked: when the
# sampler runs faster (expression steps at 15 fps, the light window at 8) the cue keeps
# the base rate's pairs, so its cost and its p90 over pairs stay what they are at 4 fps.
KEEP_EVERY_S = 0.2


def face_patch(rgb: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(texture patch, points in patch pixels) of the face, upright at a fixed scale.

    Scale, centre and roll come from the mesh's rigid points rather than the detection
    box, whose size jumps between frames: consecutive patches then differ only by
    what the face (or picture) really did, which keeps the tracker within its reach.
    The patch is high-passed and contrast-normalised, so a change of light between
    frames (a hand shading a print, a screen dimming) does not read as motion.
    """
    pts = np.asarray(points, np.float64)
    rigid = pts[:_N_RIGID]
    centre = rigid.mean(axis=0)
    spread = math.sqrt(float(((rigid - centre) ** 2).sum(axis=1).mean()))
    eye = pts[_EYE_L] - pts[_EYE_R]
    angle = math.atan2(float(eye[1]), float(eye[0]))
    scale = PATCH_SIZE / max(PATCH_SPREADS * spread, 1.0)
    c, s = scale * math.cos(-angle), scale * math.sin(-angle)
    affine = np.array([[c, -s, 0.0], [s, c, 0.0]])
    affine[:, 2] = PATCH_SIZE / 2 - affine[:, :2] @ centre
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if rgb.ndim == 3 else rgb
    patch = cv2.warpAffine(gray, affine, (PATCH_SIZE, PATCH_SIZE), flags=cv2.INTER_AREA,
                           borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
    high = patch - cv2.GaussianBlur(patch, (0, 0), 4.0)
    local = np.sqrt(cv2.GaussianBlur(high * high, (0, 0), 8.0)) + 4.0
    texture = np.clip(128.0 + 40.0 * high / local, 0, 255).astype(np.uint8)
    mapped = pts @ affine[:, :2].T + affine[:, 2]
    return texture, mapped.astype(np.float32)


def _apply(hom: np.ndarray, pts: np.ndarray) -> np.ndarray:
    proj = np.hstack([pts, np.ones((len(pts), 1))]) @ hom.T
    w = proj[:, 2:]
    return np.asarray(proj[:, :2] / np.where(np.abs(w) < 1e-9, 1e-9, w))


def _normaliser(pts: np.ndarray) -> np.ndarray:
    centre = pts.mean(axis=0)
    scale = math.sqrt(2.0) / max(float(np.linalg.norm(pts - centre, axis=1).mean()), 1e-9)
    return np.array([[scale, 0, -scale * centre[0]], [0, scale, -scale * centre[1]], [0, 0, 1]])


def _dlt(src: np.ndarray, dst: np.ndarray) -> np.ndarray | None:
    """Direct linear transform with Hartley normalisation (least squares, no iterations:
    a tenth of ``cv2.findHomography``'s cost on a few dozen points)."""
    ts, td = _normaliser(src), _normaliser(dst)
    a = src @ ts[:2, :2].T + ts[:2, 2]
    b = dst @ td[:2, :2].T + td[:2, 2]
    n = len(a)
    rows = np.zeros((2 * n, 9))
    rows[0::2, 0:2], rows[0::2, 2] = a, 1
    rows[0::2, 6:8], rows[0::2, 8] = -b[:, :1] * a, -b[:, 0]
    rows[1::2, 3:5], rows[1::2, 5] = a, 1
    rows[1::2, 6:8], rows[1::2, 8] = -b[:, 1:] * a, -b[:, 1]
    _, _, vt = np.linalg.svd(rows)
    hom = np.linalg.inv(td) @ vt[-1].reshape(3, 3) @ ts
    if abs(hom[2, 2]) < 1e-12:
        return None
    return np.asarray(hom / hom[2, 2])


def fit_homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray | None:
    """Least-squares homography src -> dst, refitted once without gross outliers."""
    hom = _dlt(src, dst)
    if hom is None:
        return None
    err = np.linalg.norm(_apply(hom, src) - dst, axis=1)
    keep = err <= OUTLIER_FACTOR * max(float(np.median(err)), 1e-6)
    if MIN_RIGID <= int(keep.sum()) < len(src):
        refit = _dlt(src[keep], dst[keep])
        if refit is not None:
            hom = refit
    return hom


_LK_CRITERIA = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 20, 0.03)


def _lk(a: np.ndarray, b: np.ndarray, pts: np.ndarray, seed: np.ndarray) -> tuple[
    np.ndarray, np.ndarray
]:
    found, status, _ = cv2.calcOpticalFlowPyrLK(
        a, b, pts, seed.copy(), None, None, (LK_WINDOW, LK_WINDOW), LK_LEVELS, _LK_CRITERIA,
        cv2.OPTFLOW_USE_INITIAL_FLOW,
    )
    return np.asarray(found, np.float32), np.asarray(status).ravel()


def track_points(
    patch_a: np.ndarray, pts_a: np.ndarray, patch_b: np.ndarray, guess_b: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Where ``pts_a``'s texture went in ``patch_b`` (seeded at ``guess_b``); and which
    points were tracked reliably (found both ways, forward-backward within a pixel)."""
    a = np.ascontiguousarray(pts_a, np.float32).reshape(-1, 1, 2)
    seed = np.ascontiguousarray(guess_b, np.float32).reshape(-1, 1, 2)
    fwd, st1 = _lk(patch_a, patch_b, a, seed)
    back, st2 = _lk(patch_b, patch_a, fwd, a)
    fb = np.linalg.norm((back - a).reshape(-1, 2), axis=1)
    ok = (st1 == 1) & (st2 == 1) & (fb <= FB_MAX_PX)
    return fwd.reshape(-1, 2).astype(np.float64), ok


def texture_strength(patch: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Smaller eigenvalue of the structure tensor over the tracker's window at each point.

    Low on flat skin and along a straight edge (the cut border of a print crossing the
    face), where the tracker can slide and invent motion; high on corners and texture.
    """
    img = patch.astype(np.float32)
    gx = cv2.Sobel(img, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(img, cv2.CV_32F, 0, 1, ksize=3)
    box = (LK_WINDOW, LK_WINDOW)
    xx, yy, xy = (cv2.boxFilter(g, -1, box) for g in (gx * gx, gy * gy, gx * gy))
    h, w = patch.shape[:2]
    col = np.clip(np.rint(pts[:, 0]).astype(np.int64), 0, w - 1)
    row = np.clip(np.rint(pts[:, 1]).astype(np.int64), 0, h - 1)
    a, b, c = xx[row, col], yy[row, col], xy[row, col]
    return np.asarray((a + b) / 2 - np.sqrt(((a - b) / 2) ** 2 + c**2))


def pair_motion(
    patch_a: np.ndarray, pts_a: np.ndarray, patch_b: np.ndarray, pts_b: np.ndarray
) -> dict[str, float] | None:
    """Non-planar motion a -> b per region (inter-ocular distances); None if untrackable."""
    found, ok = track_points(patch_a, pts_a, patch_b, pts_b)
    src = np.asarray(pts_a, np.float64)
    strength = texture_strength(patch_a, src)
    ok &= strength >= MIN_TEXTURE * float(np.median(strength[:_N_RIGID]))
    rigid = np.flatnonzero(ok[:_N_RIGID])
    if len(rigid) < MIN_RIGID:
        return None
    hom = fit_homography(src[rigid], found[rigid])
    if hom is None:
        return None
    iod = max(float(np.linalg.norm(src[_EYE_R] - src[_EYE_L])), 1e-6)
    err = np.linalg.norm(_apply(hom, src) - found, axis=1) / iod
    out = {"rigid": float(np.median(err[rigid]))}
    for name, sl in REGIONS.items():
        idx = np.arange(sl.start, sl.stop)[ok[sl]]
        # The median point of the region: one point on a photo's cut edge cannot vouch.
        out[name] = float(np.median(err[idx])) if len(idx) >= 3 else 0.0
    return out


# (time, frame number, patch, points) of the frames a track keeps.
Kept = tuple[float, int, np.ndarray, np.ndarray]


def _partner(history: list[Kept], now: float) -> Kept | None:
    """The frame a new one at ``now`` is compared with (None: not kept, or no partner
    yet; ``history`` must not be empty for the first case to apply)."""
    older = [h for h in history if PAIR_MIN_S <= now - h[0] <= PAIR_MAX_S]
    return older[-1] if older else None  # the most recent frame far enough back


def _keeps(history: list[Kept], now: float) -> bool:
    return not history or now - history[-1][0] >= KEEP_EVERY_S


def _kept(history: list[Kept], entry: Kept) -> list[Kept]:
    return [h for h in history if entry[0] - h[0] <= PAIR_MAX_S] + [entry]


@dataclass(frozen=True)
class Pair:
    """A parallax pair measured in the executor: this frame's motion against frame
    number ``partner`` (None: untrackable)."""

    partner: int
    motion: dict[str, float] | None


class PairMaker:
    """The executor's half of :class:`ParallaxTrack` (one per participant, fed in order).

    The Lucas-Kanade pair (~2 ms) is image work: it belongs with the rest of the frame's
    analysis in the executor, not on the event loop. This keeps the same history by the
    same rules and numbers every frame; the gate's track uses a pair when its own choice
    of partner is the same frame (always, unless the gate skipped that frame or started
    a new track), and measures the pair itself otherwise, so the cue is unchanged.
    """

    def __init__(self) -> None:
        self._history: list[Kept] = []
        self._count = 0

    def measure(
        self, now: float, patch: np.ndarray | None, points: np.ndarray | None
    ) -> tuple[int, Pair | None]:
        """(this frame's number, its pair or None) for a frame analysed at ``now``."""
        frame = self._count
        self._count += 1
        if patch is None or points is None or len(points) != len(TRACK_POINTS):
            return frame, None
        if not _keeps(self._history, now):
            return frame, None
        partner = _partner(self._history, now)
        pair = None
        if partner is not None:
            pair = Pair(partner[1], pair_motion(partner[2], partner[3], patch, points))
        self._history = _kept(self._history, (now, frame, patch, points))
        return frame, pair


class ParallaxTrack:
    """Non-planar motion over one face track, between frames ~``PAIR_GAP_S`` apart.

    Half a second apart rather than consecutive: parallax grows with how far the head
    turned, the tracker's noise does not, and a blink (0.1-0.3 s) is still caught as
    the closed frame against an open one. Pairs are chosen by time so the cue means
    the same at the gate's 4 fps as at a challenge's 8. A pair the executor measured
    (:class:`PairMaker`) is used when it compares the same two frames.
    """

    def __init__(self) -> None:
        self._history: list[Kept] = []
        self._pairs: list[dict[str, float]] = []
        self.measured_here = 0  # pairs measured on the caller's thread (no executor pair)

    def __len__(self) -> int:
        return len(self._pairs)

    def add(
        self, now: float, patch: np.ndarray | None, points: np.ndarray | None,
        frame: int = -1, pair: Pair | None = None,
    ) -> None:
        if patch is None or points is None or len(points) != len(TRACK_POINTS):
            return
        if not _keeps(self._history, now):
            return
        partner = _partner(self._history, now)
        if partner is not None:
            if pair is not None and partner[1] >= 0 and pair.partner == partner[1]:
                motion = pair.motion
            else:
                self.measured_here += 1
                motion = pair_motion(partner[2], partner[3], patch, points)
            if motion is not None:
                self._pairs.append(motion)
        self._history = _kept(self._history, (now, frame, patch, points))

    def motion(self, percentile: float = 90.0) -> dict[str, float]:
        """Per region, the ``percentile`` of its per-pair residual over the track."""
        if not self._pairs:
            return {}
        names = self._pairs[0].keys()
        return {n: float(np.percentile([p[n] for p in self._pairs], percentile)) for n in names}
