"""1:1 and 1:N decisions under a room's engine setting (dlib, sface, both, fused).

The single-engine matcher (:mod:`.matcher`, :class:`.gallery.GalleryIndex`) stays the
building block: per engine, each probe frame gets its best template distance per person;
:class:`.scoring.Scorer` turns the engines' distances into one decision distance per
frame and person (dlib's unit); frames are then fused exactly as before (median of the
k best). With ``dlib`` the result is bit-for-bit the single-engine one.

A person counts for a mode only with templates for every engine the mode needs: a
person enrolled before SFace existed, whose photos were not kept, has no SFace templates
and is reported by ``missing`` (the owner sees "re-enrol for sface") instead of being
silently matched on one engine.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import numpy as np

from .gallery import GalleryIndex
from .matcher import (
    DEFAULT_FUSE_K,
    DEFAULT_MARGIN,
    DEFAULT_THRESHOLD,
    Identification,
    Verification,
    _as_matrix,
    _fuse,
    decide,
    distance_matrix,
)
from .scoring import DLIB_SCORER, Scorer

# engine -> (N, 128) descriptors (probe frames or one person's templates)
EngineVectors = Mapping[str, np.ndarray]


def has_engines(templates: EngineVectors, scorer: Scorer) -> bool:
    return all(np.asarray(templates.get(e, ())).size > 0 for e in scorer.engines)


def verify_engines(
    probes: EngineVectors,
    templates: EngineVectors,
    scorer: Scorer = DLIB_SCORER,
    *,
    threshold: float | None = None,
    k: int = DEFAULT_FUSE_K,
) -> Verification:
    """1:1 under ``scorer``. Raises ``ValueError`` when an engine the mode needs has no
    probe or no template: no face (or no template) never verifies."""
    thr = DEFAULT_THRESHOLD if threshold is None else float(threshold)
    best: dict[str, np.ndarray] = {}
    mean: dict[str, np.ndarray] = {}
    for engine in scorer.engines:
        if engine not in probes or engine not in templates:
            raise ValueError(f"{engine}: no probe or no template for this engine")
        d = distance_matrix(
            _as_matrix(probes[engine], f"probes[{engine}]"),
            _as_matrix(templates[engine], f"templates[{engine}]"),
        )
        best[engine], mean[engine] = d.min(axis=1), d.mean(axis=1)
    per_frame = scorer.combine(best)
    distance = float(_fuse(per_frame[:, None], k)[0])
    return Verification(
        distance=distance,
        best=float(per_frame.min()),
        mean=float(_fuse(scorer.combine(mean)[:, None], k)[0]),
        accepted=distance <= thr,
        threshold=thr,
    )


class EngineGallery:
    """A room's templates packed per engine (one :class:`GalleryIndex` each) for 1:N
    search under one scorer. ``person_ids`` are the people usable by this mode."""

    def __init__(
        self,
        galleries: Mapping[str, Mapping[str, np.ndarray]],
        scorer: Scorer = DLIB_SCORER,
        *,
        enrolled: Collection[str] | None = None,
    ) -> None:
        """``enrolled``: everyone with templates of any engine (default: anyone in
        ``galleries``), to name those this mode cannot match in ``missing``."""
        self.scorer = scorer
        self.indexes = {e: GalleryIndex(galleries.get(e, {})) for e in scorer.engines}
        sets = [set(ix.person_ids) for ix in self.indexes.values()]
        everyone = set(enrolled) if enrolled is not None else _everyone(galleries)
        usable = set.intersection(*sets) if sets else set()
        first = self.indexes[scorer.engines[0]].person_ids
        self.person_ids = [pid for pid in first if pid in usable]
        # enrolled, but lacking templates of an engine this mode needs
        self.missing = sorted(everyone - usable)
        self._columns: dict[str, np.ndarray] = {}
        for e, ix in self.indexes.items():
            column = {pid: i for i, pid in enumerate(ix.person_ids)}
            self._columns[e] = np.array([column[p] for p in self.person_ids], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.person_ids)

    def templates_of(self, person_id: str) -> dict[str, np.ndarray]:
        """The person's templates per engine (empty arrays when unknown)."""
        return {e: ix.templates_of(person_id) for e, ix in self.indexes.items()}

    def per_person_distances(self, probes: EngineVectors) -> np.ndarray:
        """(frames, persons): the decision distance of each usable person per frame."""
        per_engine = {
            e: ix.per_person_distances(probes[e])[:, self._columns[e]]
            for e, ix in self.indexes.items()
        }
        return self.scorer.combine(per_engine)

    def identify(
        self,
        probes: EngineVectors,
        *,
        threshold: float | None = None,
        margin: float = DEFAULT_MARGIN,
        k: int = DEFAULT_FUSE_K,
    ) -> Identification:
        thr = DEFAULT_THRESHOLD if threshold is None else float(threshold)
        if not self.person_ids:
            return Identification("unknown", None, float("inf"), None)
        return decide(_fuse(self.per_person_distances(probes), k), self.person_ids, thr, margin)


def _everyone(galleries: Mapping[str, Mapping[str, np.ndarray]]) -> set[str]:
    return {pid for g in galleries.values() for pid, t in g.items() if np.asarray(t).size}
