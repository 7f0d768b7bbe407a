"""Server memory with a 10 000-person gallery and 20 participants being verified.

A real server process; an open (1:N) room holding 10 000 synthetic people plus
one real person (enrolled from a frame of sadtalker_aoc.mp4), liveness "active"
with a long step time so the 20 synthetic participants (server.loadgen, replaying
the clip) stay in the challenge -- decoded and analysed at the sampling rate --
for the whole measurement. RSS is read from /proc at each stage; the baseline in
the same run is the same server with an empty room (the gallery's own cost).

    .venv/bin/python bench/bench_memory.py [--gallery 10000] [--participants 20]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import av
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from server.devserver import run_server  # noqa: E402
from server.face.engine import FaceEngine  # noqa: E402
from server.store import open_store  # noqa: E402

DATA = Path(os.environ.get("VIDEOGATE_TEST_DATA", REPO.parent / "shared" / "data")) / "faces"
CLIP = DATA / "videos" / "sadtalker_aoc.mp4"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def prepare(data_dir: Path, gallery: int) -> str:
    """An open room with ``gallery`` synthetic people and the clip's person."""
    with av.open(str(CLIP)) as container:
        rgb = next(f for f in container.decode(video=0) if f.time and f.time >= 0.5).to_ndarray(
            format="rgb24"
        )
    embedding = FaceEngine.load(data_dir / "models").enrol_frame(rgb).embedding
    assert embedding is not None
    store = open_store(data_dir)
    room = store.create_room(
        f"Memory {gallery}", mode="open", settings={"liveness_policy": "active"}
    )
    rng = np.random.default_rng(3)
    for i in range(gallery):
        store.enrol_person(room.id, f"synthetic {i}", rng.normal(0, 0.09, (1, 128)), "onnx")
    store.enrol_person(room.id, "AOC", embedding[None], "onnx")
    store.close()
    return room.link


def measure(gallery: int, participants: int, workdir: Path) -> dict[str, float]:
    data_dir = workdir / f"data-{gallery}"
    data_dir.mkdir(parents=True)
    slug = prepare(data_dir, gallery)
    env = {
        "VIDEOGATE_LIVENESS_STEP_TIME_S": "60",
        "VIDEOGATE_GATE_ATTEMPT_TIMEOUT_S": "90",
        "VIDEOGATE_GATE_LOCKOUT_FAILURES": "100000",
        "VIDEOGATE_LIMITS_MESSAGES_PER_S": "1000",
        # N synthetic participants share one invite and one address (docs/security.md).
        "VIDEOGATE_LIMITS_LOBBY_PER_INVITE": "1000",
        "VIDEOGATE_LIMITS_LOBBY_PER_ADDRESS": "1000",
    }
    with run_server(data_dir, env=env) as server:
        urllib.request.urlopen(f"{server.base_url}/healthz").read()
        idle = rss_mb(server.pid)
        peak = [idle]
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                peak.append(rss_mb(server.pid))
                time.sleep(0.5)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "server.loadgen",
                "--url",
                server.base_url,
                "--room",
                slug,
                "--participants",
                str(participants),
                "--video",
                str(CLIP),
                "--loopback",
                "--timeout",
                "25",
                "--max-seconds",
                "40",
                "--quiet",
            ],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(20)
        during = rss_mb(server.pid)
        proc.wait(timeout=60)
        stop.set()
        sampler.join()
        time.sleep(2)
        after = rss_mb(server.pid)
    return {
        "idle_mb": idle,
        "with_participants_mb": during,
        "peak_mb": max(peak),
        "after_leave_mb": after,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gallery", type=int, default=10_000)
    parser.add_argument("--participants", type=int, default=20)
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "out" / "bench_memory.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ours = measure(args.gallery, args.participants, Path(tmp))
        empty = measure(0, args.participants, Path(tmp))
    machine = {"cpus": os.cpu_count(), "platform": platform.platform()}
    print(f"machine: {machine}")
    print(f"{'room':>16} {'idle MB':>8} {'20 in lobby MB':>15} {'peak MB':>8} {'after MB':>9}")
    for name, row in ((f"{args.gallery} people", ours), ("1 person", empty)):
        print(
            f"{name:>16} {row['idle_mb']:8.0f} {row['with_participants_mb']:15.0f} "
            f"{row['peak_mb']:8.0f} {row['after_leave_mb']:9.0f}"
        )
    gallery_cost = ours["peak_mb"] - empty["peak_mb"]
    per_participant = (empty["with_participants_mb"] - empty["idle_mb"]) / args.participants
    print(
        f"gallery cost at peak: {gallery_cost:.0f} MB; per participant in the lobby: "
        f"{per_participant:.1f} MB"
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "machine": machine,
                "gallery": args.gallery,
                "participants": args.participants,
                "ours": ours,
                "baseline_empty_room": empty,
                "gallery_cost_mb": gallery_cost,
                "per_participant_mb": per_participant,
            },
            indent=2,
        )
    )
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
