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

- **v2 tracking** (the default, ``[face] track_landmarks``, server/face/tracking.py):
  the same, with BlazeFace at least every 0.5 s and the landmarks' region from the
  previous frame's points in between, pixel cues on detector frames only; during
  expression steps (``--expression``) the gate asks for the detector on every frame
  (``FrameNeeds.detect``), so there it costs what v2 does.

All three run on the same frames, interleaved frame by frame (rotating which goes
first) so the shared machine's load hits them alike. A v2-tracking frame costs either
a detector frame or a tracking frame (bimodal), so the mean per frame is the figure to
compare; medians are printed too. Frames are taken at the gate's base rate
(``--fps``, 4) so the parallax pairs are the gate's: a pose step's frames.
``--expression`` takes them at ``[liveness] expression_fps`` (15) instead, as the gate
samples blink, smile and open-mouth steps, with the detector on every v2 frame.
Mid-challenge frames (no embedding) are the common case; ``--embed`` measures identity
frames (embedding on, the 468-point mesh then also runs in v2 for alignment). Prints
medians and p90s per stage and the v2/v1 ratio (target <= 1.5), writes JSON to
bench/out/. Timings never go into pass/fail tests.

    .venv/bin/python bench/bench_frame_cost.py [--clip PATH ...] [--frames N] [--embed]
        [--expression]
    .venv/bin/python bench/bench_frame_cost.py --agreement   # tracked box vs detector's

``--agreement`` times nothing: on every tracking frame it also runs the detector and
compares the carried box, the landmarks and the pixel cues on either box.
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

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench_liveness import V1_POINTS, v1_planar  # noqa: E402

from server.client import timed_clip_frames  # noqa: E402
from server.config import load_settings  # noqa: E402
from server.face.engine import FaceEngine  # noqa: E402
from server.face.landmarks import FaceMeasures  # noqa: E402
from server.face.matcher import DEFAULT_THRESHOLD  # noqa: E402
from server.face.tracking import FaceTracker  # noqa: E402
from server.gate import FrameNeeds  # noqa: E402
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

    def __init__(
        self, engine: FaceEngine, embed: bool, track: bool = False, detect: bool = False
    ) -> None:
        gallery = np.zeros((1, 128), np.float32)
        self.checker = FaceChecker(engine, CheckTarget("p", {"p": gallery}, DEFAULT_THRESHOLD))
        self.checker.tracker = FaceTracker(engine) if track else None
        self.embed, self.detect = embed, detect
        self.pairs = PairMaker()
        self.check = PassiveCheck()
        self.challenge: Challenge | None = None
        self.ms: dict[str, list[float]] = {"total": [], "executor": [], "gate": []}

    def frame(self, rgb: np.ndarray, now: float) -> None:
        t0 = time.perf_counter()
        # As the server's executor: light only during a light challenge (not here), the
        # parallax pair measured with the frame (participant.checker_observe).
        needs = FrameNeeds(embed=self.embed, light=False, detect=self.detect)
        obs = self.checker.observe_needs(rgb, needs, now)
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


