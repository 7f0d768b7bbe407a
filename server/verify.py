"""Turn one decoded frame into the gate's ``Observation``.

This is the synchronous, CPU-bound step run in the executor: face analysis, then
comparison with whoever the participant must be (1:1 invite) or anyone enrolled
in the room (1:N open link), and the liveness sample (measures, a few mesh points,
the pixel cues of the passive checks). The gate never sees pixels; it sees an
embedding only inside the liveness sample, to check that the face at the end of a
challenge is the one that started it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .face.engine import Face, FaceEngine
from .face.gallery import GalleryIndex
from .face.matcher import verify
from .gate import Match, Observation
from .liveness import sample_from_face


@dataclass(frozen=True)
class CheckTarget:
    """Whom a participant is compared with; ``claimed`` is set for per-person invites."""

    claimed: str | None
    gallery: Mapping[str, np.ndarray]
    threshold: float
    margin: float = 0.04
    # 1:N rooms pass the room's shared, prebuilt index (Hub.room_gallery).
    index: GalleryIndex | None = None


class FaceChecker:
    def __init__(self, engine: FaceEngine, target: CheckTarget) -> None:
        self.engine = engine
        self.target = target
        self._index: GalleryIndex | None = target.index

    @property
    def index(self) -> GalleryIndex:
        """The room's gallery packed for 1:N search; built on first use, in the executor."""
        if self._index is None:
            self._index = GalleryIndex(self.target.gallery)
        return self._index

    def observe(
        self, rgb: np.ndarray, *, embed: bool = True, pixels: bool = True
    ) -> Observation:
        """Analyse one frame. ``embed=False`` skips the embedding (~7 ms; mid-challenge
        frames only need the mesh); ``pixels=False`` skips the passive pixel cues."""
        analysis = self.engine.analyse(rgb, mesh=True, embed=embed)
        faces = analysis.faces
        if len(faces) != 1:
            return Observation(len(faces))
        face = faces[0]
        height, width = rgb.shape[:2]
        x0, y0, x1, y1 = face.box
        center = ((x0 + x1) / 2 / width, (y0 + y1) / 2 / height)
        face_width = (x1 - x0) / width
        sample = sample_from_face(rgb, face, pixels=pixels)
        quality = tuple(issue.message for issue in face.quality)
        if not embed:
            return Observation(1, None, center, face_width, quality, sample)
        if quality or face.embedding is None:
            missing = quality or ("face not measurable",)
            return Observation(1, None, center, face_width, missing, sample)
        return Observation(1, self.match(face), center, face_width, liveness=sample)

    def match(self, face: Face) -> Match:
        assert face.embedding is not None
        probe = face.embedding[None, :]
        target = self.target
        if target.claimed is not None:
            templates = target.gallery.get(target.claimed)
            if templates is None or len(templates) == 0:
                return Match(None, float("inf"), False)
            result = verify(probe, templates, threshold=target.threshold)
            return Match(target.claimed, result.distance, result.accepted)
        found = self.index.identify(probe, threshold=target.threshold, margin=target.margin)
        if found.status == "ambiguous":
            return Match(found.person_id, found.distance, True, ambiguous=True)
        return Match(found.person_id, found.distance, found.status == "match")
