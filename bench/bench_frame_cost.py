"""Cost of one whole analysed frame, liveness v2 against v1, interleaved in one run.

Issue #13's cost target compares everything the server does for one analysed frame:

- **v1**: BlazeFace + the 468-point mesh (``FaceEngine(landmarks="mesh")``), the v1
  cues (pixel cues + the v1 planar homography on 78 mesh points against the previous
  frame) and a challenge's ``feed`` on EAR rules;
- **v2**: ``FaceChecker.observe`` with the Face Landmarker (BlazeFace + 478 points +
  52 blendshapes, then the liveness sample: pixel cues, face patch, and the parallax
  pair, as ``Participant.checker_observe`` does in the executor; the light meter runs
  only during a light challenge), then the event loop's side: the passive check's
  ``add`` + ``verdict`` and a challenge's ``feed`` on blendshapes.

Both run on the same frames, interleaved frame by frame (alternating which goes first)
so the shared machine's load hits both alike. Frames are taken at the gate's base rate
(``--fps``, 4) so the parallax pairs are the gate's. Mid-challenge frames (no
embedding) are the common case; ``--embed`` measures identity frames (embedding on,
the 468-point mesh then also runs in v2 for alignment). Prints medians and p90s per
stage and the v2/v1 ratio (target <= 1.5), writes JSON to bench/out/. Timings never
go into pass/fail tests.

    .venv/bin/python bench/bench_frame_cost.py [--clip PATH ...] [--frames N] [--embed]
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
from dataclasses import replace
from pathlib import Path

import av
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench_liveness import V1_POINTS, v1_planar  # noqa: E402

from server.face.engine import FaceEngine  # noqa: E402
from server.face.landmarks import FaceMeasures  # noqa: E402
from server.face.matcher import DEFAULT_THRESHOLD  # noqa: E402
from server.liveness import Challenge, LivenessSample, PassiveCheck, pixel_cues  # noqa: E402
from server.liveness.parallax import PairMaker  # noqa: E402
from server.liveness.sample import paired  # noqa: E402
from server.verify import CheckTarget, FaceChecker  # noqa: E402

DATA = Path(os.environ.get("VIDEOGATE_TEST_DATA", REPO.parent / "shared" / "data"))
CLIPS = ("faces/videos/sadtalker_aoc.mp4", "faces/videos/liveportrait_d13.mp4")


def p90(values: list[float]) -> float:
    return sorted(values)[int(0.9 * (len(values) - 1))]


class V1:
    """Detect + mesh + v1 cues + challenge (EAR), as before issue #13."""

    def __init__(self, engine: FaceEngine, embed: bool) -> None:
        self.engine, self.embed = engine, embed
        self.challenge: Challenge | None = None
        self.last: np.ndarray | None = None
        self.ms: dict[str, list[float]] = {"total": [], "analyse": [], "cues": []}

    def frame(self, rgb: np.ndarray, now: float) -> None:
        t0 = time.perf_counter()
        faces = self.engine.analyse(rgb, mesh=True, embed=self.embed).faces
        t1 = time.perf_counter()
        if len(faces) == 1 and faces[0].mesh is not None and faces[0].measures is not None:
            face = faces[0]
            m: FaceMeasures = face.measures
            pixel_cues(rgb, face.box, m.roll)
            pts = np.asarray(face.mesh[V1_POINTS, :2], np.float64)
            if self.last is not None:
                v1_planar(self.last, pts)
            self.last = pts
            h, w = rgb.shape[:2]
            x0, y0, x1, y1 = face.box
            sample = LivenessSample(m, ((x0 + x1) / 2 / w, (y0 + y1) / 2 / h), (x1 - x0) / w, pts)
            feed(self, sample, now)
        t2 = time.perf_counter()
        self.ms["total"].append((t2 - t0) * 1000)
        self.ms["analyse"].append((t1 - t0) * 1000)
        self.ms["cues"].append((t2 - t1) * 1000)


class V2:
    """The server's executor step (FaceChecker.observe) + the gate's liveness step."""

    def __init__(self, engine: FaceEngine, embed: bool) -> None:
        gallery = np.zeros((1, 128), np.float32)
        self.checker = FaceChecker(engine, CheckTarget("p", {"p": gallery}, DEFAULT_THRESHOLD))
        self.embed = embed
        self.pairs = PairMaker()
        self.check = PassiveCheck()
        self.challenge: Challenge | None = None
        self.ms: dict[str, list[float]] = {"total": [], "executor": [], "gate": []}

    def frame(self, rgb: np.ndarray, now: float) -> None:
        t0 = time.perf_counter()
        # As the server's executor: light only during a light challenge (not here), the
        # parallax pair measured with the frame (participant.checker_observe).
        obs = self.checker.observe(rgb, embed=self.embed, light=False)
        obs = replace(obs, liveness=paired(obs.liveness, self.pairs, now))
        t1 = time.perf_counter()
        if obs.liveness is not None:
            self.check.add(obs.liveness, now)
            self.check.verdict()
            feed(self, obs.liveness, now)
        t2 = time.perf_counter()
        self.ms["total"].append((t2 - t0) * 1000)
        self.ms["executor"].append((t1 - t0) * 1000)
        self.ms["gate"].append((t2 - t1) * 1000)


