"""A participant's outgoing messages: queued, written by one task, never blocking anyone.

Why: before, whoever produced a message (the participant, another participant's
admission, a dashboard action) awaited the socket write itself, so one slow
client stalled the task that happened to talk to it. Now producers ``put`` and
return at once; one writer task per socket drains the queue in order. A write
that takes longer than ``timeout_s``, or a queue that overflows, means the client
is not reading: the socket is closed and the session ends like any disconnect.
``Bye`` is always the last message: the socket closes right after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from .messages import Bye, OutMessage, encode

log = logging.getLogger(__name__)

# What writing to or closing a websocket raises once the client is gone or stuck.
SOCKET_GONE: tuple[type[BaseException], ...] = (TimeoutError, ConnectionError, RuntimeError)
WriteJson = Callable[[dict[str, Any]], Awaitable[None]]
CloseSocket = Callable[[], Awaitable[Any]]


class Outbox:
    def __init__(
        self,
        write: WriteJson,
        close_socket: CloseSocket,
        *,
        timeout_s: float = 5.0,
        max_queued: int = 512,
    ) -> None:
        self._write = write
        self._close_socket = close_socket
        self._timeout_s = timeout_s
        self._queue: asyncio.Queue[OutMessage | None] = asyncio.Queue(max_queued)
        self._task: asyncio.Task[None] | None = None
        self.closed = False
        self.sent = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox")

    def put(self, message: OutMessage) -> None:
        """Queue one message; after ``Bye`` (or once closed) nothing more is sent."""
        if self.closed:
            return
        try:
            self._queue.put_nowait(message)
        except asyncio.QueueFull:
            log.info("closing a socket whose client does not read its messages")
            self.closed = True
            self._queue = asyncio.Queue(1)
            self._queue.put_nowait(None)
            return
        if isinstance(message, Bye):
            self.closed = True

    def finish(self) -> None:
        """Write what is queued, then close the socket (no ``bye``: e.g. a refused join)."""
        if not self.closed:
            self.closed = True
            with contextlib.suppress(asyncio.QueueFull):
                self._queue.put_nowait(None)

    async def _run(self) -> None:
        try:
            while True:
                message = await self._queue.get()
                if message is None:
                    break
                async with asyncio.timeout(self._timeout_s):
                    await self._write(encode(message))
                self.sent += 1
                if isinstance(message, Bye):
                    break
        except SOCKET_GONE as exc:
            log.info("socket write failed (%s): closing it", type(exc).__name__)
        finally:
            self.closed = True
            with contextlib.suppress(*SOCKET_GONE):
                await self._close_socket()

    async def drain(self, timeout_s: float) -> None:
        """Wait (bounded) until everything queued up to ``Bye`` was written."""
        task = self._task
        if task is None:
            return
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(task), timeout_s)
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
