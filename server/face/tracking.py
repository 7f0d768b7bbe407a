"""Landmark tracking: the face region from the previous frame's landmarks, no detector.

MediaPipe's own face landmarker graph runs its detector only when it has no track: on
the following frames the landmarks graph gets the region derived from the previous
frame's 478 points (``roi_from_points``). BlazeFace is ~4.4 ms of a v2 frame's ~18 ms
(docs/liveness.md "Cost"), so the gate does the same, with three limits the gate's
checks need:

- **The detector still runs at least every** ``detect_every_s`` (0.5 s): only the
  detector counts faces, so a second face (``multiple_faces``) or a different face
  replacing this one is seen on the first analysed frame at least 0.5 s after the last
  detection: within 0.5 s plus one sampling interval of appearing (at the base 4 fps,
  every second frame is a detector frame).
- **It always runs** on frames that need an embedding (identity and the challenge's
  same-face check see the detector's face, aligned as always), on the first frame and
  after any frame without exactly one face, when the tracked landmarks' presence is
  below ``min_presence`` (MediaPipe's ``min_tracking_confidence``), or when the face
  moved or changed size a lot since the last frame; it then runs on that same frame.
- **The box the calibrated pixel cues read is the detector's box, carried along**: the
  ``frame`` cue's score moved by 0.1 for a 0.7 degree change of roll, so a tracking
  frame does not invent its own box from the landmarks' extent. The box and keypoints
  of the last detector frame are mapped to this frame by the similarity transform
  (scale, rotation, shift) that takes that frame's rigid landmarks to this frame's: the
  detector's box, where the face now is. bench/bench_frame_cost.py ``--agreement``
  measures it against the detector's own box on the same frames (docs/liveness.md).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from .detector import Detection
from .engine import Face, FaceEngine, FrameAnalysis
from .landmarks import measures_from_mesh
from .quality import face_issues, face_stats

# Points that move with the skull, not with expressions: eye corners, nose bridge and
# sides, forehead, cheekbones. The parallax cue's rigid set less the brows, which drop
# when the eyes close: with them a blink shrank the carried box by up to 16 % and
# broke the blink rule's steadiness check (``blink_steady_scale``) on zubair_real.
RIGID = (33, 133, 263, 362, 168, 6, 197, 151, 9, 108, 337, 50, 280, 187, 411, 98, 327)


@dataclass(frozen=True)
class TrackSettings:
    """When a tracking frame is allowed (module docstring)."""

    detect_every_s: float = 0.5
    min_presence: float = 0.5
    # Largest shift of the rigid points' centre since the last frame, in face widths,
    # and largest change of scale (fraction), before the detector re-finds the face.
    max_shift: float = 0.25
    max_scale: float = 0.2


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares 2x3 similarity (Umeyama, no reflection) taking ``src`` to ``dst``."""
    ms, md = src.mean(axis=0), dst.mean(axis=0)
    a, b = src - ms, dst - md
    var = float((a * a).sum())
    if var <= 1e-9:
        return np.array([[1.0, 0.0, md[0] - ms[0]], [0.0, 1.0, md[1] - ms[1]]])
    cov = b.T @ a / len(src)
    u, d, vt = np.linalg.svd(cov)
    sign = np.diag([1.0, 1.0 if np.linalg.det(u @ vt) > 0 else -1.0])
    rot = u @ sign @ vt
    scale = float(np.trace(np.diag(d) @ sign)) / (var / len(src))
    m = np.empty((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = md - scale * rot @ ms
    return m


def carry_detection(det: Detection, m: np.ndarray) -> Detection:
    """The detector's box and keypoints moved by ``m``: the centre follows the face, the
    box keeps the detector's size and stays upright (BlazeFace boxes are axis-aligned).
    Scaling it with the rigid points instead shrank it by up to 20 % against the next
    detector box while zubair_real turned and blinked (2-D points foreshorten under yaw,
    the detector's box less), which broke the blink rule's steadiness check
    (``blink_steady_scale`` 1.12); the size now changes only on detector frames."""
    x0, y0, x1, y1 = det.box
    cx, cy = m[:, :2] @ np.array([(x0 + x1) / 2, (y0 + y1) / 2]) + m[:, 2]
    hw, hh = (x1 - x0) / 2, (y1 - y0) / 2
    kps = (det.keypoints.astype(np.float64) @ m[:, :2].T + m[:, 2]).astype(np.float32)
    box = (float(cx - hw), float(cy - hh), float(cx + hw), float(cy + hh))
    return Detection(box=box, keypoints=kps, score=det.score)


class FaceTracker:
    """One participant's track (frames in order, one at a time, as their executor
    calls arrive); counts detector and tracking frames for the benches and tests."""

    def __init__(self, engine: FaceEngine, settings: TrackSettings | None = None) -> None:
        if engine.landmarker is None:
            raise ValueError("landmark tracking needs the face landmarker ([face] landmarks)")
        self.engine = engine
        self.settings = settings or TrackSettings()
        self.reset()
        self.detected = 0
        self.tracked = 0
        self.last_tracked = False

    def reset(self) -> None:
        """Forget the track (a new attempt, or a new participant on the same checker)."""
        self._anchor: tuple[np.ndarray, Detection] | None = None  # last detector frame
        self._prev: np.ndarray | None = None  # last frame's 478 points
        self._last_detect = -math.inf

    def analyse(
        self,
        rgb: np.ndarray,
        now: float,
        *,
        embed: bool,
        engines: tuple[str, ...],
        detect: bool = False,
    ) -> FrameAnalysis:
        """This frame's faces: tracked when allowed, else the engine's full analysis
        (always with ``embed``, or ``detect``). ``last_tracked`` says which it was."""
        self.last_tracked = False
        if not (embed or detect) and now - self._last_detect < self.settings.detect_every_s:
            t0 = time.perf_counter()
            face = self._track(rgb)
            if face is not None:
                self.tracked += 1
                self.last_tracked = True
                ms = (time.perf_counter() - t0) * 1000
                return FrameAnalysis([face], {"landmarks": ms, "total": ms},
                                     rgb.shape[1], rgb.shape[0])
        analysis = self.engine.analyse(rgb, mesh=True, embed=embed, engines=engines)
        self.detected += 1
        self._last_detect = now
        faces = analysis.faces
        mesh = faces[0].mesh if len(faces) == 1 else None
        if mesh is not None and len(mesh) >= 468:
            face = faces[0]
            det = Detection(box=face.box, keypoints=face.keypoints, score=face.score)
            self._anchor = (np.asarray(mesh[RIGID, :2], np.float64), det)
            self._prev = mesh
        else:
            self._anchor = self._prev = None
            self._last_detect = -math.inf  # no track: detect again on the next frame
        return analysis

    def _track(self, rgb: np.ndarray) -> Face | None:
        if self._anchor is None or self._prev is None:
            return None
        engine, cfg = self.engine, self.settings
        assert engine.landmarker is not None
        found = engine.landmarker.run_points(rgb, self._prev)
        if found.presence < cfg.min_presence:
            return None
        points = found.points
        rigid = np.asarray(points[RIGID, :2], np.float64)
        prev = np.asarray(self._prev[RIGID, :2], np.float64)
        step = similarity(prev, rigid)
        width = float(np.ptp(prev[:, 0])) or 1.0
        shift = float(np.hypot(*(rigid.mean(axis=0) - prev.mean(axis=0)))) / width
        scale = math.hypot(float(step[0, 0]), float(step[1, 0]))
        if shift > cfg.max_shift or abs(scale - 1.0) > cfg.max_scale:
            return None
        anchor_rigid, anchor_det = self._anchor
        det = carry_detection(anchor_det, similarity(anchor_rigid, rigid))
        measures = measures_from_mesh(points)
        issues = face_issues(face_stats(rgb, det), measures, engine.quality)
        self._prev = points
        return Face(
            box=det.box,
            score=det.score,
            keypoints=det.keypoints,
            measures=measures,
            quality=issues,
            embedding=None,
            mesh=points,
            blendshapes=found.blendshapes,
        )
