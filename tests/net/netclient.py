"""An aiortc participant run inside the client namespace (``ip netns exec``).

It behaves like the page: ICE servers from the welcome, the selected path or the
failure cause reported in ``netinfo``, ``leave`` after a failure. It prints one JSON
object (one entry per participant) on stdout for the test to read.

    python -m tests.net.netclient --url URL --room SLUG --join INVITE=VIDEO [...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from server.client import GateClient


def cause_of_failure(client: GateClient) -> str:
    """Why nothing connected, as the page words it (docs/protocol.md, netinfo)."""
    welcome = client.result.of_type("welcome")
    servers = welcome[0].get("ice_servers", []) if welcome else []
    if not any("username" in s for s in servers):
        return "no_relay"
    connection: Any = client.pc.getTransceivers()[
        0
    ].sender.transport.transport.iceGatherer._connection
    if not any(c.type == "relay" for c in connection.local_candidates):
        return "relay_unreachable"
    return "checks_failed"


async def run_one(client: GateClient, connect_timeout: float) -> dict[str, Any]:
    started = time.monotonic()
    await client.join()
    out: dict[str, Any] = {"connected": False}
    try:
        async with asyncio.timeout(connect_timeout):
            while client.pc.connectionState != "connected":
                await asyncio.sleep(0.05)
    except TimeoutError:
        out["cause"] = cause_of_failure(client)
        await client.send({"type": "netinfo", "state": "failed", "cause": out["cause"]})
        await client.send({"type": "leave"})
        return out
    elapsed_ms = int((time.monotonic() - started) * 1000)
    path = client.connection_path() or {}
    out.update(connected=True, elapsed_ms=elapsed_ms, **path)
    relay_protocol = {"relay": client.turn_transport or "udp"}.get(path.get("local", ""), None)
    await client.send(
        {"type": "netinfo", "state": "connected", "elapsed_ms": elapsed_ms, **path}
        | ({"relay_protocol": relay_protocol} if relay_protocol else {})
    )
    verdict = await client.wait_verdict(60)
    out["admitted"] = bool(verdict.get("admitted"))
    out["reason"] = verdict.get("reason")
    out["join_s"] = round(time.monotonic() - started, 3)
    return out


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--room", required=True)
    parser.add_argument("--join", action="append", required=True, help="INVITE=VIDEO")
    parser.add_argument("--turn-transport", choices=["udp", "tcp", "tls"])
    parser.add_argument("--connect-timeout", type=float, default=10.0)
    parser.add_argument("--see-each-other", action="store_true")
    args = parser.parse_args()
    clients = []
    for spec in args.join:
        invite, video = spec.split("=", 1)
        clients.append(
            GateClient(
                args.url,
                args.room,
                invite=invite,
                video=video,
                loopback=False,
                ice_from_welcome=True,
                turn_transport=args.turn_transport,
            )
        )
    try:
        results = await asyncio.gather(*(run_one(c, args.connect_timeout) for c in clients))
        if args.see_each_other and all(r.get("admitted") for r in results):
            for client, result in zip(clients, results, strict=True):
                await client.wait_for(
                    lambda r: sum(t.frames for t in r.received if t.kind == "video") >= 10, 40
                )
                result["video_frames_from_others"] = client.video_frames_received()
        print(json.dumps(results), flush=True)
    finally:
        for client in clients:
            await client.close()


if __name__ == "__main__":
    asyncio.run(main())
