"""GalleryIndex decides exactly like matcher.identify."""

from __future__ import annotations

import numpy as np
import pytest

from server.face.gallery import GalleryIndex
from server.face.matcher import identify


def random_gallery(rng: np.random.Generator, persons: int) -> dict[str, np.ndarray]:
    return {
        f"p{i}": rng.normal(scale=0.1, size=(int(rng.integers(1, 4)), 128)).astype(np.float32)
        for i in range(persons)
    }


@pytest.mark.parametrize("seed", range(20))
def test_same_decisions_as_identify(seed: int) -> None:
    rng = np.random.default_rng(seed)
    gallery = random_gallery(rng, 30)
    index = GalleryIndex(gallery)
    person = f"p{seed % 30}"
    near = gallery[person][0] + rng.normal(scale=0.02, size=128)
    for probes in (near[None, :], np.stack([near, near + 0.01]), rng.normal(size=(2, 128))):
        for threshold, margin in ((0.55, 0.05), (2.0, 0.05), (2.0, 10.0)):
            expected = identify(probes, gallery, threshold=threshold, margin=margin)
            got = index.identify(probes, threshold=threshold, margin=margin)
            assert got.status == expected.status
            assert got.person_id == expected.person_id
            assert got.distance == pytest.approx(expected.distance, abs=1e-4)
            if expected.runner_up_distance is None:
                assert got.runner_up_distance is None
            else:
                assert got.runner_up_distance == pytest.approx(
                    expected.runner_up_distance, abs=1e-4
                )


def test_empty_and_single_person_galleries() -> None:
    probe = np.zeros((1, 128), np.float32)
    assert GalleryIndex({}).identify(probe).status == "unknown"
    assert GalleryIndex({"a": np.zeros((0, 128))}).identify(probe).status == "unknown"
    one = GalleryIndex({"a": np.zeros((2, 128), np.float32)})
    result = one.identify(probe)
    assert (result.status, result.person_id, result.runner_up_distance) == ("match", "a", None)
