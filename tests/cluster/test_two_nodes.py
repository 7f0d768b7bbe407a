"""Two server processes sharing Redis and a store: what a participant and an owner see.

The store is the ``cluster_store`` fixture: a PostgreSQL database (a throwaway server
from Debian's package, ``tests/pgserver.py``) both nodes are given as ``[store] url``;
they share a data dir only for the template key. Each test uses its own room.
"""

from __future__ import annotations

import asyncio
import io
import os
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis
from PIL import Image

from server.client import GateClient
from tests.pgserver import PgServer

from ..integration.conftest import video_frame
from .nodes import Cluster, Owner, StoreSpec, settle, two_nodes, wait_gone, wait_key

VERDICT_S = 60.0  # generous: a loaded 2-core machine (waits, not timed assertions)


@pytest.fixture(scope="module")
def cluster_store(
    tmp_path_factory: pytest.TempPathFactory, postgres_server: PgServer
) -> Iterator[StoreSpec]:
    """The nodes' shared store: one PostgreSQL database, as a cluster runs."""
    url = postgres_server.create_database()
    yield StoreSpec({"VIDEOGATE_STORE_URL": url}, tmp_path_factory.mktemp("cluster-data"))


@pytest.fixture(scope="module")
def cluster(redis_url: str, cluster_store: StoreSpec) -> Iterator[Cluster]:
    with two_nodes(redis_url, cluster_store) as nodes:
        yield nodes


@pytest.fixture
async def redis(cluster: Cluster) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(cluster.redis_url, decode_responses=True)
    try:
        await settle(client)
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def owner(cluster: Cluster, redis: aioredis.Redis) -> AsyncIterator[Owner]:
    """An owner signed in on node A, with an API key (one per test: its own email)."""
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        who = Owner(http, cluster.a.base_url)
        email = f"owner-{os.urandom(4).hex()}@example.org"
        await who.sign_up_and_in(email)
        store = cluster.store.open()
        try:
            account, _ = store.owner_credentials(email)
            _, who.key = store.create_api_key(account.id, "cluster test")
        finally:
            store.close()
        yield who


def stills(faces_dir: Path) -> list[bytes]:
    folder = faces_dir / "videos" / "stills" / "lestari15_subject"
    return [p.read_bytes() for p in sorted(folder.glob("*.png"))]


def png_of_frame(path: Path, at_s: float) -> bytes:
    out = io.BytesIO()
    Image.fromarray(video_frame(path, at_s)).save(out, format="PNG")
    return out.getvalue()


def client(node_url: str, link: str, invite: str, video: Path, **kw: str) -> GateClient:
    return GateClient(node_url, link, invite=invite, video=str(video), **kw)  # type: ignore[arg-type]


async def test_enrolled_on_a_admitted_through_b(
    cluster: Cluster, owner: Owner, redis: aioredis.Redis, faces_dir: Path
) -> None:
    got = await owner.room_with("Enrolled on A", {"Lestari": stills(faces_dir)})
    joiner = client(
        cluster.b.base_url,
        got.link,
        got.invites["Lestari"],
        faces_dir / "videos" / "lestari_real.mp4",
    )
    try:
        await joiner.join()
        verdict = await joiner.wait_verdict(VERDICT_S)
        assert verdict["admitted"] is True, verdict
        assert joiner.result.redirects == []  # both idle: the room stays where the join came
        assert await redis.get(f"vg:room:{got.room_id}") == "b"
    finally:
        await joiner.close()


async def test_sockets_on_two_nodes_meet_in_one_room(
    cluster: Cluster, owner: Owner, redis: aioredis.Redis, faces_dir: Path
) -> None:
    videos = faces_dir / "videos"
    d9 = png_of_frame(videos / "liveportrait_d9.mp4", 0.5)
    got = await owner.room_with("Two nodes", {"Lestari": stills(faces_dir), "D9": [d9]})
    first = client(
        cluster.a.base_url, got.link, got.invites["Lestari"], videos / "lestari_real.mp4"
    )
    second = client(cluster.b.base_url, got.link, got.invites["D9"], videos / "liveportrait_d9.mp4")
    try:
        await first.join()
        assert (await first.wait_verdict(VERDICT_S))["admitted"] is True
        await second.join()
        assert (await second.wait_verdict(VERDICT_S))["admitted"] is True
        # The second socket reached B and was sent to A, where the room lives.
        assert second.result.redirects == [cluster.a.ws_url]
        assert await redis.get(f"vg:room:{got.room_id}") == "a"
        for viewer, other in ((first, "D9"), (second, "Lestari")):
            await viewer.wait_for(
                lambda r: any(t.kind == "video" and t.frames >= 10 for t in r.received), VERDICT_S
            )
            peers = viewer.result.of_type("peers")[-1]["peers"]
            assert [p["name"] for p in peers] == [other]
    finally:
        await first.close()
        await second.close()


