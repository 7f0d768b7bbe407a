"""dlib's face ResNet ported to ONNX, and the embedder that runs it with onnxruntime.

Why: dlib runs ``dlib_face_recognition_resnet_model_v1`` at ~68 ms per face on one core
and does not batch; the same network in onnxruntime is an order of magnitude faster. The
port must give the *same* descriptors (the templates stored by the gate were made with
dlib), so the converter rebuilds dlib's graph exactly rather than approximating it.

How (details and measurements in docs/embedder.md):

1. the ``.dat`` file is verified against its sha256 in ``models/manifest.json`` and parsed
   by :mod:`server.face.dlib_dat` (weights, strides, paddings, in input->output order);
2. the parsed layers are matched against the network's C++ type (``anet_type`` of dlib's
   ``dnn_face_recognition_ex.cpp``, mirrored by :func:`face_resnet_topology`). The file does
   not store which wrapper is a ``tag`` and which a ``skip``, nor tag ids: the type does;
3. the ONNX graph is built with the onnx helper API (opset 17, IR 9): uint8 NHWC chips in,
   dlib's input scaling ``(pixel - channel average) / 256``, every ``con`` + ``affine``
   pair folded into one Conv (``affine`` is a frozen batch-norm), the residual shortcuts,
   and dlib's *zero-padded* ``add_prev`` (when the two tensors differ in channels or size,
   dlib adds them into the larger shape, each aligned at index 0 and padded with zeros:
   here the 64/128/256-channel blocks' shortcut has fewer channels, and at 8x8 -> 3x3 vs
   4x4 the block output is smaller than the pooled shortcut), then the global average pool
   and the bias-free 128-D fully connected layer. dlib's descriptor is *not* L2-normalised
   and neither is ours;
4. the model is serialised deterministically, so its sha256 is reproducible and is pinned
   in the manifest (``derived_onnx`` record ``dlib_resnet_v1_onnx``); the file is written
   into the model cache on first use (or by ``python -m server.face.dlib_onnx convert``).

Command line::

    python -m server.face.dlib_onnx convert [--cache DIR] [--force]
    python -m server.face.dlib_onnx verify  [--cache DIR]
    python -m server.face.dlib_onnx layers
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# The converter is a build-time tool in its own module (it needs the onnx package).
from .dlib_convert import (
    CHIP_SIZE,
    DESCRIPTOR_DIM,
    INPUT_NAME,
    OUTPUT_NAME,
    convert_dat_bytes,
    face_resnet_topology,
    match_topology,
)
from .dlib_dat import (
    Conv,
    DatFormatError,
    FullyConnected,
    parse_dat,
)
from .models import MANIFEST_PATH, ModelError, ModelStore, atomic_write, sha256_file
from .onnx import make_session

MODEL_NAME = "dlib_resnet_v1_onnx"


# ----------------------------------------------------------------------------- model cache


@dataclass(frozen=True)
class DerivedSpec:
    """A record of the manifest's top-level ``derived_onnx`` list.

    It lives outside ``models`` on purpose: ``server.face.models`` converts every ``models``
    entry that has an ``onnx`` record with tflite2onnx, which does not apply to a ``.dat``.
    """

    name: str
    source: str  # the ``models`` entry whose (verified) file is converted
    file: str
    sha256: str | None  # None: not pinned yet
    onnx_version: str


def load_spec(manifest_path: Path = MANIFEST_PATH, name: str = MODEL_NAME) -> DerivedSpec:
    """Reads this model's ``derived_onnx`` record (``Manifest`` does not keep that key)."""
    try:
        raw: dict[str, Any] = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read model manifest {manifest_path}: {exc}") from exc
    for item in raw.get("derived_onnx", []):
        if item.get("name") == name:
            return DerivedSpec(
                name=name,
                source=str(item["source"]),
                file=str(item["file"]),
                sha256=item.get("sha256"),
                onnx_version=str(item.get("onnx", "")),
            )
    raise ModelError(f"{name!r} is not in the 'derived_onnx' list of {manifest_path}")


_convert_lock = threading.Lock()


