"""Join N synthetic participants to a videogate room and report admission latency.

    python -m server.loadgen --url http://127.0.0.1:8080 --room maths-101 \\
        --invite TOKEN [--invite TOKEN ...] --participants 10 --video clip.mp4

Each participant is a real aiortc peer speaking the participant protocol; its
camera replays a VP8 transcode of ``--video`` (made once, cached) so the
generator spends almost no CPU per participant. Invites are used round-robin;
without ``--invite`` the room must be an open (1:N) room. Everything is bounded:
at most 200 participants, each waits at most ``--timeout`` seconds for a
verdict, stays ``--hold`` seconds, and the whole run stops after
``--max-seconds``. The server's CPU is sampled when ``--server-pid`` is given
(same machine only).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from ..client import GateClient
from .encoded import EncodedFileTrack, load_packets, transcode_vp8

MAX_PARTICIPANTS = 200
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Outcome:
    index: int
    admitted: bool | None
    reason: str | None
    join_to_verdict_s: float | None
    first_frame_to_decision_s: float | None
    error: str | None = None
    # Frames per second of each forwarded video track received while held (--hold),
    # measured after --warmup seconds, over tracks present when measuring began.
    received_fps: list[float] = field(default_factory=list)


def cpu_seconds(pid: int) -> float:
    """User+system CPU time of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


