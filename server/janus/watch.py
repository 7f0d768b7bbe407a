"""The server's own view of what Janus forwards: an aiortc subscriber per participant.

Presence checks in a Janus room must judge the stream the others actually receive,
not the one the browser sends to our verification connection: a client could send
the enrolled face to us and someone else to Janus. So the server subscribes to each
participant's video feed on Janus with aiortc and taps it with the same
``Publisher`` the builtin SFU uses (encoded frames, decoding only while a check
runs, keyframe requests as RTCP PLI, which Janus relays to the browser); the
presence probe (``server/media_link.py``, ``server/rtc/spotcheck.py``) runs on it
unchanged.

VideoRoom rooms here require a subscriber to name a publisher's ``private_id``
(``require_pvtid``), so per room the server joins once as a silent publisher (its
own one-time pass, nothing published) and subscribes with that id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable
from typing import Any

import aiohttp
from aiortc import RTCPeerConnection, RTCSessionDescription

from ..rtc.forward import Publisher
from .client import VIDEOROOM
from .protocol import JSON, JanusError, check_reply

log = logging.getLogger(__name__)

Accept = Callable[[JSON], bool]


class EventSession:
    """A Janus session whose plugin events arrive on a long poll (HTTP transport)."""

    def __init__(self, http: aiohttp.ClientSession, url: str, timeout_s: float) -> None:
        self._http = http
        self.url = url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.session = 0
        self._waiting: dict[int, tuple[Accept, asyncio.Future[JSON]]] = {}
        self._poller: asyncio.Task[None] | None = None
        self._keepalive: asyncio.Task[None] | None = None

    async def _post(self, path: str, body: JSON) -> JSON:
        payload = {"transaction": secrets.token_hex(6), **body}
        async with self._http.post(self.url + path, json=payload, timeout=self._timeout) as resp:
            reply: Any = await resp.json(content_type=None)
        return check_reply(dict(reply)) if isinstance(reply, dict) else {}

    async def open(self) -> None:
        self.session = int((await self._post("", {"janus": "create"}))["id"])
        self._poller = asyncio.create_task(self._poll(), name="janus-events")
        self._keepalive = asyncio.create_task(self._keep_alive(), name="janus-watch-ka")

    async def attach(self) -> int:
        reply = await self._post(f"/{self.session}", {"janus": "attach", "plugin": VIDEOROOM})
        return int(reply["id"])

    async def detach(self, handle: int) -> None:
        with contextlib.suppress(Exception):
            await self._post(f"/{self.session}/{handle}", {"janus": "detach"})

    async def request(
        self, handle: int, body: JSON, accept: Accept, jsep: JSON | None = None, wait_s: float = 10
    ) -> JSON:
        """Send a message; the first event on ``handle`` that ``accept`` takes (with its
        ``jsep`` under the key ``jsep``), or JanusError for the plugin's error event."""
        future: asyncio.Future[JSON] = asyncio.get_running_loop().create_future()
        self._waiting[handle] = (accept, future)
        message: JSON = {"janus": "message", "body": body}
        if jsep is not None:
            message["jsep"] = jsep
        try:
            await self._post(f"/{self.session}/{handle}", message)
            return await asyncio.wait_for(future, wait_s)
        finally:
            self._waiting.pop(handle, None)

    async def send(self, handle: int, body: JSON, jsep: JSON | None = None) -> None:
        message: JSON = {"janus": "message", "body": body}
        if jsep is not None:
            message["jsep"] = jsep
        await self._post(f"/{self.session}/{handle}", message)

    async def _poll(self) -> None:
        while True:
            try:
                url = f"{self.url}/{self.session}?maxev=10"
                async with self._http.get(url, timeout=aiohttp.ClientTimeout(total=40)) as resp:
                    events: Any = await resp.json(content_type=None)
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                log.info("janus events %s: %s", self.url, exc)
                await asyncio.sleep(1.0)
                continue
            for event in events if isinstance(events, list) else [events]:
                if isinstance(event, dict):
                    self._dispatch(event)

    def _dispatch(self, event: JSON) -> None:
        if event.get("janus") != "event":
            return
        waiting = self._waiting.get(int(event.get("sender", 0)))
        if waiting is None:
            return
        accept, future = waiting
        data = dict((event.get("plugindata") or {}).get("data") or {})
        if event.get("jsep"):
            data["jsep"] = event["jsep"]
        if future.done():
            return
        if "error_code" in data:
            future.set_exception(JanusError(int(data["error_code"]), str(data.get("error"))))
        elif accept(data):
            future.set_result(data)

    async def _keep_alive(self) -> None:
        while True:
            await asyncio.sleep(25.0)
            with contextlib.suppress(Exception):
                await self._post(f"/{self.session}", {"janus": "keepalive"})

    async def close(self) -> None:
        for task in (self._poller, self._keepalive):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        with contextlib.suppress(Exception):
            await self._post(f"/{self.session}", {"janus": "destroy"})


class FeedWatch:
    """One participant's video as Janus forwards it, tapped like a publisher."""

    def __init__(self, participant_id: str, feed: int) -> None:
        self.participant_id = participant_id
        self.feed = feed
        self.pc = RTCPeerConnection()
        # Nothing decoded until a presence check asks (Publisher.start_decoding).
        self.publisher = Publisher(f"janus:{participant_id}", self.pc, decode_video=False)
        self.handle = 0

    async def start(self, events: EventSession, room: int, private_id: int) -> None:
        self.handle = await events.attach()
        offer = await events.request(
            self.handle,
            {
                "request": "join",
                "ptype": "subscriber",
                "room": room,
                "private_id": private_id,
                "streams": [{"feed": self.feed}],
            },  # fmt: skip
            lambda d: d.get("videoroom") == "attached" and "jsep" in d,
        )
        jsep = offer["jsep"]
        await self.pc.setRemoteDescription(RTCSessionDescription(jsep["sdp"], jsep["type"]))
        for transceiver in self.pc.getTransceivers():
            if transceiver.kind != "video":
                transceiver.direction = "inactive"  # presence needs the picture only
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        answer = {"type": "answer", "sdp": self.pc.localDescription.sdp}
        await events.send(self.handle, {"request": "start"}, answer)

    async def close(self, events: EventSession | None) -> None:
        await self.publisher.close()
        await self.pc.close()
        if events is not None and self.handle:
            await events.detach(self.handle)
