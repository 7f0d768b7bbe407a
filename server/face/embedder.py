"""Face embedders: 150x150 aligned chips -> 128-D descriptors.

:class:`Embedder` is the interface; :class:`DlibResNetEmbedder` wraps dlib's ResNet
(``dlib_face_recognition_resnet_model_v1.dat``, 99.38 % on LFW as published). A faster
ONNX port of the same network can be added later behind the same Protocol.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Protocol

import dlib
import numpy as np

from .models import ModelStore

EMBEDDING_DIM = 128


class Embedder(Protocol):
    name: str

    def embed(self, chips: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """(N, 150, 150, 3) uint8 RGB chips -> (N, 128) float32 descriptors."""
        ...


class DlibResNetEmbedder:
    """dlib's ResNet-34-style face descriptor network.

    A dlib network object keeps its activations between calls, so it must not be shared
    between threads: each thread gets its own copy (22 MB) on first use.
    """

    name = "dlib_resnet_v1"

    def __init__(self, model_path: str) -> None:
        self._model_path = model_path
        self._local = threading.local()

    @classmethod
    def load(cls, store: ModelStore) -> DlibResNetEmbedder:
        return cls(str(store.source_path("dlib_resnet_v1")))

    def _net(self) -> Any:
        net = getattr(self._local, "net", None)
        if net is None:
            net = dlib.face_recognition_model_v1(self._model_path)
            self._local.net = net
        return net

    def embed(self, chips: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        net = self._net()
        out = np.zeros((len(chips), EMBEDDING_DIM), np.float32)
        for i, chip in enumerate(chips):
            if chip.shape != (150, 150, 3) or chip.dtype != np.uint8:
                raise ValueError(f"expected a (150, 150, 3) uint8 chip, got {chip.shape}")
            out[i] = np.asarray(net.compute_face_descriptor(np.ascontiguousarray(chip)))
        return out
