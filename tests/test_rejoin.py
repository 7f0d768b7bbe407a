"""Rejoin tokens: single-use, bound to the room and to the browser (its device cookie
when it had one, so moving from Wi-Fi to cellular resumes), else to the address."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from server.config import load_settings
from server.hub import GraceEntry, Hub
from server.identity import AdmittedIdentity
from server.store import open_store
from server.verify import CheckTarget


def make_hub(tmp_path: Path) -> Hub:
    settings = load_settings(env={}, overrides={"server": {"data_dir": str(tmp_path)}})
    return Hub(settings, open_store(tmp_path), engine=None)  # type: ignore[arg-type]


def identity() -> AdmittedIdentity:
    target = CheckTarget("p1", {"p1": np.zeros((1, 128), np.float32)}, 0.6)
    return AdmittedIdentity("p1", "Ada", target, 0.3, time.time())


def grace(hub: Hub, token: str, ip: str, device: str | None) -> None:
    hub.grace[token] = GraceEntry("r1", ip, identity(), device, time.monotonic() + 30)


def test_a_browser_with_a_device_cookie_resumes_from_another_address(tmp_path: Path) -> None:
    hub = make_hub(tmp_path)
    grace(hub, "t1", "198.51.100.7", "dev-a")
    assert hub.claim_rejoin("t1", "r1", "203.0.113.9", "dev-a") is not None  # new network
    grace(hub, "t2", "198.51.100.7", "dev-a")
    assert hub.claim_rejoin("t2", "r1", "198.51.100.7", "dev-b") is None  # another browser
    assert hub.claim_rejoin("t2", "r1", "198.51.100.7", "dev-a") is None  # single use


def test_without_a_device_cookie_the_address_must_match(tmp_path: Path) -> None:
    hub = make_hub(tmp_path)
    grace(hub, "t1", "198.51.100.7", None)
    assert hub.claim_rejoin("t1", "r1", "203.0.113.9", None) is None
    grace(hub, "t2", "198.51.100.7", None)
    assert hub.claim_rejoin("t2", "r2", "198.51.100.7", None) is None  # another room
    grace(hub, "t3", "198.51.100.7", None)
    assert hub.claim_rejoin("t3", "r1", "198.51.100.7", None) is not None
