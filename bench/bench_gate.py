"""Admission latency in a real browser: page load -> first server frame -> decision.

Ours: the real server process (``python -m server serve --loopback``), a person
enrolled with the CLI from videos/stills/lestari15_subject, and headless Chromium
whose fake camera plays lestari_real.mp4. Each run is a fresh page: navigation,
the page starts the camera on load, websocket, offer/answer, ICE, DTLS, first
decoded frame at the gate (the browser receives state "checking"), then the
verdict (liveness off: the target excludes challenge time).

Baseline, same run, same browser: a bare aiortc endpoint that only answers the
offer and timestamps its first decoded frame (no gate, no face work). The ratio
ours/baseline for "page load -> first server frame" is what the gate's lobby
costs on top of plain WebRTC set-up.

    .venv/bin/python bench/bench_gate.py [--runs 10] [--json bench/out/bench_gate.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from aiohttp import web
from aiortc import RTCSessionDescription
from playwright.async_api import async_playwright

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from server.devserver import free_port, run_server  # noqa: E402
from server.fakecam import AUTOSTART_SCRIPT, CHROMIUM, chromium_args, make_y4m  # noqa: E402
from server.rtc.peer import create_peer_connection  # noqa: E402

DATA = Path(os.environ.get("VIDEOGATE_TEST_DATA", REPO.parent / "shared" / "data")) / "faces"

BARE_PAGE = """<!doctype html><html><body><video id=v autoplay muted playsinline></video>
<script>
(async () => {
  const s = await navigator.mediaDevices.getUserMedia({video: {width: 640, height: 480}});
  document.getElementById('v').srcObject = s;
  const pc = new RTCPeerConnection({iceServers: []});
  s.getTracks().forEach((t) => pc.addTrack(t, s));
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((r) => { if (pc.iceGatheringState === 'complete') r();
    pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && r(); });
  const res = await fetch('/offer', {method: 'POST', body: pc.localDescription.sdp});
  await pc.setRemoteDescription({type: 'answer', sdp: await res.text()});
  window.__pc = pc;
})();
</script></body></html>"""


class BareEndpoint:
    """Plain WebRTC receiver: answers, decodes, records the first frame's wall time."""

    def __init__(self) -> None:
        self.first_frame_epoch_ms: float | None = None
        self.pcs: list[Any] = []

    async def page(self, _request: web.Request) -> web.Response:
        return web.Response(text=BARE_PAGE, content_type="text/html")

    async def offer(self, request: web.Request) -> web.Response:
        pc = create_peer_connection(loopback=True)
        self.pcs.append(pc)

        @pc.on("track")
        def _track(track: Any) -> None:
            async def first() -> None:
                await track.recv()
                if self.first_frame_epoch_ms is None:
                    self.first_frame_epoch_ms = time.time() * 1000

            if track.kind == "video":
                asyncio.ensure_future(first())

        await pc.setRemoteDescription(RTCSessionDescription(await request.text(), "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        return web.Response(text=pc.localDescription.sdp)

    async def close(self) -> None:
        for pc in self.pcs:
            await pc.close()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


async def measure(runs: int, workdir: Path) -> dict[str, Any]:
    stills = sorted((DATA / "videos" / "stills" / "lestari15_subject").glob("*.png"))
    camera = make_y4m(DATA / "videos" / "lestari_real.mp4", workdir / "lestari.y4m")
    ours_first: list[float] = []
    ours_decision: list[float] = []
    bare_first: list[float] = []
    # Liveness off: the decision figure excludes challenge time, as the target does.
    env = {
        "VIDEOGATE_GATE_LOCKOUT_FAILURES": "1000",
        "VIDEOGATE_GATE_ADDRESS_FAILURES": "1000",
        "VIDEOGATE_LIVENESS_POLICY": "off",
    }
    with run_server(workdir / "data", env=env) as srv:
        link = srv.enrol("Bench Room", "Lestari", *stills)
        bare = BareEndpoint()
        app = web.Application()
        app.router.add_get("/", bare.page)
        app.router.add_post("/offer", bare.offer)
        runner = web.AppRunner(app)
        await runner.setup()
        bare_port = free_port()
        await web.TCPSite(runner, "127.0.0.1", bare_port).start()
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=chromium_args(camera)
            )
            try:
                for _ in range(runs):
                    page = await browser.new_page()
                    await page.add_init_script(AUTOSTART_SCRIPT)  # no "Start check" wait
                    await page.goto(link)
                    await page.wait_for_selector("#room:not([hidden])", timeout=60_000)
                    times = await page.evaluate("window.__vgtimes")
                    ours_first.append(times["checking"])
                    ours_decision.append(times["verdict"] - times["checking"])
                    await page.click("#leave")
                    await page.close()

                    bare.first_frame_epoch_ms = None
                    page = await browser.new_page()
                    await page.goto(f"http://127.0.0.1:{bare_port}/")
                    origin = await page.evaluate("performance.timeOrigin")
                    for _ in range(200):
                        if bare.first_frame_epoch_ms is not None:
                            break
                        await asyncio.sleep(0.05)
                    assert bare.first_frame_epoch_ms is not None, "bare endpoint got no frame"
                    bare_first.append(bare.first_frame_epoch_ms - origin)
                    await page.close()
            finally:
                await browser.close()
                await bare.close()
                await runner.cleanup()
    return {
        "runs": runs,
        "ours_page_to_first_frame_ms": ours_first,
        "ours_first_frame_to_decision_ms": ours_decision,
        "baseline_page_to_first_frame_ms": bare_first,
    }


def summarise(raw: dict[str, Any]) -> dict[str, Any]:
    def stats(values: list[float]) -> dict[str, float]:
        return {"p50": statistics.median(values), "p95": pct(values, 95)}

    ours_first = stats(raw["ours_page_to_first_frame_ms"])
    bare_first = stats(raw["baseline_page_to_first_frame_ms"])
    return {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "page_to_first_frame_ms": {
            "ours": ours_first,
            "baseline_bare_aiortc": bare_first,
            "ratio_p50": ours_first["p50"] / bare_first["p50"],
        },
        "first_frame_to_decision_ms": stats(raw["ours_first_frame_to_decision_ms"]),
        "targets": {"page_to_first_frame_p95_ms": 800, "first_frame_to_decision_p95_ms": 2000},
        "raw": raw,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "out" / "bench_gate.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = summarise(asyncio.run(measure(args.runs, Path(tmp))))
    first, decision = result["page_to_first_frame_ms"], result["first_frame_to_decision_ms"]
    print(f"machine: {result['machine']}")
    print(f"{'measure':42} {'p50 ms':>9} {'p95 ms':>9} {'target p95':>11}")
    print(
        f"{'page load -> first server frame (ours)':42} {first['ours']['p50']:9.0f} "
        f"{first['ours']['p95']:9.0f} {800:>11}"
    )
    bare = first["baseline_bare_aiortc"]
    print(
        f"{'page load -> first frame (bare aiortc)':42} {bare['p50']:9.0f} "
        f"{bare['p95']:9.0f} {'-':>11}"
    )
    print(f"{'ratio ours / bare (p50)':42} {first['ratio_p50']:9.2f}")
    print(
        f"{'first frame -> decision (ours)':42} {decision['p50']:9.0f} "
        f"{decision['p95']:9.0f} {2000:>11}"
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
