"""Passive anti-spoofing: explainable cues on the frames the gate already samples.

Pure and sans-IO: :class:`PassiveCheck` is fed :class:`LivenessSample` objects with
the time they were taken and, when asked, returns a :class:`PassiveVerdict`: one
combined score, the threshold it is compared with, and the cue that decided.

Every cue is normalised so that 1.0 is its own calibrated threshold ("as attack-like
as the weakest attack we measured, with margin from every bona fide clip"); the
combined score is the largest normalised cue, so the verdict always names the one
cue that fired, and a person can be told what was seen. Thresholds and what each
cue cannot catch are in docs/liveness.md.

Pixel cues (per frame, :mod:`server.liveness.cues`) are combined over frames with
the median, so one odd frame (a hand passing, motion blur) neither admits nor
refuses. Temporal cues need a few seconds of the same face:

- ``static``: the face never blinks, changes expression or turns (a photo, even
  panned and zoomed, keeps every ratio of its landmarks);
- ``planar``: when the landmarks move beyond a similarity (out-of-plane motion), one
  homography explains that motion almost entirely -- a flat photo being tilted, not
  a head turning (which moves the nose against the cheeks: parallax).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

import cv2
import numpy as np

from .sample import LivenessSample


@dataclass(frozen=True)
class PassiveConfig:
    # Pixel cue thresholds (raw units, see cues.py); each maps to a normalised 1.0.
    enclosure: float = 0.42  # weakest-side support of a frame around the face
    glare: float = 0.06  # fraction of specular pixels on the face
    moire: float = 7.0  # spectral peak over radial average
    gamut: float = 10.0  # chroma units outside the skin range
    # Temporal cues.
    static_window_s: float = 3.0  # seconds of one face before "never moves" may fire
    blink_drop: float = 0.10  # EAR drop (fraction of median) that counts as a blink
    pose_spread_deg: float = 6.0  # p90-p10 of yaw or pitch that counts as moving
    mouth_spread: float = 0.08  # p90-p10 of mouth opening
    smile_spread: float = 0.06  # p90-p10 of smile ratio, relative to its median
    # With the face landmarker (samples carry blendshapes): a blink is the blendshape
    # eye-closure rising this far above its median (its EAR jitters ~1.5x the mesh's on
    # a held photo, so the EAR drop is not used), and its smile ratio needs this spread.
    blink_score_rise: float = 0.25
    landmarker_smile_spread: float = 0.09
    planar_min_motion: float = 0.012  # similarity residual (face sizes) for a pair to count
    planar_ratio: float = 0.35  # homography / similarity residual below this = flat
    planar_min_pairs: int = 3
    # Combined decision.
    threshold: float = 1.0
    min_frames: int = 3  # pixel-cue frames needed before a verdict


@dataclass(frozen=True)
class PassiveVerdict:
    """``live`` is None while there is not enough evidence yet."""

    live: bool | None
    score: float
    threshold: float
    cue: str | None
    cues: dict[str, float] = field(default_factory=dict)


def _spread(values: list[float]) -> float:
    if len(values) < 3:
        return 0.0
    arr = np.asarray(values)
    return float(np.percentile(arr, 90) - np.percentile(arr, 10))


def _normalise(points: np.ndarray) -> np.ndarray:
    centred = points - points.mean(axis=0)
    scale = math.sqrt(float((centred**2).sum(axis=1).mean()))
    return np.asarray(centred / max(scale, 1e-6))


def planar_residuals(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(similarity residual, homography residual) of the motion a -> b, in face sizes."""
    pa, pb = _normalise(a), _normalise(b)
    # Best similarity after normalisation is a rotation (+ scale ~1): Procrustes.
    u, s, vt = np.linalg.svd(pb.T @ pa)
    rot = u @ vt
    scale = float(s.sum() / max(float((pa**2).sum()), 1e-9))
    sim = scale * pa @ rot.T
    r_sim = math.sqrt(float(((sim - pb) ** 2).sum(axis=1).mean()))
    hom, _ = cv2.findHomography(pa.astype(np.float64), pb.astype(np.float64), 0)
    if hom is None:
        return r_sim, r_sim
    ones = np.ones((len(pa), 1))
    proj = np.hstack([pa, ones]) @ hom.T
    proj = proj[:, :2] / np.where(np.abs(proj[:, 2:]) < 1e-9, 1e-9, proj[:, 2:])
    r_hom = math.sqrt(float(((proj - pb) ** 2).sum(axis=1).mean()))
    return r_sim, r_hom


