"""The app on PostgreSQL through configuration alone (``VIDEOGATE_STORE_URL``): an owner
signs up and creates a room over HTTP, and another node's store sees both.

No face engine is needed (no page here analyses a face)."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import pytest
from aiohttp.test_utils import TestServer

from server.app import create_app
from server.config import load_settings
from server.face.engine import FaceEngine
from server.store import open_store
from server.store.pg import PgStore
from tests.robustness.test_owner_accounts import Browser

pytestmark = pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning")


async def test_owner_signup_and_room_on_postgres(postgres_url: str, tmp_path: Path) -> None:
    settings = load_settings(
        env={"VIDEOGATE_STORE_URL": postgres_url, "VIDEOGATE_SERVER_DATA_DIR": str(tmp_path)}
    )
    assert settings.store.url == postgres_url
    engine = cast(FaceEngine, object())
    server = TestServer(create_app(settings, engine=engine), host="127.0.0.1")
    await server.start_server()
    browser = Browser(str(server.make_url("")).rstrip("/"))
    try:
        status, _, headers = await browser.signup("ada@example.org")
        assert status == 303, headers
        assert await browser.signin("ada@example.org") == 303  # the password was stored
        await browser.get("/owner/rooms")
        status, _, headers = await browser.post("/owner/rooms", {"name": "Algebra"})
        assert status == 303 and headers["Location"].startswith("/owner/rooms/")
        status, page = await browser.get(headers["Location"])
        assert status == 200 and "Algebra" in page
    finally:
        await browser.close()
        await server.close()
    # Another node (same database, same key from the data dir) sees what was committed.
    other = open_store(tmp_path, postgres_url)
    try:
        assert isinstance(other, PgStore)
        owner, _ = other.owner_credentials("ada@example.org")
        assert [r.name for r in other.rooms(owner.id)] == ["Algebra"]
        assert not (tmp_path / "videogate.sqlite3").exists()  # nothing went to SQLite
    finally:
        other.close()
