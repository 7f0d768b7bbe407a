"""The load generator measures forwarded video while participants are held in a room
(bench/bench_cluster.py relies on it): frames are counted before decoding."""

from __future__ import annotations

from pathlib import Path

from server.face.engine import FaceEngine
from server.loadgen.__main__ import parse_args, run
from server.store import SqliteStore

from .conftest import serve_gate


async def test_held_participants_report_received_video(
    engine: FaceEngine, store: SqliteStore, tmp_path: Path, faces_dir: Path
) -> None:
    async with serve_gate(engine, store, tmp_path, "Held Room", {"policy": "off"}) as gk:
        stills = sorted((faces_dir / "videos" / "stills" / "lestari15_subject").glob("*.png"))
        # Two enrolled people (one face): one seat each, so both stay admitted.
        invites = [gk.enrol_photos(name, stills) for name in ("First", "Second")]
        argv = ["--url", gk.base_url, "--room", gk.room_slug, "--participants", "2",
                "--video", str(faces_dir / "videos" / "lestari_real.mp4"), "--loopback",
                "--timeout", "40", "--quiet", "--hold", "5", "--warmup", "2.5",
                "--fps", "15", "--count-encoded"]  # fmt: skip
        for invite in invites:
            argv += ["--invite", invite]
        summary = await run(parse_args(argv))
    assert summary["admitted"] == 2 and summary["errors"] == 0
    received = summary["received_video_fps"]
    # Each participant measured the other's forwarded video (the rate is the bench's).
    assert isinstance(received, dict) and received["tracks"] == 2
    assert received["min"] > 0
