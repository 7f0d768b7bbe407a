"""Headless Chromium with fake cameras made from the shared videos, against the real server."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import av
import pytest
from playwright.async_api import Page

from server.devserver import ServerProcess
from server.fakecam import make_y4m

from .conftest import Browsers

pytestmark = pytest.mark.e2e

ADMIT_TIMEOUT_MS = 60_000

FRAMES_DECODED_JS = """
async () => {
  const videos = [...document.querySelectorAll('.tile.peer video')];
  let decoded = 0;
  if (window.__vgpc) {
    const stats = await window.__vgpc.getStats();
    stats.forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video') decoded += s.framesDecoded || 0;
    });
  }
  return { decoded, widths: videos.map((v) => v.videoWidth) };
}
"""


async def peer_video(page: Page) -> dict[str, object]:
    result: dict[str, object] = await page.evaluate(FRAMES_DECODED_JS)
    return result


async def wait_for_peer_video(page: Page, timeout_s: float = 30) -> dict[str, object]:
    """Poll getStats until decoded frames grow and the peer's <video> has a size."""
    deadline = time.monotonic() + timeout_s
    first = await peer_video(page)
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        now = await peer_video(page)
        widths = now["widths"]
        assert isinstance(widths, list)
        if now["decoded"] > first["decoded"] and widths and all(w > 0 for w in widths):  # type: ignore[operator]
            return now
    raise AssertionError(f"peer video never played: {await peer_video(page)}")


def save_frame(video: Path, at_s: float, target: Path) -> Path:
    with av.open(str(video)) as container:
        for frame in container.decode(video=0):
            if frame.time is not None and frame.time >= at_s:
                frame.to_image().save(target)
                return target
    raise AssertionError(f"{video} shorter than {at_s}s")


async def join(page: Page, link: str) -> None:
    """Opening the link is joining: the camera starts and the gate checks at once."""
    await page.goto(link)


async def test_two_enrolled_see_each_other_and_stranger_is_refused(
    server_process: ServerProcess,
    browsers: Browsers,
    faces_dir: Path,
    y4m_dir: Path,
    tmp_path: Path,
) -> None:
    videos = faces_dir / "videos"
    stills = sorted((videos / "stills" / "lestari15_subject").glob("*.png"))
    lestari_link = server_process.enrol("E2E Room", "Lestari", *stills)
    d9_photo = save_frame(videos / "liveportrait_d9.mp4", 0.5, tmp_path / "d9.png")
    d9_link = server_process.enrol("E2E Room", "Dee Nine", d9_photo)

    cam_lestari = make_y4m(videos / "lestari_real.mp4", y4m_dir / "lestari_real.y4m")
    cam_d9 = make_y4m(videos / "liveportrait_d9.mp4", y4m_dir / "liveportrait_d9.y4m")
    cam_stranger = make_y4m(videos / "liveportrait_d3.mp4", y4m_dir / "liveportrait_d3.y4m")

    page_a = await browsers.page(cam_lestari)
    page_b = await browsers.page(cam_d9)
    page_c = await browsers.page(cam_stranger)

    await join(page_a, lestari_link)
    await page_a.wait_for_selector("#room:not([hidden])", timeout=ADMIT_TIMEOUT_MS)
    await join(page_b, d9_link)
    await page_b.wait_for_selector("#room:not([hidden])", timeout=ADMIT_TIMEOUT_MS)
    # The stranger holds Dee Nine's invite but shows another face.
    await join(page_c, d9_link)

    for page, other in ((page_a, "Dee Nine"), (page_b, "Lestari")):
        await page.wait_for_selector(f".tile.peer figcaption:has-text('{other}')", timeout=30_000)
        # Admitted: the lobby (its preview, progress, verdict) is gone, not stacked above
        # the room (author CSS once overrode [hidden]); the room's controls are visible.
        assert await page.is_hidden("#lobby") and await page.is_hidden("#progress")
        assert await page.is_visible("#leave")
        seen = await wait_for_peer_video(page)
        assert seen["widths"] and all(w > 0 for w in seen["widths"])  # type: ignore[union-attr]

    await page_c.wait_for_selector("#verdict:not([hidden])", timeout=ADMIT_TIMEOUT_MS)
    reason = await page_c.text_content("#verdict-reason")
    assert reason is not None and "Not recognised" in reason
    assert await page_c.is_hidden("#room")
    assert "attempts left" in (await page_c.text_content("#verdict-next") or "")
    # The refused page never received room media.
    assert (await peer_video(page_c))["decoded"] == 0
