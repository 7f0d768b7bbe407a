"""Liveness cost per analysed frame vs the frame's detection + mesh cost (same run).

Baseline: ``FaceEngine.analyse(mesh=True, embed=False)`` (detect + mesh), which every
frame the gate analyses pays anyway. Then, on the same frames:

- v1 (the cues before the parallax cue, kept here for comparison): the pixel cues
  plus the v1 planar test (a homography fit on 78 mesh points per frame pair);
- v2 (ours): the pixel cues, the face texture patch (executor side, in
  ``sample_from_face``) and the passive check's ``add`` + ``verdict`` (gate side: the
  Lucas-Kanade parallax pair), plus a challenge's ``feed``.

Frames are fed at the gate's sampling rate (``--fps``, 4) so the parallax pairs are
the ones the gate computes. Prints a table and writes JSON to bench/out/. Timings
never go into pass/fail tests.

    .venv/bin/python bench/bench_liveness.py [--clip PATH] [--frames N] [--fps 4]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path

import av
import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from server.face.engine import FaceEngine  # noqa: E402
from server.liveness import Challenge, PassiveCheck, pixel_cues, sample_from_face  # noqa: E402
from server.liveness.parallax import TRACK_POINTS, face_patch  # noqa: E402

DATA = Path(os.environ.get("VIDEOGATE_TEST_DATA", REPO.parent / "shared" / "data"))
V1_POINTS = np.arange(0, 468, 6)


def v1_planar(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """The v1 planar cue's per-pair work (similarity and homography residuals)."""

    def norm(p: np.ndarray) -> np.ndarray:
        c = p - p.mean(axis=0)
        return np.asarray(c / max(math.sqrt(float((c**2).sum(axis=1).mean())), 1e-6))

    pa, pb = norm(a), norm(b)
    u, s, vt = np.linalg.svd(pb.T @ pa)
    sim = float(s.sum() / max(float((pa**2).sum()), 1e-9)) * pa @ (u @ vt).T
    hom, _ = cv2.findHomography(pa, pb, 0)
    proj = np.hstack([pa, np.ones((len(pa), 1))]) @ hom.T
    proj = proj[:, :2] / proj[:, 2:]
    return float(np.abs(sim - pb).mean()), float(np.abs(proj - pb).mean())


def p90(values: list[float]) -> float:
    return sorted(values)[int(0.9 * (len(values) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clip", type=Path, default=DATA / "faces/videos/sadtalker_aoc.mp4")
    parser.add_argument("--frames", type=int, default=40, help="analysed frames")
    parser.add_argument("--fps", type=float, default=4.0, help="the gate's sampling rate")
    args = parser.parse_args()
    engine = FaceEngine.load()
    frames: list[tuple[float, np.ndarray]] = []
    next_t = 0.0
    with av.open(str(args.clip)) as container:
        for frame in container.decode(video=0):
            t = float(frame.time or 0.0)
            if t + 1e-6 >= next_t:
                frames.append((t, frame.to_ndarray(format="rgb24")))
                next_t += 1.0 / args.fps
            if len(frames) >= args.frames:
                break
    cols: dict[str, list[float]] = {k: [] for k in (
        "detect_mesh", "v1_total", "v2_total", "pixel_cues", "v2_patch", "v2_gate")}
    check = PassiveCheck()
    challenge: Challenge | None = None
    last_v1: np.ndarray | None = None
    for t, rgb in frames:
        t0 = time.perf_counter()
        faces = engine.analyse(rgb, mesh=True, embed=False).faces
        t1 = time.perf_counter()
        if len(faces) != 1:
            continue
        face = faces[0]
        assert face.mesh is not None and face.measures is not None
        # v1: pixel cues + planar residuals on every 6th mesh point.
        pixel_cues(rgb, face.box, face.measures.roll)
        t2 = time.perf_counter()
        pts_v1 = np.asarray(face.mesh[V1_POINTS, :2], np.float64)
        if last_v1 is not None:
            v1_planar(last_v1, pts_v1)
        last_v1 = pts_v1
        t3 = time.perf_counter()
        # v2: the sample as the executor builds it (pixel cues + patch), then the gate.
        t4 = time.perf_counter()
        sample = sample_from_face(rgb, face)
        t5 = time.perf_counter()
        assert sample is not None
        check.add(sample, t)
        if challenge is None:
            challenge = Challenge.draw(random.Random(0))
            challenge.start([sample], t)
        else:
            challenge.feed(sample, t)
        check.verdict()
        t6 = time.perf_counter()
        t7 = time.perf_counter()
        face_patch(rgb, np.asarray(face.mesh[TRACK_POINTS, :2]))
        t8 = time.perf_counter()
        cols["detect_mesh"].append((t1 - t0) * 1000)
        cols["pixel_cues"].append((t2 - t1) * 1000)
        cols["v1_total"].append((t3 - t1) * 1000)
        cols["v2_total"].append((t6 - t4) * 1000)
        cols["v2_gate"].append((t6 - t5) * 1000)
        cols["v2_patch"].append((t8 - t7) * 1000)
    med = {k: statistics.median(v) for k, v in cols.items()}
    base = med["detect_mesh"]
    rows = [
        ("detect + mesh (baseline)", "detect_mesh"),
        ("liveness v1: pixel cues + planar", "v1_total"),
        ("liveness v2 (ours), total", "v2_total"),
        ("  of which pixel cues", "pixel_cues"),
        ("  of which face patch (executor)", "v2_patch"),
        ("  of which passive add+verdict (gate)", "v2_gate"),
    ]
    print(f"{'stage':40s} {'median ms':>10s} {'p90 ms':>8s}")
    for label, key in rows:
        print(f"{label:40s} {med[key]:10.2f} {p90(cols[key]):8.2f}")
    per_frame_v1 = (base + med["v1_total"]) / base
    per_frame_v2 = (base + med["v2_total"]) / base
    print(f"per analysed frame vs detect+mesh: v1 {per_frame_v1:.2f}x, v2 {per_frame_v2:.2f}x "
          f"(v2/v1 {(base + med['v2_total']) / (base + med['v1_total']):.2f})")
    result = {
        "clip": str(args.clip.name),
        "frames": len(cols["detect_mesh"]),
        "fps": args.fps,
        "resolution": f"{frames[0][1].shape[1]}x{frames[0][1].shape[0]}",
        "median_ms": {k: round(v, 3) for k, v in med.items()},
        "p90_ms": {k: round(p90(v), 3) for k, v in cols.items()},
        "per_frame_over_detect_mesh": {"v1": round(per_frame_v1, 3), "v2": round(per_frame_v2, 3)},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform(), "load": os.getloadavg()},
    }
    out = REPO / "bench" / "out" / f"bench_liveness-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
