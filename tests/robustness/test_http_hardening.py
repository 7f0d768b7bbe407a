"""HTTP hardening: security headers on every response (pages, errors, static files, the
API, the owner UI), no inline script anywhere, cookie flags, CSRF, and TLS with a
self-signed certificate made at test time (a real ``python -m server serve`` process).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from server.devserver import REPO, free_port
from tests.integration.conftest import Gatekeeper

pytestmark = pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning")
CSRF_RE = re.compile(r'name="_csrf" value="([^"]+)"')
PASSWORD = "correct horse battery"
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)
INLINE_HANDLER = re.compile(r"\son[a-z]+\s*=", re.IGNORECASE)


def assert_security_headers(resp: aiohttp.ClientResponse, where: str) -> None:
    headers = resp.headers
    csp = headers.get("Content-Security-Policy", "")
    directives = {d.strip().split(" ", 1)[0]: d.strip() for d in csp.split(";") if d.strip()}
    assert directives.get("script-src") == "script-src 'self'", (where, csp)
    assert directives.get("frame-ancestors") == "frame-ancestors 'none'", (where, csp)
    assert "default-src" in directives and "base-uri" in directives, (where, csp)
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, (where, csp)
    assert headers.get("X-Content-Type-Options") == "nosniff", where
    assert headers.get("Referrer-Policy") == "no-referrer", where


async def test_every_response_carries_the_security_headers(gate: Gatekeeper) -> None:
    requests = [
        ("GET", "/", 200),
        ("GET", f"/r/{gate.room_slug}", 200),
        ("GET", "/r/no-such-room", 404),
        ("GET", "/static/room.js", 200),
        ("GET", "/static/style.css", 200),
        ("GET", "/static/../config/default.toml", 404),
        ("GET", "/static/missing.js", 404),
        ("GET", "/healthz", 200),
        ("POST", "/healthz", 405),
        ("GET", "/ws", 400),  # not an upgrade
        ("GET", "/nope", 404),
        ("GET", "/owner/signin", 200),
        ("GET", "/owner/rooms", 303),
        ("GET", "/owner/no-such-page", 404),
        ("POST", "/owner/signin", 403),  # no CSRF token
        ("GET", "/api/v1/openapi.json", 200),
        ("GET", "/api/v1/rooms", 401),
        ("GET", "/api/v1/no-such-thing", 401),  # auth before routing: nothing to probe
    ]
    async with aiohttp.ClientSession() as http:
        for method, path, status in requests:
            async with http.request(method, gate.base_url + path, allow_redirects=False) as resp:
                assert resp.status == status, (method, path, resp.status)
                assert_security_headers(resp, f"{method} {path}")
                body = await resp.text()
                if resp.content_type == "text/html":
                    assert not INLINE_SCRIPT.search(body), path
                    assert not INLINE_HANDLER.search(body), path


def test_templates_have_no_inline_script_or_handlers() -> None:
    """CSP forbids inline script; a template that relied on it would silently break."""
    for template in (REPO / "web" / "templates").rglob("*.html"):
        text = template.read_text()
        assert not INLINE_SCRIPT.search(text), template
        assert not INLINE_HANDLER.search(text), template
        assert "javascript:" not in text.lower(), template


async def signup(http: aiohttp.ClientSession, base: str, email: str) -> aiohttp.ClientResponse:
    """Sign up, then sign in (sign-up alone never signs in); the sign-in response."""
    async with http.get(base + "/owner/signup") as page:
        token = CSRF_RE.search(await page.text())
        assert token is not None
    async with http.post(
        base + "/owner/signup",
        data={"email": email, "password": PASSWORD, "_csrf": token.group(1)},
        allow_redirects=False,
    ) as resp:
        assert resp.status == 303
    return await http.post(
        base + "/owner/signin",
        data={"email": email, "password": PASSWORD, "_csrf": token.group(1)},
        allow_redirects=False,
    )


def cookie_flags(resp: aiohttp.ClientResponse) -> str:
    cookies = resp.headers.getall("Set-Cookie", [])
    session = [c for c in cookies if c.startswith("videogate_owner=")]
    assert session, cookies
    return session[-1]


async def test_cookies_and_csrf_over_http(gate: Gatekeeper) -> None:
    # unsafe=True: keep cookies for an IP-address host (127.0.0.1), like a browser does.
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        resp = await signup(http, gate.base_url, "csrf@example.org")
        assert resp.status == 303
        flags = cookie_flags(resp)
        assert "HttpOnly" in flags and "SameSite=Lax" in flags and "Path=/owner" in flags
        assert "Secure" not in flags  # plain http: a Secure cookie would never come back
        # Signed in; an unsafe request without, or with a wrong, token is refused.
        for data in ({"name": "R"}, {"name": "R", "_csrf": "forged"}):
            async with http.post(
                gate.base_url + "/owner/rooms", data=data, allow_redirects=False
            ) as refused:
                assert refused.status == 403
                assert_security_headers(refused, "csrf refusal")
        async with http.post(
            gate.base_url + "/owner/rooms",
            json={"name": "R"},
            headers={"X-CSRF-Token": "forged"},
            allow_redirects=False,
        ) as refused:
            assert refused.status == 403
        # The owner cookie is scoped to /owner: participants' pages never receive it.
        async with http.get(gate.base_url + f"/r/{gate.room_slug}") as page:
            assert "videogate_owner" not in page.request_info.headers.get("Cookie", "")


def make_self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[str, ssl.SSLContext]]:
    """``python -m server serve`` with [server] tls_cert / tls_key set through the env."""
    cert, key = make_self_signed(tmp_path)
    port = free_port()
    env = {
        **os.environ,
        "VIDEOGATE_SERVER_TLS_CERT": str(cert),
        "VIDEOGATE_SERVER_TLS_KEY": str(key),
    }
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "serve", "--loopback", "--port", str(port),
         "--data-dir", str(tmp_path / "data")],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    client_ctx = ssl.create_default_context(cafile=str(cert))
    base = f"https://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, (tmp_path / "server.log").read_text()
            try:
                import urllib.request

                urllib.request.urlopen(base + "/healthz", timeout=1, context=client_ctx).read()
                break
            except OSError:
                assert time.monotonic() < deadline, (tmp_path / "server.log").read_text()
                time.sleep(0.3)
        yield base, client_ctx
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


async def test_tls_serves_https_with_secure_cookies(
    tls_server: tuple[str, ssl.SSLContext],
) -> None:
    base, ctx = tls_server
    connector = aiohttp.TCPConnector(ssl=ctx)
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(connector=connector, cookie_jar=jar) as http:
        async with http.get(base + "/healthz") as resp:
            assert resp.status == 200 and (await resp.json())["ok"] is True
            assert_security_headers(resp, "https healthz")
            # Served over TLS: browsers must keep to https for this host from now on.
            assert resp.headers["Strict-Transport-Security"] == "max-age=31536000"
        resp = await signup(http, base, "tls@example.org")
        assert resp.status == 303
        flags = cookie_flags(resp)
        assert "Secure" in flags and "HttpOnly" in flags and "SameSite=Lax" in flags
        # The websocket is served over wss too.
        async with http.ws_connect(base.replace("https", "wss") + "/ws") as ws:
            await ws.send_str('{"type": "join", "room": "none"}')
            msg = await ws.receive(timeout=10)
            assert '"unknown_room"' in msg.data
    # Plain http to the TLS port gets no page.
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientError):
            async with http.get(base.replace("https", "http") + "/healthz") as resp:
                await resp.read()