class Progress:
    """One stderr line, rewritten: joined / admitted / denied / pending."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total = total
        self.enabled = enabled
        self.joined = self.admitted = self.denied = self.failed = 0

    def show(self) -> None:
        if not self.enabled:
            return
        done = self.admitted + self.denied + self.failed
        bar = "#" * int(30 * done / self.total)
        sys.stderr.write(
            f"\r[{bar:<30}] joined {self.joined}/{self.total}  admitted {self.admitted}  "
            f"denied {self.denied}  errors {self.failed}  pending {self.joined - done}   "
        )
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


async def participant(
    index: int,
    args: argparse.Namespace,
    invite: str | None,
    clip: tuple[list[tuple[bytes, float, bool]], float],
    progress: Progress,
) -> Outcome:
    track = EncodedFileTrack(*clip)
    client = GateClient(
        args.url,
        args.room,
        invite=invite,
        video=track,
        name=f"load-{index}",
        loopback=args.loopback,
        video_codec="video/VP8",
        count_encoded=args.count_encoded,
    )
    try:
        await client.join()
        progress.joined += 1
        progress.show()
        verdict = await client.wait_verdict(args.timeout)
        result = client.result
        assert result.joined_at is not None and result.verdict_at is not None
        first = result.first_frame_at
        outcome = Outcome(
            index,
            bool(verdict["admitted"]),
            verdict.get("reason"),
            result.verdict_at - result.joined_at,
            None if first is None else result.verdict_at - first,
        )
        if outcome.admitted:
            progress.admitted += 1
        else:
            progress.denied += 1
        progress.show()
        if outcome.admitted and args.hold > args.warmup > 0:
            outcome.received_fps = await received_fps(client, args.warmup, args.hold)
        else:
            await asyncio.sleep(args.hold)
        return outcome
    except Exception as exc:  # a participant failing is a result, not a crash
        progress.failed += 1
        progress.show()
        return Outcome(index, None, None, None, None, f"{type(exc).__name__}: {exc}")
    finally:
        await client.close()


async def received_fps(client: GateClient, warmup: float, hold: float) -> list[float]:
    """Forwarded video frame rates seen by this participant between warmup and hold."""
    await asyncio.sleep(warmup)
    tracks = [t for t in client.result.received if t.kind == "video"]
    start, counts = time.monotonic(), [t.frames for t in tracks]
    await asyncio.sleep(hold - warmup)
    elapsed = time.monotonic() - start
    return [(t.frames - n) / elapsed for t, n in zip(tracks, counts, strict=True)]


async def run(args: argparse.Namespace) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        cache = args.clip_cache or Path(tmp)
        target = cache / f"{Path(args.video).stem}-{args.fps}fps.webm"
        clip_path = transcode_vp8(Path(args.video), target, fps=args.fps)
        clip = load_packets(clip_path)
    invites = args.invite or [None]
    progress = Progress(args.participants, not args.quiet)
    cpu0 = cpu_seconds(args.server_pid) if args.server_pid else None
    t0 = time.monotonic()
    tasks = [
        asyncio.create_task(participant(i, args, invites[i % len(invites)], clip, progress))
        for i in range(args.participants)
    ]
    done, pending = await asyncio.wait(tasks, timeout=args.max_seconds)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    progress.close()
    wall = time.monotonic() - t0
    cpu = (cpu_seconds(args.server_pid) - cpu0) if args.server_pid and cpu0 is not None else None
    outcomes = [t.result() for t in done]
    decisions = [
        o.first_frame_to_decision_s
        for o in outcomes
        if o.admitted and o.first_frame_to_decision_s is not None
    ]
    joins = [o.join_to_verdict_s for o in outcomes if o.join_to_verdict_s is not None]
    rates = [r for o in outcomes for r in o.received_fps]

    def stats(values: list[float]) -> dict[str, float] | None:
        if not values:
            return None
        return {"p50": statistics.median(values), "p95": percentile(values, 95), "max": max(values)}

    return {
        "participants": args.participants,
        "admitted": sum(1 for o in outcomes if o.admitted),
        "denied": sum(1 for o in outcomes if o.admitted is False),
        "errors": sum(1 for o in outcomes if o.error) + len(pending),
        "first_frame_to_decision_s": stats(decisions),
        "join_to_verdict_s": stats(joins),
        "received_video_fps": (
            {"min": min(rates), "p50": statistics.median(rates), "tracks": len(rates)}
            if rates
            else None
        ),
        "wall_s": wall,
        "server_cpu_s": cpu,
        "server_cpu_cores": None if cpu is None else cpu / wall,
        "outcomes": [asdict(o) for o in sorted(outcomes, key=lambda o: o.index)],
    }


def print_summary(summary: dict[str, object]) -> None:
    print(
        f"participants {summary['participants']}: admitted {summary['admitted']}, "
        f"denied {summary['denied']}, errors {summary['errors']}, "
        f"wall {summary['wall_s']:.1f} s"
    )
    print(f"{'measure':32} {'p50 s':>8} {'p95 s':>8} {'max s':>8}")
    for key in ("first_frame_to_decision_s", "join_to_verdict_s"):
        row = summary[key]
        if isinstance(row, dict):
            print(f"{key:32} {row['p50']:8.2f} {row['p95']:8.2f} {row['max']:8.2f}")
    rates = summary.get("received_video_fps")
    if isinstance(rates, dict):
        print(f"received video: {rates['tracks']} tracks, min {rates['min']:.1f} fps, "
              f"median {rates['p50']:.1f} fps")  # fmt: skip
    if summary["server_cpu_cores"] is not None:
        print(
            f"server CPU: {summary['server_cpu_s']:.1f} s = "
            f"{summary['server_cpu_cores']:.2f} cores on average"
        )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m server.loadgen",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--url", required=True, help="server base URL, e.g. http://host:8080")
    parser.add_argument("--room", required=True, help="room link name (the /r/NAME part)")
    parser.add_argument("--invite", action="append", help="invite token or link (repeatable)")
    parser.add_argument("--participants", type=int, default=1)
    parser.add_argument("--video", required=True, help="camera clip (any format ffmpeg reads)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to a verdict")
    parser.add_argument("--hold", type=float, default=0.0, help="seconds to stay once decided")
    parser.add_argument(
        "--warmup", type=float, default=0.0,
        help="with --hold: measure received video fps from this many seconds after admission",
    )  # fmt: skip
    parser.add_argument("--fps", type=int, default=15, help="camera frame rate sent")
    parser.add_argument(
        "--clip-cache", type=Path,
        help="keep the VP8 transcode in this folder and reuse it (benchmarks running many)",
    )  # fmt: skip
    parser.add_argument(
        "--count-encoded", action="store_true",
        help="count received frames before decoding (cheap viewers; no picture size)",
    )  # fmt: skip
    parser.add_argument("--max-seconds", type=float, default=300.0, help="whole-run bound")
    parser.add_argument("--loopback", action="store_true", help="offer 127.0.0.1 candidates")
    parser.add_argument("--server-pid", type=int, help="sample this local process's CPU")
    parser.add_argument("--json", type=Path, help="write the summary as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    # Invite tokens are URL-safe base64 and may start with "-", which argparse would
    # take for an option: bind each --invite to its value before parsing.
    raw = list(sys.argv[1:] if argv is None else argv)
    joined: list[str] = []
    while raw:
        item = raw.pop(0)
        if item == "--invite" and raw:
            item = f"--invite={raw.pop(0)}"
        joined.append(item)
    args = parser.parse_args(joined)
    if not 1 <= args.participants <= MAX_PARTICIPANTS:
        parser.error(f"--participants must be 1..{MAX_PARTICIPANTS}")
    if not 0 < args.max_seconds <= 3600:
        parser.error("--max-seconds must be in (0, 3600]")
    # Accept whole invite links as well as bare tokens.
    args.invite = [
        parse_qs(urlparse(i).query).get("invite", [i])[0] if "invite=" in i else i
        for i in (args.invite or [])
    ]
    args.url = args.url.rstrip("/")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    summary = asyncio.run(run(args))
    print_summary(summary)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2))
    return 0 if summary["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
