"""Score fusion of the two engines: one logistic regression on their two distances.

Why this form: two numbers in, three parameters out, and the decision is a straight
line in the (dlib distance, SFace distance) plane: easy to print, to check by hand and
to store next to the calibration. The model is

    logit P(same) = bias - w_dlib * d_dlib - w_sface * d_sface

(``d_sface`` is the Euclidean distance of SFace's unit vectors, ``sqrt(2 - 2 cos)``).
The gate and the matcher want a *distance* with the same meaning as dlib's (accept at
or under :data:`REFERENCE_THRESHOLD` = 0.60), so :meth:`Fusion.distance` rescales the
line: ``D = 0.60 * (w_dlib * d_dlib + w_sface * d_sface) / bias``. ``D <= 0.60`` is the
calibrated decision, ``D`` for one engine's perfect match is 0, and a room's stricter
threshold (say 0.55) moves the line towards the origin exactly as it does for dlib.

Fitting honours the LFW protocol: :func:`fit_folds` gives every fold the parameters
fitted on the *other* nine folds only (a test checks that changing a fold's own pairs
does not change its parameters).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

# dlib's calibrated distance threshold: the unit every engine's decision distance is
# expressed in (matcher.DEFAULT_THRESHOLD; repeated to keep this module free of imports).
REFERENCE_THRESHOLD = 0.60


@dataclass(frozen=True)
class Fusion:
    """Logistic fusion parameters (see the module docstring)."""

    w_dlib: float
    w_sface: float
    bias: float

    def logit(self, d_dlib: np.ndarray, d_sface: np.ndarray) -> np.ndarray:
        return np.asarray(self.bias - self.w_dlib * d_dlib - self.w_sface * d_sface)

    def distance(self, d_dlib: np.ndarray, d_sface: np.ndarray) -> np.ndarray:
        """The fused decision distance in dlib's unit (accept at <= 0.60)."""
        with np.errstate(invalid="ignore"):
            raw = self.w_dlib * np.asarray(d_dlib) + self.w_sface * np.asarray(d_sface)
        return np.asarray(REFERENCE_THRESHOLD * raw / self.bias)

    def recentred(self, fused_threshold: float) -> Fusion:
        """The same line family with the accept point moved: what :meth:`distance` called
        ``fused_threshold`` becomes 0.60 (used to put the accuracy-optimal cut there)."""
        return Fusion(self.w_dlib, self.w_sface, self.bias * fused_threshold / REFERENCE_THRESHOLD)

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 6) for k, v in asdict(self).items()}


def fit_logistic(
    d_dlib: np.ndarray,
    d_sface: np.ndarray,
    same: np.ndarray,
    *,
    l2: float = 1e-3,
    iterations: int = 50,
) -> Fusion:
    """Maximum-likelihood logistic regression (Newton steps, a little L2 on the weights
    for stability when the classes separate). Pairs with a non-finite distance (a photo
    without a face) are left out of the fit."""
    d1 = np.asarray(d_dlib, np.float64)
    d2 = np.asarray(d_sface, np.float64)
    y = np.asarray(same, np.float64)
    ok = np.isfinite(d1) & np.isfinite(d2)
    d1, d2, y = d1[ok], d2[ok], y[ok]
    if len(y) < 4 or y.min() == y.max():
        raise ValueError("fusion needs same and different pairs with finite distances")
    # Standardise for a well-conditioned Newton step, then map back.
    mu = np.array([d1.mean(), d2.mean()])
    sd = np.array([max(d1.std(), 1e-9), max(d2.std(), 1e-9)])
    x = np.column_stack([np.ones(len(y)), (d1 - mu[0]) / sd[0], (d2 - mu[1]) / sd[1]])
    beta = np.zeros(3)
    reg = np.diag([0.0, l2, l2]) * len(y)
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ beta, -50, 50)))
        grad = x.T @ (y - p) - reg @ beta
        hess = (x * (p * (1 - p))[:, None]).T @ x + reg
        step = np.linalg.solve(hess, grad)
        beta = beta + step
        if float(np.abs(step).max()) < 1e-10:
            break
    w = beta[1:] / sd  # logit = b0 + w . (d - mu)
    bias = float(beta[0] - w @ mu)
    w_dlib, w_sface = float(-w[0]), float(-w[1])
    if not (w_dlib > 0 and w_sface > 0 and bias > 0) or not math.isfinite(bias):
        raise ValueError(
            f"fusion fit is not a distance (w_dlib={w_dlib:.3g}, w_sface={w_sface:.3g}, "
            f"bias={bias:.3g}): are the distances swapped or the labels inverted?"
        )
    return Fusion(w_dlib, w_sface, bias)


def best_cut(d: np.ndarray, same: np.ndarray) -> float:
    """The threshold maximising accuracy of ``d <= cut`` (midpoint between neighbours)."""
    fin = np.sort(np.unique(d[np.isfinite(d)]))
    if not len(fin):
        return REFERENCE_THRESHOLD
    cand = np.concatenate([[fin[0] - 1e-3], (fin[:-1] + fin[1:]) / 2, [fin[-1] + 1e-3]])
    # vectorised accuracy over all candidates: sort once, count with searchsorted
    s_sorted = np.sort(d[same])
    o_sorted = np.sort(d[~same])
    accepted_same = np.searchsorted(s_sorted, cand, side="right")
    rejected_diff = len(o_sorted) - np.searchsorted(o_sorted, cand, side="right")
    acc = (accepted_same + rejected_diff) / len(d)
    return float(cand[int(np.argmax(acc))])


def fit_calibrated(d_dlib: np.ndarray, d_sface: np.ndarray, same: np.ndarray) -> Fusion:
    """Logistic fit, then the accept point moved to these pairs' accuracy optimum."""
    fusion = fit_logistic(d_dlib, d_sface, same)
    cut = best_cut(fusion.distance(d_dlib, d_sface), np.asarray(same, bool))
    return fusion.recentred(cut)


def fit_folds(
    d_dlib: np.ndarray, d_sface: np.ndarray, same: np.ndarray, folds: Sequence[int] | np.ndarray
) -> dict[int, Fusion]:
    """Per fold, the fusion fitted (and its accept point placed) on the other folds only."""
    fold_of = np.asarray(folds)
    same_b = np.asarray(same, bool)
    out: dict[int, Fusion] = {}
    for f in sorted({int(v) for v in fold_of}):
        train = fold_of != f
        out[f] = fit_calibrated(
            np.asarray(d_dlib)[train], np.asarray(d_sface)[train], same_b[train]
        )
    return out
