"""The page after a network blip (issue 11, defect 6), in Chromium against the real
server: the websocket is cut by a Playwright route, as a dropped network would.

- a blip inside the grace window: the page rejoins without re-verifying, stays in the
  room, and sends its mute state again;
- a blip that outlasts the grace window (resume refused): the page goes back to the
  lobby, where the new verification's prompts are, and is admitted again.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.async_api import Page, WebSocketRoute

from server.devserver import ServerProcess, run_server
from server.fakecam import make_y4m

from .conftest import Browsers

pytestmark = pytest.mark.e2e

ADMIT_TIMEOUT_MS = 60_000


class Cutter:
    """Routes the page's websocket through the test, which can cut it (both sides)."""

    def __init__(self) -> None:
        self.routes: list[tuple[WebSocketRoute, WebSocketRoute]] = []
        self.sent: list[list[dict[str, object]]] = []  # page -> server, per connection

    async def attach(self, page: Page) -> None:
        def handler(ws: WebSocketRoute) -> None:
            server = ws.connect_to_server()
            sent: list[dict[str, object]] = []
            self.sent.append(sent)

            def from_page(message: str | bytes) -> None:
                if isinstance(message, str):
                    sent.append(json.loads(message))
                server.send(message)

            ws.on_message(from_page)
            self.routes.append((ws, server))

        await page.route_web_socket("**/ws", handler)

    async def cut(self) -> None:
        page_side, server_side = self.routes[-1]
        await server_side.close()
        await page_side.close(code=4000, reason="network lost")


async def wait_until(page: Page, selector: str, visible: bool, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await page.is_visible(selector) == visible:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{selector} never became {'visible' if visible else 'hidden'}")


def serve(tmp_path_factory: pytest.TempPathFactory, grace_s: str) -> Iterator[ServerProcess]:
    env = {
        "VIDEOGATE_GATE_SAMPLE_FPS": "5",
        "VIDEOGATE_LIVENESS_POLICY": "off",
        "VIDEOGATE_GATE_REJOIN_GRACE_S": grace_s,
    }
    with run_server(tmp_path_factory.mktemp("blip-data"), env=env) as server:
        yield server


@pytest.fixture(scope="module")
def patient_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    yield from serve(tmp_path_factory, "30")


@pytest.fixture(scope="module")
def hasty_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    # The page reconnects 0.5 s after the cut: a 0.1 s window has closed by then.
    yield from serve(tmp_path_factory, "0.1")


async def admitted_page(
    server: ServerProcess, browsers: Browsers, faces_dir: Path, y4m_dir: Path, cutter: Cutter
) -> Page:
    videos = faces_dir / "videos"
    stills = sorted((videos / "stills" / "lestari15_subject").glob("*.png"))
    link = server.enrol("Blip Room", "Lestari", *stills)
    page = await browsers.page(make_y4m(videos / "lestari_real.mp4", y4m_dir / "lestari_real.y4m"))
    await cutter.attach(page)
    await page.goto(link)
    await page.wait_for_selector("#room:not([hidden])", timeout=ADMIT_TIMEOUT_MS)
    return page


async def test_a_short_blip_resumes_in_the_room_and_resends_the_mute_state(
    patient_server: ServerProcess, browsers: Browsers, faces_dir: Path, y4m_dir: Path
) -> None:
    cutter = Cutter()
    page = await admitted_page(patient_server, browsers, faces_dir, y4m_dir, cutter)
    await page.click("#mute")
    await cutter.cut()
    deadline = time.monotonic() + 30
    while len(cutter.sent) < 2 or not any(m.get("type") == "media" for m in cutter.sent[-1]):
        assert time.monotonic() < deadline, cutter.sent[-1] if len(cutter.sent) > 1 else "no rejoin"
        await asyncio.sleep(0.2)
    join = next(m for m in cutter.sent[1] if m.get("type") == "join")
    assert join["rejoin"]  # the tab's token
    media = next(m for m in cutter.sent[1] if m.get("type") == "media")
    assert (media["audio"], media["video"]) == (False, True)
    assert await page.is_visible("#room") and await page.is_hidden("#lobby")
    assert len(cutter.sent) == 2  # one reconnection, not a loop


async def test_a_refused_resume_goes_back_to_the_lobby_and_verifies_again(
    hasty_server: ServerProcess, browsers: Browsers, faces_dir: Path, y4m_dir: Path
) -> None:
    cutter = Cutter()
    page = await admitted_page(hasty_server, browsers, faces_dir, y4m_dir, cutter)
    await cutter.cut()
    # The room view goes; the lobby (preview, prompts, progress) is where the new
    # verification happens.
    await wait_until(page, "#lobby", True, 20)
    assert await page.is_hidden("#room")
    status = await page.text_content("#status") or ""
    assert "checks you again" in status or "Checking" in status, status
    await page.wait_for_selector("#room:not([hidden])", timeout=ADMIT_TIMEOUT_MS)
    assert len(cutter.sent) == 2