async def test_a_second_session_on_another_node_takes_the_seat_once_verified(
    cluster: Cluster, owner: Owner, redis: aioredis.Redis, faces_dir: Path
) -> None:
    video = faces_dir / "videos" / "lestari_real.mp4"
    got = await owner.room_with("One seat", {"Lestari": stills(faces_dir)})
    first = client(cluster.a.base_url, got.link, got.invites["Lestari"], video)
    second = client(cluster.b.base_url, got.link, got.invites["Lestari"], video)
    try:
        await first.join()
        assert (await first.wait_verdict(VERDICT_S))["admitted"] is True
        await second.join()
        assert second.result.redirects == [cluster.a.ws_url]
        # While the second session is being checked the first keeps its seat.
        await second.wait_for(lambda r: bool(r.of_type("progress")), VERDICT_S)
        assert not first.result.of_type("error")
        assert (await second.wait_verdict(VERDICT_S))["admitted"] is True
        await first.wait_for(lambda r: bool(r.of_type("error")), 30)
        assert [e["code"] for e in first.result.of_type("error")] == ["replaced"]
    finally:
        await first.close()
        await second.close()


async def test_a_lockout_earned_on_a_holds_on_b(
    cluster: Cluster, owner: Owner, redis: aioredis.Redis, faces_dir: Path
) -> None:
    """Two failures (``lockout_failures`` = 2 here) on node A lock the invite; the same
    invite then reaching node B (the room placed there anew) is locked at once."""
    videos = faces_dir / "videos"
    got = await owner.room_with("Lockout", {"Lestari": stills(faces_dir)})
    invite = got.invites["Lestari"]
    stranger = client(cluster.a.base_url, got.link, invite, videos / "liveportrait_d10.mp4")
    try:
        await stranger.join()
        verdict = await stranger.wait_verdict(VERDICT_S)
        assert verdict["reason"] == "not_recognised" and verdict["final"] is False
        await stranger.send({"type": "ready"})
        await stranger.wait_for(lambda r: len(r.of_type("verdict")) == 2, VERDICT_S)
        assert stranger.result.verdict is not None
        assert stranger.result.verdict["reason"] == "locked_out"
    finally:
        await stranger.close()
    assert await redis.pttl(f"vg:lockout:invite:{invite}") > 0
    await wait_gone(redis, f"vg:room:{got.room_id}")  # the room emptied on A
    await settle(redis)
    again = client(cluster.b.base_url, got.link, invite, videos / "lestari_real.mp4")
    try:
        await again.join()
        verdict = await again.wait_verdict(VERDICT_S)
        assert again.result.redirects == []  # B hosts the room now
        assert verdict["admitted"] is False and verdict["reason"] == "locked_out", verdict
    finally:
        await again.close()


async def test_dashboard_on_a_shows_a_room_on_b_and_asks_it_to_reverify(
    cluster: Cluster, owner: Owner, redis: aioredis.Redis, faces_dir: Path
) -> None:
    got = await owner.room_with("Watched", {"Lestari": stills(faces_dir)})
    rows: list[list[dict[str, object]]] = []
    async with owner.http.ws_connect(f"{cluster.a.base_url}/owner/rooms/{got.room_id}/live") as ws:
        first = await ws.receive_json(timeout=30)
        assert first["participants"] == []
        joiner = client(
            cluster.b.base_url,
            got.link,
            got.invites["Lestari"],
            faces_dir / "videos" / "lestari_real.mp4",
        )
        try:
            await joiner.join()
            assert (await joiner.wait_verdict(VERDICT_S))["admitted"] is True
            assert await redis.get(f"vg:room:{got.room_id}") == "b"

            async def admitted_row() -> None:
                while True:
                    snapshot = await ws.receive_json()
                    rows.append(snapshot["participants"])
                    if any(p["state"] == "admitted" for p in snapshot["participants"]):
                        return

            await asyncio.wait_for(admitted_row(), 30)
            # The owner, on A, asks for a re-verification: it reaches the room on B.
            asked = await owner.api("POST", f"/rooms/{got.room_id}/reverify", json={})
            assert asked == {"asked": []}  # delivered to B; A cannot know whom B asked
            await joiner.wait_for(lambda r: bool(r.of_type("reverify")), VERDICT_S)
        finally:
            await joiner.close()
    assert [p["name"] for p in rows[-1]] == ["Lestari"]
    events = [e["event"] for e in (await _recent(owner, got.room_id))]
    assert "participant.admitted" in events


async def _recent(owner: Owner, room_id: str) -> list[dict[str, object]]:
    async with owner.http.ws_connect(f"{owner.base}/owner/rooms/{room_id}/live") as ws:
        snapshot = await ws.receive_json(timeout=30)
    return list(snapshot["recent"])


