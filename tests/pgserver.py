"""A throwaway PostgreSQL server for tests: ``initdb`` + ``postgres`` in a temp dir.

It listens on 127.0.0.1 on a free port and on a unix socket inside its own directory,
trusts local connections (nothing else can reach it), runs without fsync (a test
database need not survive a power cut, only a killed process: commits stay
synchronous, so ``kill -9`` of the server loses nothing committed), and is always
stopped by its pid.

PostgreSQL refuses to run as root, and CI runs as root: then the server runs as the
``postgres`` system user (Debian's package creates it) or, failing that, ``nobody``;
as a normal user it runs as that user. Fixtures (``tests/conftest.py`` imports them):

- ``postgres_server`` (session): the running server;
- ``postgres_url`` (function): a URL of a fresh, empty database for one test.

Other suites (cluster tests) can use ``postgres_url`` directly, or ``PgServer`` for a
server of their own (e.g. one they kill).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

SUPERUSER = "videogate"


def postgres_bin() -> Path:
    """The newest installed server's bin dir (Debian: /usr/lib/postgresql/<v>/bin)."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/postgres"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("postgres")
    if on_path:
        return Path(on_path).parent
    raise RuntimeError(
        "PostgreSQL server binaries not found: run scripts/setup.sh --with-browser "
        "(installs Debian's postgresql)"
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run_as() -> pwd.struct_passwd | None:
    """The unprivileged account to run the server as when we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root and neither 'postgres' nor 'nobody' exists")


class PgServer:
    """One PostgreSQL server in a temp dir; ``start`` then always ``stop``."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="videogate-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.bin = postgres_bin()
        self.account = _run_as()

    @property
    def log(self) -> Path:
        return self.root / "postgres.log"

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{dbname}"

    def _spawn(self, args: list[str], **kw: object) -> subprocess.Popen[bytes]:
        account = self.account
        extra: dict[str, object] = {}
        if account is not None:
            extra = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "TZ": "UTC"}
        return subprocess.Popen(args, env=env, cwd=self.root, **extra, **kw)  # type: ignore[call-overload, no-any-return]

    def start(self, timeout_s: float = 30.0) -> None:
        if self.account is not None:
            os.chown(self.root, self.account.pw_uid, self.account.pw_gid)
        init = self._spawn(
            [
                str(self.bin / "initdb"), "-D", str(self.data), "-U", SUPERUSER,
                "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync",
            ],  # fmt: skip
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        out, _ = init.communicate(timeout=120)
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{out.decode(errors='replace')}")
        self._launch(timeout_s)

    def restart(self, sig: int = signal.SIGINT, timeout_s: float = 30.0) -> None:
        """Stop the server by pid (``SIGKILL`` to crash it) and start it again on the
        same data and port: what clients see when their database restarts."""
        self._halt(sig)
        if sig == signal.SIGKILL:  # its backends outlive a killed postmaster briefly
            time.sleep(1.0)
        self._launch(timeout_s)

    def _launch(self, timeout_s: float) -> None:
        with open(self.log, "ab") as log:
            self.proc = self._spawn(
                [
                    str(self.bin / "postgres"), "-D", str(self.data),
                    "-h", "127.0.0.1", "-p", str(self.port), "-k", str(self.root),
                    "-c", "fsync=off", "-c", "full_page_writes=off",
                    "-c", "max_connections=200",
                ],  # fmt: skip
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited:\n{self.log.read_text(errors='replace')}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    pass
                if self._ready():
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"postgres did not start:\n{self.log.read_text(errors='replace')}")

    def _ready(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(self.url(), connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def create_database(self) -> str:
        """A fresh empty database; its URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def _halt(self, sig: int = signal.SIGINT) -> None:
        """``sig`` to the server's pid (SIGINT: fast shutdown), SIGKILL if it lingers."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)

    def stop(self) -> None:
        """Stop the server by pid, then remove its directory."""
        try:
            self._halt()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PgServer]:
    server = PgServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PgServer) -> str:
    """A fresh database on the session's throwaway server."""
    return postgres_server.create_database()
