"""End-to-end fixtures: the real server process, y4m fake cameras, headless Chromium."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright

from server.devserver import ServerProcess, run_server
from server.fakecam import AUTOSTART_SCRIPT, CHROMIUM, chromium_args


def _require_tools() -> None:
    # The README's test command installs both (scripts/setup.sh --with-browser).
    for tool in (CHROMIUM, "ffmpeg"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is missing: run scripts/setup.sh --with-browser")


@pytest.fixture(scope="module")
def server_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    _require_tools()
    data_dir = tmp_path_factory.mktemp("e2e-data")
    # Identity and media flow; liveness in the browser is tested with its own server.
    env = {"VIDEOGATE_GATE_SAMPLE_FPS": "5", "VIDEOGATE_LIVENESS_POLICY": "off"}
    with run_server(data_dir, env=env) as server:
        try:
            yield server
        finally:
            print(f"--- server log ---\n{server.log_path.read_text()[-4000:]}")


@pytest.fixture(scope="session")
def y4m_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("y4m")


class Browsers:
    """One Chromium process per participant: the fake camera file is a process flag."""

    def __init__(self) -> None:
        self._browsers: list[Browser] = []
        self._pw: object | None = None

    async def page(
        self, camera: Path, *, autostart: bool = True, args: tuple[str, ...] | None = None
    ) -> Page:
        """``autostart``: go past the pre-join screen at once (tests of the pre-join
        itself press "Start check"); ``args`` replace the Chromium flags."""
        assert self._pw is not None
        browser = await self._pw.chromium.launch(  # type: ignore[attr-defined]
            executable_path=CHROMIUM,
            headless=True,
            args=list(args) if args is not None else chromium_args(camera),
        )
        self._browsers.append(browser)
        page: Page = await browser.new_page()
        if autostart:
            await page.add_init_script(AUTOSTART_SCRIPT)
        page.on("console", lambda msg: print(f"[browser {msg.type}] {msg.text}"))
        return page


@pytest.fixture
async def browsers() -> AsyncIterator[Browsers]:
    holder = Browsers()
    async with async_playwright() as pw:
        holder._pw = pw
        try:
            yield holder
        finally:
            for browser in holder._browsers:
                await browser.close()
