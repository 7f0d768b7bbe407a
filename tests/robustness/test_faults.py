"""Faults: ``kill -9`` of a real server process during enrolment and during a meeting.

After a restart on the same data dir nothing that was acknowledged is lost (people,
templates, audit records), the database passes ``PRAGMA integrity_check``, and the
participant who was in the meeting gets back in (verified again: the rejoin grace
lives in memory and dies with the process, by design).
"""

from __future__ import annotations

import asyncio
import io
import os
import signal
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
from PIL import Image

from server.client import GateClient, StillTrack
from server.devserver import ServerProcess, run_server
from server.store import open_store
from tests.integration.conftest import video_frame

ENV = {
    "VIDEOGATE_LIVENESS_POLICY": "off",
    "VIDEOGATE_GATE_SAMPLE_FPS": "8",
    "VIDEOGATE_GATE_ATTEMPT_TIMEOUT_S": "8",
}


def png(rgb: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, format="PNG")
    return out.getvalue()


class Api:
    def __init__(self, http: aiohttp.ClientSession, server: ServerProcess, key: str) -> None:
        self.http, self.base, self.key = http, server.base_url + "/api/v1", key

    async def call(self, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.key}", **kw.pop("headers", {})}
        async with self.http.request(method, self.base + path, headers=headers, **kw) as resp:
            return resp.status, await resp.json()


async def test_kill_9_during_enrolment_and_meeting_loses_nothing(
    tmp_path: Path, faces_dir: Path, d9_frames: list[np.ndarray]
) -> None:
    data = tmp_path / "data"
    setup = open_store(data)
    owner = setup.create_owner("ops@example.org", "not-a-login")
    _, key = setup.create_api_key(owner.id, "faults")
    setup.close()
    stills = sorted((faces_dir / "videos" / "stills" / "lestari15_subject").glob("*.png"))
    acknowledged: list[int] = []
    with run_server(data, env=ENV) as first:
        async with aiohttp.ClientSession() as http:
            api = Api(http, first, key)
            status, room = await api.call(
                "POST", "/rooms", json={"name": "Faults", "liveness_policy": "off"}
            )
            assert status == 201, room
            status, d9 = await api.call("POST", f"/rooms/{room['id']}/persons", json={"name": "D9"})
            assert status == 201
            photo = png(video_frame(faces_dir / "videos" / "liveportrait_d9.mp4", 0.5))
            status, _ = await api.call("POST", f"/persons/{d9['id']}/faces", data=photo)
            assert status == 201
            status, invite = await api.call(
                "POST", f"/rooms/{room['id']}/invites", json={"person_id": d9["id"]}
            )
            assert status == 201
            # A meeting: D9 is admitted and in the room.
            client = GateClient(
                first.base_url,
                room["link"].rsplit("/r/", 1)[1],
                invite=invite["token"],
                video=StillTrack(d9_frames, 10),
            )
            await client.join()
            assert (await client.wait_verdict(30))["admitted"] is True
            # Enrolment in progress: photos uploaded one after another...
            status, lestari = await api.call(
                "POST", f"/rooms/{room['id']}/persons", json={"name": "Lestari"}
            )
            assert status == 201

            async def enrol_forever() -> None:
                for path in stills * 10:
                    code, body = await api.call(
                        "POST", f"/persons/{lestari['id']}/faces", data=path.read_bytes()
                    )
                    if code == 201:
                        acknowledged.append(int(body["face"]["id"]))

            uploads = asyncio.create_task(enrol_forever())
            while len(acknowledged) < 3:
                assert not uploads.done(), uploads
                await asyncio.sleep(0.02)
            # ...and the machine dies: no shutdown, no flush, mid-upload and mid-meeting.
            os.kill(first.pid, signal.SIGKILL)
            with pytest.raises(aiohttp.ClientError):
                await uploads
            await client.close(leave=False)

    store = open_store(data)
    try:
        assert store.integrity_ok()
        persons = {p.name: p for p in store.persons(room["id"])}
        assert set(persons) == {"D9", "Lestari"}
        stored = [f.id for f in store.faces(lestari["id"], owner.id)]
        assert set(acknowledged) <= set(stored), (acknowledged, stored)
        assert len(store.templates(lestari["id"])) == len(stored)
        assert len(store.templates(d9["id"])) == 1
        events = [r.event for r in store.audit_log(room["id"])]
        assert "participant.admitted" in events
    finally:
        store.close()

    with run_server(data, env=ENV) as second:
        again = GateClient(
            second.base_url,
            room["link"].rsplit("/r/", 1)[1],
            invite=invite["token"],
            video=StillTrack(d9_frames, 10),
        )
        try:
            await again.join()
            assert (await again.wait_verdict(30))["admitted"] is True
        finally:
            await again.close()
    store = open_store(data)
    try:
        assert store.integrity_ok()
        admitted = [r for r in store.audit_log(room["id"]) if r.event == "participant.admitted"]
        assert len(admitted) == 2
    finally:
        store.close()
