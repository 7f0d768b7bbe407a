"""Turn one decoded frame into the gate's ``Observation``.

This is the synchronous, CPU-bound step run in the executor: face analysis, then
comparison with whoever the participant must be (1:1 invite) or anyone enrolled
in the room (1:N open link), and the liveness sample (measures, a few mesh points,
the pixel cues of the passive checks). The gate never sees pixels; it sees an
embedding only inside the liveness sample, to check that the face at the end of a
challenge is the one that started it.

The room's engine setting (``Room.engine``: dlib, sface, both, fused) lives in
:class:`CheckTarget`; everything engine-specific (which descriptors to compute, which
templates to compare, how to combine the distances) happens here and in
``server.face``, so the session layer only builds the target with :func:`load_target`
(1:1) or :func:`build_room_index` (1:N) and passes it on.

What the session layer's call sites pass (nothing else there knows about engines)::

    # join (1:1 invite or 1:N open link)
    threshold = room.threshold or hub.default_threshold
    index = None if person else await hub.room_gallery(room)         # 1:N only
    target = load_target(store, room, person.id if person else None,
                         threshold=threshold, index=index)
    if not target.enrolled:   # nobody (or not this person) has the room's engines
        refuse("not_enrolled", ...)   # 1:1 in an sface/both/fused room: "re-enrol"
    checker = FaceChecker(hub.engine, target)

    # Hub.room_gallery(room): cache per room on (store.gallery_version(room.id),
    # room.engine), built in the executor:
    index = await loop.run_in_executor(executor, build_room_index, store, room.id,
                                       room.engine)

    # presence check on a keyframe (executor); host re-verification reuses observe()
    checker.presence(rgb, gate.person_id or checker.target.claimed, now)

    # optional, once at start-up in the executor: SFace templates from kept photos
    backfill.backfill_templates(store, engine)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .face.engine import Face, FaceEngine
from .face.gallery import GalleryIndex
from .face.matcher import verify
from .face.multimatch import EngineGallery, has_engines, verify_engines
from .face.scoring import Scorer, continuity_vector, scorer_for
from .face.tracking import FaceTracker
from .gate import FrameNeeds, Match, Observation
from .liveness import sample_from_face
from .presence.check import presence_check
from .presence.monitor import PresenceCheck


@dataclass(frozen=True)
class CheckTarget:
    """Whom a participant is compared with; ``claimed`` is set for per-person invites.

    ``gallery`` holds dlib templates per person (as before SFace); ``engine_templates``
    the other engines' (engine -> person -> templates). ``index`` is the room's prebuilt
    1:N index: a :class:`GalleryIndex` (dlib rooms) or an :class:`EngineGallery`.
    """

    claimed: str | None
    gallery: Mapping[str, np.ndarray]
    threshold: float
    margin: float = 0.04
    # 1:N rooms pass the room's shared, prebuilt index (Hub.room_gallery).
    index: GalleryIndex | EngineGallery | None = None
    engine: str = "dlib"
    engine_templates: Mapping[str, Mapping[str, np.ndarray]] = field(default_factory=dict)

    @property
    def scorer(self) -> Scorer:
        return scorer_for(self.engine)

    def templates_of(self, person_id: str) -> dict[str, np.ndarray]:
        """The person's templates per engine the room's mode needs."""
        out: dict[str, np.ndarray] = {}
        for engine in self.scorer.engines:
            source = self.gallery if engine == "dlib" else self.engine_templates.get(engine, {})
            found = source.get(person_id)
            if found is None and isinstance(self.index, EngineGallery):
                found = self.index.templates_of(person_id).get(engine)
            if found is None and isinstance(self.index, GalleryIndex) and engine == "dlib":
                found = self.index.templates_of(person_id)
            out[engine] = np.empty((0, 128), np.float32) if found is None else found
        return out

    @property
    def enrolled(self) -> bool:
        """Someone can be matched: the claimed person has templates for every engine
        the mode needs (1:1), or the room's index has anyone usable (1:N)."""
        if self.claimed is not None:
            return has_engines(self.templates_of(self.claimed), self.scorer)
        if self.index is not None:
            return len(self.index) > 0
        return any(has_engines(self.templates_of(pid), self.scorer) for pid in self.gallery)


def load_target(
    store: Any,
    room: Any,
    person_id: str | None,
    *,
    threshold: float,
    index: GalleryIndex | EngineGallery | None = None,
) -> CheckTarget:
    """The target for a join: ``store`` is the repository, ``room`` a ``store.Room``.

    1:1 (``person_id`` set): that person's templates of every engine the room needs.
    1:N: pass the room's shared ``index`` (:func:`build_room_index`). Then
    ``target.enrolled`` False means "refuse: not enrolled (for this room's engine)".
    """
    engine = str(room.engine)
    if person_id is None:
        return CheckTarget(None, {}, threshold, index=index, engine=engine)
    gallery = {person_id: store.templates(person_id, engine="dlib")}
    extra = {
        e: {person_id: store.templates(person_id, engine=e)}
        for e in scorer_for(engine).engines
        if e != "dlib"
    }
    return CheckTarget(person_id, gallery, threshold, engine=engine, engine_templates=extra)


