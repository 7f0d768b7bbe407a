"""The server's own connection to one Janus instance: the HTTP transport, one session
and one VideoRoom handle used for synchronous requests (create, allowed, kick, list).

The requests themselves are built and checked in ``server/janus/protocol.py``; this
module only carries them, keeps the session alive and makes a new one when Janus
forgot ours (it was restarted, or the session timed out).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from typing import Any

import aiohttp

from .protocol import ERR_NO_SUCH_SESSION, JSON, JanusError, check_reply

log = logging.getLogger(__name__)

VIDEOROOM = "janus.plugin.videoroom"
# Janus ends a session after 60 s without a request (janus.jcfg session_timeout).
KEEPALIVE_S = 25.0


class JanusClient:
    def __init__(self, url: str, http: aiohttp.ClientSession, *, timeout_s: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self._http = http
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: int | None = None
        self._handle: int | None = None
        self._lock = asyncio.Lock()
        self._keepalive: asyncio.Task[None] | None = None

    async def _post(self, path: str, payload: JSON) -> JSON:
        body = {"transaction": secrets.token_hex(6), **payload}
        async with self._http.post(self.url + path, json=body, timeout=self._timeout) as resp:
            if resp.status != 200:
                raise JanusError(resp.status, f"HTTP {resp.status} from {self.url}")
            reply: Any = await resp.json(content_type=None)
        if not isinstance(reply, dict):
            raise JanusError(0, "reply is not a JSON object")
        return reply

    async def _open(self) -> tuple[int, int]:
        session = int(check_reply(await self._post("", {"janus": "create"}))["id"])
        reply = await self._post(f"/{session}", {"janus": "attach", "plugin": VIDEOROOM})
        handle = int(check_reply(reply)["id"])
        return session, handle

    async def _ids(self) -> tuple[int, int]:
        async with self._lock:
            if self._session is None or self._handle is None:
                self._session, self._handle = await self._open()
                if self._keepalive is None or self._keepalive.done():
                    self._keepalive = asyncio.create_task(self._keep_alive(), name="janus-ka")
            return self._session, self._handle

    async def request(self, body: JSON) -> JSON:
        """One synchronous VideoRoom request; the plugin's data, or JanusError."""
        for attempt in (0, 1):
            session, handle = await self._ids()
            reply = await self._post(f"/{session}/{handle}", {"janus": "message", "body": body})
            try:
                return check_reply(reply)
            except JanusError as err:
                if err.code != ERR_NO_SUCH_SESSION or attempt:
                    raise
                self._forget(session)  # Janus restarted or timed us out: a new session
        raise AssertionError("unreachable")

    def _forget(self, session: int) -> None:
        if self._session == session:
            self._session = self._handle = None

    async def _keep_alive(self) -> None:
        while True:
            await asyncio.sleep(KEEPALIVE_S)
            session = self._session
            if session is None:
                continue
            try:
                check_reply(await self._post(f"/{session}", {"janus": "keepalive"}))
            except JanusError as err:
                if err.code == ERR_NO_SUCH_SESSION:
                    self._forget(session)
                log.warning("janus %s keepalive: %s", self.url, err)
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.warning("janus %s keepalive failed: %s", self.url, exc)

    async def close(self) -> None:
        if self._keepalive is not None:
            self._keepalive.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keepalive
        session = self._session
        self._session = self._handle = None
        if session is not None:
            with contextlib.suppress(Exception):
                await self._post(f"/{session}", {"janus": "destroy"})
