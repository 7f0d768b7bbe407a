"""The simulated internet with its services: coturn, two enrolled people, the server.

Used by the namespace tests (through ``conftest.py``'s fixtures) and by
``bench/bench_netpath.py``. The topology itself is ``netns.py``.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av

from .netns import (
    SERVER_PUBLIC,
    TURN_ADDRESS,
    TURN_PORT,
    TURN_TLS_PORT,
    Topology,
    coturn_config,
    make_turn_certificate,
    sh,
)

REPO = Path(__file__).resolve().parents[2]
PORT_MIN, PORT_MAX = 40000, 40099
TURN_URLS = (
    f"turn:{TURN_ADDRESS}:{TURN_PORT}?transport=udp, turn:{TURN_ADDRESS}:{TURN_PORT}?transport=tcp,"
    f" turns:{TURN_ADDRESS}:{TURN_TLS_PORT}?transport=tcp"
)


@dataclass
class Net:
    topo: Topology
    workdir: Path
    secret: str
    cert: Path


def start_internet(workdir: Path, *, delay_line: bool = False) -> Net:
    """Build the topology and start coturn in it; the caller closes ``net.topo``.

    ``delay_line``: the client's link can delay and drop (``Topology.impair``)."""
    for tool in ("turnserver", "nft", "openssl"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            raise RuntimeError(f"{tool} is missing: run scripts/setup.sh --with-browser")
    topo = Topology(delay_line_dir=workdir if delay_line else None)
    try:
        topo.build()
        cert, key = make_turn_certificate(workdir)
        secret = secrets.token_hex(16)
        conf = coturn_config(workdir, secret, cert, key)
        turn = topo.spawn("inet", ["turnserver", "-c", str(conf)], workdir / "coturn.log", {})
        wait_for(lambda: _listening(topo, "inet", TURN_TLS_PORT), 20, "coturn", proc=turn)
    except BaseException:
        topo.close()
        raise
    return Net(topo, workdir, secret, cert)


def tail(path: Path, size: int = 3000) -> str:
    return path.read_text(errors="replace")[-size:] if path.exists() else "(none)"


def _listening(topo: Topology, role: str, port: int) -> bool:
    return f":{port} " in sh("ss", "-ltnH", ns=topo.ns(role), check=False)


def wait_for(
    predicate: Any, timeout: float, what: str, proc: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)


def save_frame(video: Path, at_s: float, target: Path) -> Path:
    with av.open(str(video)) as container:
        for frame in container.decode(video=0):
            if frame.time is not None and frame.time >= at_s:
                frame.to_image().save(target)  # type: ignore[no-untyped-call]
                return target
    raise AssertionError(f"{video} shorter than {at_s}s")


@dataclass
class Enrolled:
    data_dir: Path
    room: str
    invites: dict[str, str]  # name -> invite token
    videos: dict[str, Path]


def enrol_people(faces_dir: Path, data_dir: Path) -> Enrolled:
    """Two people enrolled with the real CLI (before any server starts)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    videos = faces_dir / "videos"
    people = {
        "Dee Nine": ([save_frame(videos / "liveportrait_d9.mp4", 0.5, data_dir / "d9.png")],
                     videos / "liveportrait_d9.mp4"),
        "Lestari": (sorted((videos / "stills" / "lestari15_subject").glob("*.png")),
                    videos / "lestari_real.mp4"),
    }  # fmt: skip
    invites: dict[str, str] = {}
    room_link = ""
    for name, (photos, _) in people.items():
        out = subprocess.run(
            [sys.executable, "-m", "server", "enrol", "Net Room", name, *map(str, photos),
             "--data-dir", str(data_dir)],
            cwd=REPO, capture_output=True, text=True, check=True, timeout=180,
            # The room takes the liveness policy at creation: identity and paths only.
            env={**os.environ, "VIDEOGATE_LIVENESS_POLICY": "off"},
        ).stdout  # fmt: skip
        link = next(line for line in out.splitlines() if line.startswith("Invite link: "))
        invites[name] = link.split("invite=", 1)[1].strip()
        # The room's link (slug + unguessable token), as the invite link carries it.
        room_link = link.split("/r/", 1)[1].split("?", 1)[0]
    return Enrolled(data_dir, room_link, invites, {n: v for n, (_, v) in people.items()})


class GateServers:
    """The server in its private namespace, announcing the public address, on port 443.

    One at a time (one port), reused by consecutive tests wanting the same
    configuration: start-up loads the models, the slowest part of these tests.
    """

    def __init__(self, net: Net, enrolled: Enrolled) -> None:
        self.net, self.enrolled = net, enrolled
        self.turn: bool | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    def log(self, turn: bool) -> Path:
        return self.net.workdir / f"server-{'turn' if turn else 'noturn'}.log"

    @contextlib.contextmanager
    def use(self, *, turn: bool) -> Iterator[subprocess.Popen[bytes]]:
        if self.proc is not None and (self.turn != turn or self.proc.poll() is not None):
            self.stop()
        if self.proc is None:
            self.proc = self._start(turn)
            self.turn = turn
        try:
            yield self.proc
        except BaseException:
            print(f"--- server log (tail) ---\n{tail(self.log(turn))}")
            raise

    def _start(self, turn: bool) -> subprocess.Popen[bytes]:
        env = {
            "VIDEOGATE_LIVENESS_POLICY": "off",
            "VIDEOGATE_GATE_SAMPLE_FPS": "5",
            "VIDEOGATE_ICE_ANNOUNCED_ADDRESS": SERVER_PUBLIC,
            # The simulated internet uses documentation (RFC 5737) and shared (RFC 6598)
            # ranges, which the candidate filter treats as non-public (docs/security.md).
            "VIDEOGATE_LIMITS_ALLOW_PRIVATE_CANDIDATES": "true",
            "VIDEOGATE_SERVER_METRICS_TOKEN": METRICS_TOKEN,
            "VIDEOGATE_ICE_PORT_MIN": str(PORT_MIN),
            "VIDEOGATE_ICE_PORT_MAX": str(PORT_MAX),
            "VIDEOGATE_ICE_STUN_URLS": f"stun:{TURN_ADDRESS}:{TURN_PORT}" if turn else "",
            "VIDEOGATE_ICE_TURN_URLS": TURN_URLS if turn else "",
            "VIDEOGATE_ICE_TURN_SECRET": self.net.secret if turn else "",
        }
        args = [sys.executable, "-m", "server", "serve", "--host", "0.0.0.0", "--port", "443",
                "--data-dir", str(self.enrolled.data_dir)]  # fmt: skip
        proc = self.net.topo.spawn("srv", args, self.log(turn), env, cwd=REPO)
        wait_for(lambda: _healthy(self.net), 90, "server start-up", proc=proc)
        return proc

    def stop(self) -> None:
        if self.proc is not None:
            self.net.topo.stop(self.proc)
            self.proc = None


METRICS_TOKEN = "net-tests-metrics"


def health(net: Net) -> dict[str, Any]:
    """``/healthz`` (only says ok) plus the live counts from ``/metrics``."""
    out = sh("curl", "-sf", "--max-time", "2", "http://127.0.0.1:443/healthz",
             ns=net.topo.ns("srv"), check=False)  # fmt: skip
    if not out:
        return {}
    result: dict[str, Any] = dict(json.loads(out))
    metrics = sh("curl", "-sf", "--max-time", "2", "-H", f"Authorization: Bearer {METRICS_TOKEN}",
                 "http://127.0.0.1:443/metrics", ns=net.topo.ns("srv"), check=False)  # fmt: skip
    for line in (metrics or "").splitlines():
        name, _, value = line.partition(" ")
        if name in ("videogate_participants", "videogate_rooms_live"):
            result[name.removeprefix("videogate_")] = float(value)
    return result


def _healthy(net: Net) -> bool:
    return bool(health(net).get("ok"))


def run_clients(
    net: Net, enrolled: Enrolled, names: list[str], *extra: str, timeout: float = 150
) -> list[dict[str, Any]]:
    joins = [f"--join={enrolled.invites[n]}={enrolled.videos[n]}" for n in names]
    cmd = ["ip", "netns", "exec", net.topo.ns("cli"), sys.executable, "-m",
           "tests.net.netclient", "--url", f"http://{SERVER_PUBLIC}:443",
           "--room", enrolled.room, *joins, *extra]  # fmt: skip
    env = {**os.environ, "SSL_CERT_FILE": str(net.cert)}
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return list(json.loads(done.stdout.strip().splitlines()[-1]))


def audit(enrolled: Enrolled, event: str) -> list[dict[str, Any]]:
    with contextlib.closing(sqlite3.connect(enrolled.data_dir / "videogate.sqlite3")) as db:
        rows = db.execute("SELECT details FROM audit WHERE event=? ORDER BY id", (event,))
        return [json.loads(r[0]) for r in rows.fetchall()]


def server_udp_sockets(net: Net) -> list[str]:
    """The server's bound UDP sockets inside the ICE port range."""
    lines = sh("ss", "-uanH", ns=net.topo.ns("srv"), check=False).splitlines()
    return [
        line
        for line in lines
        if (port := line.split()[3].rsplit(":", 1)[-1]).isdigit()
        and PORT_MIN <= int(port) <= PORT_MAX
    ]
