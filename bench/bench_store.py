"""The store's calls on SQLite and PostgreSQL, side by side in one run.

What the server does with its store, timed per call (median and p95 over ``--reps``):
the join's lookups (``room_by_link``, ``gallery_version``), an API key check (a small
write), one audit record, one enrolled face, and a full gallery read (decrypting
``--templates`` templates) as a rebuild after a change does. Then write throughput:
audit records per second from ``--threads`` threads over two store instances (two
"nodes" on one database), which measures PostgreSQL's single-writer lock (pg.py).

PostgreSQL runs as a throwaway server (tests/pgserver.py) on loopback with
``fsync=off``: it measures the client, pool and SQL path, not a disk. SQLite runs
with its defaults (WAL, synchronous=NORMAL) in a temp dir. Prints a table and
writes JSON to bench/out/store.json.

    .venv/bin/python bench/bench_store.py [--reps 300] [--templates 10000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from server.store import open_store  # noqa: E402
from tests.pgserver import PgServer  # noqa: E402


def timed(fn: Callable[[], Any], reps: int) -> dict[str, float]:
    samples = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return {
        "median_ms": statistics.median(samples),
        "p95_ms": samples[int(0.95 * (len(samples) - 1))],
    }


def run_backend(
    data_dir: Path, url: str, reps: int, templates: int, threads: int
) -> dict[str, Any]:
    store: Any = open_store(data_dir, url)
    other: Any = open_store(data_dir, url)
    try:
        owner = store.create_owner("bench@example.org", "h")
        _, key = store.create_api_key(owner.id, "bench")
        room = store.create_room("Bench", owner_id=owner.id)
        rng = np.random.default_rng(0)
        people = max(1, templates // 2)
        vectors = rng.normal(size=(people, 2, 128)).astype(np.float32)
        t0 = time.perf_counter()
        for i in range(people):
            store.enrol_person(room.id, f"P{i}", vectors[i], "dlib")
        fill_s = time.perf_counter() - t0
        person = store.add_person(room.id, "Extra", owner_id=owner.id)
        one = rng.normal(size=128).astype(np.float32)
        out: dict[str, Any] = {"fill_s": fill_s, "templates": people * 2}
        out["room_by_link"] = timed(lambda: store.room_by_link(room.link), reps)
        out["gallery_version"] = timed(lambda: store.gallery_version(room.id), reps)
        out["owner_by_api_key"] = timed(lambda: store.owner_by_api_key(key), reps)
        out["audit"] = timed(lambda: store.audit("bench", {"n": 1}, room_id=room.id), reps)
        out["add_face"] = timed(
            lambda: store.add_faces(person.id, owner.id, [(one, None, "")], "dlib"), reps
        )
        out["gallery_full"] = timed(lambda: store.gallery(room.id), 3)
        count = [0]
        stop = time.perf_counter() + 2.0
        lock = threading.Lock()

        def writer(node: Any) -> None:
            while time.perf_counter() < stop:
                node.audit("bench.concurrent", {}, room_id=room.id)
                with lock:
                    count[0] += 1

        workers = [
            threading.Thread(target=writer, args=(store if i % 2 else other,))
            for i in range(threads)
        ]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        out["audit_writes_per_s"] = count[0] / 2.0
        return out
    finally:
        store.close()
        other.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=300)
    parser.add_argument("--templates", type=int, default=10000)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["sqlite"] = run_backend(
            Path(tmp) / "sqlite", "", args.reps, args.templates, args.threads
        )
    server = PgServer()
    try:
        server.start()
        with tempfile.TemporaryDirectory() as tmp:
            results["postgres"] = run_backend(
                Path(tmp), server.create_database(), args.reps, args.templates, args.threads
            )
    finally:
        server.stop()
    calls = [k for k, v in results["sqlite"].items() if isinstance(v, dict)]
    print(f"{'call':<18} {'sqlite med/p95 ms':>20} {'postgres med/p95 ms':>22} {'ratio':>7}")
    for call in calls:
        s, p = results["sqlite"][call], results["postgres"][call]
        ratio = p["median_ms"] / s["median_ms"] if s["median_ms"] else float("nan")
        print(
            f"{call:<18} {s['median_ms']:>9.3f} / {s['p95_ms']:<8.3f} "
            f"{p['median_ms']:>10.3f} / {p['p95_ms']:<9.3f} {ratio:>6.2f}x"
        )
    for key in ("audit_writes_per_s", "fill_s", "templates"):
        print(f"{key:<18} {results['sqlite'][key]:>20.1f} {results['postgres'][key]:>22.1f}")
    out = REPO / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    results["args"] = vars(args)
    (out / "store.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
