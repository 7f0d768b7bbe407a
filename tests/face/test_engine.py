from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from server.face.engine import Face, FaceEngine, FrameAnalysis


def test_analyse_api(engine: FaceEngine, load_photo) -> None:  # type: ignore[no-untyped-def]
    a = engine.analyse(load_photo("group/bbt4.jpg"))
    assert isinstance(a, FrameAnalysis)
    assert len(a.faces) == 6
    areas = [f.area for f in a.faces]
    assert areas == sorted(areas, reverse=True)
    for f in a.faces:
        assert isinstance(f, Face)
        assert len(f.box) == 4 and 0 < f.score <= 1
        assert f.keypoints.shape == (6, 2)
        assert f.measures is not None
        assert f.embedding is not None and f.embedding.shape == (128,)
        assert f.embedding.dtype == np.float32
    for stage in ("detect", "mesh", "align", "embed", "quality", "total"):
        assert stage in a.timings_ms


def test_analyse_without_mesh_and_embedding(engine: FaceEngine, load_photo) -> None:  # type: ignore[no-untyped-def]
    a = engine.analyse(load_photo("faces/obama/2.jpg"), mesh=False, embed=False)
    assert len(a.faces) == 1
    f = a.faces[0]
    assert f.measures is None and f.embedding is None and f.mesh is None
    assert a.timings_ms["embed"] == 0.0


def test_same_person_closer_than_different(engine: FaceEngine, load_photo) -> None:  # type: ignore[no-untyped-def]
    def emb(rel: str) -> np.ndarray:
        e = engine.analyse(load_photo(rel), mesh=False).faces[0].embedding
        assert e is not None
        return e

    o1, o2, b1 = emb("faces/obama/1.jpg"), emb("faces/obama/2.jpg"), emb("faces/biden/1.jpg")
    assert np.linalg.norm(o1 - o2) < 0.45 < 0.6 < np.linalg.norm(o1 - b1)


def test_thread_safe_with_two_workers(engine: FaceEngine, load_photo) -> None:  # type: ignore[no-untyped-def]
    rels = ["faces/obama/2.jpg", "faces/biden/2.jpg", "faces/bbt_amy/2.png", "faces/clapton/1.jpg"]
    frames = [load_photo(r) for r in rels]
    serial = [engine.analyse(f).faces[0].embedding for f in frames]
    with ThreadPoolExecutor(max_workers=2) as pool:
        parallel = list(pool.map(lambda f: engine.analyse(f).faces[0].embedding, frames * 2))
    for i, e in enumerate(parallel):
        assert e is not None
        assert np.allclose(e, serial[i % len(frames)], atol=1e-5)


def test_litert_and_onnxruntime_backends_agree(engine: FaceEngine, load_photo) -> None:  # type: ignore[no-untyped-def]
    other_backend = "onnx" if engine.detector.backend == "litert" else "litert"
    other = FaceEngine.load(backend=other_backend)  # type: ignore[arg-type]
    rgb = load_photo("group/kit_with_rose.jpg")
    a, b = engine.analyse(rgb).faces, other.analyse(rgb).faces
    assert len(a) == len(b) == 2
    for x, y in zip(a, b, strict=True):
        assert np.allclose(x.box, y.box, atol=0.05)
        assert x.mesh is not None and y.mesh is not None
        assert np.abs(x.mesh - y.mesh).max() < 0.05
        assert x.embedding is not None and y.embedding is not None
        assert np.linalg.norm(x.embedding - y.embedding) < 0.005
