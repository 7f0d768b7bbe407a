"""1 worker vs 2 workers on this machine, side by side in one run.

Two phases per configuration, both driven by ``python -m server.loadgen`` processes
(real aiortc peers replaying a pre-encoded VP8 transcode of sadtalker_aoc.mp4):

* **admission**: N participants join at once, split evenly over the workers (one room
  per worker, one enrolled person, liveness off as in bench/bench_admission.py);
  p50 / p95 from first frame to decision over all of them (target p95 <= 2 s);
* **forwarding**: R rooms of 4 participants (4 people enrolled from the same face, so
  each holds its own seat), every camera 640x480 30 fps; 12 forwarded video legs per
  room. Rooms are spread round-robin over the workers. Each participant counts the
  frames it receives before decoding (``--count-encoded``) over a window after
  everyone is in; "full rate" = the slowest received track >= 27 fps (90 % of 30).

Rooms are pinned to workers by addressing each worker's own port directly (the room
-> node registry that redirects a participant to the owning node is not used here).
The 2-worker configuration runs ``serve --workers 2`` (the supervisor), with a
throwaway ``redis-server`` for its required ``[cluster] redis_url``.

The load generator runs on the same 2 cores: its CPU is reported beside the
workers'. Usage::

    .venv/bin/python bench/bench_cluster.py [--counts 10 20 40] [--rooms 1 2 3 4]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.bench_admission import CLIP, enrolment_photo  # noqa: E402
from server.devserver import ServerProcess, free_port, run_server  # noqa: E402
from server.loadgen.__main__ import cpu_seconds, percentile  # noqa: E402
from server.loadgen.encoded import transcode_vp8  # noqa: E402

TOKEN = "bench-cluster-metrics"
ROOM_SIZE = 4
FULL_FPS = 27.0
ENV = {
    "VIDEOGATE_LIVENESS_POLICY": "off",
    "VIDEOGATE_GATE_LOCKOUT_FAILURES": "100000",
    "VIDEOGATE_LIMITS_MESSAGES_PER_S": "1000",
    "VIDEOGATE_LIMITS_LOBBY_PER_INVITE": "1000",
    "VIDEOGATE_LIMITS_LOBBY_PER_ADDRESS": "1000",
    "VIDEOGATE_SERVER_METRICS_TOKEN": TOKEN,
}


@contextlib.contextmanager
def redis_server(workdir: Path) -> Iterator[str]:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
         "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        time.sleep(0.3)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


def prepare(data_dir: Path, photo: Path, workers: int, rooms: int) -> dict[str, Any]:
    """Rooms and invites, enrolled once through the store API (as ``server enrol``)."""
    from server.face.engine import FaceEngine
    from server.store import open_store

    engine = FaceEngine.load(data_dir / "models")
    result = engine.enrol_photo(photo.read_bytes())
    assert result.embedding is not None, result.reasons
    stacked = {name: np.stack([vec]) for name, vec in result.embeddings.items()}
    store = open_store(data_dir)
    plan: dict[str, Any] = {"admission": [], "forwarding": []}
    try:
        def room(name: str, people: int) -> dict[str, Any]:
            r = store.create_room(name, settings={"liveness_policy": "off"})
            invites = []
            for i in range(people):
                person = store.enrol_person(r.id, f"AOC {i}", stacked, "dlib")
                invites.append(store.create_invite(r.id, person.id, None))
            return {"link": r.link, "invites": invites}

        plan["admission"] = [room(f"admission {w}", 1) for w in range(workers)]
        plan["forwarding"] = [room(f"forward {r}", ROOM_SIZE) for r in range(rooms)]
    finally:
        store.close()
    return plan


def loadgen(
    port: int, room: dict[str, Any], count: int, out: Path, extra: list[str]
) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "server.loadgen", "--url", f"http://127.0.0.1:{port}",
            "--room", room["link"], "--participants", str(count), "--video", str(CLIP),
            "--loopback", "--timeout", "60", "--max-seconds", "200", "--quiet",
            "--json", str(out), "--clip-cache", str(out.parent), *extra]  # fmt: skip
    for invite in room["invites"]:
        argv += ["--invite", invite]
    with out.with_suffix(".log").open("wb") as log:  # the child keeps its own copy
        return subprocess.Popen(argv, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def workers_cpu(server: ServerProcess) -> float:
    return sum(each_worker_cpu(server))


def each_worker_cpu(server: ServerProcess) -> list[float]:
    return [cpu_seconds(pid) for pid in sorted(server.worker_pids())]


def scrape(port: int) -> dict[str, float]:
    """Server-side view of one worker: legs, forwarded fps, event-loop lag."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=20) as resp:  # noqa: S310 - loopback
            text = resp.read().decode()
    except OSError:  # a starved worker: the row says so (no server-side figures)
        return {}
    wanted = {
        'videogate_forwarded_legs{kind="video"}': "legs",
        'videogate_forwarded_video_fps{stat="min"}': "fps_min",
        "videogate_event_loop_lag_seconds_sum": "lag_sum",
        "videogate_event_loop_lag_seconds_count": "lag_count",
    }
    found: dict[str, float] = {}
    for line in text.splitlines():
        key, _, value = line.rpartition(" ")
        if key in wanted:
            found[wanted[key]] = float(value)
    return found


