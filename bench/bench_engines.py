"""Cost per face of each room engine setting, next to dlib-ONNX alone, in one run.

    .venv/bin/python bench/bench_engines.py [--repeat 30] [--data ../shared/data/faces]

Frames: the shared portraits letterboxed into 640x480 (as bench_face.py). Per face, the
variants are timed round-robin (one call of each per round, ``--repeat`` rounds) so that
the load of other jobs on this shared machine hits them alike; medians are reported,
single-threaded (onnxruntime intra-op threads = 1, OpenCV threads = 1):

- ``dlib-ONNX`` (the baseline, what every room runs today): 5 mesh points -> 150x150
  chip -> ONNX ResNet on the chip and its mirror image;
- ``sface``: 5 mesh points -> 112x112 chip -> SFace on one chip (rewritten graph);
- ``sface, file as shipped``: the same chip through the unmodified ONNX graph;
- ``both`` / ``fused``: both engines' embeddings plus the scorer (same cost for both),
  as a both / fused room's probe is made: dlib on one chip (``fused_dlib_flip``), SFace on
  one chip; ``fused, dlib flip-averaged too`` is the template-style alternative;
- ``analyse``: the whole per-frame pipeline (detect, mesh, quality, embeddings) with
  the engines each setting needs, on frames with one face.

Ratios are against dlib-ONNX from the same rounds. Writes bench/out/bench_engines.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from bench_face import PHOTOS, cpu_model, frame_640x480  # noqa: E402

from server.face.align import arcface_points  # noqa: E402
from server.face.detector import Detection  # noqa: E402
from server.face.engine import FaceEngine  # noqa: E402
from server.face.imageio import decode_image  # noqa: E402
from server.face.models import ModelStore  # noqa: E402
from server.face.scoring import Scorer  # noqa: E402
from server.face.sface import SFaceEmbedder, align_chip  # noqa: E402


def round_robin(fns: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    for fn in fns.values():
        fn()  # warm-up
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeat):
        for key, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[key].append((time.perf_counter() - t) * 1000)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "faces")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "bench_engines.json")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    engine = FaceEngine.load()
    assert engine.sface is not None
    sface = engine.sface
    plain = SFaceEmbedder.load(ModelStore(), optimise=False)
    fused, both = Scorer("fused"), Scorer("both")
    frames = [frame_640x480(decode_image((args.data / p).read_bytes())) for p in PHOTOS]
    per_face: dict[str, list[float]] = {}
    per_frame: dict[str, list[float]] = {}
    faces = 0
    for frame in frames:
        dets = engine.detector.detect(frame)
        for det in dets:
            faces += 1
            mesh = engine.mesh.run(frame, det).points

            def dlib_onnx(
                f: np.ndarray = frame, m: np.ndarray = mesh, d: Detection = det, flip: bool = True
            ) -> np.ndarray:
                chip = engine.aligner.chip(f, engine.aligner.five_points(f, d, m))
                return engine.embed_chip(chip, flip=flip)

            def sface_one(f: np.ndarray = frame, m: np.ndarray = mesh) -> np.ndarray:
                return np.asarray(sface.embed([align_chip(f, arcface_points(m))])[0])

            def sface_file(f: np.ndarray = frame, m: np.ndarray = mesh) -> np.ndarray:
                return np.asarray(plain.embed([align_chip(f, arcface_points(m))])[0])

            def fused_face(scorer: Scorer = fused, flip: bool = False) -> object:
                d = {
                    "dlib": np.asarray(np.linalg.norm(dlib_onnx(flip=flip))),
                    "sface": np.asarray(np.linalg.norm(sface_one())),
                }
                return scorer.combine(d)

            timed = round_robin(
                {
                    "dlib-ONNX": dlib_onnx,
                    "sface": sface_one,
                    "sface, file as shipped": sface_file,
                    "both": lambda: fused_face(both),
                    "fused": fused_face,
                    "fused, dlib flip-averaged too": lambda: fused_face(fused, True),
                },
                args.repeat,
            )
            for k, v in timed.items():
                per_face.setdefault(k, []).append(v)
        if len(dets) == 1:
            timed = round_robin(
                {
                    f"analyse {name}": (
                        lambda f=frame, e=engines: engine.analyse(f, engines=e)  # type: ignore[misc]
                    )
                    for name, engines in (
                        ("dlib", ("dlib",)),
                        ("sface", ("sface",)),
                        ("fused", ("dlib", "sface")),
                    )
                },
                max(5, args.repeat // 3),
            )
            for k, v in timed.items():
                per_frame.setdefault(k, []).append(v)
    face_ms = {k: statistics.median(v) for k, v in per_face.items()}
    frame_ms = {k: statistics.median(v) for k, v in per_frame.items()}
    base, base_frame = face_ms["dlib-ONNX"], frame_ms["analyse dlib"]
    print(f"{faces} faces in {len(frames)} frames, median of {args.repeat} rounds, 1 thread")
    print(f"{'per face (embedding stage)':34s} {'ms':>8s} {'x dlib-ONNX':>12s}")
    for k, v in face_ms.items():
        print(f"{k:34s} {v:8.2f} {v / base:11.2f}x")
    print(f"{'per frame, one face (analyse)':34s} {'ms':>8s} {'x dlib-ONNX':>12s}")
    for k, v in frame_ms.items():
        print(f"{k:34s} {v:8.2f} {v / base_frame:11.2f}x")
    load = os.getloadavg()[0]
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, load average {load:.1f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "faces": faces,
                "repeat": args.repeat,
                "per_face_ms": face_ms,
                "per_face_ratio_vs_dlib_onnx": {k: v / base for k, v in face_ms.items()},
                "per_frame_one_face_ms": frame_ms,
                "per_frame_ratio_vs_dlib_onnx": {k: v / base_frame for k, v in frame_ms.items()},
                "cpu": cpu_model(),
                "load_average": load,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
