"""The screen-light challenge in headless Chromium.

flash.js alone: the colours in order, announced first, then gone; too fast a sequence
and rooms that never flash are refused (timing accuracy is not asserted: timings belong
in bench scripts). Through the real server: a `light` room sends the sequence, the page
flashes it, and a pre-recorded clip as the camera -- which cannot answer -- is refused.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page

from server.devserver import ServerProcess, run_server
from server.fakecam import make_y4m

from .conftest import Browsers
from .test_browser import save_frame
from .test_liveness_browser import record_server_messages

pytestmark = pytest.mark.e2e

RUN = """async ([sequence, noFlashing]) => {
  const { runFlash } = await import("/static/flash.js");
  const root = document.createElement("div");
  if (noFlashing) root.dataset.noFlashing = "";
  const said = [];
  const seen = [];
  let watching = true;
  const watch = () => {
    const el = document.querySelector(".flash-overlay");
    const colour = el ? getComputedStyle(el).backgroundColor : null;
    if (seen[seen.length - 1] !== colour) seen.push(colour);
    if (watching) requestAnimationFrame(watch);
  };
  requestAnimationFrame(watch);
  const how = await runFlash({ sequence, lead_ms: 100 }, { announce: (t) => said.push(t), root });
  await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  watching = false;
  return { how, said, seen, left: document.querySelectorAll(".flash-overlay").length };
}"""

SEQUENCE = [
    {"color": "#ff3030", "ms": 400},
    {"color": "#30ffff", "ms": 450},
    {"color": "#3030ff", "ms": 400},
]


async def run(page: Page, sequence: list[dict[str, Any]], no_flashing: bool = False) -> Any:
    return await page.evaluate(RUN, [sequence, no_flashing])


async def test_flash_js_shows_the_sequence_in_order(
    server_process: ServerProcess, browsers: Browsers, y4m_dir: Any
) -> None:
    page = await browsers.page(camera=y4m_dir / "unused.y4m")
    await page.goto(server_process.base_url)
    result = await run(page, SEQUENCE)
    assert result["how"] == "done" and result["left"] == 0
    assert "flash colours" in result["said"][0] and "keep your face in view" in result["said"][0]
    colours = [c for c in result["seen"] if c is not None]
    assert colours == ["rgb(255, 48, 48)", "rgb(48, 255, 255)", "rgb(48, 48, 255)"]
    assert result["seen"][-1] is None  # the page is back

    too_fast = [{"color": "#ff3030", "ms": 200}, {"color": "#30ffff", "ms": 200}]
    result = await run(page, too_fast)
    assert result["how"] == "refused" and [c for c in result["seen"] if c] == []

    result = await run(page, SEQUENCE, no_flashing=True)
    assert result["how"] == "disabled" and [c for c in result["seen"] if c] == []


@pytest.fixture(scope="module")
def light_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {"VIDEOGATE_LIVENESS_POLICY": "light", "VIDEOGATE_GATE_MAX_ATTEMPTS": "1"}
    with run_server(tmp_path_factory.mktemp("light-data"), env=env) as server:
        yield server


async def test_a_recorded_clip_does_not_answer_the_flashes(
    light_server: ServerProcess,
    browsers: Browsers,
    faces_dir: Path,
    y4m_dir: Path,
    tmp_path: Path,
) -> None:
    clip = faces_dir / "videos" / "liveportrait_d10.mp4"
    link = light_server.enrol("Light Room", "D10", save_frame(clip, 0.5, tmp_path / "d10.png"))
    page = await browsers.page(make_y4m(clip, y4m_dir / "liveportrait_d10.y4m"))
    messages = record_server_messages(page)
    await page.goto(link)
    assert "flash colours" in (await page.text_content("#flash-notice") or "")
    await page.wait_for_selector(".flash-overlay", state="attached", timeout=60_000)
    await page.wait_for_selector("#verdict:not([hidden])", timeout=60_000)
    flashes = [m for m in messages if m["type"] == "flash"]
    assert len(flashes) == 1 and 7 <= len(flashes[0]["sequence"]) <= 8
    assert all(s["ms"] >= 400 and s["color"].startswith("#") for s in flashes[0]["sequence"])
    verdicts = [m for m in messages if m["type"] == "verdict"]
    assert verdicts[-1]["admitted"] is False and verdicts[-1]["reason"] == "liveness"
    assert await page.locator(".flash-overlay").count() == 0
    with sqlite3.connect(light_server.data_dir / "videogate.sqlite3") as db:
        details = [r[0] for r in db.execute("SELECT details FROM audit WHERE event LIKE '%denied'")]
    print("audit details:", details)
    assert any('"light:' in d for d in details), details
