"""The room engine setting through the API: per-engine calibration on the room, per-engine
templates and the "re-enrol for sface" flag on people, verify and search honouring it."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import ApiWorld
from .test_api import lestari, make_person, make_room


async def test_engines_calibration_reenrol_and_recognition(
    world: ApiWorld, faces_dir: Path
) -> None:
    api = world.alice
    room = await make_room(api)
    assert room["engine"] == "dlib"
    cal = room["calibration"]
    assert set(cal) == {"dlib", "sface", "both", "fused"}
    # the published LFW curve at the default 0.60 (docs/face.md)
    assert cal["dlib"]["far"] == pytest.approx(0.0053, abs=1e-4)
    assert cal["fused"]["frr"] == pytest.approx(0.0053, abs=1e-4)
    assert all(c["set"].startswith("LFW") for c in cal.values())
    status, strict = await api.call("PATCH", f"/rooms/{room['id']}", json={"threshold": 0.55})
    assert status == 200 and strict["calibration"]["fused"]["frr"] > cal["fused"]["frr"]

    person = await make_person(api, room["id"])
    stills = lestari(faces_dir)
    for photo in stills[:2]:
        status, added = await api.call("POST", f"/persons/{person['id']}/faces", data=photo)
        assert status == 201 and added["face"]["engines"] == ["dlib", "sface"]
    status, got = await api.call("GET", f"/persons/{person['id']}")
    assert (got["faces"], got["engines"], got["reenrol_for"]) == (2, ["dlib", "sface"], [])

    # someone enrolled before SFace existed, photos not kept: dlib templates only
    dlib_only = world.store.templates(person["id"])
    legacy = world.store.enrol_person(room["id"], "Legacy", dlib_only, "dlib_resnet_v1_onnx")
    status, listed = await api.call("GET", f"/rooms/{room['id']}/persons")
    flags = {p["name"]: p["reenrol_for"] for p in listed["persons"]}
    assert flags == {"Lestari": [], "Legacy": ["sface"]}

    status, fused = await api.call(
        "PATCH", f"/rooms/{room['id']}", json={"engine": "fused", "threshold": None}
    )
    assert status == 200 and fused["engine"] == "fused"
    status, body = await api.call("POST", f"/persons/{legacy.id}/verify", data=stills[2])
    assert (status, body["error"]["code"]) == (422, "reenrol_needed")
    status, same = await api.call("POST", f"/persons/{person['id']}/verify", data=stills[2])
    assert status == 200 and same["engine"] == "fused" and same["decision"] == "match", same
    stranger = (faces_dir / "faces" / "biden" / "1.jpg").read_bytes()
    status, other = await api.call("POST", f"/persons/{person['id']}/verify", data=stranger)
    assert status == 200 and other["decision"] == "no_match"
    status, found = await api.call("POST", f"/rooms/{room['id']}/search", data=stills[2])
    assert status == 200 and found["engine"] == "fused"
    assert [(f["status"], f["name"]) for f in found["faces"]] == [("match", "Lestari")]
    status, body = await api.call("PATCH", f"/rooms/{room['id']}", json={"engine": "magic"})
    assert (status, body["error"]["code"]) == (422, "bad_engine")
