"""Score fusion and the room engine modes: fitted fold-wise without leakage, and one
decision distance in dlib's unit for every mode."""

from __future__ import annotations

import numpy as np
import pytest

from server.face.fusion import REFERENCE_THRESHOLD, Fusion, best_cut, fit_folds, fit_logistic
from server.face.scoring import DEFAULT_FUSION, SFACE_THRESHOLD, Scorer, engines_for


def _synthetic(n_per_fold: int = 60, folds: int = 10, seed: int = 1):  # type: ignore[no-untyped-def]
    """Two noisy, partly independent distances per pair, as two engines give."""
    rng = np.random.default_rng(seed)
    n = n_per_fold * folds
    same = np.arange(n) % 2 == 0
    base = np.where(same, 0.0, 1.0)
    d1 = 0.45 + 0.25 * base + rng.normal(0, 0.07, n)
    d2 = 0.95 + 0.35 * base + rng.normal(0, 0.09, n)
    fold = np.repeat(np.arange(folds), n_per_fold)
    return d1, d2, same, fold


def test_logistic_fit_is_a_distance_and_beats_each_engine() -> None:
    d1, d2, same, _ = _synthetic()
    fusion = fit_logistic(d1, d2, same)
    assert fusion.w_dlib > 0 and fusion.w_sface > 0 and fusion.bias > 0
    fused = fusion.distance(d1, d2)

    def acc(d: np.ndarray) -> float:
        return float(np.mean((d <= best_cut(d, same)) == same))

    assert acc(fused) >= max(acc(d1), acc(d2))
    # the logit and the rescaled distance agree on the decision
    assert np.array_equal(fusion.logit(d1, d2) >= 0, fused <= REFERENCE_THRESHOLD)


def test_recentred_moves_the_accept_point_only() -> None:
    f = Fusion(2.0, 1.0, 3.0)
    g = f.recentred(0.5)
    d1, d2 = np.array([0.3, 0.7]), np.array([0.9, 1.2])
    np.testing.assert_allclose(g.distance(d1, d2), f.distance(d1, d2) * REFERENCE_THRESHOLD / 0.5)


def test_each_fold_is_fitted_without_its_own_pairs() -> None:
    d1, d2, same, fold = _synthetic()
    before = fit_folds(d1, d2, same, fold)
    # Change everything about fold 3 (distances and labels): its own parameters must not
    # move, every other fold's must (fold 3 is in their training set).
    rng = np.random.default_rng(7)
    d1b, d2b, sameb = d1.copy(), d2.copy(), same.copy()
    own = fold == 3
    d1b[own] = rng.uniform(0.2, 1.0, own.sum())
    d2b[own] = rng.uniform(0.5, 1.6, own.sum())
    sameb[own] = rng.random(own.sum()) < 0.5
    after = fit_folds(d1b, d2b, sameb, fold)
    assert after[3] == before[3]
    assert all(after[f] != before[f] for f in before if f != 3)


def test_fit_refuses_inverted_labels() -> None:
    d1, d2, same, _ = _synthetic()
    with pytest.raises(ValueError, match="not a distance"):
        fit_logistic(d1, d2, ~same)


def test_scorer_modes_share_dlibs_unit() -> None:
    d = {"dlib": np.array([0.30, 0.70, 0.55]), "sface": np.array([SFACE_THRESHOLD, 0.5, 1.4])}
    np.testing.assert_array_equal(Scorer("dlib").combine(d), d["dlib"])
    sface = Scorer("sface").combine(d)
    assert sface[0] == pytest.approx(REFERENCE_THRESHOLD)  # SFace's threshold maps to 0.60
    both = Scorer("both").combine(d)
    np.testing.assert_allclose(both, np.maximum(d["dlib"], sface))
    fused = Scorer("fused").combine(d)
    np.testing.assert_allclose(fused, DEFAULT_FUSION.distance(d["dlib"], d["sface"]))
    assert engines_for("dlib") == ("dlib",) and engines_for("fused") == ("dlib", "sface")
    with pytest.raises(ValueError):
        Scorer("magic")
