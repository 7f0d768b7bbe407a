"""Landmark tracks computed at test time from the shared videos (never committed).

Each clip is decoded, sampled at 8 fps (the challenge rate) and run through the real
face engine once per session; tests then replay the samples into the pure liveness
state machines.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from server.face.engine import FaceEngine
from server.face.imageio import decode_image
from server.liveness import LivenessSample, sample_from_face

Track = list[tuple[float, LivenessSample]]


@pytest.fixture(scope="session")
def engine() -> FaceEngine:
    return FaceEngine.load()


def _track(engine: FaceEngine, frames: list[tuple[float, np.ndarray]]) -> Track:
    out: Track = []
    for t, rgb in frames:
        faces = engine.analyse(rgb, mesh=True, embed=False).faces
        if len(faces) == 1:
            s = sample_from_face(rgb, faces[0])
            assert s is not None
            out.append((t, s))
    return out


@pytest.fixture(scope="session")
def clip_track(engine: FaceEngine, faces_dir: Path) -> Callable[[str], Track]:
    cache: dict[str, Track] = {}

    def load(name: str, fps: float = 8.0) -> Track:
        if name not in cache:
            frames: list[tuple[float, np.ndarray]] = []
            next_t = 0.0
            with av.open(str(faces_dir / "videos" / name)) as container:
                for frame in container.decode(video=0):
                    t = float(frame.time or 0.0)
                    if t + 1e-6 >= next_t:
                        frames.append((t, frame.to_ndarray(format="rgb24")))
                        next_t = t + 1 / fps
            cache[name] = _track(engine, frames)
        return cache[name]

    return load


def photo_frames(
    photo: np.ndarray, n: int = 48, fps: float = 8.0
) -> list[tuple[float, np.ndarray]]:
    """A photo held to a 640x480 camera: slight pan, zoom and tilt (a hand holding it)."""
    h, w = photo.shape[:2]
    base = min(520 / w, 400 / h)
    out = []
    for i in range(n):
        ph = 2 * math.pi * i / 24
        z = base * (1 + 0.06 * math.sin(ph))
        angle = 4 * math.sin(ph / 2)
        m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, z)
        m[0, 2] += 320 + 20 * math.sin(ph) - w / 2
        m[1, 2] += 240 + 12 * math.cos(ph) - h / 2
        out.append((i / fps, cv2.warpAffine(photo, m, (640, 480), borderValue=(70, 70, 70))))
    return out


@pytest.fixture(scope="session")
def photo_track(engine: FaceEngine, faces_dir: Path) -> Track:
    photo = decode_image((faces_dir / "videos/stills/lestari15_subject/1.png").read_bytes())
    return _track(engine, photo_frames(photo))
