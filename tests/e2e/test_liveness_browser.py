"""Liveness in a real browser: a bona fide clip as the camera answers a seeded challenge."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, WebSocket
from playwright.async_api import TimeoutError as PlaywrightTimeout

from server.devserver import ServerProcess, run_server
from server.fakecam import make_y4m
from server.liveness import ChallengeAction
from tests.helpers import liveness_seed_for

from .conftest import Browsers
from .test_browser import save_frame

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    seed = liveness_seed_for(ChallengeAction.OPEN_MOUTH, ChallengeAction.SMILE)
    # Each step lasts longer than the 8 s looping camera clip, so every action the
    # clip performs falls inside its step whatever the loop's phase when it starts.
    env = {
        "VIDEOGATE_LIVENESS_STEP_TIME_S": "10",
        "VIDEOGATE_GATE_ATTEMPT_TIMEOUT_S": "45",
        "VIDEOGATE_GATE_SAMPLE_FPS": "5",
        "VIDEOGATE_LIVENESS_POLICY": "active+passive",
        "VIDEOGATE_LIVENESS_TEST_SEED": str(seed),
    }
    with run_server(tmp_path_factory.mktemp("live-data"), env=env) as server:
        yield server


# What the guided check showed and said: live-region texts in order, the most steps
# ticked at once, and a countdown seen on the prompt.
GUIDE_SPY = """
window.__guide = { said: [], ticks: 0, countdown: "" };
document.addEventListener("DOMContentLoaded", () => {
  const g = window.__guide;
  const live = document.getElementById("announce");
  // Every write to the live region, repeats included: a repeat would be said again.
  new MutationObserver(() => g.said.push(live.textContent)).observe(live, { subtree: true,
    childList: true, characterData: true });
  const seen = () => {
    g.ticks = Math.max(g.ticks, document.querySelectorAll("#steps li.done").length);
    const count = document.getElementById("countdown").textContent;
    if (count) g.countdown = count;
  };
  new MutationObserver(seen).observe(document.body, { subtree: true, childList: true,
    characterData: true, attributes: true });
});
"""


def record_server_messages(page: Page) -> list[dict[str, Any]]:
    """Every message the server sends this page over its websocket."""
    seen: list[dict[str, Any]] = []

    def on_socket(ws: WebSocket) -> None:
        ws.on("framereceived", lambda payload: seen.append(json.loads(payload)))

    page.on("websocket", on_socket)
    return seen


async def test_bona_fide_clip_passes_seeded_challenge_in_chromium(
    live_server: ServerProcess,
    browsers: Browsers,
    faces_dir: Path,
    y4m_dir: Path,
    tmp_path: Path,
) -> None:
    clip = faces_dir / "videos" / "sadtalker_aoc.mp4"
    link = live_server.enrol("Live Room", "AOC", save_frame(clip, 0.5, tmp_path / "aoc.png"))
    page = await browsers.page(make_y4m(clip, y4m_dir / "sadtalker_aoc.y4m"))
    await page.add_init_script(GUIDE_SPY)
    messages = record_server_messages(page)
    await page.goto(link)
    try:
        await page.wait_for_selector("#room:not([hidden])", timeout=60_000)
    except PlaywrightTimeout as exc:
        said = [m for m in messages if m["type"] in ("state", "prompt", "verdict", "error")]
        raise AssertionError(f"not admitted; the server said: {said}") from exc
    # The lobby is gone; the room says the check passed.
    assert "Verified" in (await page.text_content("#room-welcome") or "")
    assert await page.is_hidden("#lobby")
    actions = [m["action"] for m in messages if m["type"] == "prompt" and m.get("action")]
    assert actions == ["open_mouth", "smile"]
    # The guided check: each prompt said once in the live region, a countdown shown, a
    # tick per passed step (issue 15).
    guide = await page.evaluate("window.__guide")
    said = guide["said"]
    assert any(t.startswith("Step 1 of 2: Open your mouth") for t in said), said
    assert any(t.startswith("Step 2 of 2: Smile") for t in said), said
    assert all(a != b for a, b in zip(said, said[1:], strict=False)), said
    assert guide["ticks"] == 2 and guide["countdown"].endswith(" s"), guide
    states = [m["state"] for m in messages if m["type"] == "state"]
    assert states[:3] == ["checking", "challenge", "admitted"]
