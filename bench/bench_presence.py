"""Continuous presence cost per participant vs decoding every frame (same run).

Ours: every ``--interval`` seconds, decode a run of the participant's VP8 stream
from a keyframe to a frame drawn at random 1..``--run-frames``-1 after it (a fresh
decoder, as ``server/rtc/spotcheck.decode_run`` does; one more frame is decoded, as
the real decoder may get one before it stops), convert the drawn frame to RGB and
run the presence check (detect + embed every face + match,
``server/presence/check.py``) and the monitor. Baseline: decoding every frame of the
same stream, which is what keeping the gate's decoder on after admission would cost
before any face analysis. CPU is process time (all threads). Target: ours <= 1 % of
one core per participant at the default 10 s interval.

Prints a table and writes JSON to bench/out/. Timings never go into pass/fail tests.

    .venv/bin/python bench/bench_presence.py [--seconds 60] [--interval 10] [--fps 30]
        [--run-frames 10]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from server.face.engine import FaceEngine  # noqa: E402
from server.presence import PresenceConfig, PresenceMonitor  # noqa: E402
from server.presence.check import presence_check  # noqa: E402
from server.rtc.spotcheck import choose_offset  # noqa: E402

DATA = Path(os.environ.get("VIDEOGATE_TEST_DATA", REPO.parent / "shared" / "data"))
W, H = 640, 480


def source_frames(clip: Path, fps: int) -> list[av.VideoFrame]:
    out = []
    with av.open(str(clip)) as container:
        for frame in container.decode(video=0):
            out.append(frame.reformat(width=W, height=H, format="yuv420p"))
            if len(out) >= fps * 10:
                break
    return out


def encode(frames: list[av.VideoFrame], seconds: float, fps: int, interval: float) -> list:  # type: ignore[type-arg]
    """VP8 packets for ``seconds`` of looped video, keyframes at 0 and every interval."""
    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height = W, H
    codec.pix_fmt = "yuv420p"
    codec.time_base = Fraction(1, fps)
    codec.framerate = Fraction(fps, 1)
    codec.bit_rate = 1_000_000
    codec.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    codec.gop_size = 100_000  # keyframes only when asked (PLI), as in a call
    packets: list[tuple[bytes, bool]] = []
    every = int(round(interval * fps))
    for i in range(int(seconds * fps)):
        frame = frames[i % len(frames)]
        frame.pts = i
        frame.time_base = codec.time_base
        frame.pict_type = (
            av.video.frame.PictureType.I if i % every == 0 else av.video.frame.PictureType.NONE
        )
        for packet in codec.encode(frame):
            packets.append((bytes(packet), bool(packet.is_keyframe)))
    for packet in codec.encode(None):
        packets.append((bytes(packet), bool(packet.is_keyframe)))
    return packets


def decode_all(packets: list[tuple[bytes, bool]]) -> tuple[float, int]:
    decoder = av.CodecContext.create("libvpx", "r")
    count = 0
    start = time.process_time()
    for data, _key in packets:
        count += len(decoder.decode(av.Packet(data)))
    return time.process_time() - start, count


def presence_run(
    packets: list[tuple[bytes, bool]],
    engine: FaceEngine,
    templates: np.ndarray,
    interval: float,
    run_frames: int,
) -> tuple[float, int, int]:
    monitor = PresenceMonitor(PresenceConfig(interval_s=interval))
    rng = random.Random(1)
    keyframes = [i for i, (_d, key) in enumerate(packets) if key]
    start = time.process_time()
    decoded = 0
    for index in keyframes:
        decoder = av.CodecContext.create("libvpx", "r")  # decoding restarts at the keyframe
        frames = []
        offset = choose_offset(rng, run_frames)
        for data, _key in packets[index : index + offset + 2]:
            frames += decoder.decode(av.Packet(data))
        decoded += len(frames)
        rgb = frames[min(offset, len(frames) - 1)].to_ndarray(format="rgb24")
        check = presence_check(engine, rgb, templates, 0.5, time.monotonic())
        monitor.feed(check)
    return time.process_time() - start, len(keyframes), decoded


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clip", type=Path, default=DATA / "faces/videos/lestari_real.mp4")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--run-frames", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3, help="repeat ours for a steadier mean")
    args = parser.parse_args()

    engine = FaceEngine.load()
    frames = source_frames(args.clip, args.fps)
    enrol = engine.enrol_frame(frames[0].to_ndarray(format="rgb24"))
    assert enrol.embedding is not None, enrol.reasons
    templates = enrol.embedding[None, :]
    packets = encode(frames, args.seconds, args.fps, args.interval)
    # warm up both paths (model sessions, codec init)
    presence_run(packets[:2], engine, templates, args.interval, args.run_frames)

    base_cpu, base_frames = decode_all(packets)
    ours_cpu = 0.0
    checks = decoded = 0
    for _ in range(args.repeat):
        cpu, n, d = presence_run(packets, engine, templates, args.interval, args.run_frames)
        ours_cpu += cpu
        checks += n
        decoded += d
    ours_cpu /= args.repeat
    checks //= args.repeat
    decoded //= args.repeat

    seconds = args.seconds
    result = {
        "bench": "presence",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version()},
        "stream": {"width": W, "height": H, "fps": args.fps, "seconds": seconds,
                   "clip": args.clip.name},
        "interval_s": args.interval,
        "run_frames": args.run_frames,
        "ours": {
            "checks": checks,
            "frames_decoded": decoded,
            "cpu_s": round(ours_cpu, 4),
            "cpu_ms_per_check": round(1000 * ours_cpu / max(checks, 1), 2),
            "core_percent_per_participant": round(100 * ours_cpu / seconds, 3),
        },
        "baseline_decode_every_frame": {
            "frames_decoded": base_frames,
            "cpu_s": round(base_cpu, 4),
            "core_percent_per_participant": round(100 * base_cpu / seconds, 3),
        },
        "ratio_ours_vs_baseline": round(ours_cpu / base_cpu, 4) if base_cpu else None,
        "target_core_percent": 1.0,
    }  # fmt: skip
    result["meets_target"] = result["ours"]["core_percent_per_participant"] <= 1.0
    print(f"{'':34} {'ours (spot-check runs)':>24} {'baseline (decode all)':>24}")
    print(f"{'frames decoded':34} {decoded:>24} {base_frames:>24}")
    print(f"{'CPU seconds':34} {ours_cpu:>24.3f} {base_cpu:>24.3f}")
    print(
        f"{'% of one core per participant':34} "
        f"{result['ours']['core_percent_per_participant']:>24.3f} "
        f"{result['baseline_decode_every_frame']['core_percent_per_participant']:>24.3f}"
    )
    ours = result["ours"]
    print(
        f"ms per check: {ours['cpu_ms_per_check']}; ratio ours/baseline: "
        f"{result['ratio_ours_vs_baseline']}; target <= 1 %: {result['meets_target']}"
    )
    out = REPO / "bench" / "out" / f"bench_presence-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
