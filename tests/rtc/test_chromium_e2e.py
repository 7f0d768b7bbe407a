"""Chromium end to end: two real browser peers admitted into an SfuRoom see each other.

Why a browser test in tests/rtc: aiortc-to-aiortc tests cannot catch browser
interop problems (payload type / extmap numbering in re-offers, msid, loopback
candidates). The page is a minimal stand-in for the lead's web client: it publishes
Chromium's fake camera + mic, answers server re-offers, and exposes getStats.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import WSMsgType, web
from aiortc import RTCPeerConnection, RTCSessionDescription
from playwright.async_api import async_playwright

from server.rtc import Publisher, SfuRoom, create_peer_connection, restrict_answer_codecs

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Chromium comes from scripts/setup.sh --with-browser: a missing browser fails loudly.
pytestmark = pytest.mark.e2e

PAGE = """<!doctype html><html><body><script>
window.events = [];
const ws = new WebSocket(`ws://${location.host}/ws`);
const pc = new RTCPeerConnection({iceServers: []});
pc.ontrack = (e) => {
  const s = e.streams[0];
  window.events.push(`track ${e.track.kind} ${s ? s.id : "-"}`);
  e.track.onmute = () => window.events.push(`mute ${e.track.kind}`);
  if (s) s.onremovetrack = (ev) => window.events.push(`removetrack ${ev.track.kind}`);
};
const gathered = () => new Promise((ok) => {
  if (pc.iceGatheringState === "complete") return ok();
  pc.addEventListener("icegatheringstatechange",
    () => pc.iceGatheringState === "complete" && ok());
});
ws.onopen = async () => {
  const stream = await navigator.mediaDevices.getUserMedia({video: true, audio: true});
  stream.getTracks().forEach((t) => pc.addTrack(t, stream));
  await pc.setLocalDescription(await pc.createOffer());
  await gathered();
  ws.send(JSON.stringify({type: "offer", sdp: pc.localDescription.sdp}));
};
ws.onmessage = async (m) => {
  const msg = JSON.parse(m.data);
  try {
    await pc.setRemoteDescription(msg);
    if (msg.type === "offer") {
      await pc.setLocalDescription(await pc.createAnswer());
      ws.send(JSON.stringify({type: "answer", sdp: pc.localDescription.sdp}));
    }
  } catch (err) { window.events.push(`error ${err}`); }
};
window.inbound = async () => {
  const out = [];
  (await pc.getStats()).forEach((r) => {
    if (r.type === "inbound-rtp") out.push(
      {kind: r.kind, frames: r.framesDecoded || 0, width: r.frameWidth || 0,
       packets: r.packetsReceived || 0});
  });
  return out;
};
</script></body></html>"""


@dataclass
class Session:
    pc: RTCPeerConnection
    publisher: Publisher
    ws: web.WebSocketResponse
    answers: asyncio.Queue[str] = field(default_factory=asyncio.Queue)


class Server:
    """The smallest signalling that drives Publisher + SfuRoom for browsers."""

    def __init__(self) -> None:
        self.sessions: dict[str, Session] = {}
        self.room = SfuRoom(self.renegotiate, negotiation_timeout=10)
        self.app = web.Application()
        self.app.router.add_get("/", self.page)
        self.app.router.add_get("/ws", self.websocket)

    async def page(self, request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    async def renegotiate(self, pid: str) -> None:
        s = self.sessions[pid]
        await s.pc.setLocalDescription(await s.pc.createOffer())
        await s.ws.send_json({"type": "offer", "sdp": s.pc.localDescription.sdp})
        answer = await s.answers.get()
        await s.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))

    async def websocket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        pid = f"p{len(self.sessions)}"
        pc = create_peer_connection(loopback=True)
        session = Session(pc, Publisher(pid, pc), ws)
        self.sessions[pid] = session
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            data: dict[str, Any] = json.loads(msg.data)
            if data["type"] == "offer":
                await pc.setRemoteDescription(RTCSessionDescription(data["sdp"], "offer"))
                restrict_answer_codecs(pc)
                await pc.setLocalDescription(await pc.createAnswer())
                await ws.send_json({"type": "answer", "sdp": pc.localDescription.sdp})
            elif data["type"] == "answer":
                session.answers.put_nowait(data["sdp"])
        return ws

    async def close(self) -> None:
        await self.room.close()
        for s in self.sessions.values():
            await s.publisher.close()
            await s.pc.close()


@pytest.fixture
async def server() -> AsyncIterator[tuple[Server, str]]:
    srv = Server()
    runner = web.AppRunner(srv.app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield srv, f"http://127.0.0.1:{port}/"
    finally:
        await srv.close()
        await runner.cleanup()


async def poll(page: Any, predicate: str, timeout: float = 15) -> list[dict[str, Any]]:
    """Evaluate ``inbound()`` until the JS predicate holds on it (explicit timeout)."""
    async with asyncio.timeout(timeout):
        while True:
            stats: list[dict[str, Any]] = await page.evaluate("inbound()")
            if await page.evaluate(f"(s) => {predicate}", stats):
                return stats
            await asyncio.sleep(0.2)


async def test_two_chromium_peers_see_each_other_then_one_is_removed(
    server: tuple[Server, str],
) -> None:
    srv, url = server
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                "--allow-loopback-in-peer-connection", "--disable-quic",
                "--disable-background-networking", "--no-first-run",
            ],
        )  # fmt: skip
        try:
            pages = []
            for _ in range(2):
                page = await (await browser.new_context()).new_page()
                await page.goto(url)
                pages.append(page)
            async with asyncio.timeout(15):
                while len(srv.sessions) < 2 or not all(
                    s.publisher.stats().frames_decoded > 0 for s in srv.sessions.values()
                ):
                    await asyncio.sleep(0.1)
            for pid, s in srv.sessions.items():
                frame = await asyncio.wait_for(s.publisher.decoded_video.recv(), 5)  # type: ignore[union-attr]
                assert (frame.width, frame.height) == (640, 480)
                s.publisher.stop_decoding()
                await srv.room.admit(pid, s.pc, s.publisher)

            for i, page in enumerate(pages):
                stats = await poll(
                    page,
                    "s.some(r => r.kind === 'video' && r.frames > 10 && r.width === 640)"
                    " && s.some(r => r.kind === 'audio' && r.packets > 20)",
                )
                assert stats
                events = await page.evaluate("window.events")
                other = f"p{1 - i}"
                assert f"track video {other}" in events and f"track audio {other}" in events
                assert not [e for e in events if e.startswith("error")]

            await srv.room.remove("p0")
            async with asyncio.timeout(10):
                while "removetrack video" not in await pages[1].evaluate("window.events"):
                    await asyncio.sleep(0.2)
            before = await pages[1].evaluate("inbound()")
            await asyncio.sleep(1)
            assert await pages[1].evaluate("inbound()") == before  # nothing flows any more
        finally:
            await browser.close()
