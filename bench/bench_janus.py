"""All-to-all rooms: our builtin SFU vs Janus VideoRoom as the media plane.

What is measured, per room size N (default 4, 6, 9, 12, 16 load-generator peers),
each peer publishing a 640x480 30 fps VP8 stream and receiving every other peer's
(N publishers, N(N-1) forwarded legs):

* ``builtin``: the media-plane CPU of a server subprocess running our encoded SFU
  (``Publisher`` + ``SfuRoom``; the ``--server forward`` process of
  ``bench/bench_forward.py``), peers admitted one by one with renegotiation;
* ``janus``: the CPU of the Janus process (Debian's janus, started from a generated
  configuration by ``server/janus/local.py``), peers entering with passes from
  ``JanusPlane`` (the server's code path), publishing and subscribing multistream.

Both modes use the same load generator in this process: peers stream a pre-encoded
VP8 file (no encoding) and count reassembled frames per leg through a receiver tap
(no decoding). Its own CPU is reported: on a 2-core machine it saturates before
either SFU does, and a step where it is over ~90 % of a core says more about the
load generator than the SFU. A room "holds" at 30 fps when the median leg receives
>= 27 fps and the 10th percentile >= 24 fps.

Per publisher and per viewer leg: least squares of CPU = a*N + b*N(N-1) over the
steps that held. Not included for Janus: the videogate server's own presence
subscription per participant (one aiortc receive leg, nothing decoded between
checks; about the builtin's per-publisher receive cost, see bench_forward.py's
0-viewer row).

Usage: ``.venv/bin/python bench/bench_janus.py [--sizes 4,6,9,12,16] [--measure 5]``
Prints a table and writes ``bench/out/bench_janus-<timestamp>.json``.
Timings never go into pass/fail tests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import aiohttp  # noqa: E402
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription  # noqa: E402
from aiortc.contrib.media import MediaPlayer  # noqa: E402
from bench_forward import OUT_DIR, SOURCE, Channel, _desc, machine  # noqa: E402

from server.janus import JanusPlane  # noqa: E402
from server.janus.local import local_janus  # noqa: E402
from server.janus.watch import EventSession  # noqa: E402
from server.media_settings import MediaSettings  # noqa: E402
from server.rtc import create_peer_connection  # noqa: E402
from server.rtc.tap import ReceiverTap  # noqa: E402

FORWARD = REPO / "bench" / "bench_forward.py"
TRIAL_TIMEOUT = 120.0


def noop() -> None:
    pass


def make_clip(out: Path, seconds: int = 120) -> Path:
    """bench_forward's clip (640x480 30 fps VP8 ~1 Mbit/s, keyframe each second), long
    enough to outlast a trial's set-up: aiortc's MediaPlayer stops throttling once it
    loops (its clock is not reset), so players must not loop."""
    if out.exists():
        return out
    if not SOURCE.is_file():
        raise SystemExit(f"missing {SOURCE} (set VIDEOGATE_TEST_DATA)")
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-stream_loop", "-1", "-i", str(SOURCE),
         "-t", str(seconds), "-vf", "scale=480:480,pad=640:480:80:0,fps=30", "-c:v", "libvpx",
         "-deadline", "realtime", "-cpu-used", "8", "-b:v", "1M", "-g", "30", "-an", str(out)],
        check=True, timeout=600,
    )  # fmt: skip
    return out


def cpu_of(pid: int) -> float:
    """Seconds of CPU (user + system, all threads) a process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Legs:
    """Frames received per (viewer, track) by the load generator."""

    def __init__(self) -> None:
        self.frames: dict[str, int] = {}

    def tap(self, pc: RTCPeerConnection, viewer: str) -> None:
        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            for t in pc.getTransceivers():
                if t.receiver.track is track and track.kind == "video":
                    key = f"{viewer}/{t.mid}"
                    self.frames.setdefault(key, 0)
                    ReceiverTap(
                        t.receiver, on_frame=lambda c, f, k=key: self._count(k), on_end=noop
                    )

    def _count(self, key: str) -> None:
        self.frames[key] += 1

    async def flowing(self, legs: int) -> None:
        while len(self.frames) < legs or not all(n > 0 for n in self.frames.values()):
            await asyncio.sleep(0.1)


