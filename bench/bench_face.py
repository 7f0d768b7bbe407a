"""Face engine stage timings on real 640x480 frames, with dlib baselines from the same run.

    .venv/bin/python bench/bench_face.py [--repeat 30] [--data ../shared/data/faces]

Frames: shared portrait photos letterboxed into 640x480 (like a webcam frame). Each stage
is timed ``--repeat`` times per frame and the median is reported, single-threaded
(onnxruntime intra-op threads = 1, OpenCV threads = 1):

- detect: BlazeFace full range on the frame (the engine's default) and short range;
  baseline dlib HOG frontal detector (no upsampling) on the same frame;
- mesh: 468-point face mesh per face;
- align: 5 points + 150x150 chip per face (mesh points, dlib chip extraction); for
  reference dlib's 5-point shape predictor + ``get_face_chip`` (it is cheaper, but needs
  no mesh only because it is less accurate on BlazeFace boxes, see docs/face.md);
- embed: per face as the engine does it (ONNX port of dlib's ResNet on the chip and its
  mirror image), per chip with the ONNX port, and baseline dlib itself per chip;
- analyse: the whole ``FaceEngine.analyse`` per frame.

Writes bench/out/bench_face.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import cv2  # noqa: E402
import dlib  # noqa: E402
import numpy as np  # noqa: E402

from server.face.embedder import DlibResNetEmbedder  # noqa: E402
from server.face.engine import FaceEngine  # noqa: E402
from server.face.imageio import decode_image  # noqa: E402
from server.face.models import ModelStore  # noqa: E402

PHOTOS = [
    "faces/obama/2.jpg",
    "faces/biden/1.jpg",
    "faces/clapton/1.jpg",
    "faces/rose_leslie/2.jpg",
    "faces/deepface_p01/4.jpg",
    "faces/deepface_p03/3.jpg",
    "faces/alex_lacamoire/2.jpg",
    "faces/kit_harington/3.jpg",
    "spoof/silentface_T1_live.jpg",
    "group/two_people.jpg",
]


def frame_640x480(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    s = min(640 / w, 480 / h)
    nw, nh = round(w * s), round(h * s)
    small = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA)
    out = np.zeros((480, 640, 3), np.uint8)
    y, x = (480 - nh) // 2, (640 - nw) // 2
    out[y : y + nh, x : x + nw] = small
    return out


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "faces")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "bench_face.json")
    args = ap.parse_args()
    cv2.setNumThreads(1)

    engine = FaceEngine.load()
    hog = dlib.get_frontal_face_detector()
    predictor = engine.aligner._predictor()  # dlib 5-point shape predictor (baseline)
    dlib_embedder = DlibResNetEmbedder.load(ModelStore())  # dlib itself (baseline)
    frames = [frame_640x480(decode_image((args.data / p).read_bytes())) for p in PHOTOS]

    rows: dict[str, list[float]] = {}

    def add(key: str, value: float) -> None:
        rows.setdefault(key, []).append(value)

    faces_total = 0
    for frame in frames:
        r = args.repeat
        add("detect_full", median_ms(lambda f=frame: engine.detector.detect(f), r))
        add("detect_short", median_ms(lambda f=frame: engine.detector.detect(f, model="short"), r))
        add("baseline_detect_dlib_hog", median_ms(lambda f=frame: hog(f, 0), max(5, r // 3)))
        add("analyse_frame", median_ms(lambda f=frame: engine.analyse(f), max(5, r // 3)))
        for det in engine.detector.detect(frame):
            faces_total += 1
            mesh = engine.mesh.run(frame, det)
            add("mesh_per_face", median_ms(lambda f=frame, d=det: engine.mesh.run(f, d), r))

            def align(f: np.ndarray = frame, pts: np.ndarray = mesh.points) -> np.ndarray:
                return engine.aligner.chip(f, pts[[263, 362, 33, 133, 2], :2])

            def align_dlib(f: np.ndarray = frame, d: object = det) -> np.ndarray:
                x0, y0, x1, y1 = (round(v) for v in d.box)  # type: ignore[attr-defined]
                shape = predictor(f, dlib.rectangle(x0, y0, x1, y1))
                return np.asarray(dlib.get_face_chip(f, shape, size=150, padding=0.25))

            add("align_per_face", median_ms(align, r))
            add("baseline_align_dlib_5pt", median_ms(align_dlib, r))
            chip = align()
            add("embed_per_face", median_ms(lambda c=chip: engine.embed_chip(c, flip=True), r))
            add(
                "embed_per_chip_onnx",
                median_ms(lambda c=chip: engine.embedder.embed([c]), r),
            )
            add(
                "baseline_embed_per_chip_dlib",
                median_ms(lambda c=chip: dlib_embedder.embed([c]), max(5, r // 3)),
            )

    result = {
        "machine": {
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "onnxruntime": __import__("onnxruntime").__version__,
            "dlib": dlib.__version__,
            "mediapipe_backend": engine.detector.backend,
            "embedder": engine.embedder.name,
        },
        "frames": len(frames),
        "faces": faces_total,
        "repeat": args.repeat,
        "median_ms": {k: round(statistics.median(v), 3) for k, v in rows.items()},
    }
    med = result["median_ms"]
    assert isinstance(med, dict)
    result["ratios"] = {
        "dlib_hog_over_blazeface_full": round(
            med["baseline_detect_dlib_hog"] / med["detect_full"], 2
        ),
        "dlib_embed_over_onnx_embed": round(
            med["baseline_embed_per_chip_dlib"] / med["embed_per_chip_onnx"], 2
        ),
    }
    targets = {"detect_full": 3.0, "mesh_per_face": 4.0, "embed_per_face": 80.0}
    result["load_average_1min"] = os.getloadavg()[0]
    print(f"machine: {result['machine']}, load average {result['load_average_1min']:.2f}")
    print(f"{len(frames)} frames 640x480, {faces_total} faces, median of {args.repeat} runs\n")
    print(f"{'stage':<28}{'median ms':>10}{'target':>9}")
    for k, v in med.items():
        t = targets.get(k)
        print(f"{k:<28}{v:>10.2f}{'' if t is None else f'<= {t:g}':>9}")
    print()
    for k, v in result["ratios"].items():
        print(f"ratio {k}: {v}x")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