def build_room_index(store: Any, room_id: str, engine: str) -> GalleryIndex | EngineGallery:
    """The room's 1:N index for its engine setting (run in the executor: it decrypts
    every template). dlib rooms get the plain :class:`GalleryIndex` as before."""
    if engine == "dlib":
        return GalleryIndex(store.gallery(room_id, engine="dlib"))
    scorer = scorer_for(engine)
    galleries = {e: store.gallery(room_id, engine=e) for e in scorer.engines}
    return EngineGallery(galleries, scorer, enrolled=store.engine_coverage(room_id).keys())


class FaceChecker:
    def __init__(self, engine: FaceEngine, target: CheckTarget) -> None:
        self.engine = engine
        self.target = target
        self.scorer = target.scorer
        self._index: GalleryIndex | EngineGallery | None = target.index
        # One participant's landmark track ([face] track_landmarks): observe() calls
        # arrive one at a time, in frame order, with the sampler's clock.
        tracks = getattr(engine, "track_landmarks", False)  # test doubles lack it
        self.tracker = FaceTracker(engine) if tracks else None

    @property
    def index(self) -> GalleryIndex | EngineGallery:
        """The room's gallery packed for 1:N search; built on first use, in the executor."""
        if self._index is None:
            target = self.target
            if self.scorer.mode == "dlib":
                self._index = GalleryIndex(target.gallery)
            else:
                galleries = {
                    e: target.gallery if e == "dlib" else target.engine_templates.get(e, {})
                    for e in self.scorer.engines
                }
                self._index = EngineGallery(galleries, self.scorer)
        return self._index

    def observe(
        self,
        rgb: np.ndarray,
        *,
        embed: bool = True,
        pixels: bool = True,
        light: bool = True,
        now: float | None = None,
        detect: bool = False,
    ) -> Observation:
        """Analyse one frame. ``embed=False`` skips the embedding (~7 ms; mid-challenge
        frames only need the mesh); ``pixels=False`` skips the passive pixel cues;
        ``light=False`` the skin chroma (the gate wants it during its light window only).
        ``now`` (the sampler's clock) lets a tracking checker skip the detector between
        detector frames (server/face/tracking.py); without it, or with ``detect``
        (``FrameNeeds.detect``: expression steps), every frame is detected."""
        engines = self.scorer.engines
        tracked = False
        if self.tracker is not None and now is not None:
            # The light window's frames keep the detector: its chroma is read in the box.
            analysis = self.tracker.analyse(
                rgb, now, embed=embed, engines=engines, detect=light or detect
            )
            tracked = self.tracker.last_tracked
        else:
            analysis = self.engine.analyse(rgb, mesh=True, embed=embed, engines=engines)
        faces = analysis.faces
        if len(faces) != 1:
            return Observation(len(faces))
        face = faces[0]
        height, width = rgb.shape[:2]
        x0, y0, x1, y1 = face.box
        center = ((x0 + x1) / 2 / width, (y0 + y1) / 2 / height)
        face_width = (x1 - x0) / width
        # Tracking frames carry no pixel cues: those are calibrated on the detector's box.
        sample = sample_from_face(rgb, face, pixels=pixels, light=light, tracked=tracked)
        if sample is not None and sample.embedding is None and face.embeddings:
            # sface rooms run no dlib: the challenge's same-face check (dlib distance)
            # gets SFace's vector in dlib's unit instead
            sample = replace(sample, embedding=continuity_vector(face.embeddings))
        quality = tuple(issue.message for issue in face.quality)
        if not embed:
            return Observation(1, None, center, face_width, quality, sample)
        if quality or any(e not in face.embeddings for e in self.scorer.engines):
            missing = quality or ("face not measurable",)
            return Observation(1, None, center, face_width, missing, sample)
        return Observation(1, self.match(face), center, face_width, liveness=sample)

    def observe_needs(self, rgb: np.ndarray, needs: FrameNeeds, now: float) -> Observation:
        """The frame analysed as the gate asked (``Gate.frame_needs``), on the sampler's
        clock: the server's executor step and the offline eval's (gate_eval.py)."""
        return self.observe(rgb, embed=needs.embed, light=needs.light, now=now, detect=needs.detect)

    def match(self, face: Face) -> Match:
        probes = {e: face.embeddings[e][None, :] for e in self.scorer.engines}
        target = self.target
        if target.claimed is not None:
            templates = target.templates_of(target.claimed)
            if not has_engines(templates, self.scorer):
                return Match(None, float("inf"), False)
            if self.scorer.mode == "dlib":
                result = verify(probes["dlib"], templates["dlib"], threshold=target.threshold)
            else:
                result = verify_engines(probes, templates, self.scorer, threshold=target.threshold)
            return Match(target.claimed, result.distance, result.accepted)
        index = self.index
        if isinstance(index, GalleryIndex):
            found = index.identify(probes["dlib"], threshold=target.threshold, margin=target.margin)
        else:
            found = index.identify(probes, threshold=target.threshold, margin=target.margin)
        if found.status == "ambiguous":
            return Match(found.person_id, found.distance, True, ambiguous=True)
        return Match(found.person_id, found.distance, found.status == "match")

    def presence(self, rgb: np.ndarray, person_id: str | None, now: float) -> PresenceCheck:
        """One presence check of ``person_id`` (the admitted person) on a keyframe, with
        the room's engines; no person or no templates gives a check that cannot match."""
        templates = self.target.templates_of(person_id) if person_id else {}
        return presence_check(
            self.engine, rgb, templates, self.target.threshold, now, scorer=self.scorer
        )
