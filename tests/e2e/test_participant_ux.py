"""The participant's pages in Chromium (issue 15): dead links, pre-join, the check's
refusal, the meeting view at phone and desktop sizes, camera denied, accessibility.

Every state is checked with axe-core and screenshotted (tests/e2e/a11y.py).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page

from server.devserver import ServerProcess
from server.fakecam import CHROMIUM_FLAGS, make_y4m
from server.store.sqlite_rows import _hash_token

from .a11y import assert_accessible, horizontal_overflow
from .conftest import Browsers

pytestmark = pytest.mark.e2e

ADMIT_TIMEOUT_MS = 60_000
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}

# Counts camera requests and keeps every stream the page got, so a test can tell that
# no camera was asked for, or that every track was stopped.
MEDIA_SPY = """
(() => {
  window.__gum = { calls: 0, streams: [] };
  const md = navigator.mediaDevices;
  if (!md) return;
  const original = md.getUserMedia.bind(md);
  md.getUserMedia = async (constraints) => {
    window.__gum.calls += 1;
    const stream = await original(constraints);
    window.__gum.streams.push(stream);
    return stream;
  };
})();
"""

LIVE_TRACKS_JS = (
    "() => window.__gum.streams.flatMap((s) => s.getTracks())"
    ".filter((t) => t.readyState === 'live').length"
)

IN_VIEW_JS = """
(ids) => ids.map((id) => {
  const r = document.getElementById(id).getBoundingClientRect();
  return r.width > 0 && r.top >= 0 && r.left >= 0 &&
    r.bottom <= window.innerHeight && r.right <= window.innerWidth;
})
"""


def stills(faces_dir: Path) -> list[Path]:
    return sorted((faces_dir / "videos" / "stills" / "lestari15_subject").glob("*.png"))


@pytest.fixture(scope="module")
def lestari_link(server_process: ServerProcess, faces_dir: Path) -> str:
    """One enrolment for the module (each CLI enrol loads the face engine: seconds)."""
    return server_process.enrol("UX Room", "Lestari", *stills(faces_dir))


def set_invite(server: ServerProcess, link: str, **changes: object) -> None:
    """Revoke or expire an invite the way the owner's actions leave it in the store."""
    token = link.split("invite=", 1)[1]
    sets = ", ".join(f"{column}=?" for column in changes)
    with sqlite3.connect(server.data_dir / "videogate.sqlite3", timeout=10) as db:
        done = db.execute(
            f"UPDATE invites SET {sets} WHERE token_hash=?", (*changes.values(), _hash_token(token))
        )
        assert done.rowcount == 1


async def spied_page(browsers: Browsers, camera: Path, **kwargs: Any) -> Page:
    page = await browsers.page(camera, autostart=False, **kwargs)
    await page.add_init_script(MEDIA_SPY)
    return page


async def assert_controls_fit(page: Page, label: str) -> None:
    in_view = await page.evaluate(IN_VIEW_JS, ["mute", "camera", "leave"])
    assert all(in_view), f"{label}: meeting controls not all in the viewport: {in_view}"
    assert await horizontal_overflow(page) <= 0, f"{label}: horizontal overflow"


async def test_dead_links_are_answered_before_the_camera_is_asked_for(
    server_process: ServerProcess,
    browsers: Browsers,
    faces_dir: Path,
    y4m_dir: Path,
    lestari_link: str,
) -> None:
    base, _ = lestari_link.split("?", 1)
    origin = server_process.base_url
    page = await spied_page(browsers, make_y4m(faces_dir / "videos" / "lestari_real.mp4",
                                               y4m_dir / "lestari_real.y4m"))  # fmt: skip
    await page.set_viewport_size(PHONE)
    cases = [
        ("revoked", lestari_link, 410, "withdrawn"),
        ("expired", lestari_link, 410, "expired"),
        ("unknown-invite", f"{base}?invite=not-a-real-invite-token", 404, "not valid"),
        ("no-invite", base, 200, "personal link"),
        ("unknown-room", f"{origin}/r/no-such-room-0123456789abcdef?invite=x", 404, "room"),
    ]
    for name, link, status, title in cases:
        # The same invite, revoked then expired (and given back afterwards).
        if name == "revoked":
            set_invite(server_process, link, revoked=1)
        if name == "expired":
            set_invite(server_process, link, revoked=0, expires=1.0)
        response = await page.goto(link)
        if name == "expired":
            set_invite(server_process, link, expires=None)
        assert response is not None and response.status == status, name
        assert title in (await page.inner_text("h1")).lower(), name
        text = await page.inner_text("#dead-link")
        assert "Ask the organiser" in text and "new link" in text, (name, text)
        # The room is named, the invitee never (a stranger may hold the link).
        assert "Lestari" not in await page.content()
        if name != "unknown-room":
            assert "UX Room" in text
        # No script, no camera: the browser was never asked.
        assert await page.locator("#app").count() == 0
        assert await page.evaluate("window.__gum.calls") == 0, name
        await assert_accessible(page, f"participant-dead-link-{name}")


