"""Issue 15, owner side, in headless Chromium against the real server process:

* keyboard only: sign up, sign in, create a room, add a person, upload a photo and
  create an invite without touching the mouse;
* every owner page: zero serious / critical axe-core violations, and no sideways
  scrolling in a 390x844 phone viewport (screenshots of each under the screenshot
  folder, see tests/e2e/a11y.py);
* the host decides: a stranger holding Lestari's link is refused, the host lets them
  in with a reason (the dashboard says so in words), then sends them back to the
  lobby; the attendance page and certificate of that meeting pass the same checks.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright

from server.devserver import ServerProcess
from server.fakecam import AUTOSTART_SCRIPT, CHROMIUM, CHROMIUM_FLAGS, make_y4m

from .a11y import assert_accessible, horizontal_overflow

pytestmark = pytest.mark.e2e

PASSWORD = "a long enough password"
PHONE = {"width": 390, "height": 844}
ADMIT_MS = 60_000


async def tab_to(page: Page, selector: str, limit: int = 80) -> None:
    """Press Tab until the focused element matches ``selector`` (keyboard only)."""
    for _ in range(limit):
        await page.keyboard.press("Tab")
        if await page.evaluate("(s) => !!document.activeElement?.matches(s)", selector):
            return
    raise AssertionError(f"{selector} cannot be reached with the Tab key")


async def check_page(page: Page, name: str) -> None:
    """axe at desktop width, then the same page at 390x844: accessible, and nothing
    wider than the phone's screen (no sideways scrolling)."""
    await assert_accessible(page, f"{name}-desktop")
    desktop = page.viewport_size
    await page.set_viewport_size(PHONE)
    try:
        await assert_accessible(page, f"{name}-phone")  # saves the phone screenshot
        overflow = await horizontal_overflow(page)
        assert overflow <= 0, f"{name}: {overflow} px of sideways scrolling at 390 px"
    finally:
        if desktop is not None:
            await page.set_viewport_size(desktop)


async def owner_page(browser: Browser, base: str) -> Page:
    context = await browser.new_context(base_url=base, viewport={"width": 1280, "height": 900})
    return await context.new_page()


async def test_keyboard_only_journey_and_every_owner_page_is_accessible_on_a_phone(
    server_process: ServerProcess, faces_dir: Path
) -> None:
    base = server_process.base_url
    photo = sorted((faces_dir / "videos" / "stills" / "lestari15_subject").glob("*.png"))[0]
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=list(CHROMIUM_FLAGS)
        )
        try:
            page = await owner_page(browser, base)
            await page.goto(f"{base}/owner/signup")
            await check_page(page, "signup")
            await tab_to(page, "input[name=email]")
            await page.keyboard.type("keys@example.org")
            await tab_to(page, "input[name=password]")
            await page.keyboard.type(PASSWORD)
            await page.keyboard.press("Enter")
            await page.wait_for_url("**/owner/signin")
            await check_page(page, "signin")
            await tab_to(page, "input[name=email]")
            await page.keyboard.type("keys@example.org")
            await tab_to(page, "input[name=password]")
            await page.keyboard.type(PASSWORD)
            await page.keyboard.press("Enter")
            await page.wait_for_url("**/owner/rooms")
            await check_page(page, "rooms-empty")

            await tab_to(page, "#create-room input[name=name]")
            await page.keyboard.type("Keyboard class")
            await tab_to(page, "#create-room button[type=submit]")
            await page.keyboard.press("Enter")
            await page.wait_for_selector("#room-title:has-text('Keyboard class')")
            room_url = page.url
            await check_page(page, "room-empty")

            await tab_to(page, "#add-person input[name=name]")
            await page.keyboard.type("Ada Lovelace")
            await page.keyboard.press("Enter")  # submits the add-person form
            article = page.locator("article.person", has_text="Ada Lovelace")
            await article.wait_for()
            await tab_to(page, "article.person .photo-input")
            async with page.expect_file_chooser() as chooser_info:
                await page.keyboard.press("Space")
            await (await chooser_info.value).set_files(str(photo))
            await article.locator(".verdicts li.verdict.ok").wait_for(timeout=30_000)
            status = article.locator(".upload-status")
            assert "1 of 1 accepted" in (await status.text_content() or "")
            await check_page(page, "room-person-enrolled")

            await tab_to(page, "article.person .invite-form button[type=submit]")
            assert await page.evaluate(
                "document.activeElement.getAttribute('aria-label')"
            ) == "Create an invite link for Ada Lovelace"
            await page.keyboard.press("Enter")
            await page.wait_for_selector("#invite-link")
            link = await page.input_value("#invite-link")
            assert "?invite=" in link
            await check_page(page, "invite-created")

            # The room page lists the invite by the start of its code, as on the link.
            await page.goto(room_url)
            code = link.split("?invite=", 1)[1]
            listed = await page.locator("tr.invite code").first.text_content() or ""
            assert listed.endswith("…") and code.startswith(listed[:-1])
            await page.goto(f"{room_url}/settings")
            await check_page(page, "room-settings")
            for path, name in (("/owner/keys", "keys"), ("/owner/account", "account")):
                await page.goto(f"{base}{path}")
                await check_page(page, name)
        finally:
            await browser.close()


