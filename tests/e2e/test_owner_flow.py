"""The owner's whole journey in headless Chromium against the real server process:
sign up, create a room, enrol a person from photos (per-photo verdicts), copy an
invite link, restart the server, and the link admits the person through the gate."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.async_api import Page, async_playwright

from server.devserver import REPO, free_port
from server.fakecam import AUTOSTART_SCRIPT, CHROMIUM, CHROMIUM_FLAGS, make_y4m

from .conftest import _require_tools

pytestmark = pytest.mark.e2e

ADMIT_TIMEOUT_MS = 60_000


class RestartableServer:
    """``python -m server serve`` on a fixed port and data dir, stoppable and restartable."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[str] | None = None
        self.log_path = data_dir / "server.log"

    def start(self) -> None:
        log = self.log_path.open("a")
        # Liveness has its own tests (tests/liveness, tests/integration); this one is about
        # the owner's journey and face verification, and a looping clip cannot follow
        # randomly drawn prompts.
        env = {**os.environ, "VIDEOGATE_GATE_SAMPLE_FPS": "5", "VIDEOGATE_LIVENESS_POLICY": "off"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "server", "serve", "--loopback", "--port", str(self.port),
             "--data-dir", str(self.data_dir)],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-3000:]}")
            try:
                urllib.request.urlopen(f"{self.base_url}/healthz", timeout=1).read()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


@pytest.fixture
def owner_server(tmp_path: Path) -> Iterator[RestartableServer]:
    _require_tools()
    server = RestartableServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        print(f"--- server log ---\n{server.log_path.read_text()[-4000:]}")


def log_console(page: Page, who: str) -> None:
    page.on("console", lambda msg: print(f"[{who} {msg.type}] {msg.text}"))


async def test_owner_signs_up_enrols_invites_and_the_link_admits(
    owner_server: RestartableServer, faces_dir: Path, y4m_dir: Path, tmp_path: Path
) -> None:
    base = owner_server.base_url
    videos = faces_dir / "videos"
    stills = sorted((videos / "stills" / "lestari15_subject").glob("*.png"))
    group = faces_dir / "group" / "two_people.jpg"
    camera = make_y4m(videos / "lestari_real.mp4", y4m_dir / "lestari_real.y4m")

    async with async_playwright() as pw:
        owner_browser = await pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS
        )
        guest_browser = await pw.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=[*CHROMIUM_FLAGS, f"--use-file-for-fake-video-capture={camera}"],
        )  # fmt: skip
        try:
            context = await owner_browser.new_context(
                permissions=["clipboard-read", "clipboard-write"], base_url=base
            )
            owner = await context.new_page()
            log_console(owner, "owner")

            # Sign up and create a 1:1 room.
            await owner.goto(f"{base}/")
            await owner.click("text=create an account")
            await owner.fill("input[name=email]", "owner@example.org")
            await owner.fill("input[name=password]", "a long enough password")
            await owner.click("button:has-text('Sign up')")
            # Sign-up answers alike for new and taken emails, then the owner signs in.
            await owner.wait_for_url("**/owner/signin")
            await owner.fill("input[name=email]", "owner@example.org")
            await owner.fill("input[name=password]", "a long enough password")
            await owner.click("button:has-text('Sign in')")
            await owner.wait_for_url("**/owner/rooms")
            await owner.fill("#create-room input[name=name]", "Owner E2E")
            await owner.click("#create-room button[type=submit]")
            await owner.wait_for_selector("#room-title:has-text('Owner E2E')")
            room_url = owner.url

            # Add a person and upload photos: three good stills and a group photo.
            await owner.fill("#add-person input[name=name]", "Lestari")
            await owner.click("#add-person button[type=submit]")
            article = owner.locator("article.person", has_text="Lestari")
            await article.wait_for()
            await article.locator(".photo-input").set_input_files([*stills, group])
            # (wait_for_function would need eval, which the page's CSP forbids)
            await article.locator(".verdicts li").nth(3).wait_for(timeout=30_000)
            assert await article.locator(".verdict.ok").count() == 3
            bad = article.locator(".verdict.bad")
            assert await bad.count() == 1
            assert "2 faces found" in (await bad.text_content() or "")
            assert await article.locator(".verdict img.thumb").count() == 4
            assert "3 photos enrolled" in (await article.locator(".enrol-status").text_content()
                                           or "")  # fmt: skip

            # The server restarts: account, session, room and templates survive.
            owner_server.stop()
            owner_server.start()
            await owner.goto(room_url)
            article = owner.locator("article.person", has_text="Lestari")
            assert "3 photos enrolled" in (await article.locator(".enrol-status").text_content()
                                           or "")  # fmt: skip

            # Create and copy the invite link.
            await article.locator(".invite-form button[type=submit]").click()
            await owner.wait_for_selector("#invite-link")
            await owner.click("button[data-copy='#invite-link']")
            await owner.wait_for_selector("button[data-copied]")
            copied = await owner.evaluate("navigator.clipboard.readText()")
            shown = await owner.input_value("#invite-link")
            assert copied == shown and "/r/owner-e2e-" in copied and "?invite=" in copied

            # The dashboard watches while the person walks through the gate.
            await owner.goto(room_url)
            await owner.wait_for_selector("#live-status:has-text('live')")
            guest = await guest_browser.new_page()
            await guest.add_init_script(AUTOSTART_SCRIPT)  # past the pre-join screen
            log_console(guest, "guest")
            await guest.goto(copied)
            try:
                await guest.wait_for_selector("#room:not([hidden])", timeout=ADMIT_TIMEOUT_MS)
            except Exception:
                print("guest status:", await guest.text_content("#status"),
                      await guest.text_content("#verdict"))  # fmt: skip
                raise
            row = owner.locator("#live-participants tr.state-admitted", has_text="Lestari")
            await row.wait_for(timeout=20_000)
            distance = await row.locator("td").nth(2).text_content()
            assert distance is not None and 0 <= float(distance) < 0.6
        finally:
            await owner_browser.close()
            await guest_browser.close()
