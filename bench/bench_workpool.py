"""Gate-frame latency while an owner floods photo uploads: WorkPool vs the old executor.

The scenario from issue 12: an owner posts large photos in a loop while a participant
is being checked. Each "upload" job decodes a 24-megapixel JPEG and analyses it (what
``photos.evaluate`` does); each gate job analyses one 640x480 frame of a real clip
(what ``Participant._observe`` does), submitted at the gate's 4 fps. We measure, per
gate frame, the time from submission to result.

- baseline: ``ThreadPoolExecutor(max_workers=2)``, every job in one unbounded queue
  (the code before this change);
- ours: ``WorkPool(workers=2, gate_reserved=1, upload queue 4)``: uploads beyond the
  queue are refused (the handler answers 503 ``busy``; the poster waits Retry-After).

``--posters`` clients each re-post a photo as soon as the previous one is answered.

    .venv/bin/python bench/bench_workpool.py [--posters 6] [--frames 8]

Prints a table and writes bench/out/bench_workpool-<time>.json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import sys
import threading
import time
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from server.face.engine import FaceEngine  # noqa: E402
from server.face.imageio import decode_image  # noqa: E402
from server.workpool import Busy, WorkPool  # noqa: E402

DATA = Path(os.environ.get("VIDEOGATE_TEST_DATA", REPO.parent / "shared" / "data")) / "faces"
CLIP = DATA / "videos" / "liveportrait_d9.mp4"


def clip_frames(count: int) -> list[np.ndarray]:
    frames = []
    with av.open(str(CLIP)) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) >= count:
                break
    return frames


def big_jpeg(frame: np.ndarray, megapixels: float = 24.0) -> bytes:
    h, w = frame.shape[:2]
    scale = (megapixels * 1e6 / (h * w)) ** 0.5
    im = Image.fromarray(frame).resize((int(w * scale), int(h * scale)))
    out = io.BytesIO()
    im.save(out, format="JPEG", quality=90)
    return out.getvalue()


def run(
    name: str,
    executor: Executor,
    engine: FaceEngine,
    frames: list[np.ndarray],
    photo: bytes,
    posters: int,
) -> dict[str, Any]:
    """``posters`` clients each re-post a photo as soon as the last one is answered
    (after ``Retry-After`` when refused) while the gate analyses ``frames`` at 4 fps."""

    def upload_job() -> int:
        return len(engine.analyse(decode_image(photo), mesh=True, embed=True).faces)

    def gate_job(frame: np.ndarray) -> int:
        return len(engine.analyse(frame, mesh=True, embed=True).faces)

    stop = threading.Event()
    counts = {"done": 0, "refused": 0}
    lock = threading.Lock()

    def poster() -> None:
        while not stop.is_set():
            try:
                if isinstance(executor, WorkPool):
                    future = executor.submit_to("upload", upload_job)
                else:
                    future = executor.submit(upload_job)
            except Busy as busy:
                with lock:
                    counts["refused"] += 1
                stop.wait(min(busy.retry_after_s, 1.0))
                continue
            future.result()
            with lock:
                counts["done"] += 1

    threads = [threading.Thread(target=poster, daemon=True) for _ in range(posters)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)  # the flood is under way
    latencies = []
    for frame in frames:
        started = time.monotonic()
        executor.submit(gate_job, frame).result()
        latencies.append(time.monotonic() - started)
        time.sleep(max(0.0, 0.25 - (time.monotonic() - started)))  # 4 fps sampling
    stop.set()
    for thread in threads:
        thread.join()
    ms = sorted(x * 1000 for x in latencies)
    return {
        "executor": name,
        "uploads_done": counts["done"],
        "uploads_refused": counts["refused"],
        "gate_p50_ms": round(statistics.median(ms), 1),
        "gate_p95_ms": round(ms[int(0.95 * (len(ms) - 1))], 1),
        "gate_max_ms": round(ms[-1], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--posters", type=int, default=6)
    parser.add_argument("--frames", type=int, default=8)
    args = parser.parse_args()
    engine = FaceEngine.load()
    frames = clip_frames(args.frames)
    photo = big_jpeg(frames[0])
    for frame in frames[:2]:  # warm-up: sessions and caches
        engine.analyse(frame, mesh=True, embed=True)
    rows = []
    baseline = ThreadPoolExecutor(max_workers=2)
    rows.append(run("ThreadPoolExecutor(2)", baseline, engine, frames, photo, args.posters))
    baseline.shutdown()
    pool = WorkPool(workers=2, gate_reserved=1, queue_max={"upload": 4, "api": 4})
    rows.append(run("WorkPool(2, gate 1, queue 4)", pool, engine, frames, photo, args.posters))
    pool.shutdown()
    head = ("executor", "uploads", "refused", "p50 ms", "p95 ms", "max ms")
    print(f"{head[0]:30} " + " ".join(f"{h:>8}" for h in head[1:]))
    for r in rows:
        print(
            f"{r['executor']:30} {r['uploads_done']:>8} {r['uploads_refused']:>8} "
            f"{r['gate_p50_ms']:>8} {r['gate_p95_ms']:>8} {r['gate_max_ms']:>8}"
        )
    ratio = rows[0]["gate_p50_ms"] / max(rows[1]["gate_p50_ms"], 1e-9)
    print(f"gate p50: baseline / ours = {ratio:.1f}x  ({os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.1f})")  # fmt: skip
    out = REPO / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"bench_workpool-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(
        json.dumps(
            {
                "rows": rows,
                "posters": args.posters,
                "frames": args.frames,
                "photo_bytes": len(photo),
                "machine": platform.platform(),
                "cores": os.cpu_count(),
                "loadavg": os.getloadavg(),
            },
            indent=2,
        )
    )
    print(f"wrote {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
