"""Landmark tracking between detector frames (server/face/tracking.py) on real clips."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from server.client import timed_clip_frames
from server.config import load_settings
from server.face.engine import FaceEngine
from server.face.matcher import DEFAULT_THRESHOLD
from server.face.tracking import FaceTracker
from server.verify import CheckTarget, FaceChecker

BOUND_S = 0.5  # the documented bound (docs/liveness.md "Cost"), not read from the code


def tracking_checker(engine: FaceEngine) -> FaceChecker:
    checker = FaceChecker(engine, CheckTarget("p", {"p": np.zeros((1, 128))}, DEFAULT_THRESHOLD))
    checker.tracker = FaceTracker(engine)
    return checker


@pytest.mark.parametrize("clip", ["sadtalker_aoc.mp4", "liveportrait_d13.mp4"])
def test_tracked_frames_agree_with_the_detector(
    engine: FaceEngine, faces_dir: Path, clip: str
) -> None:
    tracker = FaceTracker(engine)
    compared = 0
    for t, rgb in timed_clip_frames(faces_dir / "videos" / clip, 4.0, 12):
        got = tracker.analyse(rgb, t, embed=False, engines=("dlib",)).faces
        if not tracker.last_tracked:
            continue
        ref = engine.analyse(rgb, embed=False).faces
        assert len(got) == 1 and len(ref) == 1
        r, f = ref[0], got[0]
        assert r.mesh is not None and f.mesh is not None and f.blendshapes is not None
        iod = float(np.linalg.norm(r.mesh[33, :2] - r.mesh[263, :2]))
        # Measured (bench_frame_cost.py --agreement): mean 0.6 %, at most 1.2 % of the
        # eye span on these clips; the detector's box moved by the face within 10 % of
        # its width (the detector's own box jitters as much between frames).
        assert float(np.linalg.norm(r.mesh[:468, :2] - f.mesh[:468, :2], axis=1).mean()) < (
            0.03 * iod
        )
        width = r.box[2] - r.box[0]
        assert float(np.abs(np.subtract(r.box, f.box)).max()) < 0.15 * width
        assert f.measures is not None and r.measures is not None
        assert abs(f.measures.roll - r.measures.roll) < 2.0
        assert not f.quality or f.quality == r.quality
        compared += 1
    assert compared >= 4  # tracking did happen, on about every second frame at 4 fps


def test_detector_runs_within_the_bound_and_on_frames_that_need_it(
    engine: FaceEngine, faces_dir: Path
) -> None:
    # At the expression steps' 15 fps most frames are tracking frames.
    checker = tracking_checker(engine)
    tracker = checker.tracker
    assert tracker is not None
    detected_at: list[float] = []
    for k, (t, rgb) in enumerate(
        timed_clip_frames(faces_dir / "videos/sadtalker_aoc.mp4", 15.0, 30)
    ):
        embed, light = k == 12, k in (20, 21)
        obs = checker.observe(rgb, embed=embed, light=light, now=t)
        assert obs.faces == 1 and obs.liveness is not None
        if embed or light:
            assert not tracker.last_tracked
        # the blink rule reads the crop's kind (server/liveness/blink.py)
        assert obs.liveness.tracked is tracker.last_tracked
        if tracker.last_tracked:
            # pixel cues are calibrated on the detector's box: never on a tracking frame
            assert obs.liveness.pixels is None and obs.liveness.patch is not None
            assert obs.match is None
        else:
            detected_at.append(t)
            assert obs.liveness.pixels is not None
    gaps = np.diff(detected_at)
    assert tracker.tracked >= 15
    assert float(gaps.max()) <= BOUND_S + 1.0 / 15.0 + 1e-6, detected_at


def test_a_second_face_is_counted_within_the_bound(
    engine: FaceEngine,
    faces_dir: Path,
    load_photo,  # type: ignore[no-untyped-def]
) -> None:
    frames = timed_clip_frames(faces_dir / "videos/sadtalker_aoc.mp4", 15.0, 24)
    h, w = frames[0][1].shape[:2]
    other = cv2.resize(load_photo("faces/obama/1.jpg"), (w, h), interpolation=cv2.INTER_AREA)
    appears = frames[4][0]
    checker = tracking_checker(engine)
    tracker = checker.tracker
    assert tracker is not None
    counted_at = None
    for t, rgb in frames:
        canvas = np.zeros((h, 2 * w, 3), np.uint8)
        canvas[:, :w] = rgb
        if t >= appears:
            canvas[:, w:] = other
            assert len(engine.analyse(canvas, embed=False).faces) == 2  # the detector sees it
        obs = checker.observe(canvas, embed=False, light=False, now=t)
        if t < appears:
            assert obs.faces == 1
        elif obs.faces == 2:
            counted_at = t
            break
        else:
            assert tracker.last_tracked  # only a tracking frame may miss it
    assert counted_at is not None
    assert counted_at - appears <= BOUND_S + 1.0 / 15.0 + 1e-6


def test_a_lost_face_falls_back_to_the_detector(engine: FaceEngine, faces_dir: Path) -> None:
    frames = timed_clip_frames(faces_dir / "videos/sadtalker_aoc.mp4", 15.0, 4)
    tracker = FaceTracker(engine)
    tracker.analyse(frames[0][1], frames[0][0], embed=False, engines=("dlib",))
    blank = np.full_like(frames[1][1], 128)
    found = tracker.analyse(blank, frames[1][0], embed=False, engines=("dlib",))
    assert found.faces == [] and not tracker.last_tracked  # low presence: detector ran
    tracker.analyse(frames[2][1], frames[2][0], embed=False, engines=("dlib",))
    assert not tracker.last_tracked  # no track after a frame without a face
    tracker.analyse(frames[3][1], frames[3][0], embed=False, engines=("dlib",))
    assert tracker.last_tracked


def test_on_by_default_and_only_with_the_samplers_clock(faces_dir: Path) -> None:
    # On by default since expression steps keep the detector (FrameNeeds.detect).
    assert load_settings(env={}).face.track_landmarks is True
    engine = FaceEngine.load(track_landmarks=True)
    checker = FaceChecker(engine, CheckTarget("p", {}, DEFAULT_THRESHOLD))
    tracker = checker.tracker
    assert tracker is not None
    plain = FaceEngine.load(track_landmarks=False)
    assert FaceChecker(plain, CheckTarget("p", {}, DEFAULT_THRESHOLD)).tracker is None
    for _, rgb in timed_clip_frames(faces_dir / "videos/sadtalker_aoc.mp4", 15.0, 4):
        checker.observe(rgb, embed=False, light=False)  # no clock: every frame detected
        assert tracker.detected == tracker.tracked == 0


def test_expression_frames_are_detected_every_time(engine: FaceEngine, faces_dir: Path) -> None:
    """``detect`` (the gate's FrameNeeds during blink, smile and open mouth): the
    detector finds the face on each of those frames, so the step's blendshape scores come
    from the same kind of region as its baseline's; the frames around it are tracked."""
    checker = tracking_checker(engine)
    tracker = checker.tracker
    assert tracker is not None
    frames = timed_clip_frames(faces_dir / "videos/sadtalker_aoc.mp4", 15.0, 24)
    for k, (t, rgb) in enumerate(frames):
        expression = 8 <= k < 16
        obs = checker.observe(rgb, embed=False, light=False, now=t, detect=expression)
        assert obs.faces == 1 and obs.liveness is not None
        if expression:
            assert not tracker.last_tracked and obs.liveness.pixels is not None
    assert tracker.detected >= 8 and tracker.tracked >= 8
