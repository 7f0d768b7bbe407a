"""The room's engine setting is honoured in 1:1 and 1:N (synthetic descriptors whose
engines disagree, so each mode's answer is known), and dlib rooms decide exactly as
before SFace."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import numpy as np
import pytest

from server.face.engine import Face, FaceEngine
from server.face.gallery import GalleryIndex
from server.face.matcher import verify
from server.face.multimatch import EngineGallery, verify_engines
from server.face.scoring import Scorer
from server.store import open_store
from server.verify import CheckTarget, FaceChecker, build_room_index, load_target

DIM = 128


def axis(i: int) -> np.ndarray:
    v = np.zeros(DIM)
    v[i] = 1.0
    return v


def dlib_at(d: float, k: int) -> np.ndarray:
    """A dlib-like vector at distance ``d`` from the probe (the origin), direction k."""
    return (d * axis(k)).astype(np.float32)


def sface_at(d: float, k: int) -> np.ndarray:
    """A unit vector at Euclidean distance ``d`` from the probe (axis 0), direction k."""
    theta = 2 * np.arcsin(d / 2)
    return (np.cos(theta) * axis(0) + np.sin(theta) * axis(k)).astype(np.float32)


PROBE = {"dlib": np.zeros((1, DIM), np.float32), "sface": axis(0)[None].astype(np.float32)}
# dlib says Ada (0.30 vs 0.90), SFace says Bob (0.50 vs 1.40).
GALLERIES = {
    "dlib": {"ada": dlib_at(0.30, 1)[None], "bob": dlib_at(0.90, 2)[None]},
    "sface": {"ada": sface_at(1.40, 3)[None], "bob": sface_at(0.50, 4)[None]},
}


def probe_face() -> Face:
    return Face(
        box=(0, 0, 10, 10), score=1.0, keypoints=np.zeros((6, 2)), measures=None, quality=(),
        embedding=PROBE["dlib"][0], embeddings={e: v[0] for e, v in PROBE.items()},
    )  # fmt: skip


def checker(engine: str, claimed: str | None) -> FaceChecker:
    target = CheckTarget(
        claimed, GALLERIES["dlib"], 0.60, engine=engine,
        engine_templates={"sface": GALLERIES["sface"]},
    )  # fmt: skip
    return FaceChecker(cast(FaceEngine, None), target)


@pytest.mark.parametrize(
    ("engine", "expected"), [("dlib", "ada"), ("sface", "bob"), ("both", None)]
)
def test_1n_follows_the_room_engine(engine: str, expected: str | None) -> None:
    match = checker(engine, None).match(probe_face())
    assert match.person_id == expected
    assert match.accepted == (expected is not None)


@pytest.mark.parametrize(
    ("engine", "ada", "bob"),
    [("dlib", True, False), ("sface", False, True), ("both", False, False)],
)
def test_1to1_follows_the_room_engine(engine: str, ada: bool, bob: bool) -> None:
    assert checker(engine, "ada").match(probe_face()).accepted is ada
    assert checker(engine, "bob").match(probe_face()).accepted is bob


def test_fused_uses_both_distances() -> None:
    # both engines say "close but not sure" for Ada: fused distance between the two
    mild = {"dlib": {"ada": dlib_at(0.62, 1)[None]}, "sface": {"ada": sface_at(1.0, 3)[None]}}
    target = CheckTarget(
        "ada", mild["dlib"], 0.60, engine="fused", engine_templates={"sface": mild["sface"]}
    )
    match = FaceChecker(cast(FaceEngine, None), target).match(probe_face())
    expected = Scorer("fused").combine({"dlib": np.array(0.62), "sface": np.array(1.0)})
    assert match.distance == pytest.approx(float(expected), abs=1e-5)


def test_dlib_mode_is_the_single_engine_matcher() -> None:
    rng = np.random.default_rng(3)
    probes = rng.normal(scale=0.1, size=(4, DIM)).astype(np.float32)
    templates = rng.normal(scale=0.1, size=(3, DIM)).astype(np.float32)
    a = verify(probes, templates, threshold=0.6)
    b = verify_engines({"dlib": probes}, {"dlib": templates}, Scorer("dlib"), threshold=0.6)
    assert a == b
    gallery = {f"p{i}": rng.normal(scale=0.1, size=(2, DIM)).astype(np.float32) for i in range(9)}
    plain = GalleryIndex(gallery).identify(probes, threshold=2.0)
    multi = EngineGallery({"dlib": gallery}, Scorer("dlib")).identify(
        {"dlib": probes}, threshold=2.0
    )
    assert (plain.status, plain.person_id) == (multi.status, multi.person_id)
    assert plain.distance == pytest.approx(multi.distance, abs=1e-5)


def test_person_without_sface_templates_is_not_matched_by_sface_rooms(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    room = store.create_room("Modes", "open", settings={"engine": "sface"})
    both = {"dlib": GALLERIES["dlib"]["bob"], "sface": GALLERIES["sface"]["bob"]}
    bob = store.enrol_person(room.id, "Bob", both, "dlib")
    ada = store.enrol_person(room.id, "Ada", GALLERIES["dlib"]["ada"], "dlib_resnet_v1_onnx")
    index = build_room_index(store, room.id, "sface")
    assert isinstance(index, EngineGallery)
    assert index.person_ids == [bob.id] and index.missing == [ada.id]
    # 1:1 with Ada in an sface room: not enrolled for this engine -> the join is refused
    target = load_target(store, room, ada.id, threshold=0.6)
    assert not target.enrolled
    assert not FaceChecker(cast(FaceEngine, None), target).match(probe_face()).accepted
    assert load_target(store, room, bob.id, threshold=0.6).enrolled
    # the same room set to dlib keeps the plain index, with both people
    plain = build_room_index(store, room.id, "dlib")
    assert isinstance(plain, GalleryIndex) and sorted(plain.person_ids) == sorted([ada.id, bob.id])
    store.close()
