"""The participant websocket: read, validate, enqueue. Nothing else happens here.

The reader never handles a message itself: after ``join`` it puts every parsed
message on the participant's input queue, so a message that takes long to handle
(an offer) never keeps the reader from reading the next one (an answer). Writes
go through the participant's ``Outbox``. Protocol: docs/protocol.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from .clientaddr import request_client_ip
from .device import COOKIE as DEVICE_COOKIE
from .join import join
from .limits import MessageRateLimiter
from .messages import Error, encode
from .outbox import SOCKET_GONE, Outbox
from .participant import Participant
from .roles import CloseReason
from .signalling import Join, Leave, ProtocolError, parse_client_message
from .state import HUB

log = logging.getLogger(__name__)


client_ip = request_client_ip


async def websocket(request: web.Request) -> web.WebSocketResponse:
    hub = request.app[HUB]
    limits = hub.settings.limits
    limit = limits.max_message_bytes
    # Messages over the limit get an error event; far over it (4x) the frame is not
    # even read and aiohttp closes the socket with 1009 (message too big).
    ws = web.WebSocketResponse(heartbeat=20, max_msg_size=4 * limit)
    await ws.prepare(request)

    async def write(message: dict[str, Any]) -> None:
        if not ws.closed:
            await ws.send_json(message)

    outbox = Outbox(write, ws.close, timeout_s=limits.send_timeout_s)
    outbox.start()
    rate = MessageRateLimiter(limits.messages_per_s, limits.message_burst)
    participant: Participant | None = None
    task: asyncio.Task[None] | None = None
    try:
        async for msg in ws:
            if not rate.allow(time.monotonic()):
                log.info("closing a websocket over its message rate (%s)", client_ip(request))
                error = Error("rate_limited", "too many messages; the connection is closed", True)
                with contextlib.suppress(*SOCKET_GONE):
                    await asyncio.wait_for(ws.send_json(encode(error)), 1.0)
                await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"rate limited")
                break
            if msg.type is not WSMsgType.TEXT:
                if msg.type is WSMsgType.BINARY:
                    outbox.put(Error("bad_message", "text only"))
                continue
            try:
                parsed = parse_client_message(msg.data, limit)
            except ProtocolError as err:
                outbox.put(Error(err.code, err.message))
                continue
            if participant is not None:
                participant.enqueue(parsed)
                if isinstance(parsed, Leave):
                    # Nothing after a leave matters: let it finish (records written)
                    # before this socket answers the client's close.
                    await participant.wait_closed(10.0)
                    break
            elif not isinstance(parsed, Join):
                outbox.put(Error("join_first", "send join first"))
            else:
                device = hub.devices.verify(request.cookies.get(DEVICE_COOKIE))
                participant = await join(hub, parsed, outbox, client_ip(request), device)
                if participant is None:
                    outbox.finish()
                    break
                task = asyncio.create_task(participant.run(), name=f"participant-{participant.id}")
    finally:
        if participant is not None:
            participant.request_close(CloseReason.DISCONNECTED, grace=True)
            await participant.wait_closed(10.0)
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:
                log.exception("participant task failed while closing")
        await outbox.drain(2.0)
        with contextlib.suppress(*SOCKET_GONE):
            await ws.close()
    return ws
