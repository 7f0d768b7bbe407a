"""Quality gate for enrolment photos and live frames.

Each failure is a :class:`QualityIssue` with a stable ``code`` and a message a person can
act on. Thresholds live in :class:`QualityThresholds` (defaults measured on the shared
photos, see docs/face.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .detector import Detection
from .landmarks import FaceMeasures

NO_FACE = "no_face"
MULTIPLE_FACES = "multiple_faces"
FACE_TOO_SMALL = "face_too_small"
BLURRED = "blurred"
TOO_DARK = "too_dark"
TOO_BRIGHT = "too_bright"
HEAD_TURNED = "head_turned"

SHARPNESS_SIZE = 112  # the face box is resampled to this size before measuring sharpness


@dataclass(frozen=True)
class QualityIssue:
    code: str
    message: str


@dataclass(frozen=True)
class QualityThresholds:
    # distance between the eye centres, in pixels of the analysed frame
    min_interocular_px: float = 24.0
    # variance of the Laplacian of the face box resampled to 112x112 grey
    min_sharpness: float = 25.0
    # mean luminance (0-255) of the central part of the face box. Kept low on purpose:
    # face luminance also measures skin tone, and the dim bona fide enrolment stills in
    # the shared data (a darker-skinned man in an office) measure 13-37 yet match fine.
    min_brightness: float = 10.0
    max_brightness: float = 215.0
    # head pose, degrees (only checked when the face mesh ran)
    max_yaw: float = 30.0
    max_pitch: float = 25.0


DEFAULT_THRESHOLDS = QualityThresholds()


@dataclass(frozen=True)
class FaceStats:
    interocular_px: float
    sharpness: float
    brightness: float


def face_stats(rgb: np.ndarray, det: Detection) -> FaceStats:
    h, w = rgb.shape[:2]
    x0, y0, x1, y1 = det.box
    side = max(x1 - x0, y1 - y0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    a0, a1 = int(max(0, cx - side / 2)), int(min(w, cx + side / 2))
    b0, b1 = int(max(0, cy - side / 2)), int(min(h, cy + side / 2))
    if a1 - a0 < 2 or b1 - b0 < 2:
        return FaceStats(det.interocular, 0.0, 0.0)
    grey = cv2.cvtColor(np.ascontiguousarray(rgb[b0:b1, a0:a1]), cv2.COLOR_RGB2GRAY)
    small = cv2.resize(grey, (SHARPNESS_SIZE, SHARPNESS_SIZE), interpolation=cv2.INTER_AREA)
    sharpness = float(cv2.Laplacian(small, cv2.CV_64F).var())
    q = SHARPNESS_SIZE // 5
    brightness = float(small[q:-q, q:-q].mean())
    return FaceStats(det.interocular, sharpness, brightness)


def face_issues(
    stats: FaceStats,
    measures: FaceMeasures | None,
    thresholds: QualityThresholds = DEFAULT_THRESHOLDS,
) -> tuple[QualityIssue, ...]:
    t = thresholds
    issues: list[QualityIssue] = []
    if stats.interocular_px < t.min_interocular_px:
        issues.append(
            QualityIssue(
                FACE_TOO_SMALL,
                "Your face is too small in the picture: move closer to the camera "
                "or use a photo where your face is larger.",
            )
        )
    if stats.brightness < t.min_brightness:
        issues.append(QualityIssue(TOO_DARK, "Your face is too dark: add light in front of you."))
    elif stats.brightness > t.max_brightness:
        issues.append(
            QualityIssue(
                TOO_BRIGHT,
                "Your face is overexposed: move away from direct light or lower the brightness.",
            )
        )
    # sharpness falls with contrast: on a too-dark face only the darkness is reported
    if stats.sharpness < t.min_sharpness and stats.brightness >= t.min_brightness:
        issues.append(
            QualityIssue(
                BLURRED,
                "The picture of your face is blurred: hold still, clean the lens "
                "or use a sharper photo.",
            )
        )
    if measures is not None and (
        abs(measures.yaw) > t.max_yaw or abs(measures.pitch) > t.max_pitch
    ):
        issues.append(
            QualityIssue(HEAD_TURNED, "Your head is turned: look straight at the camera.")
        )
    return tuple(issues)


def frame_issues(face_count: int) -> tuple[QualityIssue, ...]:
    """Issues about the frame as a whole for enrolment (exactly one face wanted)."""
    if face_count == 0:
        return (
            QualityIssue(
                NO_FACE,
                "No face found: make sure your whole face is visible, well lit and "
                "facing the camera.",
            ),
        )
    if face_count > 1:
        return (
            QualityIssue(
                MULTIPLE_FACES,
                f"{face_count} faces found: use a photo with only your face in it.",
            ),
        )
    return ()
