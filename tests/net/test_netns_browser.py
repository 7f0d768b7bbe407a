"""The lobby page across the simulated networks: Chromium runs in the client namespace.

Playwright talks to Chromium over pipes, so the browser can live in another network
namespace: its executable is a two-line wrapper around ``ip netns exec``. The page
must say which path it got, say plainly when there is none, and rejoin without
re-verification when its media path dies after admission.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright

from server.fakecam import AUTOSTART_SCRIPT, CHROMIUM, chromium_args, make_y4m

from .netns import SERVER_PUBLIC
from .world import Enrolled, GateServers, Net, audit, health, server_udp_sockets, wait_for

pytestmark = pytest.mark.e2e

WAIT_MS = 60_000


@pytest.fixture
async def client_browser(net: Net, faces_dir: Path, tmp_path: Path) -> AsyncIterator[Page]:
    """One Chromium in the client namespace whose camera plays Dee Nine's clip."""
    wrapper = tmp_path / "chromium-in-netns"
    wrapper.write_text(f'#!/bin/sh\nexec ip netns exec {net.topo.ns("cli")} {CHROMIUM} "$@"\n')
    wrapper.chmod(0o755)
    camera = make_y4m(faces_dir / "videos" / "liveportrait_d9.mp4", net.workdir / "d9.y4m")
    async with async_playwright() as pw:
        # Plain http to a non-local address is not a secure context (no camera): the
        # test server has no TLS; deployments put Caddy/nginx in front (docs/deploy.md).
        secure = f"--unsafely-treat-insecure-origin-as-secure=http://{SERVER_PUBLIC}:443"
        browser: Browser = await pw.chromium.launch(
            executable_path=str(wrapper),
            headless=True,
            args=[*chromium_args(camera), secure, "--ignore-certificate-errors"],
        )
        try:
            page = await browser.new_page()
            await page.add_init_script(AUTOSTART_SCRIPT)
            page.on("console", lambda msg: print(f"[browser {msg.type}] {msg.text}"))
            yield page
        finally:
            await browser.close()


async def wait_text(page: Page, selector: str, wanted: str, timeout_s: float = 60) -> None:
    """Poll an element's text (the page's CSP forbids wait_for_function's eval)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while wanted not in await page.inner_text(selector):
        if loop.time() > deadline:
            text = await page.inner_text(selector)
            raise AssertionError(f"{selector} never said {wanted!r} (last: {text!r})")
        await asyncio.sleep(0.2)


def link(enrolled: Enrolled) -> str:
    return f"http://{SERVER_PUBLIC}:443/r/{enrolled.room}?invite={enrolled.invites['Dee Nine']}"


async def test_page_explains_a_network_that_blocks_calls(
    net: Net, enrolled: Enrolled, servers: GateServers, client_browser: Page
) -> None:
    net.topo.block_client_udp(allow_tcp_443=True)
    failures_before = len(audit(enrolled, "media.failed"))
    try:
        with servers.use(turn=False):
            page = client_browser
            await page.goto(link(enrolled))
            await page.wait_for_selector("#app[data-netpath='failed']", timeout=WAIT_MS)
            assert await page.inner_text("#verdict-title") == "Cannot connect"
            reason = await page.inner_text("#verdict-reason")
            assert "blocks video calls" in reason and "TURN on port 443" in reason
            assert await page.is_visible("#start")  # "Try again", no spinner
            # The page's numbers: offer sent -> message shown, under its 8 s timeout.
            failed = audit(enrolled, "media.failed")
            assert len(failed) == failures_before + 1 and failed[-1]["cause"] == "no_relay"
            wait_for(lambda: health(net).get("participants") == 0, 10, "participant freed")
            wait_for(lambda: not server_udp_sockets(net), 10, "ICE sockets closed")
    finally:
        net.topo.unblock_client()


async def test_page_says_relayed_when_only_tcp_443_gets_out(
    net: Net, enrolled: Enrolled, servers: GateServers, client_browser: Page
) -> None:
    net.topo.block_client_udp(allow_tcp_443=True)
    try:
        with servers.use(turn=True):
            page = client_browser
            await page.goto(link(enrolled))
            await page.wait_for_selector("#room:not([hidden])", timeout=WAIT_MS)
            await page.wait_for_selector("#app[data-netpath]", timeout=WAIT_MS)
            assert await page.get_attribute("#app", "data-netpath") == "relay"
            assert "relayed" in await page.inner_text("#room-netpath")
            record = audit(enrolled, "media.connected")[-1]
            assert record["path"] == "relay" and record["relay_protocol"] == "tls", record
    finally:
        net.topo.unblock_client()


async def test_page_rejoins_without_reverifying_when_its_path_dies(
    net: Net, enrolled: Enrolled, servers: GateServers, client_browser: Page
) -> None:
    net.topo.unblock_client()
    with servers.use(turn=True):
        page = client_browser
        await page.goto(link(enrolled))
        await page.wait_for_selector("#room:not([hidden])", timeout=WAIT_MS)
        rejoins_before = len(audit(enrolled, "media.rejoining"))
        # The media path dies (no UDP, no relay) while the page's websocket lives on.
        # (With only UDP blocked, Chromium moves to a TURN/TCP pair by itself.)
        net.topo.block_client_media()
        try:
            await wait_text(page, "#room-status", "rejoining")
        finally:
            net.topo.unblock_client()
        await wait_text(page, "#room-netpath", "Connected")
        assert await page.is_visible("#room")
        assert len(audit(enrolled, "media.rejoining")) == rejoins_before + 1
        admissions = audit(enrolled, "participant.admitted")
        assert admissions[-1]["kind"] == "rejoin", admissions[-1]


async def test_page_follows_the_browser_onto_a_relay_when_udp_goes(
    net: Net, enrolled: Enrolled, servers: GateServers, client_browser: Page
) -> None:
    net.topo.unblock_client()
    with servers.use(turn=True):
        page = client_browser
        await page.goto(link(enrolled))
        await page.wait_for_selector("#room:not([hidden])", timeout=WAIT_MS)
        await wait_text(page, "#room-netpath", "NAT traversed")
        # UDP goes, TCP stays: Chromium moves to a TURN/TCP or TURN/TLS pair by itself
        # (no rejoin needed), and the page says so and reports it.
        net.topo.block_client_udp(allow_tcp_443=False)
        try:
            await wait_text(page, "#room-netpath", "relayed")
        finally:
            net.topo.unblock_client()
        assert await page.get_attribute("#app", "data-netpath") == "relay"
        last = audit(enrolled, "media.connected")[-1]
        assert last["path"] == "relay" and last["relay_protocol"] in ("tcp", "tls"), last