@pytest.mark.e2e
async def test_the_page_follows_a_redirect_to_the_rooms_node(
    cluster: Cluster, owner: Owner, redis: aioredis.Redis, faces_dir: Path, tmp_path: Path
) -> None:
    """web/static/room.js in Chromium: the page is served by B, the room lives on A."""
    from playwright.async_api import async_playwright

    from server.fakecam import AUTOSTART_SCRIPT, CHROMIUM, chromium_args, make_y4m

    videos = faces_dir / "videos"
    d9 = png_of_frame(videos / "liveportrait_d9.mp4", 0.5)
    got = await owner.room_with("Browser", {"Lestari": stills(faces_dir), "D9": [d9]})
    first = client(cluster.a.base_url, got.link, got.invites["D9"], videos / "liveportrait_d9.mp4")
    camera = make_y4m(videos / "lestari_real.mp4", tmp_path / "lestari_real.y4m")
    sockets: list[str] = []
    try:
        await first.join()
        assert (await first.wait_verdict(VERDICT_S))["admitted"] is True
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=chromium_args(camera)
            )
            try:
                page = await browser.new_page()
                await page.add_init_script(AUTOSTART_SCRIPT)  # past the pre-join screen
                page.on("websocket", lambda ws: sockets.append(ws.url))
                await page.goto(
                    f"{cluster.b.base_url}/r/{got.link}?invite={got.invites['Lestari']}"
                )
                await page.wait_for_selector("#room:not([hidden])", timeout=60_000)
                # One room: the participant on A is told of the page's person.
                await first.wait_for(
                    lambda r: any(p["name"] == "Lestari" for p in r.of_type("peers")[-1]["peers"]),
                    VERDICT_S,
                )
            finally:
                await browser.close()
        assert sockets == [cluster.b.ws_url, cluster.a.ws_url]
    finally:
        await first.close()


async def test_a_person_deleted_through_a_leaves_the_room_on_b(
    cluster: Cluster, owner: Owner, redis: aioredis.Redis, faces_dir: Path
) -> None:
    video = faces_dir / "videos" / "lestari_real.mp4"
    got = await owner.room_with("Revoked", {"Lestari": stills(faces_dir)})
    joiner = client(cluster.b.base_url, got.link, got.invites["Lestari"], video)
    try:
        await joiner.join()
        assert (await joiner.wait_verdict(VERDICT_S))["admitted"] is True
        assert await redis.get(f"vg:room:{got.room_id}") == "b"
        token = joiner.rejoin_token
        await wait_key(redis, f"vg:grace:{token}", True)  # stored at admission
        await owner.api("DELETE", f"/persons/{got.persons['Lestari']}")  # on node A
        await joiner.wait_for(lambda r: bool(r.of_type("error")), 30)
        assert [e["code"] for e in joiner.result.of_type("error")] == ["revoked"]
        await wait_gone(redis, f"vg:grace:{token}")  # no rejoin on a revoked grant
    finally:
        await joiner.close()


async def test_killed_nodes_participants_resume_on_the_other_within_grace(
    cluster: Cluster, owner: Owner, redis: aioredis.Redis, faces_dir: Path
) -> None:
    """Last in this module: it kills node B (``kill -9``) under a meeting of two."""
    videos = faces_dir / "videos"
    d9 = png_of_frame(videos / "liveportrait_d9.mp4", 0.5)
    got = await owner.room_with("Failover", {"Lestari": stills(faces_dir), "D9": [d9]})
    clips = {"Lestari": videos / "lestari_real.mp4", "D9": videos / "liveportrait_d9.mp4"}
    firsts = {
        name: client(cluster.b.base_url, got.link, got.invites[name], clip)
        for name, clip in clips.items()
    }
    try:
        for first in firsts.values():
            await first.join()
            assert (await first.wait_verdict(VERDICT_S))["admitted"] is True
        assert await redis.get(f"vg:room:{got.room_id}") == "b"
        tokens = {name: str(first.rejoin_token) for name, first in firsts.items()}
        for token in tokens.values():  # stored just after admission
            await wait_key(redis, f"vg:grace:{token}", True)
        os.kill(cluster.b.server.pid, signal.SIGKILL)
    finally:
        for first in firsts.values():
            await first.close(leave=False)
    await wait_gone(redis, "vg:node:b")  # its lease ran out: B is dead for the cluster
    back = {
        name: client(cluster.a.base_url, got.link, got.invites[name], clip, rejoin=tokens[name])
        for name, clip in clips.items()
    }
    try:
        for again in back.values():
            await again.join()
            verdict = await again.wait_verdict(VERDICT_S)
            assert verdict["admitted"] is True, verdict
            assert again.result.of_type("welcome")[0]["resumed"] is True
            assert not again.result.of_type("progress")  # no frame analysed: not re-verified
        assert await redis.get(f"vg:room:{got.room_id}") == "a"
        for name, again in back.items():  # back in one room, seeing each other
            await again.wait_for(
                lambda r: any(t.kind == "video" and t.frames >= 10 for t in r.received), VERDICT_S
            )
            others = [p["name"] for p in again.result.of_type("peers")[-1]["peers"]]
            assert others == [n for n in clips if n != name]
    finally:
        for again in back.values():
            await again.close()
    # Nothing committed on B is lost: both admissions are in the shared store.
    store = cluster.store.open()
    try:
        events = [(r.event, r.details.get("kind")) for r in store.audit_log(got.room_id)]
    finally:
        store.close()
    assert events.count(("participant.admitted", "admission")) == 2
    assert events.count(("participant.admitted", "rejoin")) == 2
