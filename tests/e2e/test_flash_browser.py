"""flash.js in headless Chromium: the colours in order, announced first, then gone; too
fast a sequence and rooms that never flash are refused. (Timing accuracy is not asserted
here: timings belong in bench scripts.)"""

from __future__ import annotations

from typing import Any

from playwright.async_api import Page

from server.devserver import ServerProcess

from .conftest import Browsers

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
