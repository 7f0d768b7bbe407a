"""468-point MediaPipe face mesh on detected faces, and per-frame facial measures.

The region of interest follows MediaPipe's ``face_detection_front_detection_to_roi``:
the detection box, rotated so the eye keypoints are horizontal, made square on its long
side and scaled by 1.5. The crop is warped to 192x192 (values in ``[0, 1]``) and the
model's 468 (x, y, z) points are mapped back to frame pixels (z in the same pixel scale,
negative towards the camera).

Measures (:class:`FaceMeasures`):

- ``ear_left`` / ``ear_right``: eye aspect ratio of the person's own left / right eye
  (Soukupova & Cech); ~0.25-0.35 open, < ~0.15 closed;
- ``mouth_open``: inner-lip gap / inner mouth width; ~0 closed, > ~0.3 wide open;
- ``smile``: mouth width / outer eye-corner distance; ~0.5 neutral, higher when smiling
  (compare against the person's own neutral value rather than a fixed cut-off);
- ``yaw`` / ``pitch`` / ``roll`` in degrees from the mesh's 3-D geometry: yaw > 0 when
  the nose turns towards the image's right, pitch > 0 when looking down, roll > 0 when
  the head tilts clockwise in the image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .detector import KP_LEFT_EYE, KP_RIGHT_EYE, Detection
from .imageio import as_rgb8
from .models import ModelStore
from .runtime import Backend, ModelRunner, load_runner

MESH_SIZE = 192
ROI_SCALE = 1.5

# Mesh indices (person's own left/right).
RIGHT_EYE_EAR = (33, 160, 158, 133, 153, 144)
LEFT_EYE_EAR = (362, 385, 387, 263, 373, 380)
RIGHT_EYE_OUTER, RIGHT_EYE_INNER = 33, 133
LEFT_EYE_OUTER, LEFT_EYE_INNER = 263, 362
NOSE_TIP, NOSE_BASE = 1, 2
UPPER_LIP_INNER, LOWER_LIP_INNER = 13, 14
MOUTH_INNER_RIGHT, MOUTH_INNER_LEFT = 78, 308
MOUTH_RIGHT, MOUTH_LEFT = 61, 291
FOREHEAD, CHIN = 10, 152

# A frontal face in the mesh's own geometry is not at pitch 0 with the forehead-chin axis
# (the forehead leans back); this offset was measured as the median over the frontal
# photos in the shared face set (80 photos, median 8 degrees).
PITCH_OFFSET_DEG = 8.0


@dataclass(frozen=True)
class FaceMeasures:
    ear_left: float
    ear_right: float
    mouth_open: float
    smile: float
    yaw: float
    pitch: float
    roll: float


@dataclass(frozen=True)
class Mesh:
    """468 points (468, 3) in frame pixels and the model's face-presence score."""

    points: np.ndarray
    presence: float


def roi_from_detection(det: Detection) -> tuple[float, float, float, float]:
    """(centre x, centre y, side, rotation radians) of the mesh crop for a detection."""
    x0, y0, x1, y1 = det.box
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    r = det.keypoints[KP_RIGHT_EYE]
    left = det.keypoints[KP_LEFT_EYE]
    rotation = -math.atan2(-(float(left[1]) - float(r[1])), float(left[0]) - float(r[0]))
    rotation = rotation - 2 * math.pi * math.floor((rotation + math.pi) / (2 * math.pi))
    side = max(x1 - x0, y1 - y0) * ROI_SCALE
    return cx, cy, side, rotation


def roi_from_points(points: np.ndarray) -> tuple[float, float, float, float]:
    """The crop MediaPipe's tracker derives from a previous mesh (face_landmarks_to_roi)."""
    xy = points[:, :2]
    x0, y0 = xy.min(axis=0)
    x1, y1 = xy.max(axis=0)
    r, left = xy[RIGHT_EYE_OUTER], xy[LEFT_EYE_OUTER]
    rotation = math.atan2(float(left[1] - r[1]), float(left[0] - r[0]))
    side = float(max(x1 - x0, y1 - y0)) * ROI_SCALE
    return float(x0 + x1) / 2.0, float(y0 + y1) / 2.0, side, rotation


def roi_affine(cx: float, cy: float, side: float, rotation: float, size: int) -> np.ndarray:
    """2x3 affine mapping frame pixels into the ``size`` x ``size`` crop."""
    s = size / side
    c, n = math.cos(rotation), math.sin(rotation)
    # crop = s * R(-rotation) * (p - centre) + size/2
    return np.array(
        [
            [s * c, s * n, -s * (c * cx + n * cy) + size / 2.0],
            [-s * n, s * c, -s * (-n * cx + c * cy) + size / 2.0],
        ],
        dtype=np.float64,
    )


