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
refuses. The temporal cue needs a few seconds of the same face:

- ``static``: nothing moved that a flat picture could not move. Each frame's
  landmarks are rectified onto the track's first frame by the homography of the face
  outline (:mod:`server.liveness.parallax`); a photo or screen, however it is tilted,
  turned, rotated, panned or zoomed, leaves its nose, eyes and mouth where they were
  (up to mesh jitter), while a person's nose moves against the outline when the head
  turns (parallax) and eyelids and lips move when they blink or talk.

The evidence is one continuous face track: a jump of the face (position or size, as
when a phone is brought in front of the person) or a long gap starts a new track, so
a few frames of a real face cannot vouch for the screen that replaces it.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

import numpy as np

from .parallax import ParallaxTrack
from .sample import LivenessSample


@dataclass(frozen=True)
class PassiveConfig:
    # Pixel cue thresholds (raw units, see cues.py); each maps to a normalised 1.0.
    enclosure: float = 0.42  # weakest-side support of a frame around the face
    glare: float = 0.06  # fraction of specular pixels on the face
    moire: float = 7.0  # spectral peak over radial average
    gamut: float = 10.0  # chroma units outside the skin range
    # Temporal cue: non-planar motion (p90 over frame pairs 0.5 s apart, inter-ocular
    # distances) per region that counts as live; parallax.py, docs/liveness.md.
    static_window_s: float = 3.0  # seconds of one face before "static" may fire
    nose_motion: float = 0.018
    eyes_motion: float = 0.03
    mouth_motion: float = 0.045
    # The lips count only when the mesh also sees the mouth open and close (p90-p10
    # of its gap/width ratio): a print's cut edge running along the lips over a still
    # background can drag the tracker; it cannot make the mesh read a moving mouth.
    mouth_confirm: float = 0.08
    min_track_frames: int = 6  # frames of the track needed before the cue is computed
    # A new face track starts when the face jumps this far (face widths), changes size
    # by this factor, or is missing this long.
    track_max_jump: float = 0.8
    track_max_scale: float = 1.5
    track_max_gap_s: float = 2.0
    # Combined decision.
    threshold: float = 1.0
    min_frames: int = 3  # pixel-cue frames needed before a verdict
    # False judges pixels alone (a single still); the gate always needs the motion cue.
    temporal: bool = True


@dataclass(frozen=True)
class PassiveVerdict:
    """``live`` is None while there is not enough evidence yet."""

    live: bool | None
    score: float
    threshold: float
    cue: str | None
    cues: dict[str, float] = field(default_factory=dict)


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
        self._mouth_open: list[float] = []
        self._track = ParallaxTrack()
        self._last: LivenessSample | None = None
        self.tracks = 1  # how many face tracks this check has started (1 = continuous)

    def reset(self) -> None:
        tracks = self.tracks
        self.__init__(self.config)  # type: ignore[misc]
        self.tracks = tracks + 1

    @property
    def frames(self) -> int:
        return len(self._pixel_scores["frame"])

    @property
    def span_s(self) -> float:
        return self._times[-1] - self._times[0] if self._times else 0.0

    def _continues(self, sample: LivenessSample, now: float) -> bool:
        last, cfg = self._last, self.config
        if last is None:
            return True
        scale = max(last.width, sample.width, 1e-6)
        jump = math.dist(last.center, sample.center) / scale
        ratio = max(last.width, sample.width) / max(min(last.width, sample.width), 1e-6)
        gap = now - self._times[-1]
        return jump <= cfg.track_max_jump and ratio <= cfg.track_max_scale and (
            gap <= cfg.track_max_gap_s
        )

    def add(self, sample: LivenessSample, now: float) -> None:
        if not self._continues(sample, now):
            self.reset()
        cfg = self.config
        px = sample.pixels
        if px is not None:
            self._pixel_scores["frame"].append(px.enclosure / cfg.enclosure)
            self._pixel_scores["glare"].append(px.glare / cfg.glare)
            self._pixel_scores["moire"].append(px.moire / cfg.moire)
            self._pixel_scores["gamut"].append(px.gamut / cfg.gamut)
        self._times.append(now)
        self._mouth_open.append(sample.measures.mouth_open)
        self._track.add(now, sample.patch, sample.points, sample.frame, sample.pair)
        self._last = sample

    def motion(self) -> dict[str, float]:
        """Rectified motion per region over the track (see parallax.py)."""
        return self._track.motion()

    def liveliness(self) -> float:
        """Largest rectified motion of nose / eyes / mouth, each over its threshold."""
        cfg = self.config
        m = self._track.motion()
        mouth = m.get("mouth", 0.0) / cfg.mouth_motion
        opened = self._mouth_open
        if len(opened) < 3 or float(np.percentile(opened, 90) - np.percentile(opened, 10)) < (
            cfg.mouth_confirm
        ):
            mouth = 0.0
        return max(m.get("nose", 0.0) / cfg.nose_motion, m.get("eyes", 0.0) / cfg.eyes_motion,
                   mouth)

    def cue_scores(self) -> dict[str, float]:
        """Every cue's normalised score (1.0 = its threshold); absent cues are left out."""
        cfg = self.config
        scores = {
            name: float(statistics.median(values))
            for name, values in self._pixel_scores.items()
            if values
        }
        # Fail closed: frames whose motion could not be measured (untrackable texture,
        # pixel cues skipped) count as frames without live motion.
        if self.span_s >= cfg.static_window_s and len(self._times) >= cfg.min_track_frames:
            scores["static"] = 1.0 / max(self.liveliness(), 0.1)
        return scores

    def verdict(self) -> PassiveVerdict:
        cfg = self.config
        scores = self.cue_scores()
        if not scores:
            return PassiveVerdict(None, 0.0, cfg.threshold, None, scores)
        cue, score = max(scores.items(), key=lambda kv: kv[1])
        if score >= cfg.threshold:
            return PassiveVerdict(False, score, cfg.threshold, cue, scores)
        if self.frames < cfg.min_frames or (cfg.temporal and "static" not in scores):
            return PassiveVerdict(None, score, cfg.threshold, None, scores)
        return PassiveVerdict(True, score, cfg.threshold, None, scores)
