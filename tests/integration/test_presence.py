"""Certified presence over real WebRTC: presence events, host re-verification, signed
reports and webhooks, with aiortc client peers whose camera changes mid-meeting.

Presence checks run every second here (``[presence] interval_s``), two failed checks
raise an event; liveness is off (identity tests, like the ``gatekeeper`` fixture).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from server.app import HUB
from server.client import GateClient, SwitchableTrack, clip_frames
from server.face.engine import FaceEngine
from server.hostdesk import signed_report
from server.hub import Hub
from server.report import verify_report
from server.store import SqliteStore
from server.webhooks import SIGNATURE_HEADER, verify_signature

from .conftest import Gatekeeper, serve_gate

W, H = 640, 480
VERDICT_TIMEOUT = 30.0
EVENT_TIMEOUT = 15.0


def _resize(img: np.ndarray, w: int, h: int) -> np.ndarray:
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
    out: np.ndarray = frame.reformat(width=w, height=h).to_ndarray(format="rgb24")
    return out


def _square(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    s = min(h, w)
    return img[(h - s) // 2 : (h + s) // 2, (w - s) // 2 : (w + s) // 2]


def fit(img: np.ndarray) -> np.ndarray:
    """Letterbox into one fixed size so the encoder never changes resolution."""
    h, w = img.shape[:2]
    scale = min(W / w, H / h)
    nw, nh = int(w * scale) // 2 * 2, int(h * scale) // 2 * 2
    canvas = np.full((H, W, 3), 110, np.uint8)
    y, x = (H - nh) // 2, (W - nw) // 2
    canvas[y : y + nh, x : x + nw] = _resize(img, nw, nh)
    return canvas


def pair(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Two people side by side in one picture."""
    canvas = np.full((H, W, 3), 110, np.uint8)
    canvas[80:400, 0:320] = _resize(_square(a), 320, 320)
    canvas[80:400, 320:640] = _resize(_square(b), 320, 320)
    return canvas


@dataclass
class Scenes:
    lestari: list[np.ndarray]
    other: list[np.ndarray]
    empty: list[np.ndarray]
    two: list[np.ndarray]


@pytest.fixture(scope="module")
def scenes(faces_dir: Path) -> Scenes:
    videos = faces_dir / "videos"
    lestari = clip_frames(str(videos / "lestari_real.mp4"), 3.0, 5.0)
    other = clip_frames(str(videos / "liveportrait_d10.mp4"), 3.0, 5.0, start_s=0.5)
    return Scenes(
        [fit(f) for f in lestari],
        [fit(f) for f in other],
        [np.full((H, W, 3), 110, np.uint8)],
        [pair(a, b) for a, b in zip(lestari, other, strict=False)],
    )


@dataclass
class Hooks:
    """Two loopback receivers: one fine, one failing its first two deliveries."""

    ok_url: str = ""
    flaky_url: str = ""
    ok: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    flaky_tries: int = 0


@contextlib.asynccontextmanager
async def presence_server(
    engine: FaceEngine, store: SqliteStore, data_dir: Path
) -> AsyncIterator[Gatekeeper]:
    async with serve_gate(
        engine,
        store,
        data_dir,
        "Presence Room",
        {"policy": "off"},
        gate={"sample_fps": 5.0, "attempt_timeout_s": 12.0},
        # Short runs (the keyframe and at most two frames after it) keep the decoding
        # bound below tight; tests/robustness/test_presence_evasion.py runs the default.
        presence={"interval_s": 1.0, "keyframe_timeout_s": 2.0, "run_frames": 3},
        webhooks={
            "backoff_s": 0.1,
            "max_attempts": 4,
            "timeout_s": 2.0,
            "allow_networks": "127.0.0.0/8",  # the receivers are on loopback
        },
    ) as gatekeeper:
        yield gatekeeper


@pytest.fixture
async def gk(engine: FaceEngine, store: SqliteStore, tmp_path: Path) -> AsyncIterator[Gatekeeper]:
    async with presence_server(engine, store, tmp_path) as gatekeeper:
        yield gatekeeper


def hub_of(gk: Gatekeeper) -> Hub:
    return gk.app[HUB]


def lestari_stills(faces_dir: Path) -> list[Path]:
    return sorted((faces_dir / "videos" / "stills" / "lestari15_subject").glob("*.png"))