def summary(mode: str, n: int, plane_cpu: float, gen_cpu: float, wall: float,
            f0: dict[str, int], f1: dict[str, int]) -> dict[str, Any]:  # fmt: skip
    fps = sorted((f1[k] - f0.get(k, 0)) / wall for k in f1)
    p10 = fps[max(0, int(0.1 * len(fps)) - 1)] if fps else 0.0
    median = statistics.median(fps) if fps else 0.0
    return {
        "mode": mode, "peers": n, "legs": len(fps), "seconds": wall,
        "plane_cpu_pct": 100.0 * plane_cpu / wall, "loadgen_cpu_pct": 100.0 * gen_cpu / wall,
        "leg_fps_median": median, "leg_fps_p10": p10,
        "holds_30fps": median >= 27.0 and p10 >= 24.0,
        # The machine is shared: its load during the trial says how far to trust it.
        "load_average_1min": os.getloadavg()[0],
    }  # fmt: skip


async def builtin_trial(n: int, clip: Path, warmup: float, measure: float) -> dict[str, Any]:
    pcs: dict[str, RTCPeerConnection] = {}
    players: list[MediaPlayer] = []
    legs = Legs()

    async def handle(message: dict[str, Any]) -> dict[str, Any] | None:
        if message["op"] == "offer":  # the SFU renegotiates one of our pcs
            pc = pcs[message["pid"]]
            await pc.setRemoteDescription(RTCSessionDescription(message["sdp"], "offer"))
            await pc.setLocalDescription(await pc.createAnswer())
            return _desc(pc)
        raise ValueError(message)

    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(FORWARD), "--server", "forward",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    stdin = proc.stdin
    channel = Channel(proc.stdout, stdin.write, handle)
    pump = asyncio.ensure_future(channel.run())
    try:
        async with asyncio.timeout(TRIAL_TIMEOUT):
            for i in range(n):
                pid = f"p{i}"
                pc = create_peer_connection(loopback=True)
                pcs[pid] = pc
                player = MediaPlayer(str(clip), decode=False)
                players.append(player)
                assert player.video is not None
                pc.addTrack(player.video)
                legs.tap(pc, pid)
                await pc.setLocalDescription(await pc.createOffer())
                answer = await channel.request({"op": "join", "pid": pid, **_desc(pc)})
                await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
                await channel.request({"op": "admit", "pid": pid})
            await legs.flowing(n * (n - 1))
            await asyncio.sleep(warmup)
            start = await channel.request({"op": "cpu"})
            gen0, f0 = time.process_time(), dict(legs.frames)
            await asyncio.sleep(measure)
            end = await channel.request({"op": "cpu"})
            gen1, f1 = time.process_time(), dict(legs.frames)
            await channel.request({"op": "quit"})
    finally:
        for pc in pcs.values():
            await pc.close()
        stdin.close()
        try:
            async with asyncio.timeout(5):
                await proc.wait()
        except TimeoutError:
            proc.kill()
        pump.cancel()
    wall = end["wall"] - start["wall"]
    return summary("builtin", n, end["cpu"] - start["cpu"], gen1 - gen0, wall, f0, f1)


async def janus_peer(
    events: EventSession, room: int, feed: int, token: str, clip: Path, pcs: list[RTCPeerConnection]
) -> int:
    """Join with the pass, publish the clip; returns the private id for subscribing."""
    handle = await events.attach()
    joined = await events.request(
        handle,
        {"request": "join", "ptype": "publisher", "room": room, "id": feed, "token": token},
        lambda d: d.get("videoroom") == "joined",
    )
    pc = RTCPeerConnection()
    pcs.append(pc)
    player = MediaPlayer(str(clip), decode=False)
    assert player.video is not None
    pc.addTrack(player.video)
    await pc.setLocalDescription(await pc.createOffer())
    reply = await events.request(
        handle, {"request": "publish"}, lambda d: "jsep" in d,
        jsep={"type": "offer", "sdp": pc.localDescription.sdp},
    )  # fmt: skip
    await pc.setRemoteDescription(RTCSessionDescription(reply["jsep"]["sdp"], "answer"))
    return int(joined["private_id"])


