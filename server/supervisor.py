"""``python -m server serve --workers N``: N node processes on one machine, supervised.

Why processes, one port each: one Python process uses one core for media and gate
decisions. Rooms are pinned to nodes (docs/scale.md): every worker is a node of its
own, with its own port (base port + i), its own ``[cluster] node_id`` and
``advertise_url`` (given through the environment, which wins over files), so the
room registry can send a participant to the worker that owns the room. No shared
listening socket: a socket shared by N processes would hand a participant's
websocket to a random worker, not to the room's owner.

Why N > 1 needs ``[cluster] redis_url``: without it, lockout counters, lobby caps,
seats and rejoin tokens live in each process's memory, so N workers would each
allow ``lockout_failures`` guesses and one person could hold N seats.

The supervisor:

- starts worker 0 first and the others once it answers ``/healthz`` (worker 0 makes
  what a fresh data dir lacks: keys, migrations, converted models, so no two
  processes race to create them);
- forwards SIGTERM / SIGINT to every worker by pid, waits ``STOP_TIMEOUT_S``, then
  SIGKILLs what is left;
- restarts a worker that exits on its own, after 1, 2, 4 ... up to ``BACKOFF_MAX_S``
  seconds; the delay resets once a worker has stayed up ``STABLE_S``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import FrameType

from .config import Settings

log = logging.getLogger(__name__)

BACKOFF_MIN_S = 1.0
BACKOFF_MAX_S = 30.0
STABLE_S = 60.0
STOP_TIMEOUT_S = 15.0
FIRST_READY_TIMEOUT_S = 180.0
POLL_S = 0.2


def _die_with_parent() -> None:
    """In the child before exec (Linux): SIGTERM it if the supervisor dies, even by
    SIGKILL, so no worker outlives it holding its port."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class WorkersRefused(Exception):
    """``--workers`` cannot be honoured with these settings; the message says why."""


def worker_count(requested: int | None, settings: Settings) -> int:
    """``--workers``, else one per core with a cluster URL, else 1; N > 1 needs Redis."""
    redis = settings.cluster.redis_url
    count = requested if requested is not None else (os.cpu_count() or 1) if redis else 1
    if count < 1:
        raise WorkersRefused("--workers must be at least 1")
    if count > 1 and not redis:
        raise WorkersRefused(
            f"--workers {count} needs [cluster] redis_url (VIDEOGATE_CLUSTER_REDIS_URL): "
            "without Redis each worker would keep its own lockout counters, lobby caps, "
            "seats and rejoin tokens. Start redis-server and set it, or use --workers 1."
        )
    return count


@dataclass
class Worker:
    index: int
    port: int
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    backoff: float = BACKOFF_MIN_S
    restart_at: float | None = None
    restarts: int = 0


@dataclass
class Supervisor:
    """Runs ``argv`` (a ``serve --workers 1`` command line) once per worker."""

    argv: Sequence[str]
    workers: list[Worker]
    health_host: str
    tls: bool = False
    _stop: int | None = field(default=None, init=False)

    @classmethod
    def plan(cls, settings: Settings, count: int, argv: Sequence[str]) -> Supervisor:
        server, cluster = settings.server, settings.cluster
        scheme = "https" if server.tls_cert else "http"
        base_id = cluster.node_id or f"{server.host}:{server.port}"
        workers = []
        for i in range(count):
            port = server.port + i
            advertise = cluster.advertise_url.replace("{port}", str(port)).replace(
                "{worker}", str(i)
            )
            env = {
                "VIDEOGATE_SERVER_PORT": str(port),
                "VIDEOGATE_CLUSTER_NODE_ID": f"{base_id}/{i}",
                "VIDEOGATE_CLUSTER_ADVERTISE_URL": advertise
                or f"{scheme}://{server.host}:{port}",
            }
            workers.append(Worker(i, port, env))
        host = "127.0.0.1" if server.host in ("0.0.0.0", "", "::") else server.host
        return cls(list(argv), workers, host, bool(server.tls_cert))

    # -- running --

    def run(self) -> int:
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            first, rest = self.workers[0], self.workers[1:]
            self._start(first)
            if rest and not self._wait_ready(first):
                return 1 if self._stop is None else 0
            for worker in rest:
                self._start(worker)
            ports = ", ".join(str(w.port) for w in self.workers)
            print(f"videogate supervisor: {len(self.workers)} workers on ports {ports}", flush=True)
            while self._stop is None:
                self._tend(time.monotonic())
                time.sleep(POLL_S)
            return 0
        finally:
            self._stop_all(self._stop or signal.SIGTERM)
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._stop = signum

    def _start(self, worker: Worker) -> None:
        env = {**os.environ, **worker.env}
        # Own process group: a terminal's Ctrl-C reaches only the supervisor, which
        # forwards it once (a second SIGINT would cut a worker's graceful shutdown).
        worker.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "server", *self.argv],
            env=env,
            process_group=0,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - single-threaded supervisor
        )
        worker.started = time.monotonic()
        worker.restart_at = None
        log.info("worker %d started: pid %d, port %d", worker.index, worker.proc.pid, worker.port)

    def _tend(self, now: float) -> None:
        """Notice exits, schedule restarts with backoff, carry out those that are due."""
        for worker in self.workers:
            proc = worker.proc
            if proc is not None and proc.poll() is not None:
                up = now - worker.started
                if up >= STABLE_S:
                    worker.backoff = BACKOFF_MIN_S
                worker.restart_at = now + worker.backoff
                log.warning(
                    "worker %d (pid %d) exited with %s after %.0f s; restart in %.0f s",
                    worker.index, proc.pid, proc.returncode, up, worker.backoff,
                )  # fmt: skip
                worker.backoff = min(BACKOFF_MAX_S, worker.backoff * 2)
                worker.proc = None
            if worker.proc is None and worker.restart_at is not None and now >= worker.restart_at:
                worker.restarts += 1
                self._start(worker)

    def _wait_ready(self, worker: Worker) -> bool:
        scheme = "https" if self.tls else "http"
        url = f"{scheme}://{self.health_host}:{worker.port}/healthz"
        # Loopback probe of our own child: its certificate names the public host.
        context = ssl._create_unverified_context() if self.tls else None  # noqa: S323
        deadline = time.monotonic() + FIRST_READY_TIMEOUT_S
        while self._stop is None and time.monotonic() < deadline:
            if worker.proc is None or worker.proc.poll() is not None:
                log.error("worker %d exited before it was ready", worker.index)
                return False
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(url, timeout=1.0, context=context) as resp:  # noqa: S310
                    if resp.status == 200:
                        return True
            time.sleep(POLL_S)
        return False

    def _stop_all(self, signum: int) -> None:
        """Forward the signal to every worker by pid; SIGKILL whoever outlives the wait."""
        live = [w.proc for w in self.workers if w.proc is not None and w.proc.poll() is None]
        for proc in live:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signum)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for proc in live:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("worker pid %d did not stop in time: killed", proc.pid)
                proc.kill()
                proc.wait()