def admission(server: ServerProcess, plan: dict[str, Any], n: int, work: Path) -> dict[str, Any]:
    ports = server.ports
    cpu0, gen0, t0 = workers_cpu(server), children_cpu(), time.monotonic()
    procs, outs = [], []
    for i, port in enumerate(ports):
        share = n // len(ports) + (1 if i < n % len(ports) else 0)
        outs.append(work / f"adm-{len(ports)}w-{n}-{i}.json")
        procs.append(loadgen(port, plan["admission"][i], share, outs[-1], []))
    for proc in procs:
        proc.wait(300)
    wall, cpu = time.monotonic() - t0, workers_cpu(server) - cpu0
    outcomes = [o for out in outs for o in json.loads(out.read_text())["outcomes"]]
    decisions = [o["first_frame_to_decision_s"] for o in outcomes
                 if o["admitted"] and o["first_frame_to_decision_s"] is not None]  # fmt: skip
    return {
        "participants": n,
        "admitted": sum(1 for o in outcomes if o["admitted"]),
        "errors": sum(1 for o in outcomes if o["error"]),
        "p50_s": statistics.median(decisions) if decisions else None,
        "p95_s": percentile(decisions, 95) if decisions else None,
        "workers_cores": cpu / wall,
        # CPU, unlike wall time, barely depends on what else the machine runs.
        "worker_cpu_s_per_admission": cpu / max(1, len(decisions)),
        "loadgen_cores": (children_cpu() - gen0) / wall,
        "loadavg_1m": os.getloadavg()[0],
    }


def video_legs(ports: list[int]) -> int:
    return int(sum(scrape(port).get("legs", 0) for port in ports))


def forwarding(
    server: ServerProcess, plan: dict[str, Any], rooms: int, work: Path, args: argparse.Namespace
) -> dict[str, Any]:
    ports = server.ports
    expected = rooms * ROOM_SIZE * (ROOM_SIZE - 1)
    gen0, t_launch = children_cpu(), time.monotonic()
    procs, outs = [], []
    hold = args.warmup + args.window + 4.0
    for r in range(rooms):
        outs.append(work / f"fwd-{len(ports)}w-{rooms}-{r}.json")
        extra = ["--hold", str(hold), "--warmup", str(args.warmup), "--fps", "30",
                 "--count-encoded"]  # fmt: skip
        procs.append(loadgen(ports[r % len(ports)], plan["forwarding"][r], ROOM_SIZE,
                             outs[-1], extra))  # fmt: skip
    # The window starts once every room is complete (the workers' own leg counts).
    deadline = time.monotonic() + 90
    while video_legs(ports) < expected and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(2.0)
    [scrape(port) for port in ports]  # the forwarded-fps gauge measures from here
    cpu0, t0 = each_worker_cpu(server), time.monotonic()
    time.sleep(args.window)
    cpu1, t1 = each_worker_cpu(server), time.monotonic()
    per_worker = [scrape(port) for port in ports]
    for proc in procs:
        proc.wait(300)
    gen_wall = time.monotonic() - t_launch
    summaries = [json.loads(out.read_text()) for out in outs]
    rates = [r for s in summaries for o in s["outcomes"] for r in o["received_fps"]]
    lag = [w["lag_sum"] / w["lag_count"] * 1000 for w in per_worker if w.get("lag_count")]
    # Server side: the slowest flowing video leg on each worker that has legs.
    server_min = [w.get("fps_min") for w in per_worker if w.get("legs")]
    return {
        "rooms": rooms,
        "participants": rooms * ROOM_SIZE,
        "admitted": sum(s["admitted"] for s in summaries),
        "video_legs": expected,
        "server_legs": [w.get("legs") for w in per_worker],
        "server_fps_min": server_min,
        "tracks_measured": len(rates),
        "recv_fps_min": min(rates) if rates else None,
        "recv_fps_p50": statistics.median(rates) if rates else None,
        "full_rate": bool(rates) and len(rates) == expected and min(rates) >= FULL_FPS
        and all(f is not None and f >= FULL_FPS for f in server_min),
        "mean_loop_lag_ms": lag,
        "workers_cores": (sum(cpu1) - sum(cpu0)) / (t1 - t0),
        "each_worker_cores": [(b - a) / (t1 - t0) for a, b in zip(cpu0, cpu1, strict=True)],
        "loadgen_cores": (children_cpu() - gen0) / gen_wall,
        "loadavg_1m": os.getloadavg()[0],
    }


