"""Cost per analysed frame: face landmarker + liveness vs today's detect + mesh + cues.

Both pipelines run on the same frames in the same process, interleaved frame by frame
(alternating which goes first) so machine load hits both alike:

- baseline: ``FaceEngine(landmarks="mesh")`` -- BlazeFace + the 468-point mesh -- then
  the liveness sample (pixel cues + measures), the passive check and a challenge;
- ours: ``FaceEngine(landmarks="landmarker")`` -- BlazeFace + the Face Landmarker's 478
  points and 52 blendshapes -- then the same liveness work.

Prints the medians, the p90s and the ratio ours/baseline (target <= 1.5) and writes JSON
to bench/out/. Timings never go into pass/fail tests.

    .venv/bin/python bench/bench_landmarker.py [--clip PATH] [--frames N]
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
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from server.face.engine import FaceEngine  # noqa: E402
from server.liveness import Challenge, PassiveCheck, sample_from_face  # noqa: E402

DATA = Path(os.environ.get("VIDEOGATE_TEST_DATA", REPO.parent / "shared" / "data"))


class Pipeline:
    """One engine plus the per-frame liveness work the gate does on a challenge frame."""

    def __init__(self, engine: FaceEngine) -> None:
        self.engine = engine
        self.check = PassiveCheck()
        self.challenge: Challenge | None = None
        self.ms: list[float] = []
        self.stage_ms: dict[str, list[float]] = {"analyse": [], "liveness": []}

    def frame(self, rgb: np.ndarray, now: float) -> None:
        t0 = time.perf_counter()
        faces = self.engine.analyse(rgb, mesh=True, embed=False).faces
        t1 = time.perf_counter()
        if len(faces) == 1:
            sample = sample_from_face(rgb, faces[0])
            assert sample is not None
            self.check.add(sample, now)
            if self.challenge is None:
                self.challenge = Challenge.draw(random.Random(0))
                self.challenge.start([sample], now)
            else:
                self.challenge.feed(sample, now)
            self.check.verdict()
        t2 = time.perf_counter()
        self.ms.append((t2 - t0) * 1000)
        self.stage_ms["analyse"].append((t1 - t0) * 1000)
        self.stage_ms["liveness"].append((t2 - t1) * 1000)


def p90(values: list[float]) -> float:
    return sorted(values)[int(0.9 * (len(values) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clip", type=Path, default=DATA / "faces/videos/sadtalker_aoc.mp4")
    parser.add_argument("--frames", type=int, default=150)
    args = parser.parse_args()
    frames = []
    with av.open(str(args.clip)) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) >= args.frames:
                break
    base = Pipeline(FaceEngine.load(landmarks="mesh"))
    ours = Pipeline(FaceEngine.load(landmarks="landmarker"))
    for warm in frames[:5]:  # first LiteRT invocations allocate
        base.engine.analyse(warm, embed=False)
        ours.engine.analyse(warm, embed=False)
    for i, rgb in enumerate(frames):
        order = (base, ours) if i % 2 == 0 else (ours, base)
        for pipe in order:
            pipe.frame(rgb, i / 25)
    b, o = statistics.median(base.ms), statistics.median(ours.ms)
    rows = [
        ("detect + mesh + cues (baseline)", base),
        ("detect + landmarker + cues (ours)", ours),
    ]
    print(f"{'pipeline':36s} {'median ms':>10s} {'p90 ms':>8s} {'analyse':>8s} {'liveness':>9s}")
    for name, pipe in rows:
        print(
            f"{name:36s} {statistics.median(pipe.ms):10.2f} {p90(pipe.ms):8.2f} "
            f"{statistics.median(pipe.stage_ms['analyse']):8.2f} "
            f"{statistics.median(pipe.stage_ms['liveness']):9.2f}"
        )
    print(f"ratio ours/baseline = {o / b:.2f}  (target <= 1.5)")
    result = {
        "clip": args.clip.name,
        "frames": len(frames),
        "resolution": f"{frames[0].shape[1]}x{frames[0].shape[0]}",
        "baseline_ms_median": round(b, 3),
        "baseline_ms_p90": round(p90(base.ms), 3),
        "ours_ms_median": round(o, 3),
        "ours_ms_p90": round(p90(ours.ms), 3),
        "ratio_median": round(o / b, 3),
        "stages_ms_median": {
            name: {k: round(statistics.median(v), 3) for k, v in pipe.stage_ms.items()}
            for name, pipe in (("baseline", base), ("ours", ours))
        },
        "machine": {
            "cpus": os.cpu_count(),
            "load_1min": os.getloadavg()[0],
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
    }
    out = REPO / "bench" / "out" / f"bench_landmarker-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
