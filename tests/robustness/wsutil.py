"""Raw websocket helpers: talk to /ws below the GateClient, as an attacker would."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import aiohttp

from server.app import HUB
from tests.integration.conftest import Gatekeeper

# A refusal never says how close a face came or who was nearest: no number that
# looks like a distance or score, and none of these keys, in any message.
LEAKY_KEYS = {"distance", "score", "nearest", "candidates", "similarity", "threshold"}
DISTANCE_RE = re.compile(r"\d\.\d")
GATE_MESSAGES = ("verdict", "error", "progress", "bye", "state", "prompt", "welcome")


async def recv_json(ws: aiohttp.ClientWebSocketResponse, timeout: float = 10) -> dict[str, Any]:
    msg = await ws.receive(timeout=timeout)
    assert msg.type is aiohttp.WSMsgType.TEXT, msg
    data: dict[str, Any] = json.loads(msg.data)
    return data


async def send_recv(ws: aiohttp.ClientWebSocketResponse, payload: Any) -> dict[str, Any]:
    await ws.send_str(payload if isinstance(payload, str) else json.dumps(payload))
    return await recv_json(ws)


async def drain(
    ws: aiohttp.ClientWebSocketResponse, timeout: float = 15
) -> tuple[list[dict[str, Any]], aiohttp.WSMessage]:
    """Every JSON message until the server closes the socket; and the close message."""
    messages: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while True:
            msg = await ws.receive()
            if msg.type is aiohttp.WSMsgType.TEXT:
                messages.append(json.loads(msg.data))
                continue
            return messages, msg


def assert_no_leak(messages: list[dict[str, Any]], other_names: list[str]) -> None:
    """No message names another enrolled person or carries a distance-like figure.

    Gate messages may hold counts (frames, attempts, steps) and one relative time
    limit; any other fractional number, or a "0.42"-like figure in a text, fails.
    """
    for message in messages:
        assert not LEAKY_KEYS & set(message), message
        if message.get("type") not in GATE_MESSAGES:
            continue
        for key, value in message.items():
            if isinstance(value, float):
                assert key == "time_limit_s", message
            if isinstance(value, str):
                assert not DISTANCE_RE.search(value), message
                for name in other_names:
                    assert name not in value, (name, message)


async def wait_until(predicate: Any, timeout: float = 10, step: float = 0.05) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(step)


def live_participants(gk: Gatekeeper) -> int:
    hub = gk.app[HUB]
    return sum(len(r.participants) for r in hub.rooms.values())
