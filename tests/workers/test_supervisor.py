"""``python -m server serve --workers N`` (server/supervisor.py) as real processes.

A real ``redis-server`` (Debian package, started here in a temp dir on loopback and
stopped by pid) stands for the cluster URL that N > 1 requires.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.config import load_settings
from server.devserver import free_port
from server.supervisor import Supervisor, WorkersRefused, worker_count

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 120.0


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
         "no", "--dir", str(tmp_path), "--protected-mode", "yes"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError("redis-server did not start")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        _stop(proc)


def _children(pid: int) -> set[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return {int(p) for p in path.read_text().split()} if path.exists() else set()


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as resp:
            return bool(json.loads(resp.read()) == {"ok": True})
    except OSError:
        return False


def _wait(predicate: object, timeout: float, what: str) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def test_two_workers_restart_and_stop_by_pid(redis_url: str, tmp_path: Path) -> None:
    port = free_port(2)
    env = {
        **os.environ,
        "VIDEOGATE_CLUSTER_REDIS_URL": redis_url,
        "VIDEOGATE_SERVER_LOG_FORMAT": "json",
        "VIDEOGATE_CLUSTER_NODE_ID": "test-node",
    }
    log = (tmp_path / "supervisor.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "serve", "--workers", "2", "--host", "127.0.0.1",
         "--port", str(port), "--data-dir", str(tmp_path / "data")],
        cwd=REPO, env=env, stdout=log, stderr=log,
    )  # fmt: skip
    workers: set[int] = set()
    try:
        _wait(lambda: _healthy(port) and _healthy(port + 1), START_TIMEOUT_S, "both workers")
        workers = _children(proc.pid)
        assert len(workers) == 2
        # Each worker is its own node: its id and advertised URL name its port.
        for pid in workers:
            environ = dict(
                item.split("=", 1)
                for item in Path(f"/proc/{pid}/environ").read_text().split("\0")
                if "=" in item
            )
            index = int(environ["VIDEOGATE_SERVER_PORT"]) - port
            assert environ["VIDEOGATE_CLUSTER_NODE_ID"] == f"test-node/{index}"
            assert environ["VIDEOGATE_CLUSTER_ADVERTISE_URL"] == (
                f"http://127.0.0.1:{port + index}"
            )
        victim = max(workers)
        os.kill(victim, signal.SIGKILL)
        _wait(lambda: len(_children(proc.pid) - workers) == 1, 30, "a replacement worker")
        _wait(lambda: _healthy(port) and _healthy(port + 1), START_TIMEOUT_S, "the restart")
        workers = _children(proc.pid)
        assert victim not in workers and len(workers) == 2
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert not any(_alive(pid) for pid in workers)
    finally:
        _stop(proc)
        for pid in workers:  # only if the supervisor failed to: by pid, never by name
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        log.close()
    lines = [json.loads(line) for line in (tmp_path / "supervisor.log").read_text().splitlines()
             if line.startswith("{")]  # fmt: skip
    exits = [entry for entry in lines if "exited" in str(entry["message"])]
    assert len(exits) == 1 and exits[0]["level"] == "warning"
    assert f"pid {victim}" in str(exits[0]["message"])


def test_several_workers_need_redis(tmp_path: Path) -> None:
    """Without a cluster URL each process would keep its own lockouts and seats."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDEOGATE_")}
    done = subprocess.run(
        [sys.executable, "-m", "server", "serve", "--workers", "2", "--data-dir",
         str(tmp_path)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "[cluster] redis_url" in done.stderr
    assert not (tmp_path / "models").exists()  # refused before any worker started


def test_worker_count_defaults_and_plan() -> None:
    plain = load_settings(env={})
    assert worker_count(None, plain) == 1
    assert worker_count(1, plain) == 1
    with pytest.raises(WorkersRefused):
        worker_count(3, plain)
    clustered = load_settings(
        env={
            "VIDEOGATE_CLUSTER_REDIS_URL": "redis://127.0.0.1:6379/0",
            "VIDEOGATE_CLUSTER_ADVERTISE_URL": "https://meet.example.org:{port}",
            "VIDEOGATE_SERVER_PORT": "9000",
        }
    )
    assert worker_count(None, clustered) == (os.cpu_count() or 1)
    plan = Supervisor.plan(clustered, 3, ["serve", "--workers", "1"])
    assert [w.port for w in plan.workers] == [9000, 9001, 9002]
    assert plan.workers[2].env["VIDEOGATE_CLUSTER_ADVERTISE_URL"] == (
        "https://meet.example.org:9002"
    )
    assert plan.workers[1].env["VIDEOGATE_CLUSTER_NODE_ID"] == "127.0.0.1:9000/1"


def test_a_worker_does_not_outlive_a_killed_supervisor(tmp_path: Path) -> None:
    """kill -9 of the supervisor: the kernel SIGTERMs its workers (PR_SET_PDEATHSIG),
    so none keeps its port. Shown with a stand-in worker (sleep) to stay fast."""
    pid_file = tmp_path / "child.pid"
    script = (
        "import subprocess, sys, time\n"
        "from server.supervisor import _die_with_parent\n"
        "child = subprocess.Popen(['sleep', '60'], process_group=0,"
        " preexec_fn=_die_with_parent)\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "time.sleep(60)\n"
    )
    middle = subprocess.Popen([sys.executable, "-c", script], cwd=REPO)
    child = 0
    try:
        _wait(lambda: pid_file.exists() and pid_file.read_text(), 30, "the stand-in worker")
        child = int(pid_file.read_text())
        assert _alive(child)
        os.kill(middle.pid, signal.SIGKILL)
        middle.wait(10)
        _wait(lambda: not _alive(child), 10, "the orphan to be stopped")
    finally:
        _stop(middle)
        if child and _alive(child):
            os.kill(child, signal.SIGKILL)
