"""Admission under load: N synthetic participants join at once, first frame -> decision.

A real server process (``python -m server serve --loopback``), one person enrolled
from a frame of sadtalker_aoc.mp4, liveness off (the target excludes challenge
time; passive liveness adds a fixed 3 s observation window, see docs/liveness.md),
and ``python -m server.loadgen`` joining N participants replaying that clip
(pre-encoded VP8: the generator costs little CPU, but it shares the 2 cores).
Ours (ONNX embedder) and the baseline (dlib's embedder) in the same run.

    .venv/bin/python bench/bench_admission.py [--counts 1 5 10 20 40] [--baseline-counts 1 5 10]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import av

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from server.devserver import run_server  # noqa: E402

DATA = Path(os.environ.get("VIDEOGATE_TEST_DATA", REPO.parent / "shared" / "data")) / "faces"
CLIP = DATA / "videos" / "sadtalker_aoc.mp4"


def enrolment_photo(target: Path) -> Path:
    with av.open(str(CLIP)) as container:
        for frame in container.decode(video=0):
            if frame.time is not None and frame.time >= 0.5:
                frame.to_image().save(target)
                return target
    raise RuntimeError("clip too short")


def loadgen(link: str, count: int, pid: int, out: Path) -> dict[str, Any]:
    room = link.split("/r/", 1)[1].split("?", 1)[0]
    base = link.split("/r/", 1)[0]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "server.loadgen",
            "--url",
            base,
            "--room",
            room,
            "--invite",
            link,
            "--participants",
            str(count),
            "--video",
            str(CLIP),
            "--loopback",
            "--timeout",
            "60",
            "--max-seconds",
            "180",
            "--server-pid",
            str(pid),
            "--quiet",
            "--json",
            str(out),
        ],
        cwd=REPO,
        check=False,
        timeout=240,
    )
    summary: dict[str, Any] = json.loads(out.read_text())
    return summary


def measure(embedder: str, counts: list[int], workdir: Path) -> list[dict[str, Any]]:
    env = {
        "VIDEOGATE_FACE_EMBEDDER": embedder,
        "VIDEOGATE_LIVENESS_POLICY": "off",
        "VIDEOGATE_GATE_LOCKOUT_FAILURES": "100000",
        "VIDEOGATE_LIMITS_MESSAGES_PER_S": "1000",
        # N synthetic participants share one invite and one address (docs/security.md).
        "VIDEOGATE_LIMITS_LOBBY_PER_INVITE": "1000",
        "VIDEOGATE_LIMITS_LOBBY_PER_ADDRESS": "1000",
    }
    rows = []
    with run_server(workdir / f"data-{embedder}", env=env) as server:
        link = server.enrol("Bench", "AOC", enrolment_photo(workdir / "aoc.png"))
        for count in counts:
            summary = loadgen(link, count, server.pid, workdir / f"{embedder}-{count}.json")
            decision = summary["first_frame_to_decision_s"] or {}
            rows.append(
                {
                    "embedder": embedder,
                    "participants": count,
                    "admitted": summary["admitted"],
                    "denied": summary["denied"],
                    "errors": summary["errors"],
                    "decision_p50_s": decision.get("p50"),
                    "decision_p95_s": decision.get("p95"),
                    "server_cpu_cores": summary["server_cpu_cores"],
                }
            )
            print(f"  {embedder} x{count}: {rows[-1]}", flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 5, 10, 20, 40])
    parser.add_argument("--baseline-counts", type=int, nargs="+", default=[1, 5, 10])
    parser.add_argument(
        "--json", type=Path, default=REPO / "bench" / "out" / "bench_admission.json"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = measure("onnx", args.counts, Path(tmp))
        rows += measure("dlib", args.baseline_counts, Path(tmp))
    machine = {"cpus": os.cpu_count(), "platform": platform.platform()}
    print(f"machine: {machine}")
    print(
        f"{'embedder':8} {'N':>4} {'admitted':>9} {'errors':>7} {'p50 s':>7} {'p95 s':>7} "
        f"{'server cores':>13}"
    )
    for r in rows:
        p50 = f"{r['decision_p50_s']:.2f}" if r["decision_p50_s"] is not None else "-"
        p95 = f"{r['decision_p95_s']:.2f}" if r["decision_p95_s"] is not None else "-"
        cores = r["server_cpu_cores"]
        print(
            f"{r['embedder']:8} {r['participants']:>4} {r['admitted']:>9} {r['errors']:>7} "
            f"{p50:>7} {p95:>7} {cores if cores is None else round(cores, 2):>13}"
        )
    by = {(r["embedder"], r["participants"]): r for r in rows}
    ratios = {
        str(n): by[("dlib", n)]["decision_p95_s"] / by[("onnx", n)]["decision_p95_s"]
        for n in args.baseline_counts
        if ("onnx", n) in by
        and by[("onnx", n)]["decision_p95_s"]
        and by[("dlib", n)]["decision_p95_s"]
    }
    print(f"p95 ratio dlib/onnx by N: {ratios}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps({"machine": machine, "rows": rows, "p95_ratio": ratios}, indent=2)
    )
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
