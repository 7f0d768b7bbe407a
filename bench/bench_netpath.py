"""Join time across simulated networks: direct (through the client's NAT) vs relayed.

The topology of ``tests/net`` (network namespaces, as root): a client network behind
a masquerading NAT, the server behind a 1:1 NAT announcing its public address,
coturn in the "internet". Headless Chromium runs in the client namespace with a
fake camera (Dee Nine's clip); liveness is off, so the figure is network + gate
set-up + face verification: page load -> verdict (``window.__vgtimes.verdict``,
milliseconds since navigation start).

* direct: nothing blocked; the page reaches the server's announced address (path "nat").
* relayed: the client's network drops all UDP and all TCP but port 443; the page
  reaches coturn over TLS on 443 (path "relay", relay protocol "tls").

Each path runs under each condition of delay and loss on the client's link, both
ways. This kernel has no ``tc`` qdiscs (no netem), so the link is a userspace delay
line (``tests/net/delayline.py``: two TUN devices and a forwarding process).
Baseline = direct, same run.

    .venv/bin/python bench/bench_netpath.py [--runs 3] [--json bench/out/bench_netpath.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from playwright.async_api import async_playwright

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from server.fakecam import AUTOSTART_SCRIPT, CHROMIUM, chromium_args, make_y4m  # noqa: E402
from tests.net.netns import SERVER_PUBLIC, probe_namespaces  # noqa: E402
from tests.net.world import (  # noqa: E402
    GateServers,
    audit,
    enrol_people,
    health,
    start_internet,
    wait_for,
)

DATA = Path(os.environ.get("VIDEOGATE_TEST_DATA", REPO.parent / "shared" / "data")) / "faces"
# (delay each way in ms, loss each way in percent) on the client's link.
CONDITIONS: dict[str, tuple[float, float]] = {
    "none": (0, 0),
    "50 ms each way": (50, 0),
    "50 ms each way + 3% loss": (50, 3),
    "150 ms each way + 3% loss": (150, 3),
}


async def one_join(browser: Any, url: str) -> dict[str, Any]:
    page = await browser.new_page()
    await page.add_init_script(AUTOSTART_SCRIPT)  # past the pre-join screen
    try:
        await page.goto(url)
        deadline = time.monotonic() + 60
        while True:
            times = await page.evaluate("() => window.__vgtimes || {}")
            if times.get("verdict"):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("no verdict within 60 s")
            await asyncio.sleep(0.05)
        admitted = await page.is_visible("#room")
        path = await page.get_attribute("#app", "data-netpath")
        return {
            "join_ms": round(times["verdict"]),
            "offer_ms": round(times.get("offer", 0)),
            "connected_ms": round(times.get("connected", 0)),
            "admitted": admitted,
            "path": path,
        }
    finally:
        await page.close()


async def run(runs: int, workdir: Path) -> dict[str, Any]:
    world = start_internet(workdir, delay_line=True)
    servers = None
    try:
        enrolled = enrol_people(DATA, workdir / "data")
        servers = GateServers(world, enrolled)
        url = f"http://{SERVER_PUBLIC}:443/r/{enrolled.room}?invite={enrolled.invites['Dee Nine']}"
        camera = make_y4m(DATA / "videos" / "liveportrait_d9.mp4", workdir / "d9.y4m")
        wrapper = workdir / "chromium-in-netns"
        wrapper.write_text(
            f'#!/bin/sh\nexec ip netns exec {world.topo.ns("cli")} {CHROMIUM} "$@"\n'
        )
        wrapper.chmod(0o755)
        args = [
            *chromium_args(camera),
            f"--unsafely-treat-insecure-origin-as-secure=http://{SERVER_PUBLIC}:443",
            "--ignore-certificate-errors",  # the test TURN server's self-signed certificate
        ]
        results: dict[str, dict[str, list[dict[str, Any]]]] = {}
        with servers.use(turn=True):
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(
                    executable_path=str(wrapper), headless=True, args=args
                )
                try:
                    for name, (delay_ms, loss) in CONDITIONS.items():
                        world.topo.impair(delay_ms=delay_ms, loss=loss)
                        results[name] = {"direct": [], "relayed": []}
                        for _ in range(runs):
                            for path in ("direct", "relayed"):
                                world.topo.unblock_client()
                                if path == "relayed":
                                    world.topo.block_client_udp(allow_tcp_443=True)
                                result = await one_join(browser, url)
                                results[name][path].append(result)
                                print(f"{name:28s} {path:8s} {result}", flush=True)
                                wait_for(
                                    lambda: health(world).get("participants") == 0, 30, "leave"
                                )
                finally:
                    await browser.close()
        world.topo.unblock_client()
        relays = [r for r in audit(enrolled, "media.connected") if r.get("path") == "relay"]
        return {
            "results": results,
            "relay_protocols": sorted({r.get("relay_protocol") for r in relays}),
        }
    finally:
        if servers is not None:
            servers.stop()
        world.topo.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "out" / "bench_netpath.json")
    args = parser.parse_args()
    probe_namespaces()
    # SIGTERM would skip the clean-up (namespaces, coturn, server): make it an exception.
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    with tempfile.TemporaryDirectory(prefix="bench-netpath-") as tmp:
        out = asyncio.run(run(args.runs, Path(tmp)))
    rows = []
    print(f"\nPage load -> verdict, median of {args.runs} (ms); liveness off")
    print(
        f"{'condition':28s} {'direct':>8s} {'relayed':>8s} {'relayed/direct':>15s}"
        f" {'connected: direct':>18s} {'relayed':>8s}"
    )
    for name, cells in out["results"].items():
        med = {
            (p, k): statistics.median(r[k] for r in cells[p])
            for p in ("direct", "relayed")
            for k in ("join_ms", "connected_ms")
        }
        direct, relayed = med["direct", "join_ms"], med["relayed", "join_ms"]
        rows.append(
            {
                "condition": name,
                "direct_ms": direct,
                "relayed_ms": relayed,
                "direct_connected_ms": med["direct", "connected_ms"],
                "relayed_connected_ms": med["relayed", "connected_ms"],
            }
        )
        print(
            f"{name:28s} {direct:8.0f} {relayed:8.0f} {relayed / direct:14.2f}x"
            f" {med['direct', 'connected_ms']:18.0f} {med['relayed', 'connected_ms']:8.0f}"
        )
    paths = {
        p: sorted({r["path"] for c in out["results"].values() for r in c[p]})
        for p in ("direct", "relayed")
    }
    print(f"paths seen: {paths}; relay protocols: {out['relay_protocols']}")
    result = {
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
        },
        "runs": args.runs,
        "rows": rows,
        "paths": paths,
        **out,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