async def janus_subscribe(
    events: EventSession, room: int, private_id: int, feeds: list[int], viewer: str,
    legs: Legs, pcs: list[RTCPeerConnection],
) -> None:  # fmt: skip
    handle = await events.attach()
    offer = await events.request(
        handle,
        {"request": "join", "ptype": "subscriber", "room": room, "private_id": private_id,
         "streams": [{"feed": f} for f in feeds]},  # fmt: skip
        lambda d: d.get("videoroom") == "attached" and "jsep" in d,
    )
    pc = RTCPeerConnection()
    pcs.append(pc)
    legs.tap(pc, viewer)
    await pc.setRemoteDescription(RTCSessionDescription(offer["jsep"]["sdp"], "offer"))
    await pc.setLocalDescription(await pc.createAnswer())
    await events.send(handle, {"request": "start"},
                      {"type": "answer", "sdp": pc.localDescription.sdp})  # fmt: skip


async def janus_trial(
    n: int, clip: Path, url: str, admin_key: str, pid: int, warmup: float, measure: float
) -> dict[str, Any]:
    media = MediaSettings(janus_urls=url, janus_admin_key=admin_key, janus_sweep_s=3600.0)
    plane = JanusPlane(media)
    plane.start()
    pcs: list[RTCPeerConnection] = []
    legs = Legs()
    room_id = f"bench-{n}-{time.monotonic_ns()}"
    async with aiohttp.ClientSession() as http:
        sessions: list[EventSession] = []
        try:
            async with asyncio.timeout(TRIAL_TIMEOUT):
                passes = [await plane.admit(room_id, "bench", f"p{i}") for i in range(n)]
                private: list[int] = []
                for granted in passes:
                    events = EventSession(http, url, 10.0)
                    await events.open()
                    sessions.append(events)
                    private.append(await janus_peer(
                        events, granted.room, granted.feed, granted.token, clip, pcs))  # fmt: skip
                while not all(m.publisher for m in await plane.members(room_id)) or len(
                    await plane.members(room_id)
                ) < n:  # subscribing needs the feeds published (ICE + DTLS up)
                    await asyncio.sleep(0.2)
                for i, granted in enumerate(passes):
                    others = [p.feed for p in passes if p is not granted]
                    await janus_subscribe(sessions[i], granted.room, private[i], others,
                                          f"p{i}", legs, pcs)  # fmt: skip
                await legs.flowing(n * (n - 1))
                await asyncio.sleep(warmup)
                t0, c0, gen0, f0 = time.monotonic(), cpu_of(pid), time.process_time(), dict(
                    legs.frames)  # fmt: skip
                await asyncio.sleep(measure)
                t1, c1, gen1, f1 = time.monotonic(), cpu_of(pid), time.process_time(), dict(
                    legs.frames)  # fmt: skip
        finally:
            for pc in pcs:
                await pc.close()
            for events in sessions:
                await events.close()
            await plane.close()
    return summary("janus", n, c1 - c0, gen1 - gen0, t1 - t0, f0, f1)


def fit(results: list[dict[str, Any]]) -> dict[str, float] | None:
    """CPU% = a*N + b*N(N-1) by least squares (no intercept) over the rooms that held."""
    rows = [(r["peers"], r["peers"] * (r["peers"] - 1), r["plane_cpu_pct"]) for r in results]
    if len(rows) < 2:
        return None
    s11 = sum(a * a for a, _, _ in rows)
    s12 = sum(a * b for a, b, _ in rows)
    s22 = sum(b * b for _, b, _ in rows)
    s1y = sum(a * y for a, _, y in rows)
    s2y = sum(b * y for _, b, y in rows)
    det = s11 * s22 - s12 * s12
    if det == 0:
        return None
    return {"per_publisher_pct": (s1y * s22 - s2y * s12) / det,
            "per_viewer_leg_pct": (s11 * s2y - s12 * s1y) / det}  # fmt: skip


