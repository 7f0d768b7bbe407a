"""Blink detection by the challenge's own rule: shared clips' blink candidates, print attacks.

For every blink candidate in ``video_observations.json`` a BLINK-only
:class:`Challenge` starts 1.2 s before it (baseline: the first three face samples) and
is fed the clip's frames up to 0.6 s after it; the candidate counts as detected when the
challenge completes. Run at the clip's full frame rate and at sampled rates (the gate
samples at 4 fps; ``python -m server.liveness eval`` at 8 fps for active runs).

Print attacks: every shared photo and spoof still, warped as a flat print moved in front
of a camera (perspective tilt up to 40 degrees both ways, in-plane rotation, zoom and
pan, 48 frames at 12 fps), fed to a BLINK challenge; any completion is a false blink.
Counts, not timings: this is a measurement script, not a test.

    .venv/bin/python bench/bench_blinks.py [--mesh] [--fps 0 8 4]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from server.face.engine import FaceEngine  # noqa: E402
from server.face.imageio import decode_image  # noqa: E402
from server.liveness import (  # noqa: E402
    ActiveConfig,
    Challenge,
    ChallengeAction,
    LivenessSample,
    StepStatus,
    sample_from_face,
)

DATA = Path(os.environ.get("VIDEOGATE_TEST_DATA", REPO.parent / "shared" / "data")) / "faces"
Track = list[tuple[float, LivenessSample | None]]


def clip_track(engine: FaceEngine, path: Path) -> Track:
    """(time, sample of the one face or None) for every decoded frame."""
    out: Track = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            rgb = frame.to_ndarray(format="rgb24")
            faces = engine.analyse(rgb, mesh=True, embed=False).faces
            one = sample_from_face(rgb, faces[0], pixels=False) if len(faces) == 1 else None
            out.append((float(frame.time or 0.0), one))
    return out


def subsample(track: Track, fps: float) -> Track:
    if fps <= 0:
        return track
    out: Track = []
    next_t = -1.0
    for t, s in track:
        if t + 1e-6 >= next_t:
            out.append((t, s))
            next_t = t + 1.0 / fps
    return out


def blink_challenge(track: Track, config: ActiveConfig) -> bool:
    """Whether a BLINK challenge started on ``track`` (baseline: first 3 faces) completes."""
    faces = [(t, s) for t, s in track if s is not None]
    if len(faces) < config.baseline_frames + 1:
        return False
    challenge = Challenge((ChallengeAction.BLINK,), config)
    base = faces[: config.baseline_frames]
    challenge.start([s for _, s in base], base[-1][0])
    for t, s in faces[config.baseline_frames :]:
        outcome = challenge.feed(s, t)
        if outcome.status is StepStatus.DONE:
            return True
        if outcome.status is not StepStatus.WAITING:
            return False
    return False


def candidates(engine: FaceEngine, rates: list[float], config: ActiveConfig) -> dict[str, Any]:
    videos = json.loads((DATA / "video_observations.json").read_text())["videos"]
    rows: dict[str, Any] = {}
    for rel, obs in videos.items():
        times = obs.get("blink_times_s") or []
        if not times:
            continue
        track = clip_track(engine, DATA / rel)
        per_rate: dict[str, list[bool]] = {}
        for fps in rates:
            sampled = subsample(track, fps)
            per_rate[str(fps)] = [
                blink_challenge([(t, s) for t, s in sampled if c - 1.2 <= t <= c + 0.6], config)
                for c in times
            ]
        rows[rel] = {"candidates": times, "detected": per_rate}
    return rows


def warp_print(
    photo: np.ndarray,
    tilt_x: float,
    tilt_y: float,
    roll: float,
    zoom: float,
    pan: tuple[float, float],
    size: tuple[int, int] = (640, 480),
) -> np.ndarray:
    """The photo as a flat print seen by a pinhole camera (degrees; zoom 1 = 80 % fit)."""
    h, w = photo.shape[:2]
    f = 1.2 * max(size)
    s = min(size[0] / w, size[1] / h) * 0.8 * zoom
    corners = np.array([[-w, -h, 0], [w, -h, 0], [w, h, 0], [-w, h, 0]], float) * s / 2
    ax, ay, az = (math.radians(v) for v in (tilt_x, tilt_y, roll))
    rx = np.array([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
    ry = np.array([[math.cos(ay), 0, math.sin(ay)], [0, 1, 0], [-math.sin(ay), 0, math.cos(ay)]])
    rz = np.array([[math.cos(az), -math.sin(az), 0], [math.sin(az), math.cos(az), 0], [0, 0, 1]])
    p = corners @ (rz @ ry @ rx).T
    p[:, 2] += f
    cx, cy = size[0] / 2 + pan[0] * size[0], size[1] / 2 + pan[1] * size[1]
    dst = np.stack([p[:, 0] * f / p[:, 2] + cx, p[:, 1] * f / p[:, 2] + cy], 1)
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    hom = cv2.getPerspectiveTransform(src, dst.astype(np.float32))
    return cv2.warpPerspective(photo, hom, size, borderValue=(96, 104, 112))


def print_attack(engine: FaceEngine, photo: np.ndarray, frames: int = 48) -> Track:
    track: Track = []
    for i in range(frames):
        a = 2 * math.pi * i / frames
        tilt_x, tilt_y = 40 * math.sin(a), 40 * math.sin(2 * a + 1.0)
        roll, zoom = 20 * math.sin(3 * a), 1.0 + 0.3 * math.sin(a + 0.5)
        pan = (0.08 * math.cos(a), 0.05 * math.sin(2 * a))
        rgb = warp_print(photo, tilt_x, tilt_y, roll, zoom, pan)
        faces = engine.analyse(rgb, mesh=True, embed=False).faces
        track.append(
            (i / 12.0, sample_from_face(rgb, faces[0], pixels=False) if len(faces) == 1 else None)
        )
    return track


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mesh", action="store_true", help="468-point mesh, EAR (old rule)")
    parser.add_argument(
        "--fps",
        type=float,
        nargs="*",
        default=[0.0, 8.0, 4.0],
        help="sampling rates (0 = every frame)",
    )
    parser.add_argument("--no-prints", action="store_true")
    args = parser.parse_args()
    engine = FaceEngine.load(landmarks="mesh" if args.mesh else "landmarker")
    config = ActiveConfig()
    t0 = time.perf_counter()
    rows = candidates(engine, args.fps, config)
    print(
        f"{'clip':34s} " + " ".join(f"{('all' if f == 0 else f'{f:g} fps'):>8s}" for f in args.fps)
    )
    totals = {str(f): 0 for f in args.fps}
    count = 0
    for rel, row in rows.items():
        n = len(row["candidates"])
        count += n
        cells = []
        for f in args.fps:
            hit = sum(row["detected"][str(f)])
            totals[str(f)] += hit
            cells.append(f"{hit:>3d}/{n:<4d}")
        first = row["detected"][str(args.fps[0])]
        missed = [c for c, d in zip(row["candidates"], first, strict=True) if not d]
        print(f"{rel:34s} " + " ".join(cells) + (f"  missed {missed}" if missed else ""))
    print(f"{'total':34s} " + " ".join(f"{totals[str(f)]:>3d}/{count:<4d}" for f in args.fps))
    prints: dict[str, bool] = {}
    if not args.no_prints:
        photos = (
            sorted((DATA / "faces").glob("*/*"))
            + sorted((DATA / "spoof").glob("*"))
            + sorted((DATA / "videos" / "stills").glob("*/*"))
        )
        for photo in photos:
            track = print_attack(engine, decode_image(photo.read_bytes()))
            prints[str(photo.relative_to(DATA))] = blink_challenge(track, config)
        false = [k for k, v in prints.items() if v]
        print(
            f"print attacks (flat photo moved, 48 frames each): {len(false)} false blinks "
            f"of {len(prints)}" + (f": {false}" if false else "")
        )
    result = {
        "landmarks": "mesh" if args.mesh else "landmarker",
        "rates_fps": args.fps,
        "clips": rows,
        "detected": totals,
        "candidates": count,
        "print_attacks": prints,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    out = REPO / "bench" / "out" / f"bench_blinks-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
