"""End-to-end fixtures: the real server process, y4m fake cameras, headless Chromium."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("VIDEOGATE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--allow-loopback-in-peer-connection",
]


def _require_tools() -> None:
    # The README's test command installs both (scripts/setup.sh --with-browser).
    for tool in (CHROMIUM, "ffmpeg"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is missing: run scripts/setup.sh --with-browser")


def make_y4m(source: Path, target: Path, seconds: float = 8.0) -> Path:
    """A 640x480 fake-camera file; portrait or square clips are padded, not cropped."""
    if not target.exists():
        vf = (
            "scale=640:480:force_original_aspect_ratio=decrease,"
            "pad=640:480:(ow-iw)/2:(oh-ih)/2,fps=15"
        )
        subprocess.run(
            ["ffmpeg", "-loglevel", "error", "-y", "-i", str(source), "-t", str(seconds),
             "-vf", vf, "-pix_fmt", "yuv420p", "-an", str(target)],
            check=True,
        )
    return target


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    base_url: str
    data_dir: Path
    port: int

    def cli(self, *args: str) -> str:
        """Run ``python -m server`` against this server's data dir; return stdout."""
        done = subprocess.run(
            [sys.executable, "-m", "server", *args, "--data-dir", str(self.data_dir)],
            cwd=REPO, capture_output=True, text=True, check=True, timeout=120,
        )
        return done.stdout

    def enrol(self, room: str, name: str, *photos: Path) -> str:
        out = self.cli("enrol", room, name, *map(str, photos))
        link = next(line for line in out.splitlines() if line.startswith("Invite link: "))
        # The CLI prints the configured public URL; the test server runs on another port.
        path = link.removeprefix("Invite link: ").split("/r/", 1)[1]
        return f"{self.base_url}/r/{path}"


@pytest.fixture(scope="module")
def server_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    _require_tools()
    data_dir = tmp_path_factory.mktemp("e2e-data")
    port = free_port()
    env = {**os.environ, "VIDEOGATE_GATE_SAMPLE_FPS": "5"}
    log_path = data_dir / "server.log"
    log = log_path.open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "serve", "--loopback", "--port", str(port),
         "--data-dir", str(data_dir)],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited: {log_path.read_text()}")
            try:
                urllib.request.urlopen(f"{base}/healthz", timeout=1).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield ServerProcess(base, data_dir, port)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        print(f"--- server log ({log_path}) ---\n{log_path.read_text()[-4000:]}")


@pytest.fixture(scope="session")
def y4m_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("y4m")


class Browsers:
    """One Chromium process per participant: the fake camera file is a process flag."""

    def __init__(self) -> None:
        self._browsers: list[Browser] = []
        self._pw: object | None = None

    async def page(self, camera: Path) -> Page:
        assert self._pw is not None
        browser = await self._pw.chromium.launch(  # type: ignore[attr-defined]
            executable_path=CHROMIUM,
            headless=True,
            args=[*CHROMIUM_FLAGS, f"--use-file-for-fake-video-capture={camera}"],
        )
        self._browsers.append(browser)
        page: Page = await browser.new_page()
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
