"""Blink detection by the challenge's own rule: shared clips' blink candidates, print attacks.

For every blink candidate in ``video_observations.json`` a BLINK-only
:class:`Challenge` starts 1.2 s before it (baseline: the first three face samples) and
is fed the clip's frames up to 0.6 s after it; the candidate counts as detected when the
challenge completes. Run at the clip's full frame rate, at fixed sampled rates, and at
the gate's own rate (``gate``: ``[gate] sample_fps`` for the baseline, then what the
challenge asks for its expression step, ``Challenge.sample_fps`` = ``[liveness]
expression_fps``), frames picked by the server sampler's rule
(``server.rtc.sampler.SamplerClock``).

Print attacks: every shared photo and spoof still, warped as a flat print moved in front
of a camera (perspective tilt up to 40 degrees both ways, in-plane rotation, zoom and
pan, 48 frames at 12 fps), fed to a BLINK challenge; any completion is a false blink.
``--attacks DIR``: every clip of the print-attack generator's set
(``python -m server.liveness.attacks``) fed whole to a BLINK challenge, at every frame
and at the gate's rate; any completion is a false blink.
Counts, not timings: this is a measurement script, not a test.

    .venv/bin/python bench/bench_blinks.py [--mesh] [--fps 0 8 4] [--no-gate]
        [--no-candidates] [--no-prints] [--attacks var/attacks]
"""

from __future__ import annotations

import argparse
import dataclasses
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

from server.config import load_settings  # noqa: E402
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
from server.rtc.sampler import SamplerClock  # noqa: E402

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


Rate = tuple[str, float, ActiveConfig]  # (label, base fps or 0 = every frame, config)


def blink_challenge(track: Track, config: ActiveConfig, base: float = 0.0) -> bool:
    """Whether a BLINK challenge started on ``track`` completes. The sampler takes frames
    at ``base`` fps (0: every frame) until the baseline (three faces) is in, then at the
    challenge's rate (``Challenge.sample_fps``)."""
    if not track:
        return False
    challenge = Challenge((ChallengeAction.BLINK,), config)
    clock = SamplerClock([t for t, _ in track])
    baseline: list[LivenessSample] = []

    def rate() -> float:  # the gate's rule once the challenge runs
        if not base:
            return 1e3
        return challenge.sample_fps(base) if challenge.baseline is not None else base

    for n, _ in clock.frames(track[0][0], rate):
        t, s = track[n]
        if s is None:
            continue
        if len(baseline) < config.baseline_frames:
            baseline.append(s)
            if len(baseline) == config.baseline_frames:
                challenge.start(baseline, t)
            continue
        outcome = challenge.feed(s, t)
        if outcome.status is StepStatus.DONE:
            return True
        if outcome.status is not StepStatus.WAITING:
            return False
    return False


def candidates(engine: FaceEngine, rates: list[Rate]) -> dict[str, Any]:
    videos = json.loads((DATA / "video_observations.json").read_text())["videos"]
    rows: dict[str, Any] = {}
    for rel, obs in videos.items():
        times = obs.get("blink_times_s") or []
        if not times:
            continue
        track = clip_track(engine, DATA / rel)
        per_rate: dict[str, list[bool]] = {}
        for label, base, config in rates:
            per_rate[label] = [
                blink_challenge([(t, s) for t, s in track if c - 1.2 <= t <= c + 0.6],
                                config, base)
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
    parser.add_argument("--no-gate", action="store_true", help="skip the gate's-rate column")
    parser.add_argument("--no-candidates", action="store_true")
    parser.add_argument("--attacks", type=Path, default=None, help="generated print clips")
    parser.add_argument("--every", type=int, default=1, help="every n-th generated clip")
    args = parser.parse_args()
    engine = FaceEngine.load(landmarks="mesh" if args.mesh else "landmarker")
    settings = load_settings()
    config = dataclasses.replace(ActiveConfig(), expression_fps=settings.liveness.expression_fps)
    fixed = dataclasses.replace(config, expression_fps=1e-3)  # never raised
    rates: list[Rate] = [("all" if f == 0 else f"{f:g} fps", f, fixed) for f in args.fps]
    if not args.no_gate:
        gate = f"gate {settings.gate.sample_fps:g}/{config.expression_fps:g}"
        rates.append((gate, settings.gate.sample_fps, config))
    t0 = time.perf_counter()
    rows = {} if args.no_candidates else candidates(engine, rates)
    labels = [label for label, _, _ in rates]
    print(f"{'clip':34s} " + " ".join(f"{label:>10s}" for label in labels))
    totals = dict.fromkeys(labels, 0)
    count = 0
    for rel, row in rows.items():
        n = len(row["candidates"])
        count += n
        cells = []
        for label in labels:
            hit = sum(row["detected"][label])
            totals[label] += hit
            cells.append(f"{hit:>5d}/{n:<4d}")
        first = row["detected"][labels[0]]
        missed = [c for c, d in zip(row["candidates"], first, strict=True) if not d]
        print(f"{rel:34s} " + " ".join(cells) + (f"  missed {missed}" if missed else ""))
    print(f"{'total':34s} " + " ".join(f"{totals[label]:>5d}/{count:<4d}" for label in labels))
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
    generated: dict[str, dict[str, bool]] = {}
    if args.attacks is not None:
        for clip in sorted(args.attacks.glob("*.mp4"))[:: args.every]:
            track = clip_track(engine, clip)
            generated[clip.name] = {
                label: blink_challenge(track, config, base) for label, base, config in rates
            }
            print(clip.name, generated[clip.name], file=sys.stderr)
        for label in labels:
            false = [k for k, v in generated.items() if v[label]]
            print(f"generated prints at {label}: {len(false)} false blinks of {len(generated)}"
                  + (f": {false}" if false else ""))
    result = {
        "generated_prints": generated,
        "landmarks": "mesh" if args.mesh else "landmarker",
        "rates": labels,
        "expression_fps": config.expression_fps,
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