async def test_prejoin_then_check_then_meeting_at_phone_and_desktop_size(
    browsers: Browsers, faces_dir: Path, y4m_dir: Path, lestari_link: str
) -> None:
    link = lestari_link
    page = await spied_page(browsers, make_y4m(faces_dir / "videos" / "lestari_real.mp4",
                                               y4m_dir / "lestari_real.y4m"))  # fmt: skip
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    await page.set_viewport_size(PHONE)
    await page.goto(link)

    # Pre-join: the preview, the device pickers, the meter and the button; no check yet.
    await page.wait_for_selector("#start-check:not([hidden])")
    assert await page.locator("#camera-select option").count() >= 1
    assert await page.locator("#mic-select option").count() >= 1
    assert await page.is_visible("#mic-level") and await page.is_visible("#preview")
    assert await page.is_hidden("#verdict")  # no empty verdict box on load
    assert "Lestari" not in await page.inner_text("body")  # the room only, before the check
    await page.wait_for_timeout(600)
    assert sockets == [], "the check must wait for Start check"
    assert await horizontal_overflow(page) <= 0
    await assert_accessible(page, "participant-prejoin-phone")

    await page.click("#start-check")
    await page.wait_for_selector("#room:not([hidden])", timeout=ADMIT_TIMEOUT_MS)
    assert len(sockets) == 1
    # The page is the meeting now: no lobby, progress, or verdict left behind it.
    for stale in ("#lobby", "#progress", "#verdict", "#left", "#prompt"):
        assert await page.is_hidden(stale), stale
    assert await page.inner_text(".tile.self figcaption") == "You"
    assert "Verified" in await page.inner_text("#room-welcome")
    await assert_controls_fit(page, "phone")
    await assert_accessible(page, "participant-meeting-phone")
    await page.set_viewport_size(DESKTOP)
    await assert_controls_fit(page, "desktop")
    await assert_accessible(page, "participant-meeting-desktop")

    # Camera off: initials on the own tile, and the attendance rule said plainly.
    await page.click("#camera")
    assert await page.is_visible(".tile.self .initials")
    note = await page.inner_text("#camera-note")
    assert "Attendance needs your camera on" in note
    await page.click("#camera")
    assert await page.is_hidden("#camera-note")

    # Leave: Rejoin and Close, nothing of the meeting or the check, camera off.
    await page.click("#leave")
    await page.wait_for_selector("#left:not([hidden])")
    assert await page.is_visible("#rejoin") and await page.is_visible("#close")
    for stale in ("#room", "#lobby", "#room-welcome", "#verdict"):
        assert await page.is_hidden(stale), stale
    assert await page.evaluate(LIVE_TRACKS_JS) == 0
    await assert_accessible(page, "participant-left-desktop")

    # Rejoin: the person asked for it, so the check runs again without a second click.
    await page.click("#rejoin")
    await page.wait_for_selector("#room:not([hidden])", timeout=ADMIT_TIMEOUT_MS)
    assert await page.inner_text(".tile.self figcaption") == "You"


async def test_refusal_says_what_failed_and_the_final_one_turns_the_camera_off(
    server_process: ServerProcess, browsers: Browsers, faces_dir: Path, y4m_dir: Path
) -> None:
    # A stranger's face on Lestari's invite: "not recognised" on each attempt.
    link = server_process.enrol("Refusal Room", "Lestari", *stills(faces_dir))
    page = await spied_page(browsers, make_y4m(faces_dir / "videos" / "liveportrait_d3.mp4",
                                               y4m_dir / "liveportrait_d3.y4m"))  # fmt: skip
    await page.goto(link)
    await page.click("#start-check")
    for attempt in (1, 2, 3):
        await page.wait_for_selector("#verdict:not([hidden])", timeout=ADMIT_TIMEOUT_MS)
        text = await page.inner_text("#verdict")
        assert await page.get_attribute("#verdict", "role") == "alert"
        assert await page.evaluate("document.activeElement.id") == "verdict"
        assert "Not recognised" in text
        assert "Stopped at the face check" in text and "What to try:" in text
        assert "locked for 30 min" in text and "after 5 failures within 3 min" in text
        assert "Contact the organiser of Refusal Room" in text
        if attempt < 3:
            assert f"{3 - attempt} attempt" in text and "left" in text
            assert await page.evaluate(LIVE_TRACKS_JS) > 0
            if attempt == 1:
                await assert_accessible(page, "participant-refused")
            await page.click("#retry")
            # The next attempt runs without the last refusal on screen.
            assert await page.is_hidden("#verdict")
    assert "No attempts left" in text and "camera is now off" in text
    assert await page.is_hidden("#retry") and await page.is_hidden("#room")
    assert await page.evaluate(LIVE_TRACKS_JS) == 0
    await assert_accessible(page, "participant-refused-final")