def measure(args: argparse.Namespace, data: Path, plan: dict[str, Any], redis_url: str,
            work: Path) -> list[dict[str, Any]]:  # fmt: skip
    """Both configurations run at once and take turns, step by step: the machine is
    shared, so interleaving keeps slow drifts in other load from favouring either."""
    env = {**ENV, "VIDEOGATE_CLUSTER_REDIS_URL": redis_url}
    results: list[dict[str, Any]] = [
        {"workers": w, "admission": [], "forwarding": []} for w in (1, 2)
    ]
    with (
        run_server(data, env=env, workers=1, startup_s=180) as one,
        run_server(data, env=env, workers=2, startup_s=180) as two,
    ):
        servers = (one, two)
        for n in args.counts:
            for server, result in zip(servers, results, strict=True):
                row = admission(server, plan, n, work)
                result["admission"].append(row)
                print(f"  {server.workers}w admission {row}", flush=True)
        for rooms in args.rooms:
            for server, result in zip(servers, results, strict=True):
                row = forwarding(server, plan, rooms, work, args)
                result["forwarding"].append(row)
                print(f"  {server.workers}w forwarding {row}", flush=True)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[10, 20, 40])
    parser.add_argument("--rooms", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--window", type=float, default=8.0, help="seconds measured")
    parser.add_argument("--warmup", type=float, default=6.0, help="after admission")
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "out" / "bench_cluster.json")
    args = parser.parse_args()
    machine = {"cpus": os.cpu_count(), "platform": platform.platform(),
               "loadavg_at_start": os.getloadavg()}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = work / "data"
        plan = prepare(data, enrolment_photo(work / "aoc.png"), 2, max(args.rooms))
        for fps in (15, 30):  # once, before anything is timed: loadgens reuse it
            transcode_vp8(CLIP, work / f"{CLIP.stem}-{fps}fps.webm", fps=fps)
        with redis_server(work) as redis_url:
            results = measure(args, data, plan, redis_url, work)
    print(f"machine: {machine}")
    report(results)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"machine": machine, "results": results}, indent=2))
    print(f"wrote {args.json}")
    return 0


def _f(value: Any, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def report(results: list[dict[str, Any]]) -> None:
    print(f"{'workers':>7} {'N':>4} {'admitted':>8} {'p50 s':>6} {'p95 s':>6} "
          f"{'worker cores':>12} {'loadgen cores':>13} {'load 1m':>7}")  # fmt: skip
    for res in results:
        for r in res["admission"]:
            print(f"{res['workers']:>7} {r['participants']:>4} {r['admitted']:>8} "
                  f"{_f(r['p50_s']):>6} {_f(r['p95_s']):>6} {_f(r['workers_cores']):>12} "
                  f"{_f(r['loadgen_cores']):>13} {_f(r.get('loadavg_1m'), 1):>7}")  # fmt: skip
    print(f"{'workers':>7} {'rooms':>5} {'legs':>5} {'measured':>8} {'min fps':>7} "
          f"{'p50 fps':>7} {'full':>5} {'worker cores':>12} {'loadgen cores':>13} "
          f"{'load 1m':>7}")  # fmt: skip
    for res in results:
        for r in res["forwarding"]:
            print(f"{res['workers']:>7} {r['rooms']:>5} {r['video_legs']:>5} "
                  f"{r['tracks_measured']:>8} {_f(r['recv_fps_min'], 1):>7} "
                  f"{_f(r['recv_fps_p50'], 1):>7} {str(r['full_rate']):>5} "
                  f"{_f(r['workers_cores']):>12} {_f(r['loadgen_cores']):>13} "
                  f"{_f(r.get('loadavg_1m'), 1):>7}")  # fmt: skip
    best = {res["workers"]: max((r["video_legs"] for r in res["forwarding"] if r["full_rate"]),
                                default=0) for res in results}  # fmt: skip
    print(f"most video legs held at full rate: {best}")
    for res in results:
        costs = [r["workers_cores"] / r["video_legs"] * 100 for r in res["forwarding"]
                 if r["full_rate"]]  # fmt: skip
        if costs:
            print(f"{res['workers']} worker(s): {min(costs):.2f}-{max(costs):.2f} % of a core per "
                  "forwarded video leg at full rate (publishers' share included)")  # fmt: skip
    if best.get(1):
        print(f"ratio 2 workers / 1 worker: {best.get(2, 0) / best[1]:.2f}")


if __name__ == "__main__":
    sys.exit(main())
