"""A moving print of an enrolled person as Chromium's camera, in a ``passive`` room.

The issue this guards against: a printed photo of an enrolled person, tilted and
moved in front of the camera, was admitted within 4 s under ``passive``. The print is
rendered at test time (:mod:`server.liveness.attacks`) and played as a looping y4m
fake camera; the server must refuse it with reason ``liveness``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.async_api import TimeoutError as PlaywrightTimeout

from server.devserver import ServerProcess, run_server
from server.fakecam import make_y4m
from server.liveness.attacks import generate

from .conftest import Browsers
from .test_liveness_browser import record_server_messages

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def passive_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {"VIDEOGATE_LIVENESS_POLICY": "passive", "VIDEOGATE_GATE_ATTEMPT_TIMEOUT_S": "30"}
    with run_server(tmp_path_factory.mktemp("print-data"), env=env) as server:
        try:
            yield server
        finally:
            print(f"--- server log ---\n{server.log_path.read_text()[-4000:]}")


async def test_moving_print_is_refused_for_liveness_in_a_passive_room(
    passive_server: ServerProcess, browsers: Browsers, faces_dir: Path, y4m_dir: Path,
    tmp_path: Path,
) -> None:
    obama = faces_dir / "faces" / "obama"
    link = passive_server.enrol("Print Room", "Obama", obama / "1.jpg", obama / "3.jpg")
    clip = tmp_path / "obama_print.mp4"
    generate(obama / "2.jpg", clip, 0, motion="turn", framing="close", duration_s=8.0, fps=15.0)
    page = await browsers.page(make_y4m(clip, y4m_dir / "obama_print.y4m"))
    messages = record_server_messages(page)
    await page.goto(link)
    try:
        await page.wait_for_selector("#verdict:not([hidden])", timeout=90_000)
    except PlaywrightTimeout as exc:
        said = [m for m in messages if m["type"] in ("state", "progress", "verdict", "error")]
        raise AssertionError(f"no verdict; the server said: {said[-12:]}") from exc
    verdicts = [m for m in messages if m["type"] == "verdict"]
    assert verdicts and verdicts[0]["admitted"] is False, verdicts
    assert verdicts[0]["reason"] == "liveness", verdicts
    assert await page.is_hidden("#room")