async def test_host_lets_a_refused_person_in_then_sends_them_back(
    server_process: ServerProcess, faces_dir: Path, y4m_dir: Path
) -> None:
    base = server_process.base_url
    stills = sorted((faces_dir / "videos" / "stills" / "lestari15_subject").glob("*.png"))[:3]
    stranger_cam = make_y4m(
        faces_dir / "videos" / "liveportrait_d10.mp4", y4m_dir / "stranger_d10.y4m"
    )
    async with async_playwright() as pw:
        owner_browser = await pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=list(CHROMIUM_FLAGS)
        )
        guest_browser = await pw.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=[*CHROMIUM_FLAGS, f"--use-file-for-fake-video-capture={stranger_cam}"],
        )  # fmt: skip
        try:
            owner = await owner_page(owner_browser, base)
            await owner.goto(f"{base}/owner/signup")
            await owner.fill("input[name=email]", "host@example.org")
            await owner.fill("input[name=password]", PASSWORD)
            await owner.click("button:has-text('Sign up')")
            await owner.wait_for_url("**/owner/signin")
            await owner.fill("input[name=email]", "host@example.org")
            await owner.fill("input[name=password]", PASSWORD)
            await owner.click("button:has-text('Sign in')")
            await owner.wait_for_url("**/owner/rooms")
            await owner.fill("#create-room input[name=name]", "Host class")
            await owner.click("#create-room button[type=submit]")
            await owner.wait_for_selector("#room-title:has-text('Host class')")
            room_url = owner.url
            await owner.fill("#add-person input[name=name]", "Lestari")
            await owner.click("#add-person button[type=submit]")
            article = owner.locator("article.person", has_text="Lestari")
            await article.locator(".photo-input").set_input_files(stills)
            await article.locator(".verdicts li").nth(2).wait_for(timeout=30_000)
            await article.locator(".invite-form button[type=submit]").click()
            link = await owner.input_value("#invite-link")

            await owner.goto(room_url)
            await owner.wait_for_selector("#live-status:has-text('live')")
            guest = await guest_browser.new_page()
            await guest.add_init_script(AUTOSTART_SCRIPT)  # past the pre-join screen
            await guest.goto(link)
            # Someone else holds Lestari's link: refused, may try again; the name of the
            # invitee is not shown to them.
            await guest.wait_for_selector("#verdict:not([hidden])", timeout=ADMIT_MS)
            assert "Lestari" not in (await guest.text_content("body") or "")
            row = owner.locator("#live-participants tr.state-failed", has_text="Lestari")
            await row.wait_for(timeout=20_000)
            await check_page(owner, "live-lobby-refused")

            # The host lets them in, saying why.
            await row.get_by_role("button", name="Let Lestari in").click()
            await owner.wait_for_selector("#host-dialog[open]")
            await owner.click("#host-confirm")  # no reason: refused by the dialog
            error = await owner.text_content("#host-dialog-error") or ""
            assert "Say why" in error
            await owner.fill("#host-reason", "I know her: new glasses")
            await assert_accessible(owner, "host-dialog")
            await owner.click("#host-confirm")
            await guest.wait_for_selector("#room:not([hidden])", timeout=20_000)
            admitted = owner.locator("#live-participants tr.state-admitted", has_text="Lestari")
            await admitted.wait_for(timeout=20_000)
            said = owner.locator("#live-recent li[data-event='participant.admitted']").first
            await said.wait_for()
            text = await said.text_content() or ""
            assert "host@example.org let Lestari in without a passed check" in text
            assert "I know her: new glasses" in text
            assert await said.get_attribute("title") == "participant.admitted"

            # ... and sends her back to the lobby.
            await admitted.get_by_role("button", name="Send Lestari back to the lobby").click()
            await guest.wait_for_selector("#lobby:not([hidden])", timeout=20_000)
            assert await guest.is_hidden("#room")
            await owner.locator(
                "#live-recent li[data-event='host.sent_to_lobby']"
            ).first.wait_for(timeout=20_000)
            await guest.close()  # the visit ends: the meeting's report can be read

            await owner.goto(room_url)
            report = owner.locator("tr.meeting a", has_text="Attendance of").first
            await report.wait_for(timeout=20_000)
            await report.click()
            await owner.wait_for_selector("#attendance-title")
            status = owner.locator("tr.attendee", has_text="Lestari").locator("td.status")
            assert await status.text_content() == "present"
            await check_page(owner, "attendance")
            await owner.get_by_role("link", name="Certificate for Lestari").click()
            await owner.wait_for_selector("#certificate-title")
            assert "python -m server verify-report" in (await owner.text_content("body") or "")
            await check_page(owner, "certificate")
        finally:
            await owner_browser.close()
            await guest_browser.close()
