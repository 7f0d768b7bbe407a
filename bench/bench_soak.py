"""Soak: 20 synthetic participants in 4 rooms for 10 minutes on loopback, self-stopping.

A real server process (``python -m server serve --loopback``, liveness off, 4 rooms of
5 people each enrolled from stills of lestari_real.mp4) and ``server.loadgen`` joining
5 participants per room (``--hold`` for the soak, ``--max-seconds`` as a hard bound),
all replaying the pre-encoded VP8 clip. Every admitted participant receives the other
four; the generator's viewers count forwarded frames through the receiver tap instead
of decoding them (as bench/bench_forward.py does): 80 decoders would measure the
generator, not the server.

Every ``--sample-s`` seconds: server RSS, CPU, open fds and threads, /healthz round
trip, and forwarded frames per second per viewer leg. The summary compares the first
and last fifth of the soak (memory and latency must not grow) and counts errors.

    .venv/bin/python bench/bench_soak.py [--minutes 10] [--rooms 4] [--per-room 5]

JSON goes to bench/out/bench_soak-YYYYmmdd-HHMMSS.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from aiortc import MediaStreamTrack  # noqa: E402

from server import client as client_module  # noqa: E402
from server.devserver import run_server  # noqa: E402
from server.loadgen import __main__ as loadgen  # noqa: E402
from server.loadgen.__main__ import cpu_seconds, parse_args, run  # noqa: E402
from server.rtc.tap import ReceiverTap  # noqa: E402

DATA = Path(os.environ.get("VIDEOGATE_TEST_DATA", REPO.parent / "shared" / "data")) / "faces"
CLIP = DATA / "videos" / "lestari_real.mp4"
STILLS = DATA / "videos" / "stills" / "lestari15_subject"
RECORDS: list[client_module.ReceivedTrack] = []


async def _counting_consume(
    self: client_module.GateClient, track: MediaStreamTrack, record: client_module.ReceivedTrack
) -> None:
    """Count forwarded frames at the receiver's jitter buffer; never decode."""
    receiver = next(t.receiver for t in self.pc.getTransceivers() if t.receiver.track is track)

    def on_frame(_codec: Any, _frame: Any) -> None:
        record.frames += 1

    ReceiverTap(receiver, on_frame=on_frame, on_end=lambda: None)
    RECORDS.append(record)
    await asyncio.Event().wait()  # until the client closes (cancelled)


def light_transcode(source: Path, target: Path, fps: int = 15, seconds: float = 20.0) -> Path:
    """The generator's clip at 480x360, 250 kbit/s (loadgen's own is 640x480, 600 kbit/s).

    80 receiving legs in one Python process sharing 2 cores with the server cannot keep
    up with ~5 packets per frame: the generator starves, stops answering ICE consent
    checks and the server (correctly) drops it after 30 s. Two packets per frame keep
    the generator alive so the soak measures the server.
    """
    if not target.exists():
        vf = (
            "scale=480:360:force_original_aspect_ratio=decrease,"
            f"pad=480:360:(ow-iw)/2:(oh-ih)/2,fps={fps}"
        )
        subprocess.run(
            ["ffmpeg", "-loglevel", "error", "-y", "-i", str(source), "-t", str(seconds),
             "-vf", vf, "-an", "-c:v", "libvpx", "-b:v", "250k", "-g", str(fps),
             "-keyint_min", str(fps), "-deadline", "realtime", "-cpu-used", "8", str(target)],
            check=True,
        )  # fmt: skip
    return target


def enrol(data_dir: Path, rooms: int, per_room: int) -> list[tuple[str, list[str]]]:
    """Rooms and invites in the store before the server starts (one embedding pass)."""
    import numpy as np

    from server.face.engine import FaceEngine
    from server.store import open_store

    engine = FaceEngine.load()
    embeddings = []
    for photo in sorted(STILLS.glob("*.png")):
        result = engine.enrol_photo(photo.read_bytes())
        if result.embedding is not None:
            embeddings.append(result.embedding)
    templates = np.stack(embeddings)
    store = open_store(data_dir)
    out = []
    try:
        for r in range(rooms):
            room = store.create_room(f"Soak {r}", settings={"liveness_policy": "off"})
            invites = []
            for p in range(per_room):
                person = store.enrol_person(room.id, f"P{r}.{p}", templates, "dlib")
                invites.append(store.create_invite(room.id, person.id))
            out.append((room.link, invites))
    finally:
        store.close()
    return out


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return -1


