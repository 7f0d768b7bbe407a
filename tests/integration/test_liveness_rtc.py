"""Liveness through the real gate over WebRTC: aiortc client peers send shared clips.

The server runs the default policy (active+passive) with the TEST-ONLY challenge seed
(``[liveness] test_seed``) chosen so the drawn actions are ones the looping clip
performs on its own (sadtalker_aoc talks and smiles all the time;
blinks are judged in tests/liveness).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from server.client import GateClient
from server.face.engine import FaceEngine
from server.liveness import ChallengeAction
from server.store import SqliteStore
from tests.helpers import liveness_seed_for

from .conftest import Gatekeeper, serve_gate, video_frame

VERDICT_TIMEOUT = 60.0


@pytest.fixture
def seed() -> int:
    return liveness_seed_for(ChallengeAction.OPEN_MOUTH, ChallengeAction.SMILE)


@pytest.fixture
async def live_gatekeeper(
    engine: FaceEngine, store: SqliteStore, tmp_path: Path, seed: int
) -> AsyncIterator[Gatekeeper]:
    liveness = {"policy": "active+passive", "test_seed": seed}
    async with serve_gate(engine, store, tmp_path, "Liveness Room", liveness) as gatekeeper:
        yield gatekeeper


async def test_bona_fide_clip_passes_a_seeded_challenge(
    live_gatekeeper: Gatekeeper, faces_dir: Path
) -> None:
    clip = faces_dir / "videos" / "sadtalker_aoc.mp4"
    invite = live_gatekeeper.enrol_frame("AOC", video_frame(clip, 0.5))
    client = GateClient(
        live_gatekeeper.base_url, live_gatekeeper.room_slug, invite=invite, video=str(clip)
    )
    try:
        await client.join()
        verdict = await client.wait_verdict(VERDICT_TIMEOUT)
        audit = [r.details for r in live_gatekeeper.store.audit_log(live_gatekeeper.room_id)]
        assert verdict["admitted"] is True, [a.get("detail") for a in audit]
        prompts = client.result.of_type("prompt")
        assert [p["action"] for p in prompts if p["action"]] == ["open_mouth", "smile"]
        assert prompts[0]["text"] and prompts[0]["steps"] == 2 and prompts[0]["time_limit_s"] > 0
        states = [m["state"] for m in client.result.of_type("state")]
        assert states[:3] == ["checking", "challenge", "admitted"]
    finally:
        await client.close()


async def test_replay_of_enrolled_person_is_denied_for_liveness(
    live_gatekeeper: Gatekeeper, faces_dir: Path
) -> None:
    stills = sorted((faces_dir / "videos" / "stills" / "lestari15_subject").glob("*.png"))
    invite = live_gatekeeper.enrol_photos("Lestari", stills)
    client = GateClient(
        live_gatekeeper.base_url,
        live_gatekeeper.room_slug,
        invite=invite,
        video=str(faces_dir / "videos" / "lestari_replay.mp4"),
    )
    try:
        await client.join()
        verdict = await client.wait_verdict(VERDICT_TIMEOUT)
        assert verdict["admitted"] is False
        assert verdict["reason"] == "liveness", verdict
        assert verdict["attempts_left"] == 2
        assert client.video_frames_received() == 0
    finally:
        await client.close()
    failed = [
        r
        for r in live_gatekeeper.store.audit_log(live_gatekeeper.room_id)
        if r.event == "attempt.failed"
    ]
    assert failed and failed[0].details["reason"] == "liveness"
