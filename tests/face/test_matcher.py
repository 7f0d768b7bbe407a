from __future__ import annotations

import numpy as np
import pytest

from server.face.matcher import DEFAULT_THRESHOLD, distance_matrix, identify, verify

RNG = np.random.default_rng(7)


def _unit(n: int = 1) -> np.ndarray:
    v = RNG.normal(size=(n, 128))
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def _near(x: np.ndarray, dist: float) -> np.ndarray:
    d = _unit()[0]
    d -= d.dot(x) * x
    d /= np.linalg.norm(d)
    return (x + dist * d).astype(np.float32)


def test_distance_matrix_matches_norm() -> None:
    a, b = _unit(3), _unit(4)
    ref = np.linalg.norm(a[:, None] - b[None], axis=2)
    assert np.allclose(distance_matrix(a, b), ref, atol=1e-5)


def test_verify_best_mean_and_threshold() -> None:
    person = _unit()[0]
    templates = np.stack([_near(person, 0.2), _near(person, 0.4)])
    probe = person[None]
    v = verify(probe, templates)
    assert v.best == pytest.approx(0.2, abs=1e-4)
    assert v.mean == pytest.approx(0.3, abs=1e-4)
    assert v.distance == pytest.approx(0.2, abs=1e-4)
    assert v.accepted and v.threshold == DEFAULT_THRESHOLD
    assert not verify(probe, templates, threshold=0.1).accepted


def test_verify_fuses_frames_median_of_best_k() -> None:
    person = _unit()[0]
    frames = np.stack([_near(person, d) for d in (0.1, 0.3, 0.35, 0.9, 1.0)])
    v = verify(frames, person[None], k=3)
    assert v.distance == pytest.approx(0.3, abs=1e-4)
    assert v.best == pytest.approx(0.1, abs=1e-4)


def test_verify_without_probe_never_accepts() -> None:
    with pytest.raises(ValueError):
        verify(np.zeros((0, 128), np.float32), _unit())


def test_identify_match_unknown_ambiguous() -> None:
    a, b = _unit()[0], _unit()[0]
    gallery = {"alice": np.stack([a, _near(a, 0.3)]), "bob": b[None]}
    r = identify(_near(a, 0.1)[None], gallery)
    assert r.status == "match" and r.person_id == "alice"
    assert r.distance == pytest.approx(0.1, abs=1e-4) and r.runner_up_distance is not None

    stranger = _unit()
    r = identify(stranger, gallery)
    assert r.status == "unknown" and r.person_id is None

    twin = _near(a, 0.32)
    close = {"alice": a[None], "alice_twin": twin[None]}
    probe = ((a + twin) / 2)[None]
    r = identify(probe, close, margin=0.05)
    assert r.status == "ambiguous" and r.person_id in close
    assert identify(probe, close, margin=0.0).status == "match"


def test_identify_empty_gallery_is_unknown() -> None:
    assert identify(_unit(), {}).status == "unknown"