async def admitted_client(
    gk: Gatekeeper, faces_dir: Path, scenes: Scenes
) -> tuple[GateClient, SwitchableTrack]:
    invite = gk.enrol_photos("Lestari", lestari_stills(faces_dir))
    track = SwitchableTrack(scenes.lestari, fps=10)
    client = GateClient(gk.base_url, gk.room_slug, invite=invite, video=track)
    await client.join()
    verdict = await client.wait_verdict(VERDICT_TIMEOUT)
    assert verdict["admitted"] is True, verdict
    return client, track


async def until(predicate: Callable[[], bool], timeout: float = EVENT_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.1)


def events(gk: Gatekeeper) -> list[str]:
    return [r.event for r in gk.store.audit_log(gk.room_id)]


async def test_another_enrolled_person_sitting_down_is_identity_mismatch(
    gk: Gatekeeper, faces_dir: Path, scenes: Scenes
) -> None:
    gk.enrol_frame("Other", scenes.other[0])  # someone else enrolled in the same room
    client, track = await admitted_client(gk, faces_dir, scenes)
    try:
        await until(lambda: any(p.presence.stats.passed >= 2 for p in participants(gk)))
        assert "identity.mismatch" not in events(gk)
        track.show(scenes.other)
        await until(lambda: "identity.mismatch" in events(gk))
        record = next(r for r in gk.store.audit_log(gk.room_id) if r.event == "identity.mismatch")
        assert record.details["faces"] == 1 and record.details["distance"] > 0.6
        snapshot = hub_of(gk).dashboard_snapshot(gk.room_id)
        assert snapshot["participants"][0]["presence"]["flags"] == ["identity.mismatch"]
        assert "presence.lost" not in events(gk)
        track.show(scenes.lestari)
        await until(lambda: "presence.restored" in events(gk))
    finally:
        await client.close()


def participants(gk: Gatekeeper) -> list:  # type: ignore[type-arg]
    runtime = hub_of(gk).rooms.get(gk.room_id)
    return list(runtime.participants.values()) if runtime else []


async def test_leaving_the_frame_then_a_second_face(
    gk: Gatekeeper, faces_dir: Path, scenes: Scenes
) -> None:
    client, track = await admitted_client(gk, faces_dir, scenes)
    try:
        (p,) = participants(gk)
        assert p.publisher is not None
        before = p.publisher.stats()
        track.show(scenes.empty)
        await until(lambda: "presence.lost" in events(gk))
        track.show(scenes.two)  # back, with someone beside them
        await until(lambda: "extra.person" in events(gk))
        seen = events(gk)
        assert "identity.mismatch" not in seen  # the participant is one of the two faces
        assert "presence.restored" in seen  # the face came back
        stats = p.presence.stats
        assert stats.made >= 4 and 0 < stats.passed < stats.made
        # Sparse decoding: a short run per check (run_frames), not the whole stream.
        after = p.publisher.stats()
        decoded = after.frames_decoded - before.frames_decoded
        sent = after.video_frames - before.video_frames
        assert decoded <= 3 * (stats.made + stats.skipped) and decoded < sent / 3, (decoded, sent)
    finally:
        await client.close()
    summary = [r for r in gk.store.audit_log(gk.room_id) if r.event == "presence.summary"]
    assert summary and summary[0].details["checks"] >= 4


async def test_host_reverify_passes_and_pauses_media(
    gk: Gatekeeper, faces_dir: Path, scenes: Scenes
) -> None:
    client, track = await admitted_client(gk, faces_dir, scenes)
    viewer_invite = gk.enrol_frame("Viewer", scenes.other[0])
    viewer = GateClient(
        gk.base_url, gk.room_slug, invite=viewer_invite, video=SwitchableTrack(scenes.other, 10)
    )
    try:
        await viewer.join()
        assert (await viewer.wait_verdict(VERDICT_TIMEOUT))["admitted"] is True
        await viewer.wait_for(lambda r: viewer.video_frames_received() > 5, 15)
        p = next(x for x in participants(gk) if x.name == "Lestari")
        # Nobody in front of the camera while the host asks: the check holds (no face)
        # long enough to see that the others receive nothing meanwhile.
        track.show(scenes.empty)
        assert await hub_of(gk).reverify(gk.room_id, p.id) == [p.id]
        assert p.publisher is not None and p.publisher.paused  # others get nothing meanwhile
        await asyncio.sleep(0.5)  # frames already in flight
        frozen = viewer.video_frames_received()
        await asyncio.sleep(1.0)
        assert viewer.video_frames_received() - frozen <= 1
        track.show(scenes.lestari)
        await client.wait_for(lambda r: bool(r.of_type("reverify")), 5)
        await client.wait_for(lambda r: len([v for v in r.of_type("verdict")]) >= 2, 20)
        assert client.result.verdict is not None and client.result.verdict["admitted"] is True
        states = [m["state"] for m in client.result.of_type("state")]
        assert "reverifying" in states and states[-1] == "admitted"
        assert not p.publisher.paused and not p.publisher.decoding
        assert p.admitted and gk.room_id in hub_of(gk).rooms
        assert "reverify.passed" in events(gk)
        resumed = viewer.video_frames_received()
        await viewer.wait_for(lambda r: viewer.video_frames_received() > resumed + 5, 10)
    finally:
        await viewer.close()
        await client.close()


