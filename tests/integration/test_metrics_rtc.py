"""/metrics over a real admission, a real refusal and real forwarding (server/node_metrics.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from server.client import GateClient
from server.face.engine import FaceEngine
from server.store import SqliteStore

from .conftest import serve_gate, video_frame
from .test_gate_rtc import VERDICT_TIMEOUT, lestari_stills

TOKEN = "metrics-test-token"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(base_url: str) -> Samples:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base_url}/metrics", headers=headers) as resp:
            assert resp.status == 200
            text = await resp.text()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


async def test_metrics_count_verdicts_states_and_forwarding(
    engine: FaceEngine, store: SqliteStore, tmp_path: Path, faces_dir: Path
) -> None:
    videos = faces_dir / "videos"
    async with serve_gate(
        engine, store, tmp_path, "Metrics Room", {"policy": "off"},
        server={"metrics_token": TOKEN},
    ) as gk:  # fmt: skip
        before = await scrape(gk.base_url)
        assert value(before, "videogate_admissions_total", kind="admission") == 0
        assert value(before, "videogate_participants") == 0
        lestari = gk.enrol_photos("Lestari", lestari_stills(faces_dir))
        d9 = gk.enrol_frame("D9", video_frame(videos / "liveportrait_d9.mp4", 0.5))
        a = GateClient(gk.base_url, gk.room_slug, invite=lestari,
                       video=str(videos / "lestari_real.mp4"))  # fmt: skip
        stranger = GateClient(gk.base_url, gk.room_slug, invite=d9,
                              video=str(videos / "liveportrait_d3.mp4"))  # fmt: skip
        b = GateClient(gk.base_url, gk.room_slug, invite=d9,
                       video=str(videos / "liveportrait_d9.mp4"))  # fmt: skip
        try:
            await a.join()
            assert (await a.wait_verdict(VERDICT_TIMEOUT))["admitted"] is True
            await stranger.join()
            refused = await stranger.wait_verdict(VERDICT_TIMEOUT)
            assert refused["admitted"] is False and refused["reason"] == "not_recognised"
            mid = await scrape(gk.base_url)
            assert value(mid, "videogate_admissions_total", kind="admission") == 1
            assert value(mid, "videogate_refusals_total", reason="not_recognised",
                         final="false") == 1  # fmt: skip
            assert value(mid, "videogate_participants") == 2
            assert value(mid, "videogate_participants_by_state", state="admitted") == 1
            assert value(mid, "videogate_participants_by_state", state="failed") == 1
            # Every analysed frame went through the gate lane of the work pool.
            assert value(mid, "videogate_analysis_seconds_count", lane="gate") >= 3
            assert value(mid, "videogate_analysis_queue_wait_seconds_count", lane="gate") >= 3
            await b.join()
            assert (await b.wait_verdict(VERDICT_TIMEOUT))["admitted"] is True
            for viewer in (a, b):
                await viewer.wait_for(
                    lambda r: any(t.kind == "video" and t.frames >= 10 for t in r.received), 20
                )
            first = await scrape(gk.base_url)
            await asyncio.sleep(1.0)
            second = await scrape(gk.base_url)
        finally:
            for client in (a, b, stranger):
                await client.close()
    assert value(second, "videogate_admissions_total", kind="admission") == 2
    assert value(second, "videogate_participants_by_state", state="admitted") == 2
    assert value(second, "videogate_rooms_live") == 1
    # One video and one audio leg each way between the two admitted peers.
    assert value(second, "videogate_forwarded_legs", kind="video") == 2
    forwarded = value(second, "videogate_forwarded_frames_total", kind="video")
    assert forwarded > value(first, "videogate_forwarded_frames_total", kind="video") > 0
    assert value(second, "videogate_published_frames_total", kind="video") > 0
    # Both legs flowed between the two scrapes (the rate itself is the bench's business).
    assert value(second, "videogate_forwarded_video_fps", stat="min") > 0
    assert value(second, "videogate_event_loop_lag_seconds_count") > 0
    assert value(second, "videogate_webhook_backlog") == 0
