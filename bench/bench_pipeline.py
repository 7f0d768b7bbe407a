"""Analysed frames per second per core through the gate's per-frame step.

Runs ``verify.FaceChecker.observe`` (detect, mesh, liveness sample, align, embed,
match) single-threaded on real 640x480 frames from the shared videos, the way the
gate calls it: identity frames (embedding) and challenge frames (mesh only, no
embedding). Ours (ONNX embedder) and the baseline (dlib's own embedder) in the
same run. From frames/s/core and the sampling rate it derives how many
participants one core can check at once.

    .venv/bin/python bench/bench_pipeline.py [--frames 40]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import av
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from server.config import load_settings  # noqa: E402
from server.face.engine import FaceEngine  # noqa: E402
from server.verify import CheckTarget, FaceChecker  # noqa: E402

DATA = Path(os.environ.get("VIDEOGATE_TEST_DATA", REPO.parent / "shared" / "data")) / "faces"
CLIPS = ["lestari_real.mp4", "liveportrait_d9.mp4", "sadtalker_aoc.mp4", "zubair_real.webm"]


def frames(count: int) -> list[np.ndarray]:
    """Frames spread over several clips, padded to 640x480 like a browser camera."""
    out: list[np.ndarray] = []
    per_clip = max(1, count // len(CLIPS))
    for clip in CLIPS:
        with av.open(str(DATA / "videos" / clip)) as container:
            for i, frame in enumerate(container.decode(video=0)):
                if i % 5:
                    continue
                img = frame.to_image()
                img.thumbnail((640, 480))
                canvas = np.zeros((480, 640, 3), np.uint8)
                x, y = (640 - img.width) // 2, (480 - img.height) // 2
                canvas[y : y + img.height, x : x + img.width] = np.asarray(img.convert("RGB"))
                out.append(canvas)
                if len(out) % per_clip == 0:
                    break
    return out[:count]


def run(checker: FaceChecker, batch: list[np.ndarray], embed: bool) -> float:
    """Median milliseconds per frame."""
    samples = []
    for rgb in batch:
        start = time.perf_counter()
        checker.observe(rgb, embed=embed)
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "out" / "bench_pipeline.json")
    args = parser.parse_args()
    settings = load_settings()
    batch = frames(args.frames)
    gallery = {"p": np.zeros((1, 128), np.float32)}
    target = CheckTarget("p", gallery, 0.6)
    result: dict[str, dict[str, float]] = {}
    for name in ("onnx", "dlib"):
        engine = FaceEngine.load(settings.model_cache, embedder=name)  # type: ignore[arg-type]
        checker = FaceChecker(engine, target)
        run(checker, batch[:3], True)  # warm-up
        identity = run(checker, batch, True)
        challenge = run(checker, batch, False)
        result[name] = {
            "identity_ms": identity,
            "challenge_ms": challenge,
            "identity_fps_per_core": 1000 / identity,
            "challenge_fps_per_core": 1000 / challenge,
        }
    fps = settings.gate.sample_fps
    for row in result.values():
        row["participants_per_core_identity"] = row["identity_fps_per_core"] / fps
        row["participants_per_core_challenge"] = row["challenge_fps_per_core"] / fps
    machine = {"cpus": os.cpu_count(), "platform": platform.platform()}
    print(f"machine: {machine}; sampling {fps} frames/s per participant; {len(batch)} frames")
    print(
        f"{'embedder':10} {'identity ms':>12} {'fps/core':>9} {'people/core':>12} "
        f"{'challenge ms':>13} {'fps/core':>9} {'people/core':>12}"
    )
    for name, row in result.items():
        print(
            f"{name:10} {row['identity_ms']:12.1f} {row['identity_fps_per_core']:9.1f} "
            f"{row['participants_per_core_identity']:12.1f} {row['challenge_ms']:13.1f} "
            f"{row['challenge_fps_per_core']:9.1f} {row['participants_per_core_challenge']:12.1f}"
        )
    ratio = result["dlib"]["identity_ms"] / result["onnx"]["identity_ms"]
    print(f"identity frames: onnx pipeline is {ratio:.1f}x the dlib pipeline's throughput")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {"machine": machine, "sample_fps": fps, "result": result, "identity_speedup": ratio},
            indent=2,
        )
    )
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
