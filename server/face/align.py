"""Five-point face alignment to dlib's 150x150 face chip.

dlib's ResNet expects chips made like ``dlib.get_face_chip(img, shape, size=150,
padding=0.25)`` from its 5-point landmarks (outer and inner corner of each eye, base of the
nose). The five points can come from

- ``dlib``: dlib's ``shape_predictor_5_face_landmarks`` run on a box derived from the
  BlazeFace detection. The predictor was trained on dlib's own detector boxes, so the
  BlazeFace box is first mapped to that shape (:class:`BoxMap`, fitted against dlib's
  HOG boxes, see docs/face.md);
- ``mesh``: the matching points of the 468-point face mesh.

:func:`arcface_points` derives the *other* common five-point convention (eye centres,
nose tip, mouth corners; SFace / ArcFace 112x112 template, see :mod:`.sface`) from the
same mesh. Only indices below 468 are used, so a 478-point mesh (the Face Landmarker,
whose first 468 points share the face mesh topology) gives the same points.

The chip itself is extracted by dlib (``chip_details`` from float point pairs +
``extract_image_chip``), i.e. exactly ``get_face_chip``'s similarity transform and
resampling but without rounding the landmarks to integer pixels.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Literal

import dlib
import numpy as np

from .detector import Detection
from .models import ModelStore

CHIP_SIZE = 150
CHIP_PADDING = 0.25

# dlib's 5-point template (interpolation.h, get_face_chip_details), in dlib part order:
# 0/1 outer/inner corner of the eye on the image's right (the person's left eye),
# 2/3 outer/inner corner of the eye on the image's left, 4 base of the nose.
DLIB_TEMPLATE_5 = np.array(
    [
        [0.8595674595992, 0.2134981538014],
        [0.6460604764104, 0.2289674387677],
        [0.1205750620789, 0.2137274526848],
        [0.3340850613712, 0.2290642403242],
        [0.4901123135679, 0.6277975316475],
    ]
)
# The same five points on the MediaPipe mesh (person's left eye outer/inner, right eye
# outer/inner, subnasale).
MESH_5 = (263, 362, 33, 133, 2)

# Eye contours of the mesh (MediaPipe FACEMESH_RIGHT_EYE / LEFT_EYE rings, 16 points each,
# the person's own right / left eye): their mean is the eye centre the 112x112
# template's first two points stand for (annotated pupil centres, open eyes).
MESH_RIGHT_EYE_RING = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246)
MESH_LEFT_EYE_RING = (
    263,
    249,
    390,
    373,
    374,
    380,
    381,
    382,
    362,
    398,
    384,
    385,
    386,
    387,
    388,
    466,
)
MESH_NOSE_TIP = 1
MESH_MOUTH_RIGHT, MESH_MOUTH_LEFT = 61, 291  # the person's right / left outer lip corner

PointSource = Literal["dlib", "mesh"]


def arcface_points(mesh_points: np.ndarray) -> np.ndarray:
    """(5, 2) points in the 112x112 template's order, image-left first: eye on the
    image's left (the person's right eye) centre, other eye centre, nose tip, mouth
    corner on the image's left, mouth corner on the image's right."""
    xy = np.asarray(mesh_points, dtype=np.float64)[:, :2]
    return np.stack(
        [
            xy[list(MESH_RIGHT_EYE_RING)].mean(axis=0),
            xy[list(MESH_LEFT_EYE_RING)].mean(axis=0),
            xy[MESH_NOSE_TIP],
            xy[MESH_MOUTH_RIGHT],
            xy[MESH_MOUTH_LEFT],
        ]
    )


@dataclass(frozen=True)
class BoxMap:
    """Maps a BlazeFace box to the square box dlib's 5-point predictor expects.

    centre = box centre + (dx, dy) * box width; side = scale * box width.
    """

    dx: float = 0.0
    dy: float = 0.0
    scale: float = 1.0

    def apply(self, det: Detection) -> tuple[float, float, float, float]:
        x0, y0, x1, y1 = det.box
        w = x1 - x0
        cx = (x0 + x1) / 2.0 + self.dx * w
        cy = (y0 + y1) / 2.0 + self.dy * w
        half = self.scale * w / 2.0
        return cx - half, cy - half, cx + half, cy + half


def chip_transform_points(size: int = CHIP_SIZE, padding: float = CHIP_PADDING) -> np.ndarray:
    """The 5 template points in chip pixels."""
    return (padding + DLIB_TEMPLATE_5) / (2 * padding + 1) * size


class Aligner:
    """Finds the 5 alignment points and extracts dlib's face chip.

    dlib's shape predictor is not documented as thread-safe, so each thread gets its own
    copy (9 MB) on first use.
    """

    def __init__(
        self,
        predictor_path: str,
        *,
        source: PointSource = "dlib",
        box_map: BoxMap | None = None,
        size: int = CHIP_SIZE,
        padding: float = CHIP_PADDING,
    ) -> None:
        self._predictor_path = predictor_path
        self._local = threading.local()
        self.source: PointSource = source
        self.box_map = box_map or BoxMap()
        self.size = size
        self.padding = padding
        self._chip_points = dlib.dpoints(
            [dlib.dpoint(float(x), float(y)) for x, y in chip_transform_points(size, padding)]
        )

    @classmethod
    def load(
        cls,
        store: ModelStore,
        *,
        source: PointSource = "dlib",
        box_map: BoxMap | None = None,
    ) -> Aligner:
        return cls(str(store.source_path("shape_predictor_5")), source=source, box_map=box_map)

    def _predictor(self) -> Any:
        pred = getattr(self._local, "predictor", None)
        if pred is None:
            pred = dlib.shape_predictor(self._predictor_path)
            self._local.predictor = pred
        return pred

    def predictor_points(
        self, rgb: np.ndarray, box: tuple[float, float, float, float]
    ) -> np.ndarray:
        """dlib's 5 points (5, 2) for ``box`` (x0, y0, x1, y1)."""
        rect = dlib.rectangle(round(box[0]), round(box[1]), round(box[2]) - 1, round(box[3]) - 1)
        shape = self._predictor()(rgb, rect)
        return np.array([[shape.part(i).x, shape.part(i).y] for i in range(5)], np.float64)

    def five_points(
        self, rgb: np.ndarray, det: Detection, mesh_points: np.ndarray | None = None
    ) -> np.ndarray:
        if self.source == "mesh":
            if mesh_points is None:
                raise ValueError("mesh alignment needs the face mesh points")
            return mesh_points[list(MESH_5), :2].astype(np.float64)
        return self.predictor_points(rgb, self.box_map.apply(det))

    def chip(self, rgb: np.ndarray, points: np.ndarray) -> np.ndarray:
        """The ``size`` x ``size`` RGB chip aligned on the 5 ``points`` (dlib order)."""
        img_points = dlib.dpoints([dlib.dpoint(float(x), float(y)) for x, y in points])
        details = dlib.chip_details(
            self._chip_points, img_points, dlib.chip_dims(self.size, self.size)
        )
        chip: np.ndarray = dlib.extract_image_chip(np.ascontiguousarray(rgb), details)
        return chip
