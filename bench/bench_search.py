"""1:N search time and gallery memory: GalleryIndex vs. matcher.identify, same run.

The gallery is synthetic (random 128-D descriptors at the spread real dlib
descriptors have, 1-3 templates per person); search cost depends only on the
number of templates, not on the faces. Baseline: ``matcher.identify`` on the same
mapping, which stacks the gallery on every call. Also measures brute-force cost
per template to say when an approximate-nearest-neighbour index would start to
pay off on this machine.

    .venv/bin/python bench/bench_search.py [--sizes 1000 10000 100000] [--repeat 30]
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

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from server.face.gallery import GalleryIndex  # noqa: E402
from server.face.matcher import identify  # noqa: E402


def make_gallery(templates: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    gallery: dict[str, np.ndarray] = {}
    made = 0
    while made < templates:
        count = int(min(rng.integers(1, 4), templates - made))
        gallery[f"p{len(gallery)}"] = rng.normal(scale=0.09, size=(count, 128)).astype(np.float32)
        made += count
    return gallery


def timed_ms(fn: object, repeat: int) -> float:
    assert callable(fn)
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "out" / "bench_search.json")
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    rows = []
    for size in args.sizes:
        gallery = make_gallery(size, rng)
        probe = rng.normal(scale=0.09, size=(1, 128)).astype(np.float32)
        build_start = time.perf_counter()
        index = GalleryIndex(gallery)
        build_ms = (time.perf_counter() - build_start) * 1000
        ours = timed_ms(lambda i=index, p=probe: i.identify(p), args.repeat)
        base = timed_ms(lambda p=probe, g=gallery: identify(p, g), max(3, args.repeat // 5))
        assert index.identify(probe).person_id == identify(probe, gallery).person_id
        rows.append(
            {
                "templates": size,
                "persons": len(gallery),
                "index_ms": ours,
                "identify_ms": base,
                "speedup": base / ours,
                "build_ms": build_ms,
                "index_mb": index._templates.nbytes / 1e6,
                "us_per_1000_templates": ours * 1000 / (size / 1000),
            }
        )
    machine = {"cpus": os.cpu_count(), "platform": platform.platform(), "numpy": np.__version__}
    print(f"machine: {machine}")
    print(
        f"{'templates':>10} {'index ms':>9} {'identify ms':>12} {'speedup':>8} "
        f"{'build ms':>9} {'MB':>6}"
    )
    for r in rows:
        print(
            f"{r['templates']:>10} {r['index_ms']:9.2f} {r['identify_ms']:12.2f} "
            f"{r['speedup']:7.1f}x {r['build_ms']:9.1f} {r['index_mb']:6.1f}"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"machine": machine, "rows": rows}, indent=2))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
