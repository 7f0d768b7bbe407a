"""A room's engine setting turned into one decision distance per comparison.

Rooms choose which engines decide (``Room.engine``):

- ``dlib``: dlib's ResNet alone (the distance as before: nothing changes for these rooms);
- ``sface``: SFace alone;
- ``both``: both must accept (the larger of the two rescaled distances decides);
- ``fused``: one calibrated decision from both distances (:mod:`.fusion`).

Every mode yields a distance in *dlib's unit*: accept at or under the room's threshold,
whose calibrated default is 0.60 for every mode. SFace's distance ``d`` (Euclidean
between unit vectors) is rescaled by ``0.60 / SFACE_THRESHOLD``, so a stricter room
threshold (e.g. 0.55) tightens every engine in proportion, margins (1:N ambiguity)
keep their meaning, and the gate, audit and presence code see one kind of number.

The constants below come from ``python -m server.face eval --engine fused`` on LFW
View 2 (fitted on all 6000 pairs; the 10-fold figures in docs/face.md fit each fold
on the other nine). docs/face.md carries the same values in its calibration line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from .fusion import REFERENCE_THRESHOLD, Fusion

RoomEngine = Literal["dlib", "sface", "both", "fused"]
ROOM_ENGINES: tuple[RoomEngine, ...] = ("dlib", "sface", "both", "fused")

# SFace's accuracy-optimal distance on all 6000 LFW pairs (cosine 0.348 = 1 - d^2 / 2;
# OpenCV Zoo publishes 0.363 for its own alignment); the ten folds' own optima agree.
SFACE_THRESHOLD = 1.1417
# Logistic fusion fitted on all 6000 LFW pairs (dlib flip-averaged, SFace one chip), its
# accept point moved to their accuracy optimum. The ten fold fits span w_dlib
# 14.32-14.95, w_sface 12.72-13.19, bias 23.87-24.35 (docs/face.md).
DEFAULT_FUSION = Fusion(w_dlib=14.638913, w_sface=12.89278, bias=24.087061)


def engines_for(mode: str) -> tuple[str, ...]:
    """The descriptor engines a room mode needs on every probe and template."""
    if mode == "dlib":
        return ("dlib",)
    if mode == "sface":
        return ("sface",)
    if mode in ("both", "fused"):
        return ("dlib", "sface")
    raise ValueError(f"unknown room engine {mode!r}; expected one of {ROOM_ENGINES}")


@dataclass(frozen=True)
class Scorer:
    """Combines per-engine distances into the room's decision distance (dlib's unit)."""

    mode: str = "dlib"
    sface_threshold: float = SFACE_THRESHOLD
    fusion: Fusion = field(default_factory=lambda: DEFAULT_FUSION)

    def __post_init__(self) -> None:
        engines_for(self.mode)  # validates the mode

    @property
    def engines(self) -> tuple[str, ...]:
        return engines_for(self.mode)

    def sface_scaled(self, d_sface: np.ndarray) -> np.ndarray:
        return np.asarray(np.asarray(d_sface) * (REFERENCE_THRESHOLD / self.sface_threshold))

    def combine(self, distances: Mapping[str, np.ndarray]) -> np.ndarray:
        """Element-wise decision distances from same-shaped per-engine distance arrays."""
        if self.mode == "dlib":
            return np.asarray(distances["dlib"], np.float64)
        if self.mode == "sface":
            return self.sface_scaled(np.asarray(distances["sface"], np.float64))
        d1 = np.asarray(distances["dlib"], np.float64)
        d2 = np.asarray(distances["sface"], np.float64)
        if self.mode == "both":
            return np.asarray(np.maximum(d1, self.sface_scaled(d2)))
        return self.fusion.distance(d1, d2)


DLIB_SCORER = Scorer("dlib")


def continuity_vector(embeddings: Mapping[str, np.ndarray]) -> np.ndarray | None:
    """A vector whose Euclidean distances are in dlib's unit, for "is it still the same
    face?" checks (the gate's liveness start/end comparison, threshold in dlib distance):
    dlib's descriptor when it ran, else SFace's unit vector scaled like its distances."""
    if "dlib" in embeddings:
        return embeddings["dlib"]
    if "sface" in embeddings:
        scale = REFERENCE_THRESHOLD / SFACE_THRESHOLD
        return np.asarray(embeddings["sface"] * scale, dtype=np.float32)
    return None


def scorer_for(mode: str) -> Scorer:
    """The calibrated scorer for a room's engine setting."""
    return DLIB_SCORER if mode == "dlib" else Scorer(mode)