def ensure_onnx(store: ModelStore, *, spec: DerivedSpec | None = None, force: bool = False) -> Path:
    """The verified ONNX file in the model cache, converting the verified ``.dat`` if needed."""
    spec = spec if spec is not None else load_spec()
    target = store.cache_dir / spec.file
    if not force and spec.sha256 and target.is_file() and sha256_file(target) == spec.sha256:
        return target
    source = store.source_path(spec.source)  # re-hashes the .dat, ModelError names the pip pkg
    with _convert_lock:
        try:
            data = convert_dat_bytes(source.read_bytes())
        except DatFormatError as exc:
            raise ModelError(f"cannot convert {source}: {exc}") from exc
        digest = hashlib.sha256(data).hexdigest()
        if spec.sha256 is not None and digest != spec.sha256:
            raise ModelError(
                f"converting {source.name} gave sha256 {digest}, expected {spec.sha256}: "
                f"install the pinned converter: pip install onnx=={spec.onnx_version}"
            )
        atomic_write(target, data)
    return target


# ----------------------------------------------------------------------------- embedder


class OnnxResNetEmbedder:
    """dlib's face ResNet run by onnxruntime: same chips in, same descriptors out.

    One session is shared by all threads (onnxruntime's ``run`` is thread-safe). The default
    of one intra-op thread suits the gate, whose executor already runs one face per core;
    more threads lower the latency of a single call at the cost of the other workers.
    Chips are run ``batch_size`` at a time (batching amortises per-call overhead).
    """

    name = "dlib_resnet_v1_onnx"

    def __init__(self, model_path: Path, *, intra_op_threads: int = 1, batch_size: int = 8):
        if intra_op_threads < 1 or batch_size < 1:
            raise ValueError("intra_op_threads and batch_size must be >= 1")
        self.model_path = model_path
        self.intra_op_threads = intra_op_threads
        self.batch_size = batch_size
        self._session = make_session(model_path, intra_op_threads)

    @classmethod
    def load(
        cls, store: ModelStore, *, intra_op_threads: int = 1, batch_size: int = 8
    ) -> OnnxResNetEmbedder:
        return cls(ensure_onnx(store), intra_op_threads=intra_op_threads, batch_size=batch_size)

    def embed(self, chips: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """(N, 150, 150, 3) uint8 RGB chips -> (N, 128) float32 descriptors."""
        if isinstance(chips, np.ndarray) and chips.ndim == 4:
            batch = chips
        else:
            for chip in chips:
                if chip.shape != (CHIP_SIZE, CHIP_SIZE, 3) or chip.dtype != np.uint8:
                    raise ValueError(f"expected a (150, 150, 3) uint8 chip, got {chip.shape}")
            batch = (
                np.stack(list(chips))
                if len(chips)
                else np.zeros((0, CHIP_SIZE, CHIP_SIZE, 3), np.uint8)
            )
        if batch.shape[1:] != (CHIP_SIZE, CHIP_SIZE, 3) or batch.dtype != np.uint8:
            raise ValueError(f"expected (N, 150, 150, 3) uint8 chips, got {batch.shape}")
        out = np.zeros((len(batch), DESCRIPTOR_DIM), np.float32)
        for start in range(0, len(batch), self.batch_size):
            part = np.ascontiguousarray(batch[start : start + self.batch_size])
            (res,) = self._session.run([OUTPUT_NAME], {INPUT_NAME: part})
            out[start : start + len(part)] = res
        return out


# ----------------------------------------------------------------------------- CLI


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m server.face.dlib_onnx")
    sub = parser.add_subparsers(dest="cmd", required=True)
    for cmd in ("convert", "verify"):
        p = sub.add_parser(cmd)
        p.add_argument("--cache", type=Path, default=None)
        if cmd == "convert":
            p.add_argument("--force", action="store_true")
    sub.add_parser("layers")
    args = parser.parse_args(argv)
    store = ModelStore(getattr(args, "cache", None))
    try:
        spec = load_spec()
        if args.cmd == "layers":
            net = parse_dat(store.source_path(spec.source).read_bytes())
            for i, (op, layer) in enumerate(match_topology(net, face_resnet_topology())):
                shapes = ""
                if isinstance(layer, Conv):
                    shapes = f" w{list(layer.weights.shape)} s{layer.stride} p{layer.padding}"
                elif isinstance(layer, FullyConnected):
                    shapes = f" w{list(layer.weights.shape)}"
                print(f"{i:3d} {op.kind:9s}{shapes}")
            return 0
        if args.cmd == "convert":
            path = ensure_onnx(store, spec=spec, force=args.force)
            print(f"ok  {MODEL_NAME} -> {path} sha256 {sha256_file(path)}")
            return 0
        target = store.cache_dir / spec.file
        if not target.is_file() or sha256_file(target) != spec.sha256:
            print(f"BAD {MODEL_NAME}: {target} missing or stale (run convert)")
            return 1
        print(f"ok  {MODEL_NAME} {target}")
        return 0
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(_main())
