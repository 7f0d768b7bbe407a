"""Owner accounts under attack: stolen session cookies, account enumeration through
sign-up, sign-up floods and password-hashing exhaustion.

No face engine is needed (no page here analyses a face)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from argon2 import PasswordHasher

from server.app import create_app
from server.config import load_settings
from server.face.engine import FaceEngine
from server.owner import auth
from server.owner.session import COOKIE_NAME
from server.store import SqliteStore, open_store

# aiohttp-session 2.12 stores its state under plain string keys.
pytestmark = pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning")
CSRF_RE = re.compile(r'name="_csrf" value="([^"]+)"')
PASSWORD = "correct horse battery"
GUARD_S = 10.0  # a hang guard, not a timing assertion


class Browser:
    def __init__(self, base: str) -> None:
        self.base = base
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.csrf = ""

    async def get(self, path: str) -> tuple[int, str]:
        async with self.http.get(self.base + path, allow_redirects=False) as resp:
            text = await resp.text()
            if found := CSRF_RE.search(text):
                self.csrf = found.group(1)
            return resp.status, text

    async def post(self, path: str, form: dict[str, str]) -> tuple[int, str, dict[str, str]]:
        data = {"_csrf": self.csrf, **form}
        async with self.http.post(self.base + path, data=data, allow_redirects=False) as resp:
            return resp.status, await resp.text(), dict(resp.headers)

    async def signup(self, email: str, password: str = PASSWORD, **extra: str) -> Any:
        query = f"?invite={extra['invite']}" if "invite" in extra else ""
        await self.get("/owner/signin")  # a CSRF token even where the page has no form
        await self.get("/owner/signup" + query)
        return await self.post("/owner/signup", {"email": email, "password": password, **extra})

    async def signin(self, email: str, password: str = PASSWORD) -> int:
        await self.get("/owner/signin")
        status, _, _ = await self.post("/owner/signin", {"email": email, "password": password})
        return status

    def cookie(self) -> str:
        for morsel in self.http.cookie_jar:
            if morsel.key == COOKIE_NAME:
                return morsel.value
        raise AssertionError("no session cookie")

    async def close(self) -> None:
        await self.http.close()


class Site:
    def __init__(self, server: TestServer, store: SqliteStore) -> None:
        self.server = server
        self.store = store
        self.base = str(server.make_url("")).rstrip("/")
        self.browsers: list[Browser] = []

    def browser(self) -> Browser:
        b = Browser(self.base)
        self.browsers.append(b)
        return b

    async def signed_in_with(self, cookie: str) -> bool:
        """What a thief holding ``cookie`` gets from an owner page."""
        headers = {"Cookie": f"{COOKIE_NAME}={cookie}"}
        async with (
            aiohttp.ClientSession() as http,
            http.get(self.base + "/owner/rooms", headers=headers, allow_redirects=False) as resp,
        ):
            return resp.status == 200


@contextlib.asynccontextmanager
async def serve(tmp_path: Path, **owner: Any) -> AsyncIterator[Site]:
    settings = load_settings(
        env={}, overrides={"server": {"data_dir": str(tmp_path)}, "owner": owner}
    )
    store = open_store(tmp_path)
    engine = cast(FaceEngine, object())
    server = TestServer(create_app(settings, engine=engine, store=store), host="127.0.0.1")
    await server.start_server()
    site = Site(server, store)
    try:
        yield site
    finally:
        for b in site.browsers:
            await b.close()
        await server.close()
        store.close()


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    async with serve(tmp_path) as s:
        yield s


async def _signed_up(site: Site, email: str) -> Browser:
    victim = site.browser()
    await victim.signup(email)
    if not await site.signed_in_with(victim.cookie()):
        assert await victim.signin(email) == 303
    assert await site.signed_in_with(victim.cookie())
    return victim


async def test_sign_out_everywhere_ends_a_stolen_cookie(site: Site) -> None:
    victim = await _signed_up(site, "ada@example.org")
    stolen = victim.cookie()
    await victim.get("/owner/account")
    status, _, headers = await victim.post("/owner/signout-everywhere", {})
    assert (status, headers.get("Location")) == (303, "/owner/signin")
    assert not await site.signed_in_with(stolen)
    # Signing in again works and gives a cookie the server accepts.
    assert await victim.signin("ada@example.org") == 303
    assert await site.signed_in_with(victim.cookie())
    assert not await site.signed_in_with(stolen)


async def test_password_change_ends_a_stolen_cookie(site: Site) -> None:
    victim = await _signed_up(site, "ada@example.org")
    stolen = victim.cookie()
    await victim.get("/owner/account")
    new = "a much better passphrase"
    status, _, _ = await victim.post(
        "/owner/account/password", {"current": "wrong password!", "password": new}
    )
    assert status == 422 and await site.signed_in_with(stolen)  # nothing changed
    status, _, _ = await victim.post(
        "/owner/account/password", {"current": PASSWORD, "password": new}
    )
    assert status == 303
    assert not await site.signed_in_with(stolen)
    assert await site.signed_in_with(victim.cookie())  # the one who changed it stays in
    other = site.browser()
    assert await other.signin("ada@example.org", PASSWORD) == 401
    assert await other.signin("ada@example.org", new) == 303


async def test_signup_does_not_reveal_existing_accounts(site: Site) -> None:
    await _signed_up(site, "ada@example.org")
    prober = site.browser()
    taken = await prober.signup("ada@example.org", "another password 1")
    fresh = await site.browser().signup("new@example.org", "another password 2")
    assert taken[0] == fresh[0] and taken[2].get("Location") == fresh[2].get("Location")
    assert "exist" not in taken[1].lower()
    assert site.store.owner_credentials("ada@example.org")[1] != ""  # untouched
    # The generic page after the redirect is the same for both.
    assert (await prober.get("/owner/signin"))[1].count("Sign in") > 0


async def test_signup_is_rate_limited_per_address(tmp_path: Path) -> None:
    async with serve(tmp_path, signups_per_hour=3) as site:
        answers = [await site.browser().signup(f"u{i}@example.org") for i in range(5)]
        assert [a[0] for a in answers[:3]] == [303, 303, 303]
        status, text, headers = answers[3]
        assert status == 429 and int(headers["Retry-After"]) >= 1
        with pytest.raises(Exception, match="no such account"):
            site.store.owner_credentials("u3@example.org")


async def test_signup_closed_and_invite_only(tmp_path: Path) -> None:
    async with serve(tmp_path / "closed", signup="closed") as site:
        status, _, _ = await site.browser().signup("x@example.org")
        assert status == 403
        with pytest.raises(Exception, match="no such account"):
            site.store.owner_credentials("x@example.org")
    async with serve(tmp_path / "invite", signup="invite") as site:
        from server.owner.signup import make_signup_invite

        settings = load_settings(
            env={}, overrides={"server": {"data_dir": str(tmp_path / "invite")}}
        )
        token = make_signup_invite(settings, "invited@example.org", ttl_s=3600)
        status, _, _ = await site.browser().signup("x@example.org")
        assert status == 403  # no invite
        status, _, _ = await site.browser().signup("x@example.org", invite=token)
        assert status == 403  # someone else's invite
        status, _, _ = await site.browser().signup("invited@example.org", invite=token)
        assert status == 303
        assert site.store.owner_credentials("invited@example.org")


async def test_password_hashing_is_bounded_before_hashing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many sign-ups at once: at most ``hash_concurrency`` hashes run; the others are
    refused ``busy`` without spending a hash."""
    release = threading.Event()
    calls = 0
    lock = threading.Lock()

    class SlowHasher(PasswordHasher):
        def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
            nonlocal calls
            with lock:
                calls += 1
            release.wait(GUARD_S * 3)
            return super().hash(password, salt=salt)

    monkeypatch.setattr(auth, "HASHER", SlowHasher())
    async with serve(tmp_path, hash_concurrency=2) as site:
        tasks = [asyncio.create_task(site.browser().signup(f"p{i}@example.org")) for i in range(6)]
        try:
            done, _ = await asyncio.wait(
                tasks, timeout=GUARD_S, return_when=asyncio.FIRST_COMPLETED
            )
            assert done, "every sign-up is waiting for a hash"
            busy = [t.result() for t in done]
        finally:
            release.set()
            results = await asyncio.gather(*tasks)
    assert calls == 2
    assert all(status == 503 and int(h["Retry-After"]) >= 1 for status, _, h in busy)
    assert sorted(r[0] for r in results) == [303, 303, 503, 503, 503, 503]


