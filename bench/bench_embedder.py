"""Face embedder: the ONNX port of dlib's ResNet vs dlib itself, ms per face, same run.

    .venv/bin/python bench/bench_embedder.py [--rounds 15] [--data ../shared/data/faces]

Chips: one real 150x150 chip from each of 8 shared photos, made by the project's own
pipeline (BlazeFace, face mesh points, Aligner), like the gate makes them.

Each round times every configuration once on the same 8 chips, configurations in a rotating
order, so background load (other people's tests on this 2-core machine) hits all of them
alike; the table shows the median over rounds of ms per face, and each configuration's
speed-up over dlib both as a ratio of medians and as the median of the per-round ratios:

- dlib: ``DlibResNetEmbedder`` (dlib 20, no BLAS, single-threaded), one chip per call;
- onnx t=1|2 b=1|8: ``OnnxResNetEmbedder`` with 1 or 2 intra-op threads, one chip per
  call (b=1, the gate's case) or all 8 in one call (b=8, enrolment / re-verification).

Writes bench/out/bench_embedder.json.
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
from functools import partial
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import dlib  # noqa: E402
import numpy as np  # noqa: E402
import onnxruntime  # noqa: E402

from server.face.detector import Detection  # noqa: E402
from server.face.dlib_onnx import OnnxResNetEmbedder, ensure_onnx  # noqa: E402
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
]
TARGET_RATIO = 15.0


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def load_chips(data: Path) -> np.ndarray:
    engine = FaceEngine.load()
    chips = []
    for rel in PHOTOS:
        rgb = decode_image((data / rel).read_bytes())
        face = engine.analyse(rgb, mesh=True, embed=False).faces[0]
        det = Detection(box=face.box, keypoints=face.keypoints, score=face.score)
        chips.append(engine.aligner.chip(rgb, engine.aligner.five_points(rgb, det, face.mesh)))
    return np.stack(chips)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "faces")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "bench_embedder.json")
    args = ap.parse_args()

    chips = load_chips(args.data)
    n = len(chips)
    store = ModelStore()
    model_path = ensure_onnx(store)
    dlib_emb = DlibResNetEmbedder.load(store)

    def per_chip(embed: Callable[[list[np.ndarray]], np.ndarray]) -> Callable[[], object]:
        return lambda: [embed([c]) for c in chips]

    configs: dict[str, Callable[[], object]] = {"dlib": per_chip(dlib_emb.embed)}
    for threads in (1, 2):
        emb = OnnxResNetEmbedder(model_path, intra_op_threads=threads, batch_size=8)
        configs[f"onnx t={threads} b=1"] = per_chip(emb.embed)
        configs[f"onnx t={threads} b=8"] = partial(emb.embed, chips)

    load_before = os.getloadavg()
    for fn in configs.values():  # warm-up (session initialisation, dlib's first call)
        fn()
    times: dict[str, list[float]] = {k: [] for k in configs}
    names = list(configs)
    for r in range(args.rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            t = time.perf_counter()
            configs[name]()
            times[name].append((time.perf_counter() - t) * 1000 / n)
    load_after = os.getloadavg()

    med = {k: statistics.median(v) for k, v in times.items()}
    rows: list[dict[str, Any]] = []
    for name in names:
        paired = [d / o for d, o in zip(times["dlib"], times[name], strict=True)]
        rows.append(
            {
                "config": name,
                "ms_per_face_median": round(med[name], 3),
                "ms_per_face_min": round(min(times[name]), 3),
                "ratio_vs_dlib": round(med["dlib"] / med[name], 2),
                "ratio_vs_dlib_paired_median": round(statistics.median(paired), 2),
            }
        )
    machine = {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
        "dlib": dlib.__version__,
        "numpy": np.__version__,
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in load_after],
    }
    result = {
        "machine": machine,
        "chips": n,
        "rounds": args.rounds,
        "target_ratio": TARGET_RATIO,
        "rows": rows,
        "raw_ms_per_face": {k: [round(x, 3) for x in v] for k, v in times.items()},
    }

    print(f"machine: {machine['cpu']}, {machine['cpu_count']} CPUs, load {load_before[0]:.2f}")
    print(f"onnxruntime {machine['onnxruntime']}, dlib {machine['dlib']}")
    print(f"{n} real chips, median of {args.rounds} interleaved rounds, ms per face\n")
    print(f"{'config':<16}{'median ms':>10}{'min ms':>9}{'x dlib':>9}{'paired':>9}")
    for row in rows:
        print(
            f"{row['config']:<16}{row['ms_per_face_median']:>10.2f}{row['ms_per_face_min']:>9.2f}"
            f"{row['ratio_vs_dlib']:>9.1f}{row['ratio_vs_dlib_paired_median']:>9.1f}"
        )
    best = max(rows[1:], key=lambda r: float(r["ratio_vs_dlib"]))
    gate = next(r for r in rows if r["config"] == "onnx t=1 b=1")
    print(
        f"\ngate case (1 thread, 1 face per call): {gate['ratio_vs_dlib']}x "
        f"(target {TARGET_RATIO:g}x); best: {best['config']} {best['ratio_vs_dlib']}x"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