def _dist(p: np.ndarray, a: int, b: int) -> float:
    d = p[a, :2] - p[b, :2]
    return float(math.hypot(float(d[0]), float(d[1])))


def _ear(p: np.ndarray, idx: tuple[int, int, int, int, int, int]) -> float:
    p1, p2, p3, p4, p5, p6 = idx
    width = _dist(p, p1, p4)
    if width <= 1e-6:
        return 0.0
    return (_dist(p, p2, p6) + _dist(p, p3, p5)) / (2.0 * width)


def head_pose(points: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees from the mesh's 3-D points."""
    x_axis = points[LEFT_EYE_OUTER] - points[RIGHT_EYE_OUTER]
    y_axis = points[CHIN] - points[FOREHEAD]
    x_axis = x_axis / max(float(np.linalg.norm(x_axis)), 1e-9)
    y_axis = y_axis - float(np.dot(y_axis, x_axis)) * x_axis
    y_axis = y_axis / max(float(np.linalg.norm(y_axis)), 1e-9)
    yaw = math.degrees(math.atan2(float(x_axis[2]), math.hypot(float(x_axis[0]), float(x_axis[1]))))
    pitch = math.degrees(
        math.atan2(float(y_axis[2]), math.hypot(float(y_axis[0]), float(y_axis[1])))
    )
    roll = math.degrees(math.atan2(float(x_axis[1]), float(x_axis[0])))
    return yaw, pitch - PITCH_OFFSET_DEG, roll


def measures_from_mesh(points: np.ndarray) -> FaceMeasures:
    yaw, pitch, roll = head_pose(points)
    eye_span = _dist(points, LEFT_EYE_OUTER, RIGHT_EYE_OUTER)
    inner_width = _dist(points, MOUTH_INNER_LEFT, MOUTH_INNER_RIGHT)
    return FaceMeasures(
        ear_left=_ear(points, LEFT_EYE_EAR),
        ear_right=_ear(points, RIGHT_EYE_EAR),
        mouth_open=_dist(points, UPPER_LIP_INNER, LOWER_LIP_INNER) / max(inner_width, 1e-6),
        smile=_dist(points, MOUTH_LEFT, MOUTH_RIGHT) / max(eye_span, 1e-6),
        yaw=yaw,
        pitch=pitch,
        roll=roll,
    )


class FaceMesh:
    """Face mesh model; thread-safe (see :mod:`.runtime`)."""

    def __init__(self, runner: ModelRunner) -> None:
        self._runner = runner
        self.backend = runner.backend

    @classmethod
    def load(cls, store: ModelStore, backend: Backend | None = None) -> FaceMesh:
        return cls(load_runner(store, "face_landmark", backend))

    def run(self, frame: np.ndarray, det: Detection, *, refine: bool = False) -> Mesh:
        """The mesh of the face found by ``det``.

        ``refine`` runs the model a second time on the region MediaPipe's tracker would
        derive from the first mesh (bounding box of the points, rotation from the outer
        eye corners), which centres and levels the crop better than the detection.
        """
        rgb = as_rgb8(frame)
        mesh = self.run_roi(rgb, *roi_from_detection(det))
        if refine:
            mesh = self.run_roi(rgb, *roi_from_points(mesh.points))
        return mesh

    def run_roi(self, rgb: np.ndarray, cx: float, cy: float, side: float, rotation: float) -> Mesh:
        m = roi_affine(cx, cy, side, rotation, MESH_SIZE)
        crop = cv2.warpAffine(
            rgb, m, (MESH_SIZE, MESH_SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
        )
        x = crop[None].astype(np.float32) * (1.0 / 255.0)
        raw, flag = self._runner.run(x)
        pts = raw.reshape(468, 3).astype(np.float64)
        inv = cv2.invertAffineTransform(m)
        xy = pts[:, :2] @ inv[:, :2].T + inv[:, 2]
        z = pts[:, 2] * (side / MESH_SIZE)
        points = np.concatenate([xy, z[:, None]], axis=1).astype(np.float32)
        logit = float(np.clip(flag.reshape(-1)[0], -80.0, 80.0))
        return Mesh(points=points, presence=1.0 / (1.0 + math.exp(-logit)))
