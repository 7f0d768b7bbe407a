"""Liveness cost per analysed frame vs the frame's detection + landmarks cost (same run).

The engine is the default one: since issue #13 the face landmarker (478 points and
blendshapes). The landmarker against the 468-point mesh, side by side in one run:
``bench/bench_landmarker.py``.

Ours: building the liveness sample (pixel cues + measures) and feeding the passive
check and a challenge. Baseline: ``FaceEngine.analyse(mesh=True, embed=False)``
(detect + mesh), which every challenge frame pays anyway. Prints a table and writes
JSON to bench/out/. Timings never go into pass/fail tests.

    .venv/bin/python bench/bench_liveness.py [--clip PATH] [--frames N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path

import av

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from server.face.engine import FaceEngine  # noqa: E402
from server.liveness import Challenge, PassiveCheck, sample_from_face  # noqa: E402

DATA = Path(os.environ.get("VIDEOGATE_TEST_DATA", REPO.parent / "shared" / "data"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clip", type=Path, default=DATA / "faces/videos/sadtalker_aoc.mp4")
    parser.add_argument("--frames", type=int, default=150)
    args = parser.parse_args()
    engine = FaceEngine.load()
    frames = []
    with av.open(str(args.clip)) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) >= args.frames:
                break
    base_ms: list[float] = []
    ours_ms: list[float] = []
    check = PassiveCheck()
    challenge: Challenge | None = None
    for i, rgb in enumerate(frames):
        t0 = time.perf_counter()
        faces = engine.analyse(rgb, mesh=True, embed=False).faces
        t1 = time.perf_counter()
        if len(faces) != 1:
            continue
        sample = sample_from_face(rgb, faces[0])
        assert sample is not None
        check.add(sample, i / 25)
        if challenge is None:
            challenge = Challenge.draw(random.Random(0))
            challenge.start([sample], i / 25)
        else:
            challenge.feed(sample, i / 25)
        check.verdict()
        t2 = time.perf_counter()
        base_ms.append((t1 - t0) * 1000)
        ours_ms.append((t2 - t1) * 1000)
    base, ours = statistics.median(base_ms), statistics.median(ours_ms)
    p90 = sorted(ours_ms)[int(0.9 * (len(ours_ms) - 1))]
    result = {
        "clip": str(args.clip.name),
        "frames": len(ours_ms),
        "resolution": f"{frames[0].shape[1]}x{frames[0].shape[0]}",
        "detect_mesh_ms_median": round(base, 3),
        "liveness_ms_median": round(ours, 3),
        "liveness_ms_p90": round(p90, 3),
        "ratio_liveness_over_detect_mesh": round(ours / base, 3),
        "budget_ms": 5.0,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
    }
    print(f"{'stage':28s} {'median ms':>10s}")
    print(f"{'detect + landmarks (baseline)':28s} {base:10.2f}")
    print(f"{'liveness (ours)':28s} {ours:10.2f}   p90 {p90:.2f}")
    print(f"ratio ours/baseline = {ours / base:.2f}  (budget 5 ms absolute)")
    out = REPO / "bench" / "out" / f"bench_liveness-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
