"""Simulated screen reflection on real clips, for the screen-light challenge's tests.

SIMULATED, NOT FILMED: there is no camera here, so the light of the screen on a face
is painted onto frames of the shared bona fide clips with a simple physical model:

- the screen adds light in proportion to its colour: a pixel's linear value is
  multiplied by ``1 + strength * colour`` per channel (skin reflects the light it
  gets), on a soft ellipse over the face, head and neck; the background gets
  ``background_share`` of it (a wall is far from the screen);
- the camera reacts: auto exposure pulls the frame's brightness back with a delay, and
  auto white balance drifts per channel;
- latency between the page showing a colour and the gate seeing the frame (``lag_s``),
  jitter of the analysis time, sensor noise and JPEG compression.

A clip tinted this way answers the sequence; the real property (light on a real face
from a real screen) is what the docs call out as untested here (docs/liveness.md).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np

from server.liveness.flash import PALETTE, FlashSequence

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Reflection:
    """How the screen's light shows on the face, and what the camera does about it."""

    strength: float = 0.10
    background_share: float = 0.08
    lag_s: float = 0.35  # page colour -> frame seen by the gate
    jitter_s: float = 0.05  # analysis-time jitter of the gate's timestamp
    noise: float = 2.0  # sensor noise, 8-bit units
    awb_drift: float = 0.03  # per-channel white-balance wander, fraction
    auto_exposure: float = 0.6  # fraction of a brightness change the camera undoes
    jpeg_quality: int = 80


def read_clip(path: Path, seconds: float) -> list[tuple[float, np.ndarray]]:
    """The clip's frames with their times, looped (back and forth) to ``seconds``."""
    frames: list[tuple[float, np.ndarray]] = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            frames.append((float(frame.time or 0.0), frame.to_ndarray(format="rgb24")))
    period = frames[-1][0] + (frames[-1][0] - frames[0][0]) / max(1, len(frames) - 1)
    out = list(frames)
    loop = 1
    while out[-1][0] < seconds:
        order = frames[::-1] if loop % 2 else frames  # ping-pong: no jump at the seam
        out += [(loop * period + t, img) for (t, _), (_, img) in zip(frames, order, strict=True)]
        loop += 1
    return [(t, img) for t, img in out if t <= seconds]


def sample_times(duration: float, fps: float, rng: random.Random) -> list[float]:
    """Camera times of the frames the gate's sampler picks: ``fps`` with a random phase."""
    t, out = rng.uniform(0, 1 / fps), []
    while t < duration:
        out.append(t)
        t += 1 / fps * rng.uniform(0.9, 1.1)
    return out


def _screen(sequence: FlashSequence | None, start: float, t: float) -> np.ndarray:
    """Linear RGB light of the screen at camera time ``t`` (the dark page outside)."""
    if sequence is not None:
        rel = t - start
        for onset, step in zip(sequence.onsets(), sequence.steps, strict=True):
            if onset <= rel < onset + step.ms / 1000.0:
                return (np.array(PALETTE[step.colour]) / 255.0) ** 2.2
    return np.full(3, 0.01)


def _mask(shape: tuple[int, int], box: Box) -> np.ndarray:
    height, width = shape
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 + 0.1 * (y1 - y0)
    rx, ry = 0.75 * (x1 - x0), 0.95 * (y1 - y0)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    d = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2
    return np.asarray(np.clip(1.6 - d, 0.0, 1.0), dtype=np.float32)


class Camera:
    """Films a face lit by the screen: paints the light, then what the camera adds.

    Stateful like a real camera (auto exposure and white balance follow the scene), so
    frames must be shot in time order. ``shoot`` returns the frame and the gate time
    it is seen at (camera time + ``lag_s`` + jitter): the gate then finds the sequence
    ``lag_s`` late, which is what the judge's latency search must allow for.
    """

    def __init__(self, reflection: Reflection, rng: random.Random) -> None:
        self.reflection = reflection
        self.rng = rng
        self.gains = np.ones(3)
        self.exposure = 1.0
        self.nrng = np.random.default_rng(rng.randrange(2**32))

    def shoot(
        self, rgb: np.ndarray, box: Box, t: float, sequence: FlashSequence | None, start: float
    ) -> tuple[float, np.ndarray]:
        """``start`` is the camera time of the first colour (ignored without a sequence)."""
        refl = self.reflection
        light = _screen(sequence, start, t) * refl.strength
        mask = _mask(rgb.shape[:2], box)
        share = refl.background_share + (1 - refl.background_share) * mask
        linear = (rgb.astype(np.float32) / 255.0) ** 2.2
        lit = linear * (1.0 + share[..., None] * light[None, None, :])
        # Auto exposure pulls back the brightness the screen adds (half a frame behind);
        # auto white balance wanders on its own.
        target = 1.0 / (1.0 + refl.auto_exposure * float(light.mean()) * float(mask.mean()))
        self.exposure = 0.5 * self.exposure + 0.5 * target
        drift = self.nrng.normal(0, refl.awb_drift / 4, 3)
        self.gains = np.clip(self.gains + drift, 1 - refl.awb_drift * 3, 1 + refl.awb_drift * 3)
        lit = lit * self.exposure * self.gains[None, None, :]
        img = 255.0 * np.clip(lit, 0, 1) ** (1 / 2.2)
        img += self.nrng.normal(0, refl.noise, img.shape)
        img8 = np.clip(img, 0, 255).astype(np.uint8)
        params = [cv2.IMWRITE_JPEG_QUALITY, refl.jpeg_quality]
        ok, enc = cv2.imencode(".jpg", np.ascontiguousarray(img8[..., ::-1]), params)
        assert ok
        bgr = cv2.imdecode(enc, cv2.IMREAD_COLOR)
        assert bgr is not None
        decoded = np.ascontiguousarray(bgr[..., ::-1])
        return t + refl.lag_s + self.rng.uniform(0, refl.jitter_s), decoded


def tint(
    frames: list[tuple[float, np.ndarray, Box]],
    sequence: FlashSequence | None,
    start: float,
    reflection: Reflection,
    rng: random.Random,
) -> list[tuple[float, np.ndarray]]:
    """Shoot ``frames`` (camera time, RGB, face box) lit by ``sequence`` from ``start``
    (camera time); returns (gate time, frame) pairs."""
    camera = Camera(reflection, rng)
    return [camera.shoot(rgb, box, t, sequence, start) for t, rgb, box in frames]


def pick(
    clip: list[tuple[float, np.ndarray]], times: list[float]
) -> list[tuple[float, np.ndarray]]:
    """The clip frame shown at each camera time."""
    clip_times = np.array([t for t, _ in clip])
    out = []
    for t in times:
        i = int(np.searchsorted(clip_times, t, side="right")) - 1
        out.append((t, clip[max(i, 0)][1]))
    return out


Detect = Callable[[np.ndarray], Box | None]


def boxed(
    frames: list[tuple[float, np.ndarray]], detect: Detect
) -> list[tuple[float, np.ndarray, Box]]:
    """Attach the face box found on the untinted frame (frames without one are dropped)."""
    out = []
    for t, rgb in frames:
        box = detect(rgb)
        if box is not None:
            out.append((t, rgb, box))
    return out