def agreement(engine: FaceEngine, frames: list[tuple[float, np.ndarray]]) -> dict[str, float]:
    """Tracking frames against the detector on the same frames: box corners (in face
    widths, and the previous detector box's for scale), landmarks (mean, in inter-ocular
    distances) and each pixel cue on either box."""
    tracker = FaceTracker(engine)
    rows: list[list[float]] = []
    prev_box: tuple[float, float, float, float] | None = None
    for t, rgb in frames:
        ref = engine.analyse(rgb, embed=False).faces
        got = tracker.analyse(rgb, t, embed=False, engines=("dlib",)).faces
        if len(ref) == 1 and len(got) == 1 and tracker.last_tracked and prev_box is not None:
            r, f = ref[0], got[0]
            assert r.mesh is not None and f.mesh is not None and r.measures and f.measures
            w = r.box[2] - r.box[0]
            iod = float(np.linalg.norm(r.mesh[33, :2] - r.mesh[263, :2]))
            a, b = pixel_cues(rgb, r.box, r.measures.roll), pixel_cues(rgb, f.box, f.measures.roll)
            rows.append([
                float(np.abs(np.subtract(r.box, f.box)).max()) / w,
                float(np.abs(np.subtract(r.box, prev_box)).max()) / w,
                float(np.linalg.norm(r.mesh[:468, :2] - f.mesh[:468, :2], axis=1).mean()) / iod,
                abs(a.enclosure - b.enclosure), abs(a.glare - b.glare),
                abs(a.moire - b.moire), abs(a.gamut - b.gamut),
            ])
        prev_box = ref[0].box if len(ref) == 1 else None
    names = ("box_dev_w", "prev_det_box_dev_w", "landmarks_iod", "d_enclosure", "d_glare",
             "d_moire", "d_gamut")
    m = np.array(rows)
    out = {"tracked_frames": float(len(rows))}
    for k, name in enumerate(names):
        out[f"{name}_median"] = round(float(np.median(m[:, k])), 4)
        out[f"{name}_max"] = round(float(m[:, k].max()), 4)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clip", type=Path, nargs="*", default=[DATA / c for c in CLIPS])
    parser.add_argument("--frames", type=int, default=40, help="analysed frames per clip")
    parser.add_argument("--fps", type=float, default=None,
                        help="sampling rate (default: the gate's base 4, or [liveness] "
                             "expression_fps with --expression)")
    parser.add_argument("--expression", action="store_true",
                        help="an expression step's frames: faster, detector on each")
    parser.add_argument("--embed", action="store_true", help="identity frames (embedding on)")
    parser.add_argument("--repeat", type=int, default=2, help="passes over the frames")
    parser.add_argument("--agreement", action="store_true",
                        help="tracked box / landmarks / cues vs the detector's (no timing)")
    args = parser.parse_args()
    if args.fps is None:
        args.fps = load_settings().liveness.expression_fps if args.expression else 4.0
    landmarker = FaceEngine.load()
    if args.agreement:
        for clip in args.clip:
            found = agreement(landmarker, timed_clip_frames(clip, args.fps, args.frames))
            print(clip.name, json.dumps(found))
        return
    mesh = FaceEngine.load(landmarks="mesh")
    result: dict[str, object] = {"embed": args.embed, "fps": args.fps,
                                 "expression": args.expression, "clips": {}}
    ratios = []
    for clip in args.clip:
        frames = timed_clip_frames(clip, args.fps, args.frames)
        v1, v2 = V1(mesh, args.embed), V2(landmarker, args.embed)
        v2t = V2(landmarker, args.embed, track=True, detect=args.expression)
        for _, rgb in frames[:3]:  # first LiteRT / ONNX invocations allocate
            mesh.analyse(rgb, embed=args.embed)
            landmarker.analyse(rgb, embed=args.embed)
        pipes: list[V1 | V2] = [v1, v2, v2t]
        for rep in range(args.repeat):
            v1.challenge = v2.challenge = v2t.challenge = None
            for v in (v2, v2t):
                v.check, v.pairs = PassiveCheck(), PairMaker()
                if v.checker.tracker is not None:
                    v.checker.tracker.reset()
            v1.last = None
            for i, (t, rgb) in enumerate(frames):
                now = t + rep * 1000.0
                k = (i + rep) % 3
                for pipe in pipes[k:] + pipes[:k]:
                    pipe.frame(rgb, now)
        base = statistics.mean(v1.ms["total"])
        rows: dict[str, V1 | V2] = {"v1": v1, "v2": v2, "v2_tracking": v2t}
        ratio = {name: statistics.mean(p.ms["total"]) / base for name, p in rows.items()}
        ratios.append(ratio)
        tracker = v2t.checker.tracker
        assert tracker is not None
        print(f"{clip.name} ({frames[0][1].shape[1]}x{frames[0][1].shape[0]}, "
              f"{len(frames)} frames x {args.repeat}, embed={args.embed}; tracking: "
              f"{tracker.detected} detector / {tracker.tracked} tracked frames)")
        print(f"  {'pipeline':48s} {'mean ms':>8s} {'median':>8s} {'p90':>8s}")
        for label, pipe, key in (
            ("v1 total: detect + mesh + v1 cues + challenge", v1, "total"),
            ("  of which detect + mesh", v1, "analyse"),
            ("v2 total: observe + gate liveness", v2, "total"),
            ("  of which executor (detect+landmarker+sample)", v2, "executor"),
            ("  of which event loop (passive + challenge)", v2, "gate"),
            ("v2 tracking total (the default)", v2t, "total"),
            ("  of which executor", v2t, "executor"),
            ("  of which event loop", v2t, "gate"),
        ):
            values = pipe.ms[key]
            print(f"  {label:48s} {statistics.mean(values):8.2f} "
                  f"{statistics.median(values):8.2f} {p90(values):8.2f}")
        print(f"  ratio to v1 (means): v2 {ratio['v2']:.2f}, v2 tracking "
              f"{ratio['v2_tracking']:.2f}  (target <= 1.5)")
        result["clips"][clip.name] = {  # type: ignore[index]
            "resolution": f"{frames[0][1].shape[1]}x{frames[0][1].shape[0]}",
            "frames": len(frames) * args.repeat,
            "detector_frames": tracker.detected,
            "tracked_frames": tracker.tracked,
            **{f"{n}_mean_ms": {k: round(statistics.mean(v), 3) for k, v in p.ms.items()}
               for n, p in rows.items()},
            **{f"{n}_median_ms": round(statistics.median(p.ms["total"]), 3)
               for n, p in rows.items()},
            **{f"{n}_p90_ms": round(p90(p.ms["total"]), 3) for n, p in rows.items()},
            "ratio_means": {k: round(v, 3) for k, v in ratio.items()},
        }
    result["machine"] = {"cpus": os.cpu_count(), "load": os.getloadavg(),
                         "python": platform.python_version(), "platform": platform.platform()}
    out = REPO / "bench" / "out" / f"bench_frame_cost-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    summary = "; ".join(f"v2 {r['v2']:.2f} / tracking {r['v2_tracking']:.2f}" for r in ratios)
    print(f"ratios to v1 (means): {summary}; wrote {out}")


if __name__ == "__main__":
    main()
