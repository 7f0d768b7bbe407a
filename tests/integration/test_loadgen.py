"""The load generator joins synthetic participants from a pre-encoded clip."""

from __future__ import annotations

from pathlib import Path

from server.face.engine import FaceEngine
from server.loadgen.__main__ import parse_args, run
from server.store import SqliteStore

from .conftest import serve_gate


async def test_loadgen_admits_enrolled_and_reports(
    engine: FaceEngine, store: SqliteStore, tmp_path: Path, faces_dir: Path
) -> None:
    # Three synthetic participants share one invite: allow that many lobby sessions
    # (by default an invite holds one; docs/security.md).
    async with serve_gate(
        engine, store, tmp_path, "Load Room", {"policy": "off"}, limits={"lobby_per_invite": 3}
    ) as gatekeeper:
        stills = sorted((faces_dir / "videos" / "stills" / "lestari15_subject").glob("*.png"))
        invite = gatekeeper.enrol_photos("Lestari", stills)
        args = parse_args(
            [
                "--url",
                gatekeeper.base_url,
                "--room",
                gatekeeper.room_slug,
                "--invite",
                f"{gatekeeper.base_url}/r/{gatekeeper.room_slug}?invite={invite}",
                "--participants",
                "3",
                "--video",
                str(faces_dir / "videos" / "lestari_real.mp4"),
                "--loopback",
                "--timeout",
                "40",
                "--quiet",
            ]
        )
        summary = await run(args)
    assert summary["admitted"] == 3 and summary["errors"] == 0
    decision = summary["first_frame_to_decision_s"]
    assert isinstance(decision, dict) and decision["p50"] > 0


def test_invite_tokens_starting_with_a_dash_are_values() -> None:
    args = parse_args(
        ["--url", "http://127.0.0.1:1", "--room", "r", "--invite", "-abc_123", "--video", "x"]
    )
    assert args.invite == ["-abc_123"]
