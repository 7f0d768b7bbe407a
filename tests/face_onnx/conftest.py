"""Fixtures for the ONNX port of dlib's face ResNet.

The face chips are computed at test time with the project's own pipeline (BlazeFace, face
mesh points, the :class:`~server.face.align.Aligner`), from every photo of the shared
face data, so the parity test covers the chips the gate really produces.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from server.face.detector import Detection
from server.face.dlib_onnx import ensure_onnx
from server.face.engine import FaceEngine
from server.face.imageio import decode_image
from server.face.models import ModelStore

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")


@pytest.fixture(scope="session")
def dat_path() -> Path:
    return ModelStore().source_path("dlib_resnet_v1")


@pytest.fixture(scope="session")
def dat_bytes(dat_path: Path) -> bytes:
    return dat_path.read_bytes()


@pytest.fixture(scope="session")
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private model cache, so the tests exercise the first-use conversion."""
    return tmp_path_factory.mktemp("model_cache")


@pytest.fixture(scope="session")
def onnx_path(onnx_cache: Path) -> Path:
    return ensure_onnx(ModelStore(onnx_cache))


@pytest.fixture(scope="session")
def face_engine() -> FaceEngine:
    return FaceEngine.load()


@pytest.fixture(scope="session")
def face_chips(faces_dir: Path, face_engine: FaceEngine) -> tuple[list[str], np.ndarray]:
    """(labels, (N, 150, 150, 3) uint8 chips): every face of every photo under faces_dir."""
    labels: list[str] = []
    chips: list[np.ndarray] = []
    aligner = face_engine.aligner
    paths = sorted(p for p in faces_dir.rglob("*") if p.suffix.lower() in PHOTO_SUFFIXES)
    for path in paths:
        rgb = decode_image(path.read_bytes())
        analysis = face_engine.analyse(rgb, mesh=True, embed=False)
        for i, face in enumerate(analysis.faces):
            det = Detection(box=face.box, keypoints=face.keypoints, score=face.score)
            chips.append(aligner.chip(rgb, aligner.five_points(rgb, det, face.mesh)))
            labels.append(f"{path.relative_to(faces_dir)}#{i}")
    return labels, np.stack(chips)
