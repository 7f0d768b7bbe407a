"""Two admitted participants see each other through Janus in Chromium; the gate's
verification is unchanged, the room's media goes through the VideoRoom (docs/janus.md)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.async_api import Page

from server.devserver import ServerProcess, run_server
from server.fakecam import make_y4m
from server.janus.local import LocalJanus, local_janus

from .conftest import Browsers, _require_tools
from .test_browser import ADMIT_TIMEOUT_MS, save_frame

pytestmark = pytest.mark.e2e

# What the Janus subscriber connection decoded, and the peers' <video> sizes.
JANUS_DECODED_JS = """
async () => {
  const videos = [...document.querySelectorAll('.tile.peer video')];
  const session = window.__vgjanus;
  let decoded = 0;
  if (session && session.subPc) {
    const stats = await session.subPc.getStats();
    stats.forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video') decoded += s.framesDecoded || 0;
    });
  }
  let direct = 0;
  if (window.__vgpc) {
    const stats = await window.__vgpc.getStats();
    stats.forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video') direct += s.framesDecoded || 0;
    });
  }
  return { decoded, direct, widths: videos.map((v) => v.videoWidth),
           state: session ? session.state : 'off' };
}
"""


@pytest.fixture(scope="module")
def janus_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ServerProcess, LocalJanus]]:
    _require_tools()
    with local_janus(tmp_path_factory.mktemp("janus-e2e")) as janus:
        env = {
            "VIDEOGATE_GATE_SAMPLE_FPS": "5",
            "VIDEOGATE_LIVENESS_POLICY": "off",
            "VIDEOGATE_MEDIA_BACKEND": "janus",
            "VIDEOGATE_MEDIA_JANUS_URLS": janus.url,
            "VIDEOGATE_MEDIA_JANUS_ADMIN_KEY": janus.admin_key,
        }
        with run_server(tmp_path_factory.mktemp("janus-e2e-data"), env=env) as server:
            try:
                yield server, janus
            finally:
                print(f"--- server log ---\n{server.log_path.read_text()[-3000:]}")
                print(f"--- janus log ---\n{janus.log.read_text()[-3000:]}")


async def janus_video(page: Page) -> dict[str, object]:
    result: dict[str, object] = await page.evaluate(JANUS_DECODED_JS)
    return result


async def wait_for_janus_video(page: Page, timeout_s: float = 40) -> dict[str, object]:
    deadline = time.monotonic() + timeout_s
    first = await janus_video(page)
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        now = await janus_video(page)
        widths = now["widths"]
        assert isinstance(widths, list)
        if now["decoded"] > first["decoded"] and widths and all(w > 0 for w in widths):  # type: ignore[operator]
            return now
    raise AssertionError(f"no video through Janus: {await janus_video(page)}")


async def test_two_admitted_see_each_other_through_janus(
    janus_server: tuple[ServerProcess, LocalJanus],
    browsers: Browsers,
    faces_dir: Path,
    y4m_dir: Path,
    tmp_path: Path,
) -> None:
    server, _janus = janus_server
    videos = faces_dir / "videos"
    stills = sorted((videos / "stills" / "lestari15_subject").glob("*.png"))
    lestari_link = server.enrol("Janus E2E", "Lestari", *stills)
    d9_photo = save_frame(videos / "liveportrait_d9.mp4", 0.5, tmp_path / "d9.png")
    d9_link = server.enrol("Janus E2E", "Dee Nine", d9_photo)
    cam_a = make_y4m(videos / "lestari_real.mp4", y4m_dir / "lestari_real.y4m")
    cam_b = make_y4m(videos / "liveportrait_d9.mp4", y4m_dir / "liveportrait_d9.y4m")
    page_a = await browsers.page(cam_a)
    page_b = await browsers.page(cam_b)
    await page_a.goto(lestari_link)
    await page_a.wait_for_selector("#room:not([hidden])", timeout=ADMIT_TIMEOUT_MS)
    await page_b.goto(d9_link)
    await page_b.wait_for_selector("#room:not([hidden])", timeout=ADMIT_TIMEOUT_MS)
    for page, other in ((page_a, "Dee Nine"), (page_b, "Lestari")):
        await page.wait_for_selector(f".tile.peer figcaption:has-text('{other}')", timeout=30_000)
        seen = await wait_for_janus_video(page)
        assert seen["state"] == "connected"
        # The room's media came through Janus: our own SFU forwarded nothing.
        assert seen["direct"] == 0, seen
