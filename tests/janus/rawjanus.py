"""A bare Janus HTTP client for tests: what a browser (or an intruder) would send."""

from __future__ import annotations

import secrets
from typing import Any

import aiohttp

from server.janus.protocol import JSON, check_reply


class RawJanus:
    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self.http, self.url = http, url
        self.session = 0
        self.handle = 0

    async def post(self, path: str, payload: JSON) -> JSON:
        body = {"transaction": secrets.token_hex(6), **payload}
        async with self.http.post(self.url + path, json=body) as resp:
            reply: Any = await resp.json(content_type=None)
            return dict(reply)

    async def open(self) -> None:
        self.session = int(check_reply(await self.post("", {"janus": "create"}))["id"])
        reply = await self.post(
            f"/{self.session}", {"janus": "attach", "plugin": "janus.plugin.videoroom"}
        )
        self.handle = int(check_reply(reply)["id"])

    async def join(self, room: int, feed: int, token: str | None) -> JSON:
        """Join as publisher; the plugin's answer arrives as an event (long poll)."""
        body: JSON = {"request": "join", "ptype": "publisher", "room": room, "id": feed,
                      "display": "raw"}  # fmt: skip
        if token is not None:
            body["token"] = token
        ack = await self.post(f"/{self.session}/{self.handle}", {"janus": "message", "body": body})
        check_reply(ack)
        while True:
            async with self.http.get(f"{self.url}/{self.session}?maxev=1") as resp:
                event: Any = await resp.json(content_type=None)
            if event.get("janus") == "event" and event.get("sender") == self.handle:
                return dict(event["plugindata"]["data"])

    async def join_subscriber(self, room: int, feed: int, private_id: int | None) -> JSON:
        body: JSON = {"request": "join", "ptype": "subscriber", "room": room,
                      "streams": [{"feed": feed}]}  # fmt: skip
        if private_id is not None:
            body["private_id"] = private_id
        ack = await self.post(f"/{self.session}/{self.handle}", {"janus": "message", "body": body})
        check_reply(ack)
        while True:
            async with self.http.get(f"{self.url}/{self.session}?maxev=1") as resp:
                event: Any = await resp.json(content_type=None)
            if event.get("janus") == "event" and event.get("sender") == self.handle:
                return dict(event["plugindata"]["data"])

    async def publish(self, sdp: str) -> JSON:
        """Publish with an offer; the plugin's answer event (``jsep`` included)."""
        body = {"janus": "message", "body": {"request": "publish"},
                "jsep": {"type": "offer", "sdp": sdp}}  # fmt: skip
        check_reply(await self.post(f"/{self.session}/{self.handle}", body))
        while True:
            async with self.http.get(f"{self.url}/{self.session}?maxev=1") as resp:
                event: Any = await resp.json(content_type=None)
            if event.get("janus") == "event" and event.get("jsep"):
                return dict(event)