async def bench(sizes: list[int], warmup: float, measure: float) -> dict[str, Any]:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    clip = make_clip(OUT_DIR / "bench_janus_640x480_30fps_120s.webm")
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as folder, local_janus(Path(folder)) as janus:
        for n in sizes:
            for mode in ("builtin", "janus"):  # interleaved: both see the same machine state
                try:
                    if mode == "builtin":
                        result = await builtin_trial(n, clip, warmup, measure)
                    else:
                        result = await janus_trial(
                            n, clip, janus.url, janus.admin_key, janus.pid, warmup, measure
                        )
                except TimeoutError:  # the room never got all its legs flowing
                    result = {"mode": mode, "peers": n, "legs": 0, "seconds": 0.0,
                              "plane_cpu_pct": float("nan"), "loadgen_cpu_pct": float("nan"),
                              "leg_fps_median": 0.0, "leg_fps_p10": 0.0, "holds_30fps": False,
                              "setup_timed_out": True,
                              "load_average_1min": os.getloadavg()[0]}  # fmt: skip
                print(
                    f"  {mode:7s} N={n:2d}: plane {result['plane_cpu_pct']:6.1f}% CPU, "
                    f"loadgen {result['loadgen_cpu_pct']:6.1f}%, leg fps median "
                    f"{result['leg_fps_median']:4.1f} p10 {result['leg_fps_p10']:4.1f}, "
                    f"load {result['load_average_1min']:.1f}"
                    f"{'' if result['holds_30fps'] else '  (does not hold)'}",
                    flush=True,
                )
                results.append(result)
    largest = {
        mode: max((r["peers"] for r in results if r["mode"] == mode and r["holds_30fps"]),
                  default=0)
        for mode in ("builtin", "janus")
    }  # fmt: skip
    costs = {
        mode: fit([r for r in results if r["mode"] == mode and r["holds_30fps"]])
        for mode in ("builtin", "janus")
    }
    return {
        "benchmark": "all-to-all rooms, 640x480 30 fps VP8: builtin SFU vs Janus VideoRoom",
        "script": "bench/bench_janus.py",
        "machine": machine(),
        "warmup_s": warmup,
        "measure_s": measure,
        "trials": results,
        "largest_room_at_30fps": largest,
        "cost_fit": costs,
    }


def print_table(report: dict[str, Any]) -> None:
    m = report["machine"]
    print(f"\nmachine: {m['cpu_model']} x{m['cpus']}, {m['platform']}")
    print(f"{'N':>3} {'legs':>5} | {'builtin':>8} {'loadgen':>8} {'fps':>9} | "
          f"{'janus':>8} {'loadgen':>8} {'fps':>9}")  # fmt: skip
    by = {(r["mode"], r["peers"]): r for r in report["trials"]}
    for n in sorted({r["peers"] for r in report["trials"]}):
        cells = []
        for mode in ("builtin", "janus"):
            r = by[(mode, n)]
            mark = "" if r["holds_30fps"] else "*"
            cells.append(f"{r['plane_cpu_pct']:7.1f}% {r['loadgen_cpu_pct']:7.1f}% "
                         f"{r['leg_fps_median']:4.1f}/{r['leg_fps_p10']:4.1f}{mark}")  # fmt: skip
        print(f"{n:>3} {n * (n - 1):>5} | {cells[0]} | {cells[1]}")
    print("(* = does not hold 30 fps; fps = median / 10th percentile per leg)")
    print(f"largest room at 30 fps: {report['largest_room_at_30fps']}")
    print(f"cost fit (% of a core): {report['cost_fit']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2,3,4,6,9,12,16")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--measure", type=float, default=5.0)
    args = parser.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    report = asyncio.run(bench(sizes, args.warmup, args.measure))
    print_table(report)
    path = OUT_DIR / f"bench_janus-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=2))
    print(f"wrote {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
