"""Distances between face descriptors and the accept / identify decisions.

Distances are Euclidean between dlib 128-D descriptors (dlib's own metric: 0 identical,
same person typically < 0.45, different people typically > 0.6).

- Several templates per person: per probe frame the ``best`` (minimum) and ``mean``
  distance over the person's templates.
- Several probe frames are fused: the decision distance is the median of the ``k`` best
  (smallest) per-frame best distances, so one lucky frame cannot admit and one bad frame
  cannot reject.

:data:`DEFAULT_THRESHOLD` was calibrated with the eval CLI on LFW View 2 (the whole set,
never per identity; see docs/face.md for the command and numbers).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

# Calibrated on LFW View 2 (6000 pairs, 4281 identities, whole set): the accuracy-optimal
# distance over all pairs is 0.5995 and the ten folds' own optima are 0.598-0.608. At 0.60
# LFW measures FAR 0.53 %, FRR 1.03 %; the shared photo set (other people) 0 false accepts
# and 1 false reject in 408 pairs. See docs/face.md for the command.
DEFAULT_THRESHOLD = 0.60
# identify(): the best person must beat the runner-up by at least this much.
DEFAULT_MARGIN = 0.05
# frames fused: median of the k best per-frame distances.
DEFAULT_FUSE_K = 3


def _as_matrix(x: np.ndarray, what: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float32)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2 or a.shape[0] == 0:
        raise ValueError(f"{what}: expected (N, D) descriptors with N >= 1, got {a.shape}")
    return a


def distance_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances (len(a), len(b)) between two sets of descriptors."""
    a = _as_matrix(a, "a").astype(np.float64)
    b = _as_matrix(b, "b").astype(np.float64)
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    out: np.ndarray = np.sqrt(np.clip(sq, 0.0, None))
    return out


def _fuse(per_frame: np.ndarray, k: int) -> np.ndarray:
    """Median of the k smallest values along axis 0 (frames)."""
    k = max(1, min(k, per_frame.shape[0]))
    best_k = np.sort(per_frame, axis=0)[:k]
    return np.asarray(np.median(best_k, axis=0))


@dataclass(frozen=True)
class Verification:
    distance: float  # fused decision distance
    best: float  # smallest distance over all frames and templates
    mean: float  # mean over templates, fused over frames like ``distance``
    accepted: bool
    threshold: float


def verify(
    probes: np.ndarray,
    templates: np.ndarray,
    *,
    threshold: float | None = None,
    k: int = DEFAULT_FUSE_K,
) -> Verification:
    """1:1: do the probe frames (P, 128) match this person's templates (T, 128)?

    Raises ``ValueError`` when there is no probe or no template: no face never verifies.
    """
    thr = DEFAULT_THRESHOLD if threshold is None else float(threshold)
    d = distance_matrix(_as_matrix(probes, "probes"), _as_matrix(templates, "templates"))
    best_per_frame = d.min(axis=1)
    mean_per_frame = d.mean(axis=1)
    distance = float(_fuse(best_per_frame[:, None], k)[0])
    return Verification(
        distance=distance,
        best=float(best_per_frame.min()),
        mean=float(_fuse(mean_per_frame[:, None], k)[0]),
        accepted=distance <= thr,
        threshold=thr,
    )


IdentificationStatus = Literal["match", "unknown", "ambiguous"]


@dataclass(frozen=True)
class Identification:
    status: IdentificationStatus
    person_id: str | None  # the best candidate for "match" and "ambiguous", else None
    distance: float  # fused distance to the best candidate (inf for an empty gallery)
    runner_up_distance: float | None  # fused distance to the second-best person


def decide(
    fused: np.ndarray, person_ids: Sequence[str], threshold: float, margin: float
) -> Identification:
    """The 1:N decision on per-person fused distances: ``unknown`` over the threshold,
    ``ambiguous`` when the runner-up is within ``margin`` of the best, else ``match``.
    Only the best two are selected: a full sort costs ~ms at 100 000 people."""
    if len(fused) > 1:
        top = np.argpartition(fused, 1)[:2]
        top = top[np.argsort(fused[top])]
        best_i, runner = int(top[0]), float(fused[top[1]])
    else:
        best_i, runner = 0, None
    best = float(fused[best_i])
    if best > threshold:
        return Identification("unknown", None, best, runner)
    if runner is not None and runner - best < margin:
        return Identification("ambiguous", person_ids[best_i], best, runner)
    return Identification("match", person_ids[best_i], best, runner)


def identify(
    probes: np.ndarray,
    gallery: Mapping[str, np.ndarray],
    *,
    threshold: float | None = None,
    margin: float = DEFAULT_MARGIN,
    k: int = DEFAULT_FUSE_K,
) -> Identification:
    """1:N: which enrolled person (if any) are the probe frames?

    ``gallery`` maps person id -> templates (T, 128). The result is ``unknown`` when the
    best person is over the threshold, ``ambiguous`` when the runner-up person is within
    ``margin`` of the best, else ``match``.
    """
    thr = DEFAULT_THRESHOLD if threshold is None else float(threshold)
    p = _as_matrix(probes, "probes")
    ids = [pid for pid, t in gallery.items() if np.asarray(t).size]
    if not ids:
        return Identification("unknown", None, float("inf"), None)
    mats = [_as_matrix(gallery[pid], f"gallery[{pid!r}]") for pid in ids]
    owner = np.concatenate([np.full(len(m), i) for i, m in enumerate(mats)])
    d = distance_matrix(p, np.concatenate(mats))  # (P, sum T)
    # per frame and person: best template distance
    per_person = np.full((p.shape[0], len(ids)), np.inf)
    np.minimum.at(per_person.T, owner, d.T)
    return decide(_fuse(per_person, k), ids, thr, margin)
