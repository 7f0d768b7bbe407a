"""A still must not blink when the face box, and with it the landmarker's crop, moves.

CI on 2026-12-02 admitted the e2e still of lestari15_subject past a blink step
(tests/e2e/test_participant_ux.py: it was refused at step 2). Traced in Chromium, the
VP8 frames of the still put BlazeFace's box in two places as the encoder's quality rose
(width 0.69 or 0.82 of the frame), and the closure score followed the crop: 0.12 on the
small box, 0.42 on the large one. server/liveness/blink.py reads the open level on
frames framed alike.
"""

from __future__ import annotations

import io
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from server.face.blendshapes import EYE_BLINK
from server.face.detector import Detection
from server.face.engine import FaceEngine
from server.face.landmarks import FaceMeasures
from server.fakecam import make_y4m
from server.liveness import (
    ActiveConfig,
    Challenge,
    ChallengeAction,
    LivenessSample,
    StepStatus,
    sample_from_face,
)
from server.liveness.blink import framed_alike

# The two boxes Chromium's frames of the still got (fractions of the 640x480 frame).
SMALL = (0.688, (0.509, 0.727))
LARGE = (0.818, (0.506, 0.669))


def _eyes(closure: float, width: float, center: tuple[float, float]) -> LivenessSample:
    scores = np.zeros(52, dtype=np.float32)
    scores[list(EYE_BLINK)] = closure
    m = FaceMeasures(0.26, 0.26, 0.0, 0.55, 0.0, 2.0, -6.0)
    return LivenessSample(
        m, center, width, np.zeros((78, 2)), blendshapes=scores, width_px=width * 640
    )


def blink_step(
    baseline: list[LivenessSample],
    frames: list[tuple[float, LivenessSample]],
    action: ChallengeAction = ChallengeAction.BLINK,
) -> str:
    challenge = Challenge((action,), ActiveConfig(step_time_s=60.0))
    challenge.start(baseline, 0.0)
    for t, s in frames:
        outcome = challenge.feed(s, t)
        if outcome.status is not StepStatus.WAITING:
            return str(outcome.status.value)
    return "waiting"


def test_the_traced_still_does_not_blink() -> None:
    """The blink step's frames of the CI run's still, as traced in Chromium (score, box
    width, box centre; the identity frames' scores ~0.10 on the small box)."""
    base = [_eyes(v, 0.69, (0.509, 0.727)) for v in (0.101, 0.104, 0.110)]
    trace = [
        (0.07, 0.116, 0.688, (0.509, 0.7275)),
        (0.14, 0.187, 0.690, (0.508, 0.7269)),
        (0.20, 0.420, 0.818, (0.506, 0.6694)),
        (0.27, 0.383, 0.795, (0.506, 0.6575)),
        (0.35, 0.374, 0.818, (0.507, 0.6699)),
        (0.41, 0.220, 0.708, (0.508, 0.7268)),
        (0.48, 0.312, 0.708, (0.497, 0.7257)),
    ]
    frames = [(t, _eyes(v, w, c)) for t, v, w, c in trace]
    assert blink_step(base, frames) == "waiting"
    # The same scores on one steady box are a blink (0.38 over a 0.10 level, then back).
    steady = [(t, _eyes(s.blink or 0.0, *SMALL)) for t, s in frames]
    assert blink_step([_eyes(v, *SMALL) for v in (0.101, 0.104, 0.110)], steady) == "done"


def test_framed_alike_needs_the_same_crop() -> None:
    a = _eyes(0.2, *SMALL)
    assert framed_alike(a, _eyes(0.2, 0.70, (0.51, 0.73)), ActiveConfig())
    assert not framed_alike(a, _eyes(0.2, *LARGE), ActiveConfig())
    tracked = LivenessSample(a.measures, a.center, a.width, a.points, tracked=True)
    assert not framed_alike(a, tracked, ActiveConfig())


def _vp8(rgb: np.ndarray, bitrate: int) -> np.ndarray:
    """One frame through libvpx at ``bitrate`` (an intra frame: the quality a WebRTC
    sender's first frames have, or its later ones, depending on the rate)."""
    out = io.BytesIO()
    with av.open(out, "w", format="webm") as container:
        stream = container.add_stream("libvpx", rate=15)
        stream.width, stream.height, stream.pix_fmt = 640, 480, "yuv420p"
        stream.bit_rate = bitrate
        stream.options = {"deadline": "realtime", "cpu-used": "8", "threads": "1"}
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    out.seek(0)
    with av.open(out) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)][-1]


class _Boxed:
    """A detector that finds the face at one of the two traced boxes."""

    def __init__(self, det: Detection) -> None:
        self.det = det
        self.box = SMALL

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        width, (cx, cy) = self.box
        x0, y0, x1, y1 = self.det.box
        scale = width * 640 / (x1 - x0)
        old = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
        new = np.array([cx * 640, cy * 480])
        half = np.array([x1 - x0, y1 - y0]) * scale / 2
        kps = (self.det.keypoints - old) * scale + new
        box = (*(new - half), *(new + half))
        return [Detection(box=tuple(map(float, box)), keypoints=kps.astype(np.float32),
                          score=self.det.score)]  # fmt: skip


def test_a_still_whose_box_moves_with_codec_quality_does_not_blink(
    engine: FaceEngine, faces_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The still as Chromium sends it: low-quality frames on the small box first (the
    identity frames), then sharper frames on either box."""
    stills = sorted((faces_dir / "videos" / "stills" / "lestari15_subject").glob("*.png"))
    with av.open(str(make_y4m(stills[0], tmp_path / "still.y4m"))) as container:
        still = next(container.decode(video=0)).to_ndarray(format="rgb24")
    rough, sharp = _vp8(still, 40_000), _vp8(still, 150_000)
    boxed = _Boxed(engine.detector.detect(cv2.GaussianBlur(still, (0, 0), 0.5))[0])
    monkeypatch.setattr(engine, "detector", boxed)

    def sample(rgb: np.ndarray, box: tuple[float, tuple[float, float]]) -> LivenessSample:
        boxed.box = box
        s = sample_from_face(rgb, engine.analyse(rgb, embed=False).faces[0], pixels=False)
        assert s is not None and s.blink is not None
        return s

    low, large, small = sample(rough, SMALL), sample(sharp, LARGE), sample(sharp, SMALL)
    # What the crop alone does: more than a blink's rise, and back.
    assert large.blink is not None and low.blink is not None and small.blink is not None
    assert large.blink - low.blink >= ActiveConfig().blink_rise
    assert (large.blink + low.blink) / 2 >= small.blink
    sequence = [low, large, large, small, small, large, large, small, low, large, small]
    frames = [((i + 1) / 15, s) for i, s in enumerate(sequence * 3)]
    assert blink_step([low, low, low], frames) == "waiting"
    # No other prompt is done by the crop either.
    for action in ChallengeAction:
        assert blink_step([low, low, low], frames, action) == "waiting", action