def healthz_ms(base: str) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    body = json.loads(urllib.request.urlopen(base + "/healthz", timeout=10).read())
    return (time.perf_counter() - started) * 1000, body


def generator_status(status_dir: Path) -> tuple[int, int, float]:
    """Frames and legs counted by every generator worker, and their CPU seconds."""
    frames = legs = 0
    cpu = 0.0
    for path in status_dir.glob("status-*.json"):
        try:
            status = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        frames += status["frames"]
        legs += status["legs"]
        cpu += status["cpu_s"]
    return frames, legs, cpu


async def sampler(
    base: str, pid: int, every: float, stop: asyncio.Event, status_dir: Path
) -> list[dict[str, Any]]:
    samples: list[dict[str, Any]] = []
    t0 = time.monotonic()
    last_frames, last_t, last_cpu, last_gen = 0, t0, cpu_seconds(pid), 0.0
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), every)
        except TimeoutError:
            pass
        now = time.monotonic()
        rtt, health = await asyncio.to_thread(healthz_ms, base)
        frames, legs, gen_cpu = generator_status(status_dir)
        cpu = cpu_seconds(pid)
        samples.append(
            {
                "t_s": round(now - t0, 1),
                "rss_mb": round(rss_mb(pid), 1),
                "cpu_cores": round((cpu - last_cpu) / (now - last_t), 3),
                "threads": threads(pid),
                "fds": len(os.listdir(f"/proc/{pid}/fd")),
                "healthz_ms": round(rtt, 2),
                "participants": health.get("participants"),
                "legs": legs,
                "fps_per_leg": round((frames - last_frames) / (now - last_t) / max(1, legs), 2),
                "generator_cpu_cores": round((gen_cpu - last_gen) / (now - last_t), 3),
                "loadavg_1m": float(Path("/proc/loadavg").read_text().split()[0]),
            }
        )
        last_frames, last_t, last_cpu, last_gen = frames, now, cpu, gen_cpu
        print(json.dumps(samples[-1]), flush=True)
    return samples


def window(samples: list[dict[str, Any]], key: str, part: str, total: int, legs: int) -> float:
    """Median of ``key`` over the first or last fifth of the steady state (everyone in,
    every viewer leg receiving; the first such sample still has joins in its window)."""
    steady = [s for s in samples if s["participants"] == total and s["legs"] >= legs][1:]
    n = max(1, len(steady) // 5)
    chosen = steady[:n] if part == "first" else steady[-n:]
    return float(statistics.median(s[key] for s in chosen)) if chosen else float("nan")


async def soak(args: argparse.Namespace) -> dict[str, Any]:
    seconds = args.minutes * 60
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        rooms = enrol(data, args.rooms, args.per_room)
        env = {"VIDEOGATE_LIVENESS_POLICY": "off", "VIDEOGATE_GATE_ATTEMPT_TIMEOUT_S": "30"}
        with run_server(data, env=env) as server:
            stop = asyncio.Event()
            status_dir = Path(tmp)
            sampling = asyncio.create_task(
                sampler(server.base_url, server.pid, args.sample_s, stop, status_dir)
            )
            workers = []
            for w in range(args.workers):
                mine = rooms[w :: args.workers]
                spec = {"url": server.base_url, "rooms": mine, "seconds": seconds,
                        "per_room": args.per_room, "full_size": args.full_size,
                        "status": str(status_dir / f"status-{w}.json"),
                        "result": str(status_dir / f"result-{w}.json")}  # fmt: skip
                workers.append(
                    await asyncio.create_subprocess_exec(
                        sys.executable, __file__, "--worker", json.dumps(spec)
                    )
                )
            started = time.monotonic()
            await asyncio.gather(*(w.wait() for w in workers))
            wall = time.monotonic() - started
            results = [
                r
                for w in range(args.workers)
                for r in json.loads((status_dir / f"result-{w}.json").read_text())
            ]
            stop.set()
            samples = await sampling
            log_errors = [
                line
                for line in server.log_path.read_text().splitlines()
                if " ERROR " in line or "Traceback" in line
            ]
    admitted = sum(int(r["admitted"]) for r in results)  # type: ignore[call-overload]
    errors = sum(int(r["errors"]) for r in results)  # type: ignore[call-overload]
    joins = [
        o["join_to_verdict_s"]
        for r in results
        for o in r["outcomes"]  # type: ignore[attr-defined]
        if o["join_to_verdict_s"] is not None
    ]
    total = args.rooms * args.per_room
    legs = total * (args.per_room - 1)
    # Participants the server lost during the hold (everyone should stay until the end).
    held = [s["participants"] for s in samples if s["t_s"] < args.minutes * 60 - args.sample_s]
    reached = held.index(total) if total in held else len(held)
    drops = total - min(held[reached:], default=0)
    keys = ("rss_mb", "healthz_ms", "fps_per_leg", "cpu_cores", "generator_cpu_cores",
            "loadavg_1m", "fds", "threads")  # fmt: skip
    summary = {
        key: {part: window(samples, key, part, total, legs) for part in ("first", "last")}
        for key in keys
    }
    return {
        "bench": "soak",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },  # fmt: skip
        "minutes": args.minutes,
        "rooms": args.rooms,
        "per_room": args.per_room,
        "participants": args.rooms * args.per_room,
        "admitted": admitted,
        "errors": errors,
        "dropped_during_hold": drops,
        "clip": "640x480 600k" if args.full_size else "480x360 250k",
        "server_log_errors": log_errors[:20],
        "join_to_verdict_s": {"p50": statistics.median(joins), "max": max(joins)}
        if joins
        else None,
        "wall_s": round(wall, 1),
        "summary": summary,
        "samples": samples,
    }