async def test_host_reverify_fails_and_removes_with_reason(
    gk: Gatekeeper, faces_dir: Path, scenes: Scenes
) -> None:
    client, track = await admitted_client(gk, faces_dir, scenes)
    try:
        (p,) = participants(gk)
        track.show(scenes.other)  # someone else is at the keyboard when the host asks
        assert await hub_of(gk).reverify(gk.room_id, p.id) == [p.id]
        await client.wait_for(lambda r: any(m["type"] == "bye" for m in r.messages), 25)
        verdict = client.result.verdict
        assert verdict is not None and verdict["admitted"] is False and verdict["final"] is True
        assert verdict["reason"] == "not_recognised"
        assert participants(gk) == [] and not hub_of(gk).rooms
        failed = [r for r in gk.store.audit_log(gk.room_id) if r.event == "reverify.failed"]
        assert failed and failed[0].details["reason"] == "not_recognised"
    finally:
        await client.close()


async def test_signed_report_and_webhooks(gk: Gatekeeper, faces_dir: Path, scenes: Scenes) -> None:
    hooks = Hooks()

    async def ok(request: web.Request) -> web.Response:
        hooks.ok.append((dict(request.headers), await request.read()))
        return web.Response(status=200)

    async def flaky(_request: web.Request) -> web.Response:
        hooks.flaky_tries += 1
        return web.Response(status=500 if hooks.flaky_tries <= 2 else 204)

    receiver = web.Application()
    receiver.router.add_post("/ok", ok)
    receiver.router.add_post("/flaky", flaky)
    server = TestServer(receiver, host="127.0.0.1")
    await server.start_server()
    _hook, secret = gk.store.create_webhook(gk.room_id, str(server.make_url("/ok")))
    flaky_hook, _ = gk.store.create_webhook(
        gk.room_id, str(server.make_url("/flaky")), ["participant.admitted"]
    )
    try:
        client, _track = await admitted_client(gk, faces_dir, scenes)
        await until(lambda: any(p.presence.stats.made >= 2 for p in participants(gk)))
        await client.close()
        await until(lambda: not hub_of(gk).rooms)
        await hub_of(gk).audit_settled()  # webhooks are prepared on the audit writer
        await hub_of(gk).webhooks.drain(10)
        got = {}
        for headers, body in hooks.ok:
            assert verify_signature(secret, headers[SIGNATURE_HEADER], body, time.time())
            got[headers["X-Videogate-Event"]] = body
        assert {"participant.admitted", "participant.left", "meeting.ended"} <= set(got)
        assert b'"ip"' not in got["participant.admitted"]  # the address stays in the audit
        (delivery,) = gk.store.deliveries(flaky_hook.id)
        assert (delivery.status, delivery.attempts) == ("delivered", 3)

        room = gk.store.room(gk.room_id)
        (meeting,) = gk.store.meetings(gk.room_id)
        assert meeting.ended is not None
        envelope = signed_report(hub_of(gk), room, meeting.id)
        (person,) = envelope["report"]["participants"]
        assert person["name"] == "Lestari" and person["joined"] and person["left"]
        assert person["admitted"] and person["verifications"][0]["result"] == "passed"
        assert person["presence"]["checks"] >= 2 and person["presence"]["ratio"] > 0.5
        pinned = hub_of(gk).signing_key.public_key()
        assert verify_report(envelope, pinned).ok
        tampered = copy.deepcopy(envelope)
        tampered["report"]["participants"][0]["left"] += 600  # "stayed ten minutes longer"
        problems = verify_report(tampered, pinned).problems
        assert problems == [f"changed: participants[{person['participant_id']}].left (Lestari)"]
    finally:
        await server.close()
