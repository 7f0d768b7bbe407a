"""What the liveness checks need from one analysed frame, and the policy values.

A :class:`LivenessSample` is built in the executor (``verify.FaceChecker.observe``)
from the face engine's output and travels inside the gate's ``Observation``; the
liveness state machines never touch pixels or models, only these samples and the
time passed in.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from ..face.blendshapes import blink_score, jaw_open_score, smile_score
from .cues import PixelCues, pixel_cues
from .lightmeter import LightSample, measure_light
from .parallax import TRACK_POINTS, Pair, PairMaker, face_patch

if TYPE_CHECKING:  # the gate imports this module; keep it free of model imports
    from ..face.engine import Face
    from ..face.landmarks import FaceMeasures



class LivenessPolicy(enum.Enum):
    """Which liveness checks a room requires (per room later, from settings now)."""

    OFF = "off"
    PASSIVE = "passive"
    ACTIVE = "active"
    ACTIVE_PASSIVE = "active+passive"
    # The screen-light challenge (flash.py), alone or with the others.
    LIGHT = "light"
    LIGHT_PASSIVE = "light+passive"
    ACTIVE_LIGHT = "active+light"
    ACTIVE_LIGHT_PASSIVE = "active+light+passive"

    @property
    def active(self) -> bool:
        return "active" in self.value.split("+")

    @property
    def passive(self) -> bool:
        return "passive" in self.value.split("+")

    @property
    def light(self) -> bool:
        return "light" in self.value.split("+")

    def without_light(self) -> LivenessPolicy:
        """What a room that does not flash the screen runs instead: the pose challenge
        replaces the light challenge (photosensitive participants, ``rooms.no_flashing``)."""
        if not self.light:
            return self
        return LivenessPolicy.ACTIVE_PASSIVE if self.passive else LivenessPolicy.ACTIVE

    @classmethod
    def parse(cls, value: str) -> LivenessPolicy:
        try:
            return cls(value.strip().lower())
        except ValueError as exc:
            names = ", ".join(p.value for p in cls)
            raise ValueError(f"liveness policy must be one of {names}, got {value!r}") from exc


@dataclass(frozen=True, eq=False)
class LivenessSample:
    """One frame's face, reduced to what liveness judges.

    ``center``/``width`` are fractions of the frame (continuity is resolution-free);
    ``points`` are the mesh's ``parallax.TRACK_POINTS`` (rigid points, nose, eyelids,
    lips) in the coordinates of ``patch``, the small grey face patch the parallax cue
    tracks them in (``None`` when the pixel cues were skipped);
    ``embedding`` is set on frames the face engine embedded (start and end of a
    challenge), ``pixels`` on frames where the pixel cues ran, ``light`` (skin chroma
    for the screen-light challenge) whenever the face could be measured, ``blendshapes``
    (52 scores, :mod:`server.face.blendshapes`) when the face landmarker ran (the default;
    ``None`` with the 468-point mesh alone, and the checks fall back to the measures).
    """

    measures: FaceMeasures
    center: tuple[float, float]
    width: float
    points: np.ndarray
    embedding: np.ndarray | None = None
    pixels: PixelCues | None = None
    patch: np.ndarray | None = None
    light: LightSample | None = None
    blendshapes: np.ndarray | None = None
    width_px: float = 0.0  # face box width in frame pixels (0: unknown)
    # Set in the executor by a participant's PairMaker (``paired``): this frame's number
    # and its parallax pair, so the gate does no Lucas-Kanade work on the event loop.
    frame: int = -1
    pair: Pair | None = None
    # A tracking frame (server/face/tracking.py): the landmarker's crop came from the
    # previous frame's points, not the detector's box, which moves the blendshape scores.
    tracked: bool = False

    @property
    def ear(self) -> float:
        return (self.measures.ear_left + self.measures.ear_right) / 2.0

    @property
    def blink(self) -> float | None:
        """Eye closure from the blendshapes (0 open, 1 shut), ``None`` without them."""
        return None if self.blendshapes is None else blink_score(self.blendshapes)

    @property
    def smile_score(self) -> float | None:
        return None if self.blendshapes is None else smile_score(self.blendshapes)

    @property
    def jaw_open(self) -> float | None:
        return None if self.blendshapes is None else jaw_open_score(self.blendshapes)


def box_change(s: LivenessSample, ref: LivenessSample) -> tuple[float, float]:
    """(size ratio, centre shift in ``ref``'s face widths) of ``s``'s face box against
    ``ref``'s: the continuity, steadiness and framing checks all read these two."""
    scale = max(s.width, 1e-6) / max(ref.width, 1e-6)
    shift = abs(complex(*s.center) - complex(*ref.center)) / max(ref.width, 1e-6)
    return scale, shift


def sample_from_face(
    rgb: np.ndarray,
    face: Face,
    *,
    pixels: bool = True,
    light: bool = True,
    tracked: bool = False,
) -> LivenessSample | None:
    """Reduce an engine ``Face`` (mesh must have run) to a sample; ``None`` without mesh.
    ``light=False`` skips the skin chroma (``measure_light``: only the light challenge
    reads it). ``tracked`` (a tracking frame, server/face/tracking.py) marks the sample
    and keeps the parallax patch but skips the pixel cues: their thresholds were set on
    the detector's box, which a tracking frame does not have."""
    if face.measures is None or face.mesh is None:
        return None
    height, width = rgb.shape[:2]
    x0, y0, x1, y1 = face.box
    points = np.ascontiguousarray(face.mesh[TRACK_POINTS, :2], dtype=np.float64)
    patch: np.ndarray | None = None
    if pixels:
        patch, points = face_patch(rgb, points)
    return LivenessSample(
        measures=face.measures,
        center=((x0 + x1) / 2 / width, (y0 + y1) / 2 / height),
        width=(x1 - x0) / width,
        points=points,
        embedding=face.embedding,
        pixels=pixel_cues(rgb, face.box, face.measures.roll) if pixels and not tracked else None,
        patch=patch,
        light=measure_light(rgb, face.box) if light else None,
        blendshapes=face.blendshapes,
        width_px=x1 - x0,
        tracked=tracked,
    )


def paired(sample: LivenessSample | None, maker: PairMaker, now: float) -> LivenessSample | None:
    """``sample`` with its frame number and parallax pair from ``maker`` (executor side:
    one maker per participant, frames in order, ``now`` on one clock)."""
    if sample is None:
        return None
    frame, pair = maker.measure(now, sample.patch, sample.points)
    return replace(sample, frame=frame, pair=pair)