async def worker(spec: dict[str, Any]) -> None:
    """One generator process: ``server.loadgen`` for its rooms, frame counts to a file."""
    client_module.GateClient._consume = _counting_consume  # type: ignore[method-assign]
    if not spec["full_size"]:
        loadgen.transcode_vp8 = light_transcode  # type: ignore[assignment]
    seconds = spec["seconds"]
    runs = []
    for slug, invites in spec["rooms"]:
        argv = ["--url", spec["url"], "--room", slug, "--participants", str(spec["per_room"]),
                "--video", str(CLIP), "--loopback", "--quiet", "--timeout", "60",
                "--hold", str(seconds), "--max-seconds", str(seconds + 120)]  # fmt: skip
        for invite in invites:
            argv.append(f"--invite={invite}")  # a token may start with "-"
        runs.append(run(parse_args(argv)))
    status = Path(spec["status"])

    async def report() -> None:
        while True:
            frames = sum(r.frames for r in RECORDS)
            legs = sum(1 for r in RECORDS if r.kind == "video")
            cpu = sum(os.times()[:2])
            partial = status.with_suffix(".tmp")
            partial.write_text(json.dumps({"frames": frames, "legs": legs, "cpu_s": cpu}))
            partial.replace(status)
            await asyncio.sleep(1.0)

    reporter = asyncio.create_task(report())
    results = await asyncio.gather(*runs)
    reporter.cancel()
    Path(spec["result"]).write_text(json.dumps(results))


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        asyncio.run(worker(json.loads(sys.argv[2])))
        return 0
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rooms", type=int, default=4)
    parser.add_argument("--per-room", type=int, default=5)
    parser.add_argument("--sample-s", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2, help="generator processes")
    parser.add_argument(
        "--full-size", action="store_true", help="loadgen's 640x480 600k clip (starves on 2 cores)"
    )
    args = parser.parse_args()
    if not 0 < args.minutes <= 60:
        parser.error("--minutes must be in (0, 60]")
    report = asyncio.run(soak(args))
    report["workers"] = args.workers
    out = REPO / "bench" / "out" / f"bench_soak-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"\n{report['participants']} participants, {report['rooms']} rooms, "
          f"{report['minutes']} min: admitted {report['admitted']}, errors {report['errors']}, "
          f"dropped {report['dropped_during_hold']}, "
          f"server log errors {len(report['server_log_errors'])}")  # fmt: skip
    print(f"{'measure':14} {'first 1/5':>10} {'last 1/5':>10}")
    for key, row in report["summary"].items():
        print(f"{key:14} {row['first']:10.2f} {row['last']:10.2f}")
    print(f"JSON: {out}")
    ok = (
        report["errors"] == 0
        and report["dropped_during_hold"] == 0
        and report["admitted"] == report["participants"]
    )
    return 0 if ok and not report["server_log_errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