class PassiveCheck:
    """Accumulates samples of one face track; ``verdict()`` judges what it has seen."""

    def __init__(self, config: PassiveConfig | None = None) -> None:
        self.config = config or PassiveConfig()
        self._pixel_scores: dict[str, list[float]] = {
            "frame": [],
            "glare": [],
            "moire": [],
            "gamut": [],
        }
        self._times: list[float] = []
        self._ear: list[float] = []
        self._yaw: list[float] = []
        self._pitch: list[float] = []
        self._mouth: list[float] = []
        self._smile: list[float] = []
        self._blink: list[float] = []  # blendshape eye closure, when the samples have it
        self._ratios: list[float] = []
        self._last: LivenessSample | None = None

    def reset(self) -> None:
        self.__init__(self.config)  # type: ignore[misc]

    @property
    def frames(self) -> int:
        return len(self._pixel_scores["frame"])

    @property
    def span_s(self) -> float:
        return self._times[-1] - self._times[0] if self._times else 0.0

    def add(self, sample: LivenessSample, now: float) -> None:
        cfg = self.config
        px = sample.pixels
        if px is not None:
            self._pixel_scores["frame"].append(px.enclosure / cfg.enclosure)
            self._pixel_scores["glare"].append(px.glare / cfg.glare)
            self._pixel_scores["moire"].append(px.moire / cfg.moire)
            self._pixel_scores["gamut"].append(px.gamut / cfg.gamut)
        m = sample.measures
        self._times.append(now)
        self._ear.append(sample.ear)
        self._yaw.append(m.yaw)
        self._pitch.append(m.pitch)
        self._mouth.append(m.mouth_open)
        self._smile.append(m.smile)
        if sample.blink is not None:
            self._blink.append(sample.blink)
        if self._last is not None:
            r_sim, r_hom = planar_residuals(self._last.points, sample.points)
            if r_sim >= cfg.planar_min_motion:
                self._ratios.append(r_hom / r_sim)
        self._last = sample

    def liveliness(self) -> float:
        """Largest of blink / pose / expression change, each over its own threshold."""
        cfg = self.config
        if len(self._ear) < 3:
            return 0.0
        ear_med = statistics.median(self._ear)
        smile_med = statistics.median(self._smile)
        smile_spread = cfg.smile_spread
        if len(self._blink) == len(self._ear):  # landmarker samples throughout
            blink = (max(self._blink) - statistics.median(self._blink)) / cfg.blink_score_rise
            smile_spread = cfg.landmarker_smile_spread
        else:
            blink = (ear_med - min(self._ear)) / max(ear_med, 1e-6) / cfg.blink_drop
        return max(
            blink,
            _spread(self._yaw) / cfg.pose_spread_deg,
            _spread(self._pitch) / cfg.pose_spread_deg,
            _spread(self._mouth) / cfg.mouth_spread,
            _spread(self._smile) / max(smile_med, 1e-6) / smile_spread,
        )

    def cue_scores(self) -> dict[str, float]:
        """Every cue's normalised score (1.0 = its threshold); absent cues are left out."""
        cfg = self.config
        scores = {
            name: float(statistics.median(values))
            for name, values in self._pixel_scores.items()
            if values
        }
        if self.span_s >= cfg.static_window_s:
            scores["static"] = 1.0 / max(self.liveliness(), 0.1)
        if len(self._ratios) >= cfg.planar_min_pairs:
            scores["planar"] = cfg.planar_ratio / max(statistics.median(self._ratios), 1e-3)
        return scores

    def verdict(self) -> PassiveVerdict:
        cfg = self.config
        scores = self.cue_scores()
        if not scores:
            return PassiveVerdict(None, 0.0, cfg.threshold, None, scores)
        cue, score = max(scores.items(), key=lambda kv: kv[1])
        if score >= cfg.threshold:
            return PassiveVerdict(False, score, cfg.threshold, cue, scores)
        if self.frames < cfg.min_frames:
            return PassiveVerdict(None, score, cfg.threshold, None, scores)
        return PassiveVerdict(True, score, cfg.threshold, None, scores)