def feed(pipe: V1 | V2, sample: LivenessSample, now: float) -> None:
    if pipe.challenge is None:
        pipe.challenge = Challenge.draw(random.Random(0))
        pipe.challenge.start([sample], now)
    else:
        pipe.challenge.feed(sample, now)


def frames_of(path: Path, fps: float, count: int) -> list[tuple[float, np.ndarray]]:
    out: list[tuple[float, np.ndarray]] = []
    next_t = 0.0
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            t = float(frame.time or 0.0)
            if t + 1e-6 >= next_t:
                out.append((t, frame.to_ndarray(format="rgb24")))
                next_t += 1.0 / fps
            if len(out) >= count:
                break
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clip", type=Path, nargs="*", default=[DATA / c for c in CLIPS])
    parser.add_argument("--frames", type=int, default=40, help="analysed frames per clip")
    parser.add_argument("--fps", type=float, default=4.0, help="the gate's base rate")
    parser.add_argument("--embed", action="store_true", help="identity frames (embedding on)")
    parser.add_argument("--repeat", type=int, default=2, help="passes over the frames")
    args = parser.parse_args()
    mesh, landmarker = FaceEngine.load(landmarks="mesh"), FaceEngine.load()
    result: dict[str, object] = {"embed": args.embed, "fps": args.fps, "clips": {}}
    ratios = []
    for clip in args.clip:
        frames = frames_of(clip, args.fps, args.frames)
        v1, v2 = V1(mesh, args.embed), V2(landmarker, args.embed)
        for _, rgb in frames[:3]:  # first LiteRT / ONNX invocations allocate
            mesh.analyse(rgb, embed=args.embed)
            landmarker.analyse(rgb, embed=args.embed)
        for rep in range(args.repeat):
            v1.challenge = v2.challenge = None
            v2.check, v2.pairs = PassiveCheck(), PairMaker()
            v1.last = None
            for i, (t, rgb) in enumerate(frames):
                now = t + rep * 1000.0
                for pipe in (v1, v2) if (i + rep) % 2 == 0 else (v2, v1):
                    pipe.frame(rgb, now)
        a, b = statistics.median(v1.ms["total"]), statistics.median(v2.ms["total"])
        ratios.append(b / a)
        print(f"{clip.name} ({frames[0][1].shape[1]}x{frames[0][1].shape[0]}, "
              f"{len(frames)} frames x {args.repeat}, embed={args.embed})")
        print(f"  {'pipeline':44s} {'median ms':>10s} {'p90 ms':>8s}")
        for label, pipe, key in (
            ("v1 total: detect + mesh + v1 cues + challenge", v1, "total"),
            ("  of which detect + mesh", v1, "analyse"),
            ("  of which v1 cues + challenge", v1, "cues"),
            ("v2 total: observe + gate liveness", v2, "total"),
            ("  of which executor (detect+landmarker+sample)", v2, "executor"),
            ("  of which event loop (passive + challenge)", v2, "gate"),
        ):
            values = pipe.ms[key]
            print(f"  {label:44s} {statistics.median(values):10.2f} {p90(values):8.2f}")
        print(f"  ratio v2/v1 (medians) = {b / a:.2f}  (target <= 1.5)")
        result["clips"][clip.name] = {  # type: ignore[index]
            "resolution": f"{frames[0][1].shape[1]}x{frames[0][1].shape[0]}",
            "frames": len(frames) * args.repeat,
            "v1_ms": {k: round(statistics.median(v), 3) for k, v in v1.ms.items()},
            "v2_ms": {k: round(statistics.median(v), 3) for k, v in v2.ms.items()},
            "v1_p90_ms": round(p90(v1.ms["total"]), 3),
            "v2_p90_ms": round(p90(v2.ms["total"]), 3),
            "ratio": round(b / a, 3),
        }
    result["machine"] = {"cpus": os.cpu_count(), "load": os.getloadavg(),
                         "python": platform.python_version(), "platform": platform.platform()}
    out = REPO / "bench" / "out" / f"bench_frame_cost-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"ratios: {', '.join(f'{r:.2f}' for r in ratios)}; wrote {out}")


if __name__ == "__main__":
    main()