async def test_camera_denied_says_how_to_allow_it_and_retries(
    browsers: Browsers, faces_dir: Path, y4m_dir: Path, lestari_link: str
) -> None:
    link = lestari_link
    camera = make_y4m(faces_dir / "videos" / "lestari_real.mp4", y4m_dir / "lestari_real.y4m")
    # Without the fake permission UI the browser's own decision applies: not granted.
    flags = tuple(f for f in CHROMIUM_FLAGS if f != "--use-fake-ui-for-media-stream")
    page = await spied_page(
        browsers, camera, args=(*flags, f"--use-file-for-fake-video-capture={camera}")
    )
    await page.goto(link)
    await page.wait_for_selector("#verdict:not([hidden])")
    text = await page.inner_text("#verdict")
    assert "Camera blocked" in text and "Allow" in text and "Try camera again" in text
    assert await page.inner_text("#start") == "Try camera again"
    assert await page.is_hidden("#start-check")
    await assert_accessible(page, "participant-camera-denied")
    await page.context.grant_permissions(["camera", "microphone"])
    await page.click("#start")
    await page.wait_for_selector("#start-check:not([hidden])")
    assert await page.is_hidden("#verdict")
    assert await page.evaluate(LIVE_TRACKS_JS) > 0


async def test_quality_hints_are_short_and_stay_until_fixed(
    server_process: ServerProcess, browsers: Browsers, faces_dir: Path, y4m_dir: Path
) -> None:
    """The hint shown over the preview from the server's holds (docs/protocol.md)."""
    page = await browsers.page(
        make_y4m(faces_dir / "videos" / "lestari_real.mp4", y4m_dir / "lestari_real.y4m"),
        autostart=False,
    )
    await page.goto(f"{server_process.base_url}/")
    hints = await page.evaluate(
        """async () => {
          const m = await import('/static/check.js');
          const say = (hold, message = '') => m.hintFor({ hold, message });
          return [
            say('poor_quality', 'Your face is too small in the picture: move closer'),
            say('poor_quality', 'Your face is too dark: add light in front of you.'),
            say('multiple_faces'), say('no_face'), say(null),
          ];
        }"""
    )
    assert hints[0] == "Move closer" and hints[1].startswith("More light")
    assert hints[2].startswith("Only one face") and "oval" in hints[3] and hints[4] == ""
    said = await page.evaluate(
        """async () => {
          const m = await import('/static/check.js');
          const el = (tag) => document.body.appendChild(document.createElement(tag));
          const els = { prompt: el('div'), promptText: el('span'), countdown: el('span'),
            hint: el('div'), steps: el('ol'), progress: el('progress'), status: el('p') };
          const spoken = [];
          const check = new m.GuidedCheck(els, (t) => spoken.push(t));
          const hold = { hold: 'poor_quality', message: 'too dark', frames: 0, required: 3 };
          for (let i = 0; i < 4; i += 1) {  // a hold on every analysed frame
            check.progress(hold);
            await new Promise((r) => setTimeout(r, 250));
          }
          const held = els.hint.hidden ? '' : els.hint.textContent;
          check.progress({ hold: null, message: '', frames: 1, required: 3 });
          return { spoken, held, cleared: els.hint.hidden };
        }"""
    )
    # Said once, though sent four times; shown while it lasts; gone once fixed.
    assert said["spoken"] == ["More light, please: light in front of you"]
    assert said["held"].startswith("More light") and said["cleared"] is True


def set_room_policy(server: ServerProcess, room: str, policy: str) -> None:
    with sqlite3.connect(server.data_dir / "videogate.sqlite3", timeout=10) as db:
        done = db.execute("UPDATE rooms SET liveness_policy=? WHERE name=?", (policy, room))
        assert done.rowcount == 1


async def test_guided_check_shows_the_step_and_a_refusal_names_it(
    server_process: ServerProcess,
    browsers: Browsers,
    faces_dir: Path,
    y4m_dir: Path,
    lestari_link: str,
) -> None:
    # The enrolled face as a still picture: recognised, but it cannot do any prompt,
    # so the first step runs out (a deterministic liveness refusal at step 1).
    still = make_y4m(stills(faces_dir)[0], y4m_dir / "lestari_still.y4m")
    set_room_policy(server_process, "UX Room", "active")
    try:
        page = await spied_page(browsers, still)
        await page.goto(lestari_link)
        await page.click("#start-check")
        await page.wait_for_selector("#prompt:not([hidden])", timeout=ADMIT_TIMEOUT_MS)
        countdown = await page.inner_text("#countdown")
        assert countdown.endswith(" s") and countdown[:-2].isdigit(), countdown
        assert await page.locator("#steps li.current").count() == 1
        assert (await page.inner_text("#announce")).startswith("Step 1 of ")
        await assert_accessible(page, "participant-check-prompt")
        await page.wait_for_selector("#verdict:not([hidden])", timeout=ADMIT_TIMEOUT_MS)
        text = await page.inner_text("#verdict")
        assert "Stopped at step 1 of " in text and "What to try: Do each prompt" in text, text
        assert await page.is_hidden("#prompt") and await page.is_hidden("#steps")
    finally:
        set_room_policy(server_process, "UX Room", "off")