def test_signup_invites_are_bound_to_email_and_expiry(tmp_path: Path) -> None:
    from server.owner.signup import check_signup_invite, make_signup_invite

    settings = load_settings(env={}, overrides={"server": {"data_dir": str(tmp_path)}})
    token = make_signup_invite(settings, "Ann@Example.org", ttl_s=60, now=1000.0)
    assert check_signup_invite(settings, "ann@example.org", token, now=1059.0)
    assert not check_signup_invite(settings, "ann@example.org", token, now=1061.0)  # expired
    assert not check_signup_invite(settings, "bob@example.org", token, now=1001.0)
    expires, mac = token.split(".")
    forged = f"{int(expires) + 86400}.{mac}"  # a longer life without the key
    assert not check_signup_invite(settings, "ann@example.org", forged, now=1001.0)
    assert not check_signup_invite(settings, "ann@example.org", "garbage", now=1001.0)


async def test_live_dashboard_opened_with_a_stolen_cookie_stops(site: Site) -> None:
    """A dashboard socket opened with the copied cookie gets no further room state after
    the owner signs out everywhere."""
    from server.app import HUB

    victim = await _signed_up(site, "ada@example.org")
    owner, _ = site.store.owner_credentials("ada@example.org")
    room = site.store.create_room("Live", owner_id=owner.id)
    headers = {"Cookie": f"{COOKIE_NAME}={victim.cookie()}"}
    url = f"{site.base}/owner/rooms/{room.id}/live"
    async with aiohttp.ClientSession() as http, http.ws_connect(url, headers=headers) as ws:
        first = await ws.receive_json(timeout=GUARD_S)
        assert first  # the thief sees the room...
        await victim.get("/owner/account")
        await victim.post("/owner/signout-everywhere", {})
        await site.server.app[HUB].push_dashboard(room.id)
        msg = await ws.receive(timeout=GUARD_S)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), msg  # ...no more
