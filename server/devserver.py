"""Run a real videogate server process on loopback, for tests, benchmarks and demos.

The end-to-end tests and the benchmarks drive the server exactly as a user
starts it (``python -m server serve``) and enrol people with the real CLI, so
what they measure is what ships.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def free_port(count: int = 1) -> int:
    """A port p with p .. p+count-1 free on 127.0.0.1 (``serve --workers`` uses a range)."""
    for _ in range(100):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            base = int(sock.getsockname()[1])
        if count == 1:
            return base
        try:
            for port in range(base + 1, base + count):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
    raise RuntimeError(f"no {count} consecutive free ports")


def _answers(port: int) -> bool:
    try:
        probe = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        probe.request("GET", "/healthz")
        ok = probe.getresponse().status == 200
        probe.close()
        return ok
    except OSError:
        return False


@dataclass
class ServerProcess:
    base_url: str
    data_dir: Path
    port: int
    pid: int
    log_path: Path
    env: Mapping[str, str]
    workers: int = 1

    @property
    def ports(self) -> list[int]:
        """One port per worker process (``serve --workers``): port, port+1, ..."""
        return [self.port + i for i in range(self.workers)]

    def worker_pids(self) -> list[int]:
        """The node processes: the supervisor's children, or the server itself."""
        if self.workers == 1:
            return [self.pid]
        children = Path(f"/proc/{self.pid}/task/{self.pid}/children")
        return [int(p) for p in children.read_text().split()] if children.exists() else []

    def cli(self, *args: str) -> str:
        """Run ``python -m server`` against this server's data dir; return stdout."""
        done = subprocess.run(
            [sys.executable, "-m", "server", *args, "--data-dir", str(self.data_dir)],
            cwd=REPO,
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        return done.stdout

    def enrol(self, room: str, name: str, *photos: Path) -> str:
        """Enrol with the CLI and return the invite link on this server's port."""
        out = self.cli("enrol", room, name, *map(str, photos))
        link = next(line for line in out.splitlines() if line.startswith("Invite link: "))
        path = link.removeprefix("Invite link: ").split("/r/", 1)[1]
        return f"{self.base_url}/r/{path}"


@contextlib.contextmanager
def run_server(
    data_dir: Path,
    env: Mapping[str, str] | None = None,
    startup_s: float = 60.0,
    log_name: str = "server.log",
    workers: int = 1,
) -> Iterator[ServerProcess]:
    """Start ``python -m server serve --loopback`` on a free port; stop it on exit.
    (Cluster nodes may share one data dir: each logs to its own ``log_name``.)
    ``workers`` > 1 runs the supervisor (needs VIDEOGATE_CLUSTER_REDIS_URL in ``env``)."""
    port = free_port(workers)
    log_path = data_dir / log_name
    data_dir.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "server",
                "serve",
                "--loopback",
                "--port",
                str(port),
                "--data-dir",
                str(data_dir),
                "--workers",
                str(workers),
            ],
            cwd=REPO,
            env={**os.environ, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + startup_s
            while not all(_answers(port + i) for i in range(workers)):
                if proc.poll() is not None:
                    raise RuntimeError(f"server exited at start-up:\n{log_path.read_text()}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"server not up in {startup_s} s")
                time.sleep(0.2)
            yield ServerProcess(
                base, data_dir, port, proc.pid, log_path, dict(env or {}), workers
            )
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.contextmanager
def run_redis(directory: Path, startup_s: float = 15.0) -> Iterator[str]:
    """A private ``redis-server`` (Debian package) on a free loopback port, nothing
    persisted, files in ``directory``; yields its URL and stops it by pid on exit."""
    import redis

    port = free_port()
    directory.mkdir(parents=True, exist_ok=True)
    log_path = directory / "redis.log"
    proc = subprocess.Popen(
        [shutil.which("redis-server") or "/usr/bin/redis-server", "--port", str(port),
         "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(directory),
         "--logfile", str(log_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)  # type: ignore[no-untyped-call]
        deadline = time.monotonic() + startup_s
        try:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"redis-server exited:\n{log_path.read_text()}")
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
        finally:
            client.close()  # type: ignore[no-untyped-call]
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
